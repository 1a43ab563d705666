//! What the demo leaves in its output directory: a fresh layout, the span store once the
//! last spans are in, and the reports (text on stdout and in report.txt, HTML, JSON).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::rollout::Controller;
use super::{io, say, DemoError};
use crate::analysis_bridge::{self, AnalysisOptions};
use crate::store::Store;

/// How long to wait for the last spans after traffic stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Empties `out` of a previous run's logs, Envoy configurations and span store, and creates
/// the directories the processes write to.
pub(super) fn prepare(out: &Path) -> Result<(), DemoError> {
    let logs = out.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    let _ = std::fs::remove_dir_all(out.join("envoy"));
    for f in ["spans.db", "spans.db-wal", "spans.db-shm"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    std::fs::create_dir_all(&logs).map_err(io(format!("cannot create {}", logs.display())))?;
    std::fs::create_dir_all(out.join("envoy")).map_err(io("cannot create the envoy directory"))?;
    Ok(())
}

/// Spans are exported every FLUSH_INTERVAL_MS: waits until the stored count stops moving
/// (or [`DRAIN_TIMEOUT`], or Ctrl-C).
pub(super) fn wait_for_last_spans(db: &Path, stop: &AtomicBool) {
    let drain_end = Instant::now() + DRAIN_TIMEOUT;
    let mut last = None;
    let mut stable = 0;
    while Instant::now() < drain_end && stable < 3 && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let n = span_count(db);
        stable = if Some(n) == last { stable + 1 } else { 0 };
        last = Some(n);
    }
}

/// Number of spans stored so far (0 while the collector has not created the store yet).
fn span_count(db: &Path) -> u64 {
    Store::open_read_only(db)
        .and_then(|s| s.count())
        .unwrap_or(0)
}

/// Analyses the stored spans and writes the reports; the text report also goes to stdout.
pub(super) fn write_reports(
    out: &Path,
    baseline_end_ns: Option<u64>,
    gate: &Controller,
) -> Result<(), DemoError> {
    let db = out.join("spans.db");
    let logs = out.join("logs");
    let spans = Store::open(&db)
        .and_then(|s| s.load_records())
        .map_err(DemoError::Store)?;
    say(&format!(
        "analysing {} spans (telemetry only; baseline ends at the first rollout)",
        spans.len()
    ));
    let options = AnalysisOptions {
        baseline_end_ns,
        ..AnalysisOptions::default()
    };
    let report = analysis_bridge::analyze(&spans, &options);
    let rollout = gate.summary();
    let text = analysis_bridge::render_text(&report, std::io::stdout().is_terminal());
    let text = format!("{text}\n{rollout}");
    let markers = gate.markers();
    let html_path = out.join("report.html");
    std::fs::write(
        &html_path,
        analysis_bridge::render_html(&report, &spans, &markers),
    )
    .map_err(io(format!("cannot write {}", html_path.display())))?;
    let mut json = analysis_bridge::report_with_timeline(&report, &spans, &markers)
        .map_err(|e| DemoError::Io("report".into(), std::io::Error::other(e)))?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert(
            "rollout".into(),
            serde_json::json!({ "gate": gate.url(), "events": gate.events }),
        );
    }
    write_json(&out.join("report.json"), &json)?;
    std::fs::write(
        out.join("report.txt"),
        format!(
            "{}\n{rollout}",
            analysis_bridge::render_text(&report, false)
        ),
    )
    .map_err(io("cannot write report.txt"))?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = writeln!(stdout);
    let _ = stdout.flush();
    say(&format!("HTML report: {}", html_path.display()));
    say(&format!(
        "JSON report: {}  spans: {}  logs: {}",
        out.join("report.json").display(),
        db.display(),
        logs.display()
    ));
    Ok(())
}

/// Writes `value` as pretty-printed JSON (Envoy bootstraps, report.json).
pub(super) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), DemoError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| DemoError::Io(path.display().to_string(), std::io::Error::other(e)))?;
    std::fs::write(path, text).map_err(io(format!("cannot write {}", path.display())))
}
