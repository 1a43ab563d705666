//! The only place the CLI touches `meshwake-analysis`: span records, ingestion, the analysis
//! entry point and the renderers. An API change in the library is one edit here.

pub use meshwake_analysis::impact::Baseline;
pub use meshwake_analysis::{
    analyze, analyze_with_baseline, decode_otlp_json, decode_otlp_proto, from_otlp_json, wallclock,
    AnalysisOptions, DecodedSpan, Deployment, IngestError, Kind, Marker, Report, SpanRecord,
    Timeline,
};

use meshwake_analysis::ServiceGraph;

/// Terminal rendering; `color` adds ANSI colours.
pub fn render_text(report: &Report, color: bool) -> String {
    meshwake_analysis::render_text(report, color)
}

/// Self-contained HTML page, with the service graph and the suspects' timelines (`markers`
/// on them) drawn from `spans`.
pub fn render_html(report: &Report, spans: &[SpanRecord], markers: &[Marker]) -> String {
    meshwake_analysis::render_html(
        report,
        &ServiceGraph::from_spans(spans),
        &Timeline::build(report, spans, markers),
    )
}

/// The report as a JSON value, for `--json` (extra sections may be added next to it).
pub fn report_value(report: &Report) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(report)
}

/// [`report_value`] with the suspects' timelines (series of error rate and self-time p95
/// against their baselines, `markers` on them) under `timeline`.
pub fn report_with_timeline(
    report: &Report,
    spans: &[SpanRecord],
    markers: &[Marker],
) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = report_value(report)?;
    if let Some(obj) = value.as_object_mut() {
        let timeline = Timeline::build(report, spans, markers);
        obj.insert("timeline".into(), serde_json::to_value(timeline)?);
    }
    Ok(value)
}
