//! `cargo run --release -p meshwake-analysis --example synth_check -- [--runs N] [--trials N]
//! [--full] [--markdown PATH] [--max-false-alarm-rate R] [--known-baseline] [--threads N]`
//!
//! Measures the verdicts on synthetic meshes (see `calibration.rs`): the share of noise-only
//! runs that name any suspect, and the power table, at default settings (the baseline end
//! inferred from the spans; `--known-baseline` passes the true rollout moment instead). Exit status 1 when the false-alarm rate
//! is above the limit (default 1%) or the 3× canary is not found; `make test` runs it short.

use std::process::ExitCode;

use meshwake_analysis::calibration::{false_alarms, power, power_cells, power_markdown};

struct Args {
    runs: usize,
    trials: usize,
    full: bool,
    markdown: Option<String>,
    max_rate: f64,
    known_baseline: bool,
    threads: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        runs: 2000,
        trials: 40,
        full: false,
        markdown: None,
        max_rate: 0.01,
        known_baseline: false,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--trials" => a.trials = value()?.parse().map_err(|e| format!("--trials: {e}"))?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--max-false-alarm-rate" => {
                a.max_rate = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
            }
            "--markdown" => a.markdown = Some(value()?),
            "--full" => a.full = true,
            "--known-baseline" => a.known_baseline = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("synth_check: {e}");
            return ExitCode::from(2);
        }
    };
    let t0 = std::time::Instant::now();
    let noise = false_alarms(args.runs, 1, args.known_baseline, args.threads);
    let rate = noise.rate();
    println!(
        "false alarms: {} of {} noise-only runs named a suspect ({:.2}%); {} false suspects; {:.1} deployments and {:.0} spans per run on average ({:.0} s)",
        noise.runs_with_suspect,
        noise.runs,
        100.0 * rate,
        noise.suspects,
        noise.deployments as f64 / noise.runs.max(1) as f64,
        noise.spans as f64 / noise.runs.max(1) as f64,
        t0.elapsed().as_secs_f64()
    );
    for e in noise.examples.iter().take(10) {
        println!("  {e}");
    }
    let t1 = std::time::Instant::now();
    let cells = power_cells(args.full);
    let table = power(&cells, args.trials, args.known_baseline, args.threads);
    let md = power_markdown(&table, args.trials);
    println!("power ({:.0} s):\n{md}", t1.elapsed().as_secs_f64());
    if let Some(path) = &args.markdown {
        if let Err(e) = std::fs::write(path, &md) {
            eprintln!("synth_check: cannot write {path}: {e}");
            return ExitCode::from(2);
        }
    }
    let mut ok = rate <= args.max_rate;
    if !ok {
        println!(
            "FAIL: false-alarm rate {:.2}% above {:.2}%",
            100.0 * rate,
            100.0 * args.max_rate
        );
    }
    // The acceptance case of the issue: ×3 own time, 30% canary, 40 req/s, 60 s.
    let three_x = table.iter().find(|(c, _)| {
        c.effect == meshwake_analysis::calibration::Effect::LatencyRatio(3.0)
            && c.share == 0.3
            && c.rate == 40.0
    });
    if let Some((_, p)) = three_x {
        if *p < 0.9 {
            println!(
                "FAIL: ×3 self-time canary (30%, 40 req/s, 60 s) found in only {:.0}% of runs",
                100.0 * p
            );
            ok = false;
        }
    }
    println!(
        "test result: {}. {} passed; {} failed",
        if ok { "ok" } else { "FAILED" },
        usize::from(ok),
        usize::from(!ok)
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
