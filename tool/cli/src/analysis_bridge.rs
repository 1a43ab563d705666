//! The only place the CLI touches `meshwake-analysis`: span records, the analysis entry point and
//! the renderers. Keeping the seam in one file means an API change in the library is one edit here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One span, flattened to the fields the impact analysis needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: String,
    pub version: Option<String>,
    pub kind: String,
    pub role: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub is_error: bool,
    pub http_status: Option<u16>,
    pub route: Option<String>,
    pub peer_service: Option<String>,
    pub peer_version: Option<String>,
}

/// Analysis knobs set from the command line.
#[derive(Debug, Clone, Default)]
pub struct AnalysisOptions {
    /// Spans that end before this instant form the baseline; later ones the candidate window.
    pub baseline_end_ns: Option<u64>,
}

/// Placeholder report until the library lands: span and error counts per deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub spans: usize,
    pub deployments: BTreeMap<String, DeploymentCounts>,
}

/// Counts for one `service@version`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeploymentCounts {
    pub spans: u64,
    pub errors: u64,
}

/// Runs the analysis over `spans`.
pub fn analyze(spans: &[SpanRecord], options: &AnalysisOptions) -> Report {
    let _ = options.baseline_end_ns;
    let mut deployments: BTreeMap<String, DeploymentCounts> = BTreeMap::new();
    for s in spans {
        let key = format!("{}@{}", s.service, s.version.as_deref().unwrap_or("unknown"));
        let entry = deployments.entry(key).or_default();
        entry.spans += 1;
        entry.errors += u64::from(s.is_error);
    }
    Report { spans: spans.len(), deployments }
}

/// Plain-text rendering; `color` adds ANSI colours.
pub fn render_text(report: &Report, color: bool) -> String {
    let (red, reset) = if color { ("\x1b[31m", "\x1b[0m") } else { ("", "") };
    let mut out = format!("{} spans\n", report.spans);
    for (k, c) in &report.deployments {
        let err = if c.errors > 0 { red } else { "" };
        out.push_str(&format!("  {k}: {} spans, {err}{} errors{reset}\n", c.spans, c.errors));
    }
    out
}

/// Self-contained HTML rendering.
pub fn render_html(report: &Report) -> String {
    format!("<!doctype html><html><body><pre>{}</pre></body></html>\n", render_text(report, false))
}


/// The report as a JSON value, for `--json` (extra sections may be added next to it).
pub fn report_value(report: &Report) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(report)
}
