//! From the latest evaluation to the answer about one deployment: `pass`, `fail` or
//! `inconclusive`, with a one-line reason a person can act on.
//!
//! Rules (docs/adr/0011-rollout-gate.md), first match wins:
//! 1. the span source could not be read → `inconclusive` (`error: source_down`);
//! 2. the deployment is a suspect of the analysis → `fail`;
//! 3. it served fewer than `min_requests` in the window → `inconclusive`, with how many more
//!    are needed (`error: unknown_deployment` when it served none and its service is unknown);
//! 4. the analysis had nothing to compare it with → `inconclusive`;
//! 5. otherwise → `pass`.

use serde::Serialize;

use super::Evaluation;
use crate::analysis_bridge::{Baseline, Deployment, Report};
use crate::impact::jaeger::rfc3339;
use crate::impact::prometheus::VersionCounts;

/// Longest `service@version` accepted (a DNS name is at most 253 characters, plus a version).
pub const MAX_DEPLOYMENT_LEN: usize = 320;

/// The three answers a rollout controller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Enough traffic, compared, not blamed: go on.
    Pass,
    /// Blamed by the analysis: stop and roll back.
    Fail,
    /// Not enough to say yet (or the source is down).
    Inconclusive,
}

impl Verdict {
    /// Every verdict, in the order the metrics list them.
    pub const ALL: [Verdict; 3] = [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive];

    /// The JSON / label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Machine-readable cause of an `inconclusive` that is not just "too little traffic".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The span source could not be read at the last evaluation.
    SourceDown,
    /// Neither the deployment nor its service served a request in the window.
    UnknownDeployment,
    /// The gate has not finished its first evaluation.
    NotEvaluatedYet,
}

/// Where the answer's window lies.
#[derive(Debug, Clone, Serialize)]
pub struct WindowInfo {
    /// Window start (baseline included), Unix ns.
    pub start_ns: u64,
    /// Window end (newest span), Unix ns.
    pub end_ns: u64,
    /// Length of the window under test, seconds.
    pub seconds: f64,
    /// Split between baseline and window under test, when a baseline is used.
    pub baseline_end_ns: Option<u64>,
    /// Spans in the window.
    pub spans: usize,
    /// How old the newest span was when the answer was given, seconds.
    pub newest_span_age_s: f64,
    /// When the evaluation ran (RFC 3339, UTC).
    pub evaluated_at: String,
    /// How old the evaluation was when the answer was given, seconds.
    pub evaluation_age_s: f64,
}

/// One suspect, briefly: enough for a controller's log and a person's decision.
#[derive(Debug, Clone, Serialize)]
pub struct SuspectBrief {
    /// 1 = most likely culprit.
    pub rank: usize,
    /// `service@version`.
    pub deployment: Deployment,
    /// What regressed: `errors`, `latency` or `errors_and_latency`.
    pub kind: serde_json::Value,
    /// The evidence in one line.
    pub summary: String,
    /// Edge routes its bad requests reached.
    pub edge_routes: Vec<String>,
}

/// The answer of `GET /v1/verdict` and `POST /v1/flagger`.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// `service@version` asked about.
    pub deployment: Deployment,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
    /// The window it was computed over.
    pub window: WindowInfo,
    /// Requests the deployment served in the window under test.
    pub requests: u64,
    /// Requests still needed before it can be judged (0 when enough).
    pub missing_requests: u64,
    /// Every suspect of the window, most likely culprit first.
    pub suspects: Vec<SuspectBrief>,
    /// Set when the answer is inconclusive for another reason than too little traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// Request and 5xx counts of its version from `--prometheus`, as supporting evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_evidence: Option<VersionCounts>,
}

/// Parses `service@version` (the version is after the last `@`).
pub fn parse_deployment(text: &str) -> Result<Deployment, String> {
    let t = text.trim();
    if t.len() > MAX_DEPLOYMENT_LEN {
        return Err(format!(
            "deployment longer than {MAX_DEPLOYMENT_LEN} characters"
        ));
    }
    if t.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "deployment {t:?} contains whitespace or control characters"
        ));
    }
    match t.rsplit_once('@') {
        Some((service, version)) if !service.is_empty() && !version.is_empty() => {
            Ok(Deployment::new(service, version))
        }
        _ => Err(format!(
            "deployment {t:?} is not SERVICE@VERSION (e.g. reviews@v2)"
        )),
    }
}

fn ns_to_s(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn window_info(eval: &Evaluation, now_ns: u64) -> WindowInfo {
    let w = &eval.window;
    let under_test = w.baseline_end_ns.map_or(w.start_ns, |b| b);
    WindowInfo {
        start_ns: w.start_ns,
        end_ns: w.end_ns,
        seconds: ns_to_s(w.end_ns.saturating_sub(under_test)),
        baseline_end_ns: w.baseline_end_ns,
        spans: w.spans,
        newest_span_age_s: if w.end_ns == 0 {
            0.0
        } else {
            ns_to_s(now_ns.saturating_sub(w.end_ns))
        },
        evaluated_at: rfc3339(eval.at_ns / 1_000_000_000),
        evaluation_age_s: ns_to_s(now_ns.saturating_sub(eval.at_ns)),
    }
}

fn pct(rate: f64) -> String {
    format!("{:.1}%", 100.0 * rate)
}

/// The suspects of `report`, briefly.
pub fn suspects(report: &Report) -> Vec<SuspectBrief> {
    report
        .suspects
        .iter()
        .map(|s| {
            let mut parts = Vec::new();
            if let Some(e) = &s.errors {
                parts.push(format!(
                    "own errors {} vs {} (p={:.1e})",
                    pct(e.candidate.own_error_rate),
                    pct(e.baseline.own_error_rate),
                    e.p_value
                ));
            }
            if let Some(l) = &s.latency {
                parts.push(format!(
                    "self-time p95 {:.1} ms vs {:.1} ms (p={:.1e})",
                    l.candidate.self_time_ms.p95, l.baseline.self_time_ms.p95, l.p_value
                ));
            }
            SuspectBrief {
                rank: s.rank,
                deployment: s.deployment.clone(),
                kind: serde_json::to_value(s.kind).unwrap_or_default(),
                summary: parts.join(", "),
                edge_routes: s
                    .blast_radius
                    .edge_routes
                    .iter()
                    .map(|r| r.route.clone())
                    .collect(),
            }
        })
        .collect()
}

/// The answer about `dep` from `eval`.
pub fn judge(eval: &Evaluation, dep: &Deployment, min_requests: u64, now_ns: u64) -> Answer {
    let mut answer = Answer {
        deployment: dep.clone(),
        verdict: Verdict::Inconclusive,
        reason: String::new(),
        window: window_info(eval, now_ns),
        requests: 0,
        missing_requests: min_requests,
        suspects: Vec::new(),
        error: None,
        metrics_evidence: eval
            .evidence
            .as_ref()
            .and_then(|e| e.as_ref().ok())
            .and_then(|ev| ev.get(&dep.version).cloned()),
    };
    let report = match &eval.report {
        Err(e) if eval.at_ns == 0 => {
            answer.error = Some(Problem::NotEvaluatedYet);
            answer.reason = e.clone();
            return answer;
        }
        Err(e) => {
            answer.error = Some(Problem::SourceDown);
            answer.reason = format!("cannot judge {dep}: span source unavailable: {e}");
            return answer;
        }
        Ok(r) => r,
    };
    answer.suspects = suspects(report);
    decide(&mut answer, report, min_requests);
    answer
}

fn decide(answer: &mut Answer, report: &Report, min_requests: u64) {
    let dep = answer.deployment.clone();
    let secs = answer.window.seconds;
    if let Some(s) = answer.suspects.iter().find(|s| s.deployment == dep) {
        answer.verdict = Verdict::Fail;
        answer.reason = format!(
            "{dep} is suspect #{} of {}: {}{}",
            s.rank,
            answer.suspects.len(),
            s.summary,
            if s.edge_routes.is_empty() {
                String::new()
            } else {
                format!("; reaches edge routes {}", s.edge_routes.join(", "))
            }
        );
    }
    let summary = report.deployments.iter().find(|d| d.deployment == dep);
    answer.requests = summary.map_or(0, |s| s.requests);
    answer.missing_requests = min_requests.saturating_sub(answer.requests);
    if answer.verdict == Verdict::Fail {
        return;
    }
    let Some(summary) = summary.filter(|s| s.requests >= min_requests) else {
        let known: Vec<&str> = report
            .deployments
            .iter()
            .filter(|d| d.deployment.service == dep.service)
            .map(|d| d.deployment.version.as_str())
            .collect();
        if known.is_empty() && answer.requests == 0 {
            answer.error = Some(Problem::UnknownDeployment);
            answer.reason = format!(
                "unknown deployment {dep}: neither it nor any version of {} served a request in the last {secs:.0} s",
                dep.service
            );
        } else {
            answer.reason = format!(
                "too little traffic to judge {dep}: {} request(s) in the last {secs:.0} s, {} more needed (minimum {min_requests}); versions of {} seen: {}",
                answer.requests,
                answer.missing_requests,
                dep.service,
                known.join(", ")
            );
        }
        return;
    };
    let own_rate = summary.own_errors as f64 / summary.requests.max(1) as f64;
    let compared = match &summary.baseline {
        None => {
            answer.reason = format!(
                "nothing to compare {dep} with: no other version of {} served {min_requests} requests in the last {secs:.0} s (and no baseline window)",
                dep.service
            );
            return;
        }
        Some(Baseline::OtherVersions { deployments }) => list(deployments, "the same window"),
        Some(Baseline::BaselineWindow { deployments }) => list(deployments, "the baseline window"),
    };
    answer.verdict = Verdict::Pass;
    answer.reason = format!(
        "{dep} is not a suspect: {} requests in the last {secs:.0} s, own errors {}, self-time p95 {:.1} ms, compared with {compared}",
        summary.requests,
        pct(own_rate),
        summary.self_time_ms.p95
    );
}

fn list(deps: &[Deployment], when: &str) -> String {
    let names: Vec<String> = deps.iter().map(ToString::to_string).collect();
    format!("{} in {when}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn deployments() {
        let cases: [(&str, Option<(&str, &str)>); 7] = [
            ("reviews@v2", Some(("reviews", "v2"))), (" a@b@c ", Some(("a@b", "c"))),
            ("reviews", None), ("@v2", None), ("reviews@", None), ("a b@v1", None), ("", None),
        ];
        for (s, want) in cases {
            let got = parse_deployment(s).ok();
            let want = want.map(|(s, v)| Deployment::new(s, v));
            assert_eq!(got, want, "{s}");
        }
        assert!(parse_deployment(&format!("{}@v1", "x".repeat(400))).is_err());
    }
}
