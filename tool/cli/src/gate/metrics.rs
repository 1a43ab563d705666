//! `GET /metrics`: the current verdict per deployment under test and the gate's own health,
//! in the Prometheus text format. Every metric name is declared here, once.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::verdict::{Answer, Verdict};
use crate::analysis_bridge::Deployment;

/// Gauge: 1 for the current verdict of a deployment under test, 0 for the two others.
pub const VERDICT: &str = "meshwake_gate_verdict";
/// Gauge: requests of a deployment under test in the window.
pub const DEPLOYMENT_REQUESTS: &str = "meshwake_gate_deployment_requests";
/// Counter: evaluations of the window (successful or not).
pub const EVALUATIONS_TOTAL: &str = "meshwake_gate_evaluations_total";
/// Counter: evaluations whose span source could not be read.
pub const SOURCE_ERRORS_TOTAL: &str = "meshwake_gate_source_errors_total";
/// Gauge: 1 when the last evaluation could read the span source.
pub const SOURCE_UP: &str = "meshwake_gate_source_up";
/// Gauge: seconds since the last evaluation.
pub const LAST_EVALUATION_AGE: &str = "meshwake_gate_last_evaluation_age_seconds";
/// Gauge: how long the last evaluation took.
pub const LAST_EVALUATION_DURATION: &str = "meshwake_gate_last_evaluation_duration_seconds";
/// Gauge: spans in the window at the last evaluation.
pub const WINDOW_SPANS: &str = "meshwake_gate_window_spans";
/// Gauge: age of the newest span at the last evaluation.
pub const NEWEST_SPAN_AGE: &str = "meshwake_gate_newest_span_age_seconds";
/// Gauge: suspects at the last evaluation.
pub const SUSPECTS: &str = "meshwake_gate_suspects";
/// Counter: HTTP requests answered, by endpoint and status code.
pub const HTTP_REQUESTS_TOTAL: &str = "meshwake_gate_http_requests_total";

/// Most deployments remembered as "under test"; beyond it the oldest asked is forgotten.
pub const MAX_UNDER_TEST: usize = 256;

/// The gate's counters and the deployments it was asked about.
#[derive(Default)]
pub struct Stats {
    /// Evaluations run.
    pub evaluations: AtomicU64,
    /// Evaluations that could not read the source.
    pub source_errors: AtomicU64,
    /// HTTP answers by (endpoint, status).
    http: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Deployments asked about (or given with `--deployment`), with a sequence number so that
    /// the least recently asked is dropped first.
    under_test: Mutex<BTreeMap<Deployment, u64>>,
    asked: AtomicU64,
}

impl Stats {
    /// Counts one HTTP answer.
    pub fn answered(&self, endpoint: &'static str, status: u16) {
        if let Ok(mut m) = self.http.lock() {
            *m.entry((endpoint, status)).or_default() += 1;
        }
    }

    /// Remembers `dep` as a deployment under test.
    pub fn under_test(&self, dep: &Deployment) {
        let seq = self.asked.fetch_add(1, Ordering::Relaxed);
        let Ok(mut m) = self.under_test.lock() else {
            return;
        };
        m.insert(dep.clone(), seq);
        if m.len() > MAX_UNDER_TEST {
            let oldest = m.iter().min_by_key(|(_, s)| **s).map(|(d, _)| d.clone());
            if let Some(d) = oldest {
                m.remove(&d);
            }
        }
    }

    /// The deployments under test.
    pub fn deployments(&self) -> Vec<Deployment> {
        self.under_test
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn http_counts(&self) -> Vec<((&'static str, u16), u64)> {
        self.http
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

/// Health numbers of the last evaluation.
pub struct Health {
    /// Seconds since it ran (`None` before the first).
    pub age_s: Option<f64>,
    /// How long it took, seconds.
    pub took_s: f64,
    /// Whether the source could be read.
    pub source_up: bool,
    /// Spans in the window.
    pub spans: usize,
    /// Age of the newest span, seconds.
    pub newest_span_age_s: f64,
    /// Suspects found.
    pub suspects: usize,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value (`\`, `"`, newline) as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric; `answers` are the current answers for the deployments under test.
pub fn render(stats: &Stats, health: &Health, answers: &[Answer]) -> String {
    let mut out = String::new();
    metric(
        &mut out,
        VERDICT,
        "gauge",
        "Current verdict of each deployment under test (1 = this verdict).",
    );
    for a in answers {
        for v in Verdict::ALL {
            let _ = writeln!(
                out,
                "{VERDICT}{{deployment=\"{}\",verdict=\"{}\"}} {}",
                label(&a.deployment.to_string()),
                v.as_str(),
                u8::from(a.verdict == v)
            );
        }
    }
    metric(
        &mut out,
        DEPLOYMENT_REQUESTS,
        "gauge",
        "Requests served in the window by each deployment under test.",
    );
    for a in answers {
        let _ = writeln!(
            out,
            "{DEPLOYMENT_REQUESTS}{{deployment=\"{}\"}} {}",
            label(&a.deployment.to_string()),
            a.requests
        );
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let simple: [(&str, &str, &str, String); 8] = [
        (
            EVALUATIONS_TOTAL,
            "counter",
            "Evaluations of the window.",
            get(&stats.evaluations).to_string(),
        ),
        (
            SOURCE_ERRORS_TOTAL,
            "counter",
            "Evaluations that could not read the span source.",
            get(&stats.source_errors).to_string(),
        ),
        (
            SOURCE_UP,
            "gauge",
            "1 when the last evaluation could read the span source.",
            u8::from(health.source_up).to_string(),
        ),
        (
            LAST_EVALUATION_AGE,
            "gauge",
            "Seconds since the last evaluation (NaN before the first).",
            health.age_s.map_or("NaN".into(), |a| format!("{a:.3}")),
        ),
        (
            LAST_EVALUATION_DURATION,
            "gauge",
            "Seconds the last evaluation took.",
            format!("{:.3}", health.took_s),
        ),
        (
            WINDOW_SPANS,
            "gauge",
            "Spans in the window at the last evaluation.",
            health.spans.to_string(),
        ),
        (
            NEWEST_SPAN_AGE,
            "gauge",
            "Age of the newest span at the last evaluation, seconds.",
            format!("{:.3}", health.newest_span_age_s),
        ),
        (
            SUSPECTS,
            "gauge",
            "Suspect deployments at the last evaluation.",
            health.suspects.to_string(),
        ),
    ];
    for (name, kind, help, value) in simple {
        metric(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    metric(
        &mut out,
        HTTP_REQUESTS_TOTAL,
        "counter",
        "HTTP requests answered, by endpoint and status code.",
    );
    for ((endpoint, code), n) in stats.http_counts() {
        let _ = writeln!(
            out,
            "{HTTP_REQUESTS_TOTAL}{{endpoint=\"{endpoint}\",code=\"{code}\"}} {n}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_test_is_bounded_and_forgets_the_oldest() {
        let s = Stats::default();
        for i in 0..=MAX_UNDER_TEST {
            s.under_test(&Deployment::new("svc", &format!("v{i}")));
        }
        let deps = s.deployments();
        assert_eq!(deps.len(), MAX_UNDER_TEST);
        assert!(!deps.contains(&Deployment::new("svc", "v0")));
        assert!(deps.contains(&Deployment::new("svc", &format!("v{MAX_UNDER_TEST}"))));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
