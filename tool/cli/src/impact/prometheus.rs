//! Supporting evidence from metrics: request and 5xx counts by `destination_version`, from a
//! Prometheus server (`/api/v1/query`) or a scrape endpoint such as Envoy's `/stats/prometheus`.

use std::collections::BTreeMap;
use std::fmt;

use meshwake_semconv::metric::label;
use serde::Serialize;
use serde_json::Value;

/// Label naming the deployment version a request went to.
pub const DESTINATION_VERSION: &str = label::DESTINATION_VERSION;
/// Labels holding the response code (or its class) in the supported metric sets: the
/// filter's, and `response_code_class` of metric sets that bucket codes.
pub const RESPONSE_CODE_LABELS: [&str; 2] = [label::RESPONSE_CODE, "response_code_class"];
/// Largest answer read.
pub const MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// Default PromQL: every `*requests_total` counter (`meshwake_` and Istio's names), by version
/// and response code, as reported by the destination: each request between two sidecars is
/// counted by both (`reporter="source"` and `"destination"`), and summing both doubled it.
/// (Label names as in [`label`]; a test holds the two together.)
pub const DEFAULT_QUERY: &str =
    "sum by (destination_version, response_code) ({__name__=~\".*requests_total\", reporter=\"destination\", destination_version!=\"\"})";

/// Requests seen for one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionCounts {
    /// All requests.
    pub requests: f64,
    /// Requests answered 5xx.
    pub errors_5xx: f64,
}

/// Counts by `destination_version`.
pub type Evidence = BTreeMap<String, VersionCounts>;

/// A metrics query that failed.
#[derive(Debug)]
pub enum MetricsError {
    /// The HTTP request failed or answered non-2xx.
    Http(String, ureq::Error),
    /// The answer is not what the API documents.
    Body(String, String),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Http(url, e) => write!(f, "metrics query {url} failed: {e}"),
            MetricsError::Body(url, e) => write!(f, "unexpected metrics answer from {url}: {e}"),
        }
    }
}

impl std::error::Error for MetricsError {}

/// Queries `url`: a scrape endpoint when its path ends in `/stats/prometheus` or `/metrics`,
/// otherwise a Prometheus server.
pub fn fetch(url: &str, query: &str) -> Result<Evidence, MetricsError> {
    let trimmed = url.trim_end_matches('/');
    let scrape = trimmed.ends_with("/stats/prometheus") || trimmed.ends_with("/metrics");
    let request = if scrape {
        ureq::get(trimmed)
    } else {
        ureq::get(format!("{trimmed}/api/v1/query")).query("query", query)
    };
    let body = request
        .call()
        .and_then(|mut r| {
            r.body_mut()
                .with_config()
                .limit(MAX_RESPONSE_BYTES)
                .read_to_string()
        })
        .map_err(|e| MetricsError::Http(trimmed.to_string(), e))?;
    if scrape {
        Ok(from_exposition(&body))
    } else {
        from_query_api(&body).map_err(|e| MetricsError::Body(trimmed.to_string(), e))
    }
}

fn add(ev: &mut Evidence, version: &str, code: Option<&str>, value: f64) {
    if !value.is_finite() {
        return;
    }
    let c = ev.entry(version.to_string()).or_default();
    c.requests += value;
    if code.is_some_and(|c| c.starts_with('5')) {
        c.errors_5xx += value;
    }
}

/// Sums an instant-vector answer of `/api/v1/query`.
pub fn from_query_api(body: &str) -> Result<Evidence, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if v.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!(
            "status is not success: {}",
            v.get("error").unwrap_or(&Value::Null)
        ));
    }
    let results = v
        .pointer("/data/result")
        .and_then(Value::as_array)
        .ok_or("no data.result array")?;
    let mut ev = Evidence::new();
    for r in results {
        let metric = r.get("metric");
        let label = |k: &str| metric.and_then(|m| m.get(k)).and_then(Value::as_str);
        let Some(version) = label(DESTINATION_VERSION) else {
            continue;
        };
        let code = RESPONSE_CODE_LABELS.iter().find_map(|k| label(k));
        let value = r
            .pointer("/value/1")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
        add(&mut ev, version, code, value);
    }
    Ok(ev)
}

/// Sums the `*_total` samples carrying a `destination_version` label in Prometheus text format.
pub fn from_exposition(body: &str) -> Evidence {
    let mut ev = Evidence::new();
    for line in body.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        if !name.ends_with("_total") {
            continue;
        }
        let labels = parse_labels(labels);
        let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(version) = get(DESTINATION_VERSION) else {
            continue;
        };
        let code = RESPONSE_CODE_LABELS.iter().find_map(|k| get(k));
        let value = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        add(&mut ev, version, code, value);
    }
    ev
}

/// `a="x",b="y"` → pairs; escapes `\"`, `\\`, `\n` are honoured.
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim().trim_start_matches(',').trim().to_string();
        if name.is_empty() || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                c => value.push(c),
            }
        }
        out.push((name, value));
    }
}

/// One line per version, for the text report.
pub fn render_text(ev: &Evidence) -> String {
    let mut out = String::from("Supporting evidence (metrics by destination_version):\n");
    if ev.is_empty() {
        out.push_str("  no samples with a destination_version label\n");
    }
    for (version, c) in ev {
        let pct = if c.requests > 0.0 {
            100.0 * c.errors_5xx / c.requests
        } else {
            0.0
        };
        out.push_str(&format!(
            "  {version}: {:.0} requests, {:.0} 5xx ({pct:.1}%)\n",
            c.requests, c.errors_5xx
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_query_uses_the_filters_metric_and_label_names() {
        let by = format!(
            "sum by ({}, {})",
            label::DESTINATION_VERSION,
            label::RESPONSE_CODE
        );
        assert!(DEFAULT_QUERY.starts_with(&by), "{DEFAULT_QUERY}");
        let total = meshwake_semconv::metric::MESHWAKE_REQUESTS_TOTAL;
        assert!(total.ends_with("requests_total") && DEFAULT_QUERY.contains(".*requests_total"));
    }

    #[test]
    fn sums_exposition_by_version() {
        let text = "# TYPE x counter\n\
            meshwake_requests_total{destination_service=\"pay\",destination_version=\"v1\",response_code=\"200\"} 90\n\
            meshwake_requests_total{destination_version=\"v1\",response_code=\"503\"} 10 1700000000\n\
            meshwake_requests_total{destination_version=\"v2\",response_code_class=\"5xx\"} 4\n\
            meshwake_requests_total{response_code=\"200\"} 7\n\
            meshwake_latency_bucket{destination_version=\"v1\",le=\"1\"} 100\n";
        let ev = from_exposition(text);
        assert_eq!(
            ev["v1"],
            VersionCounts {
                requests: 100.0,
                errors_5xx: 10.0
            }
        );
        assert_eq!(
            ev["v2"],
            VersionCounts {
                requests: 4.0,
                errors_5xx: 4.0
            }
        );
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn sums_query_api_answer() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"destination_version":"v1","response_code":"200"},"value":[1,"5"]},
            {"metric":{"destination_version":"v1","response_code":"500"},"value":[1,"2"]},
            {"metric":{},"value":[1,"9"]}]}}"#;
        let ev = from_query_api(body).unwrap();
        assert_eq!(
            ev["v1"],
            VersionCounts {
                requests: 7.0,
                errors_5xx: 2.0
            }
        );
        assert!(from_query_api(r#"{"status":"error","error":"bad"}"#).is_err());
        assert!(from_query_api("nope").is_err());
    }

    #[rustfmt::skip]
    #[test]
    fn labels() {
        let cases: [(&str, Vec<(&str, &str)>); 3] = [
            (r#"a="1",b="x\"y""#, vec![("a", "1"), ("b", "x\"y")]),
            (r#"a="1","#, vec![("a", "1")]),
            ("", vec![]),
        ];
        for (s, want) in cases {
            let got = parse_labels(s);
            let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            assert_eq!(got, want, "{s}");
        }
    }
}
