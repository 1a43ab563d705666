//! `meshwake impact`: load spans, run the impact analysis, print or write the report.

pub mod jaeger;
pub mod prometheus;
mod watch;
mod when;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::analysis_bridge::{self, AnalysisOptions, SpanRecord};
use crate::store::{Store, StoreError};

/// Options of `meshwake impact`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["db", "otlp_json", "jaeger"])))]
pub struct ImpactArgs {
    /// Read spans from a `meshwake collect` SQLite database.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Read spans from OTLP JSON files (Collector file exporter format: one JSON object per line).
    #[arg(long, num_args = 1..)]
    pub otlp_json: Vec<PathBuf>,
    /// Read spans from a Jaeger query service (API v3), e.g. http://127.0.0.1:16686.
    #[arg(long, requires = "service")]
    pub jaeger: Option<String>,
    /// Services to fetch from Jaeger (repeatable).
    #[arg(long, num_args = 1..)]
    pub service: Vec<String>,
    /// How far back to fetch from Jaeger, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub lookback_secs: u64,
    /// Prometheus server or scrape endpoint (…/stats/prometheus, …/metrics) for supporting evidence.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// PromQL used with a Prometheus server.
    #[arg(long, default_value = prometheus::DEFAULT_QUERY)]
    pub prometheus_query: String,
    /// Spans ending before this Unix time (ns) are the baseline; later ones the window under test.
    #[arg(long, conflicts_with = "watch")]
    pub baseline_end_ns: Option<u64>,
    /// End of the baseline as an RFC 3339 time (2026-11-30T06:00:00Z) or a duration ago (15m).
    /// Without it (or --baseline-end-ns), the first rollout seen in the spans.
    #[arg(long, value_parser = when::parse_baseline_end, conflicts_with = "baseline_end_ns")]
    pub baseline_end: Option<u64>,
    /// Baseline from a `meshwake collect` database (yesterday's traffic, a fault-free run)
    /// instead of the spans before the rollout.
    #[arg(long, conflicts_with_all = ["baseline_end_ns", "baseline_end"])]
    pub baseline_db: Option<PathBuf>,
    /// Baseline from OTLP JSON files (as --otlp-json) instead of the spans before the rollout.
    #[arg(long, num_args = 1.., conflicts_with_all = ["baseline_end_ns", "baseline_end", "baseline_db"])]
    pub baseline_otlp_json: Vec<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long, default_value_t = false, conflicts_with = "watch")]
    pub json: bool,
    /// Also write the report as a self-contained HTML page.
    #[arg(long, conflicts_with = "watch")]
    pub html: Option<PathBuf>,
    /// Re-run the analysis every DURATION (e.g. 5s) over the last --window of spans and print
    /// one line per change of a deployment's verdict (pass/fail/inconclusive, as `meshwake
    /// gate` answers), plus a heartbeat; until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = crate::window::parse_duration)]
    pub watch: Option<Duration>,
    /// With --watch: length of the sliding window (it ends at the newest span).
    #[arg(long, default_value = "60s", value_parser = crate::window::parse_duration, requires = "watch")]
    pub window: Duration,
}

/// Why `impact` could not produce a report.
#[derive(Debug)]
pub enum ImpactError {
    /// The span store could not be read.
    Store(StoreError),
    /// An OTLP JSON file could not be read or parsed.
    OtlpFile(PathBuf, String),
    /// Jaeger could not be queried.
    Jaeger(jaeger::JaegerError),
    /// The report could not be serialised or written.
    Output(String),
}

impl fmt::Display for ImpactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImpactError::Store(e) => write!(f, "{e}"),
            ImpactError::OtlpFile(p, e) => write!(f, "{}: {e}", p.display()),
            ImpactError::Jaeger(e) => write!(f, "{e}"),
            ImpactError::Output(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImpactError {}

/// Runs `impact`.
pub fn run(args: &ImpactArgs) -> Result<(), ImpactError> {
    if let Some(every) = args.watch {
        return watch::run(args, every);
    }
    let spans = load(args)?;
    let options = AnalysisOptions {
        baseline_end_ns: args.baseline_end_ns.or(args.baseline_end),
        ..AnalysisOptions::default()
    };
    let report = match load_baseline(args)? {
        Some(base) => analysis_bridge::analyze_with_baseline(&spans, &base, &options),
        None => analysis_bridge::analyze(&spans, &options),
    };
    // Metrics are only supporting evidence: their absence must not hide the trace analysis.
    let evidence = args.prometheus.as_deref().and_then(|url| {
        prometheus::fetch(url, &args.prometheus_query)
            .map_err(|e| eprintln!("meshwake impact: warning: {e}"))
            .ok()
    });
    let out = if args.json {
        let mut value = analysis_bridge::report_with_timeline(&report, &spans, &[])
            .map_err(|e| ImpactError::Output(e.to_string()))?;
        if let (Some(ev), Some(obj)) = (&evidence, value.as_object_mut()) {
            obj.insert("metrics_evidence".into(), serde_json::json!(ev));
        }
        let mut s =
            serde_json::to_string_pretty(&value).map_err(|e| ImpactError::Output(e.to_string()))?;
        s.push('\n');
        s
    } else {
        let mut s = analysis_bridge::render_text(&report, std::io::stdout().is_terminal());
        if let Some(ev) = &evidence {
            s.push('\n');
            s.push_str(&prometheus::render_text(ev));
        }
        s
    };
    if let Some(path) = &args.html {
        std::fs::write(path, analysis_bridge::render_html(&report, &spans, &[]))
            .map_err(|e| ImpactError::Output(format!("cannot write {}: {e}", path.display())))?;
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .map_err(|e| ImpactError::Output(e.to_string()))
}

fn load(args: &ImpactArgs) -> Result<Vec<SpanRecord>, ImpactError> {
    if let Some(db) = &args.db {
        return Store::open(db)
            .and_then(|s| s.load_records())
            .map_err(ImpactError::Store);
    }
    if let Some(url) = &args.jaeger {
        return jaeger::fetch(url, &args.service, Duration::from_secs(args.lookback_secs))
            .map_err(ImpactError::Jaeger);
    }
    let mut spans = Vec::new();
    for path in &args.otlp_json {
        spans.extend(load_otlp_json(path)?);
    }
    Ok(spans)
}

/// Spans of `--baseline-db` / `--baseline-otlp-json`, when given.
fn load_baseline(args: &ImpactArgs) -> Result<Option<Vec<SpanRecord>>, ImpactError> {
    if let Some(db) = &args.baseline_db {
        return Store::open(db)
            .and_then(|s| s.load_records())
            .map(Some)
            .map_err(ImpactError::Store);
    }
    if args.baseline_otlp_json.is_empty() {
        return Ok(None);
    }
    let mut spans = Vec::new();
    for path in &args.baseline_otlp_json {
        spans.extend(load_otlp_json(path)?);
    }
    Ok(Some(spans))
}

/// Reads a file of OTLP JSON objects (one per line as the Collector file exporter writes them,
/// or pretty-printed one after another).
pub fn load_otlp_json(path: &Path) -> Result<Vec<SpanRecord>, ImpactError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ImpactError::OtlpFile(path.into(), e.to_string()))?;
    analysis_bridge::from_otlp_json(&text)
        .map_err(|e| ImpactError::OtlpFile(path.into(), e.to_string()))
}
