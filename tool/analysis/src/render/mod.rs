//! Rendering a [`Report`]: a terminal table ([`render_text`], `text.rs`) and a self-contained
//! HTML page ([`render_html`], `html.rs`) with the service graph as inline SVG (`svg.rs`).
//! This file holds what both outputs format the same way.

use crate::health::Confidence;
use crate::impact::{Affected, Baseline, Report, Suspect, SuspectKind};
use crate::model::Deployment;
use crate::rollout::Signal;
use crate::wallclock::{format_rfc3339, format_time_of_day};

mod html;
mod svg;
mod text;

#[cfg(test)]
mod tests;

pub use html::render_html;
pub use text::render_text;

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn ms(x: f64) -> String {
    format!("{x:.1} ms")
}

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

fn kind_label(k: SuspectKind) -> &'static str {
    match k {
        SuspectKind::Errors => "errors",
        SuspectKind::Latency => "latency",
        SuspectKind::ErrorsAndLatency => "errors+latency",
    }
}

fn baseline_label(b: &Baseline) -> String {
    let list = |d: &[Deployment]| {
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match b {
        Baseline::OtherVersions { deployments } => {
            format!("other versions ({})", list(deployments))
        }
        Baseline::BaselineWindow { deployments } => {
            format!("baseline window ({})", list(deployments))
        }
    }
}

/// The time range, in wall-clock time (UTC), and where the baseline ends and why.
fn window_lines(report: &Report) -> Vec<String> {
    let w = &report.window;
    if w.end_ns == 0 {
        return Vec::new();
    }
    let secs = w.end_ns.saturating_sub(w.start_ns) as f64 / 1e9;
    let mut lines = vec![format!(
        "traffic {} to {} UTC ({secs:.0} s)",
        format_rfc3339(w.start_ns),
        format_time_of_day(w.end_ns)
    )];
    lines.push(match w.baseline_end_ns {
        Some(b) if w.baseline_end_inferred => format!(
            "baseline: before {} UTC (inferred: the first rollout seen)",
            format_time_of_day(b)
        ),
        Some(b) => format!("baseline: before {} (given)", format_rfc3339(b)),
        None => "baseline: none (no rollout seen); versions compared within the window".to_owned(),
    });
    if !report.rollouts.is_empty() {
        let list: Vec<String> = report
            .rollouts
            .iter()
            .map(|r| match r.signal {
                Signal::FirstSeen => format!(
                    "{} at {} (new, {} of its service's traffic)",
                    r.deployment,
                    format_time_of_day(r.at_ns),
                    pct(r.share_after)
                ),
                Signal::ShareJump => format!(
                    "{} at {} (share {} -> {})",
                    r.deployment,
                    format_time_of_day(r.at_ns),
                    pct(r.share_before),
                    pct(r.share_after)
                ),
            })
            .collect();
        lines.push(format!("rollouts seen: {}", list.join("; ")));
    }
    lines
}

/// The statistics, stated: tests, correction, thresholds.
fn method_line(report: &Report) -> String {
    let o = &report.options;
    format!(
        "tests: own errors: {}; self time and time into a deployment: {}; {} tests corrected together: {}; a finding also needs an effect of at least x{} and +{} ms (latency), +{} pt and x{} or +{} pt (own errors); at least {} requests per side",
        report.error_test,
        report.latency_test,
        report.tests,
        report.correction,
        o.min_latency_ratio,
        o.min_latency_delta_ms,
        100.0 * o.min_error_rate_delta_floor,
        o.min_error_rate_ratio,
        100.0 * o.min_error_rate_delta,
        o.min_samples
    )
}

/// The warning printed before anything else when the baseline itself was unhealthy.
fn health_warning(report: &Report) -> Option<String> {
    let h = &report.baseline_health;
    (h.confidence == Confidence::Low).then(|| {
        format!(
            "LOW CONFIDENCE: the baseline itself was unhealthy: {}. Findings need alpha {} instead of {}; fix the baseline (lower the load, a fault-free run with --baseline-db) before trusting names.",
            h.reasons.join("; "),
            h.effective_alpha,
            report.options.alpha
        )
    })
}

/// The time-into evidence of a suspect, one sentence.
fn time_into_line(s: &Suspect) -> Option<String> {
    let w = s.time_into.as_ref()?;
    Some(format!(
        "time into {} (its callers' CLIENT span minus its SERVER span: network, proxies, queues before it) p50 {} -> {}, p95 {} -> {} ({:+.1} ms), over {} calls vs {}; {}, p = {}, corrected q = {}",
        s.deployment,
        ms(w.baseline.wire_ms.p50),
        ms(w.candidate.wire_ms.p50),
        ms(w.baseline.wire_ms.p95),
        ms(w.candidate.wire_ms.p95),
        w.p95_delta_ms.max(w.p50_delta_ms),
        w.candidate.calls,
        w.baseline.calls,
        w.test,
        p_value(w.p_value),
        p_value(w.q_value)
    ))
}

fn affected_cells(a: &Affected) -> Vec<String> {
    let regressed = match (a.error_regressed, a.latency_regressed) {
        (true, true) => "errors+latency",
        (true, false) => "errors",
        (false, true) => "latency",
        (false, false) => "-",
    };
    let list = |v: &[Deployment]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let explained = if a.explained_by.is_empty() {
        "-".to_owned()
    } else {
        a.explained_by
            .iter()
            .map(|o| format!("{} ({})", o.deployment, o.errors))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        a.deployment.to_string(),
        a.requests.to_string(),
        a.errors.to_string(),
        a.own_errors.to_string(),
        regressed.to_owned(),
        if a.blamed_on.is_empty() {
            "-".to_owned()
        } else {
            format!("{} ({} max)", list(&a.blamed_on), pct(a.max_share))
        },
        explained,
    ]
}

/// Escapes text for HTML and SVG markup.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}
