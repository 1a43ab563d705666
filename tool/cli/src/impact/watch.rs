//! `meshwake impact --watch DURATION`: the gate's evaluation in a terminal. Every DURATION the
//! last `--window` of spans is analysed; a line is printed for each deployment whose verdict
//! changed (the same pass/fail/inconclusive as `meshwake gate`), and a heartbeat when nothing
//! changed for [`HEARTBEAT_EVERY`].

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use super::{ImpactArgs, ImpactError};
use crate::analysis_bridge::Deployment;
use crate::gate::verdict::{judge, Verdict};
use crate::gate::{evaluate, EvalConfig, Evaluation};
use crate::impact::jaeger::rfc3339;
use crate::window::{unix_now_ns, Source};

/// A heartbeat line is printed when no other line was for this long.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

/// The verdict of every deployment seen in the window.
type Verdicts = BTreeMap<Deployment, (Verdict, String)>;

/// Runs the watch loop until interrupted.
pub fn run(args: &ImpactArgs, every: Duration) -> Result<(), ImpactError> {
    let min_requests = crate::gate::GATE_MIN_REQUESTS;
    let cfg = EvalConfig {
        source: Source::from_options(
            args.db.as_ref(),
            args.jaeger.as_ref(),
            &args.service,
            &args.otlp_json,
        ),
        window: args.window,
        baseline: Duration::ZERO,
        min_requests,
        prometheus: None,
    };
    let mut out = std::io::stdout().lock();
    let say = |out: &mut std::io::StdoutLock<'_>, line: String| {
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| ImpactError::Output(e.to_string()))
    };
    say(
        &mut out,
        format!(
            "watching {} every {} s over the last {} s (Ctrl-C to stop)",
            cfg.source,
            every.as_secs_f64(),
            args.window.as_secs_f64()
        ),
    )?;
    let mut previous = Verdicts::new();
    let mut source_up = true;
    let mut last_line = Instant::now();
    loop {
        let started = Instant::now();
        let eval = evaluate(&cfg);
        let now = unix_now_ns();
        let stamp = rfc3339(now / 1_000_000_000);
        let mut lines = Vec::new();
        match &eval.report {
            Err(e) => {
                if source_up {
                    lines.push(format!("{stamp} source down: {e}"));
                }
                source_up = false;
            }
            Ok(_) => {
                if !source_up {
                    lines.push(format!("{stamp} source back up"));
                }
                source_up = true;
                let current = verdicts(&eval, min_requests, now);
                lines.extend(changes(&previous, &current, &stamp));
                previous = current;
            }
        }
        if lines.is_empty() && last_line.elapsed() >= HEARTBEAT_EVERY {
            lines.push(heartbeat(&eval, &previous, &stamp));
        }
        if !lines.is_empty() {
            last_line = Instant::now();
        }
        for line in lines {
            say(&mut out, line)?;
        }
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
}

fn verdicts(eval: &Evaluation, min_requests: u64, now: u64) -> Verdicts {
    let Ok(report) = &eval.report else {
        return Verdicts::new();
    };
    report
        .deployments
        .iter()
        .map(|d| {
            let a = judge(eval, &d.deployment, min_requests, now);
            (d.deployment.clone(), (a.verdict, a.reason))
        })
        .collect()
}

/// One line per deployment whose verdict changed, appeared or left the window.
fn changes(before: &Verdicts, after: &Verdicts, stamp: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (dep, (verdict, reason)) in after {
        let old = before.get(dep).map(|(v, _)| *v);
        if old == Some(*verdict) {
            continue;
        }
        let from = old.map_or("new", Verdict::as_str);
        let to = match verdict {
            Verdict::Fail => "FAIL",
            v => v.as_str(),
        };
        lines.push(format!("{stamp} {dep}: {from} -> {to}: {reason}"));
    }
    for dep in before.keys().filter(|d| !after.contains_key(*d)) {
        lines.push(format!("{stamp} {dep}: gone (no requests in the window)"));
    }
    lines
}

fn heartbeat(eval: &Evaluation, verdicts: &Verdicts, stamp: &str) -> String {
    let failing: Vec<String> = verdicts
        .iter()
        .filter(|(_, (v, _))| *v == Verdict::Fail)
        .map(|(d, _)| d.to_string())
        .collect();
    format!(
        "{stamp} . {} spans, {} deployments, failing: {}",
        eval.window.spans,
        verdicts.len(),
        if failing.is_empty() {
            "none".to_owned()
        } else {
            failing.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_lines() {
        let d = |v: &str| Deployment::new("pay", v);
        let before: Verdicts = [
            (d("v1"), (Verdict::Pass, "ok".into())),
            (d("v2"), (Verdict::Inconclusive, "few".into())),
            (d("v3"), (Verdict::Pass, "ok".into())),
        ]
        .into();
        let after: Verdicts = [
            (d("v1"), (Verdict::Pass, "still ok".into())),
            (d("v2"), (Verdict::Fail, "suspect".into())),
            (d("v4"), (Verdict::Inconclusive, "few".into())),
        ]
        .into();
        let lines = changes(&before, &after, "T");
        assert_eq!(
            lines,
            [
                "T pay@v2: inconclusive -> FAIL: suspect",
                "T pay@v4: new -> inconclusive: few",
                "T pay@v3: gone (no requests in the window)",
            ]
        );
    }
}
