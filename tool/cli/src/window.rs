//! A sliding window over a span source, for the commands that keep re-evaluating
//! (`meshwake gate`, `meshwake impact --watch`).
//!
//! The window ends at the newest span the source holds, not at the wall clock: the same code
//! then answers live (spans keep arriving, the window slides) and on a recorded `spans.db`
//! (the window is the end of the recording). How old that newest span is, is reported next to
//! every answer so that a source that stopped receiving spans is visible (docs/adr/0011).

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::analysis_bridge::SpanRecord;
use crate::impact::{jaeger, load_otlp_json};
use crate::store::Store;

/// Longest accepted window or period: a week (the analysis holds a window in memory).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where spans come from: the same three sources as `meshwake impact`.
#[derive(Debug, Clone)]
pub enum Source {
    /// A `meshwake collect` SQLite database.
    Db(PathBuf),
    /// OTLP JSON files, re-read at every evaluation (a file exporter appends to them).
    OtlpJson(Vec<PathBuf>),
    /// A Jaeger query service (API v3) and the services to fetch.
    Jaeger { url: String, services: Vec<String> },
}

impl Source {
    /// The source named by the shared command-line options (`--db` first, then `--jaeger`,
    /// else `--otlp-json`; clap makes sure one is given).
    pub fn from_options(
        db: Option<&PathBuf>,
        jaeger: Option<&String>,
        services: &[String],
        otlp_json: &[PathBuf],
    ) -> Self {
        if let Some(db) = db {
            Source::Db(db.clone())
        } else if let Some(url) = jaeger {
            Source::Jaeger {
                url: url.clone(),
                services: services.to_vec(),
            }
        } else {
            Source::OtlpJson(otlp_json.to_vec())
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Db(p) => write!(f, "span store {}", p.display()),
            Source::OtlpJson(files) => write!(f, "{} OTLP JSON file(s)", files.len()),
            Source::Jaeger { url, .. } => write!(f, "Jaeger {url}"),
        }
    }
}

/// The spans of one window, and where it lies.
#[derive(Debug, Clone, Default)]
pub struct Windowed {
    /// Spans that started in `[start_ns, end_ns]`.
    pub spans: Vec<SpanRecord>,
    /// Window start, Unix ns (baseline included).
    pub start_ns: u64,
    /// Window end: start of the newest span in the source, Unix ns (0 when it holds none).
    pub end_ns: u64,
    /// Split between the baseline and the window under test, when a baseline was asked for.
    pub baseline_end_ns: Option<u64>,
}

/// Loads the last `window` of spans (plus `baseline` before it) from `source`.
/// The error is a sentence naming the source: the caller reports it and keeps going.
pub fn load(source: &Source, window: Duration, baseline: Duration) -> Result<Windowed, String> {
    let span_ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let reach = span_ns(window).saturating_add(span_ns(baseline));
    let (spans, end_ns) = match source {
        Source::Db(path) => {
            // Read-only: the gate never creates or changes a store (a typo reads as "source down").
            if !path.exists() {
                return Err(format!("span store {} does not exist", path.display()));
            }
            let store =
                Store::open_read_only(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let end = store
                .newest_start_ns()
                .map_err(|e| format!("{}: {e}", path.display()))?
                .unwrap_or(0);
            let spans = store
                .load_since(end.saturating_sub(reach))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            (spans, end)
        }
        Source::OtlpJson(files) => {
            let mut spans = Vec::new();
            for path in files {
                spans.extend(load_otlp_json(path).map_err(|e| e.to_string())?);
            }
            let end = newest_start(&spans);
            (spans, end)
        }
        Source::Jaeger { url, services } => {
            let lookback = window.saturating_add(baseline).saturating_add(window);
            let spans = jaeger::fetch(url, services, lookback).map_err(|e| e.to_string())?;
            let end = newest_start(&spans);
            (spans, end)
        }
    };
    let start_ns = end_ns.saturating_sub(reach);
    let spans = complete_traces(
        spans
            .into_iter()
            .filter(|s| s.start_ns >= start_ns && s.start_ns <= end_ns)
            .collect(),
    );
    let baseline_end_ns = (!baseline.is_zero()).then(|| end_ns.saturating_sub(span_ns(window)));
    Ok(Windowed {
        spans,
        start_ns,
        end_ns,
        baseline_end_ns,
    })
}

/// Drops the traces whose root span is not in the window: at its end, requests still in
/// flight (the edge span ends, and is exported, last), at its start, requests cut by the
/// window. Their partial spans would make callers look like edges and victims like culprits.
/// A source without root spans at all (an uninstrumented edge) is kept whole: when more than
/// half of the traces lack a root, nothing is dropped.
fn complete_traces(spans: Vec<SpanRecord>) -> Vec<SpanRecord> {
    let all: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    let rooted: HashSet<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .map(|s| s.trace_id.as_str())
        .collect();
    if rooted.len() * 2 < all.len() || rooted.len() == all.len() {
        return spans;
    }
    let keep: HashSet<String> = rooted.into_iter().map(str::to_owned).collect();
    spans
        .into_iter()
        .filter(|s| keep.contains(&s.trace_id))
        .collect()
}

fn newest_start(spans: &[SpanRecord]) -> u64 {
    spans.iter().map(|s| s.start_ns).max().unwrap_or(0)
}

/// Now, in Unix nanoseconds.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Parses a duration: a number with an optional unit `ms`, `s`, `m` or `h` (`30s`, `1m`,
/// `500ms`; a bare number is seconds). Zero and more than [`MAX_DURATION`] are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (examples: 30s, 1m, 500ms)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    if !(secs > 0.0 && secs <= MAX_DURATION.as_secs_f64()) {
        return Err(format!(
            "duration {text:?} out of range (above 0, at most {} h)",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Like [`parse_duration`], but `0` (or `0s`) is accepted and means "none".
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    match text.trim().trim_end_matches(['s', 'm', 'h']).parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => parse_duration(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis_bridge::Kind;

    fn span(trace: &str, id: &str, parent: Option<&str>) -> SpanRecord {
        SpanRecord {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            service: "s".into(),
            version: "v1".into(),
            kind: Kind::Server,
            role: None,
            start_ns: 1,
            end_ns: 2,
            is_error: false,
            http_status: None,
            route: None,
            peer_service: None,
            peer_version: None,
        }
    }

    #[test]
    fn traces_without_their_root_are_dropped_unless_roots_are_rare() {
        let ids = |v: Vec<SpanRecord>| v.into_iter().map(|s| s.span_id).collect::<Vec<_>>();
        let mixed = vec![
            span("a", "a1", None),
            span("a", "a2", Some("a1")),
            span("b", "b2", Some("b1")),
            span("c", "c1", None),
        ];
        assert_eq!(ids(complete_traces(mixed)), ["a1", "a2", "c1"]);
        let rootless = vec![span("a", "a2", Some("a1")), span("b", "b2", Some("b1"))];
        assert_eq!(ids(complete_traces(rootless)), ["a2", "b2"]);
    }

    #[rustfmt::skip]
    #[test]
    fn durations() {
        let cases: [(&str, Option<f64>); 10] = [
            ("30s", Some(30.0)), ("1m", Some(60.0)), ("500ms", Some(0.5)), ("2", Some(2.0)),
            ("1.5h", Some(5400.0)), ("0", None), ("", None), ("5 parsecs", None), ("-1s", None),
            ("9999h", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s).ok().map(|d| d.as_secs_f64()), want, "{s}");
        }
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration_or_zero("x").is_err());
    }
}
