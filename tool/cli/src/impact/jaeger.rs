//! Spans from a Jaeger query service, API v3 (`GET /api/v3/traces`), which answers in OTLP JSON.
//! See <https://www.jaegertracing.io/docs/latest/architecture/apis/#query-api-v3>.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::analysis_bridge::{from_otlp_json, IngestError, SpanRecord};

/// Largest response read from Jaeger.
pub const MAX_RESPONSE_BYTES: u64 = 256 << 20;
/// Most traces asked for per service.
pub const MAX_TRACES: u32 = 1000;

/// A Jaeger query that failed.
#[derive(Debug)]
pub enum JaegerError {
    /// The HTTP request failed or answered non-2xx.
    Http(String, ureq::Error),
    /// The answer is not OTLP JSON.
    Body(String, IngestError),
}

impl fmt::Display for JaegerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JaegerError::Http(url, e) => write!(f, "Jaeger query {url} failed: {e}"),
            JaegerError::Body(url, e) => {
                write!(f, "Jaeger answer from {url} is not OTLP JSON: {e}")
            }
        }
    }
}

impl std::error::Error for JaegerError {}

/// Fetches the spans of `services` that started in the last `lookback`.
pub fn fetch(
    base: &str,
    services: &[String],
    lookback: Duration,
) -> Result<Vec<SpanRecord>, JaegerError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = rfc3339(now.saturating_sub(lookback).as_secs());
    let end = rfc3339(now.as_secs().saturating_add(1));
    let url = format!("{}/api/v3/traces", base.trim_end_matches('/'));
    let mut rows = Vec::new();
    for service in services {
        let body = ureq::get(&url)
            .query("query.service_name", service)
            .query("query.start_time_min", &start)
            .query("query.start_time_max", &end)
            .query("query.search_depth", MAX_TRACES.to_string())
            .call()
            .and_then(|mut r| {
                r.body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_string()
            })
            .map_err(|e| JaegerError::Http(url.clone(), e))?;
        // The ingest understands the `{"result": ...}` wrapper the grpc-gateway streams.
        rows.extend(from_otlp_json(&body).map_err(|e| JaegerError::Body(url.clone(), e))?);
    }
    Ok(rows)
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn rfc3339_dates() {
        for (secs, want) in [(0, "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"),
                             (1_764_084_645, "2025-11-25T15:30:45Z")] {
            assert_eq!(rfc3339(secs), want);
        }
    }
}
