//! The report types: what [`analyze`](super::analyze) returns and `meshwake impact` prints.

use serde::Serialize;

use crate::health::BaselineHealth;
use crate::model::Deployment;
use crate::options::AnalysisOptions;
use crate::rollout::Rollout;
use crate::stats::Percentiles;

/// Result of [`analyze`](super::analyze); printed by `meshwake impact` (text, `--json`, `--html`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Time range of the input.
    pub window: Window,
    /// Spans analysed (after removing duplicates).
    pub spans: usize,
    /// Distinct traces.
    pub traces: usize,
    /// Test used on own-error rates.
    pub error_test: String,
    /// Test used on self-time distributions.
    pub latency_test: String,
    /// Test used on the time into a deployment (CLIENT span minus its SERVER span).
    pub time_into_test: String,
    /// Correction for multiple comparisons, over every test of the run.
    pub correction: String,
    /// Tests in the corrected family (errors, self time and time into, per deployment).
    pub tests: usize,
    /// Is the baseline itself healthy? Printed first; lowers the confidence when not.
    pub baseline_health: BaselineHealth,
    /// Rollouts seen in the spans (first appearance or traffic-share jump), earliest first.
    pub rollouts: Vec<Rollout>,
    /// Options the report was computed with.
    pub options: AnalysisOptions,
    /// Blamed deployments, most likely culprit first.
    pub suspects: Vec<Suspect>,
    /// Deployments hurt by a suspect or by a callee, but not blamed.
    pub affected: Vec<Affected>,
    /// Every deployment that served requests in the current window.
    pub deployments: Vec<DeploymentSummary>,
}

/// Time range covered by the input spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Earliest span start, Unix ns (0 when empty).
    pub start_ns: u64,
    /// Latest span end, Unix ns (0 when empty).
    pub end_ns: u64,
    /// Split between the baseline and the current window, if any.
    pub baseline_end_ns: Option<u64>,
    /// The split was inferred from the spans (the first rollout), not given.
    pub baseline_end_inferred: bool,
}

/// What a deployment was compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Baseline {
    /// The other versions of the same service, same (current) window: canary analysis.
    OtherVersions {
        /// The versions pooled as the baseline.
        deployments: Vec<Deployment>,
    },
    /// The same service before `baseline_end_ns`.
    BaselineWindow {
        /// The versions seen in the baseline window.
        deployments: Vec<Deployment>,
    },
}

/// Where a deployment stands in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Blamed: its own behaviour regressed.
    Suspect,
    /// Hurt by a suspect or a callee, not blamed.
    Affected,
    /// Nothing significant.
    Healthy,
}

/// Per-deployment numbers over the current window.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentSummary {
    /// `service@version`.
    pub deployment: Deployment,
    /// Requests served (SERVER spans).
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests not explained by a failing callee.
    pub own_errors: u64,
    /// Request duration percentiles, ms.
    pub latency_ms: Percentiles,
    /// Self time (duration minus outgoing calls) percentiles, ms.
    pub self_time_ms: Percentiles,
    /// What it was compared with; `None` when there was nothing to compare with.
    pub baseline: Option<Baseline>,
    /// Verdict.
    pub verdict: Verdict,
}

/// Which behaviour of a suspect regressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspectKind {
    /// Own error rate.
    Errors,
    /// Self time.
    Latency,
    /// Both.
    ErrorsAndLatency,
}

/// A blamed deployment with its evidence and blast radius.
#[derive(Debug, Clone, Serialize)]
pub struct Suspect {
    /// 1 = most likely culprit.
    pub rank: usize,
    /// `service@version`.
    pub deployment: Deployment,
    /// What regressed.
    pub kind: SuspectKind,
    /// Ranking score (higher = more likely the culprit); heuristic, see `score`.
    pub score: f64,
    /// What it was compared with.
    pub baseline: Baseline,
    /// Own-error evidence, when errors regressed.
    pub errors: Option<ErrorFinding>,
    /// Self-time evidence, when latency regressed.
    pub latency: Option<LatencyFinding>,
    /// Time-into evidence (network, proxies, queues before it), when that regressed.
    pub time_into: Option<TimeIntoFinding>,
    /// Who upstream suffered.
    pub blast_radius: BlastRadius,
}

/// Error counts of one side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorSide {
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests not explained by a callee.
    pub own_errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// own_errors / requests.
    pub own_error_rate: f64,
}

/// Evidence that a deployment's own error rate went up.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorFinding {
    /// Test name.
    pub test: String,
    /// One-sided p-value on own errors.
    pub p_value: f64,
    /// The p-value corrected for every test of the run (compared with alpha).
    pub q_value: f64,
    /// The suspect deployment, current window.
    pub candidate: ErrorSide,
    /// The baseline.
    pub baseline: ErrorSide,
    /// Own-error-rate increase, absolute (0.05 = 5 percentage points).
    pub own_rate_delta: f64,
    /// Own-error-rate ratio; `None` when the baseline had no own errors.
    pub own_rate_ratio: Option<f64>,
    /// Share of the candidate's errors that are its own (1 = none explained by callees).
    pub own_share: f64,
}

/// Latency numbers of one side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySide {
    /// Requests.
    pub requests: u64,
    /// Duration percentiles, ms.
    pub latency_ms: Percentiles,
    /// Self-time percentiles, ms.
    pub self_time_ms: Percentiles,
}

/// Evidence that a deployment's self time went up.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyFinding {
    /// Test name.
    pub test: String,
    /// One-sided p-value on self times.
    pub p_value: f64,
    /// The p-value corrected for every test of the run (compared with alpha).
    pub q_value: f64,
    /// The suspect deployment, current window.
    pub candidate: LatencySide,
    /// The baseline.
    pub baseline: LatencySide,
    /// Self-time p95 ratio (candidate / baseline).
    pub self_p95_ratio: f64,
    /// Self-time p95 increase, ms.
    pub self_p95_delta_ms: f64,
    /// Self-time median ratio (candidate / baseline).
    pub self_p50_ratio: f64,
    /// Self-time median increase, ms.
    pub self_p50_delta_ms: f64,
    /// Typical self-time ratio: the median of pairwise ratios (Hodges-Lehmann), the shift
    /// the test measures.
    pub typical_ratio: f64,
    /// Its one-sided 95% lower confidence bound (the effect threshold applies to it).
    pub typical_ratio_low: f64,
    /// Share of the duration p95 increase that is self time (1 = all of it).
    pub own_share: f64,
}

/// Time into a deployment, one side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WireSide {
    /// Calls answered by a single SERVER span of it.
    pub calls: u64,
    /// CLIENT span duration minus the SERVER span's, percentiles, ms.
    pub wire_ms: Percentiles,
}

/// Evidence that the time into a deployment went up: between its callers' CLIENT spans and
/// its SERVER spans (network, both proxies, a queue or a fault filter before the app).
#[derive(Debug, Clone, Serialize)]
pub struct TimeIntoFinding {
    /// Test name.
    pub test: String,
    /// One-sided p-value.
    pub p_value: f64,
    /// The p-value corrected for every test of the run.
    pub q_value: f64,
    /// The suspect deployment, current window.
    pub candidate: WireSide,
    /// The baseline.
    pub baseline: WireSide,
    /// Median ratio.
    pub p50_ratio: f64,
    /// p95 ratio.
    pub p95_ratio: f64,
    /// Median increase, ms.
    pub p50_delta_ms: f64,
    /// p95 increase, ms.
    pub p95_delta_ms: f64,
    /// Typical ratio (Hodges-Lehmann) and its 95% lower bound.
    pub typical_ratio: f64,
    /// Lower bound of `typical_ratio`.
    pub typical_ratio_low: f64,
}

/// How far a suspect's damage spread.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BlastRadius {
    /// The suspect's bad requests (own errors, or slower than the baseline's self-time p95).
    pub bad_requests: u64,
    /// Caller deployments on the path to the edge, nearest first.
    pub upstream: Vec<UpstreamImpact>,
    /// Edge routes (entry requests) whose traces went through a bad request, most hurt first.
    pub edge_routes: Vec<EdgeRouteImpact>,
}

/// One caller deployment in a blast radius.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamImpact {
    /// `service@version`.
    pub deployment: Deployment,
    /// Minimum number of hops from the suspect (1 = direct caller).
    pub hops: u32,
    /// Its requests whose trace went through a bad request of the suspect.
    pub affected: u64,
    /// Its requests in the current window.
    pub total: u64,
    /// affected / total.
    pub share: f64,
    /// Affected requests that failed.
    pub failed: u64,
    /// Affected requests slower than the `slow_percentile` of its unaffected requests.
    pub slowed: u64,
}

/// One edge route in a blast radius.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeRouteImpact {
    /// Service serving the route.
    pub service: String,
    /// `http.route` (or span name).
    pub route: String,
    /// Requests to the route that went through a bad request of the suspect.
    pub affected: u64,
    /// Requests to the route in the current window.
    pub total: u64,
    /// affected / total.
    pub share: f64,
    /// Affected requests that failed.
    pub failed: u64,
    /// Affected requests that were slow.
    pub slowed: u64,
}

/// A deployment hurt but not blamed.
#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    /// `service@version`.
    pub deployment: Deployment,
    /// Requests, current window.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests not explained by callees.
    pub own_errors: u64,
    /// Its total error rate rose significantly (while its own did not).
    pub error_regressed: bool,
    /// Its duration rose significantly (while its self time did not).
    pub latency_regressed: bool,
    /// Suspects whose blast radius includes it.
    pub blamed_on: Vec<Deployment>,
    /// Largest affected share over those suspects.
    pub max_share: f64,
    /// Where its explained errors came from (deepest failing deployment), most first.
    pub explained_by: Vec<Origin>,
}

/// Root cause of some propagated errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// Deepest failing deployment (from a CLIENT span's peer when the callee sent no spans).
    pub deployment: Deployment,
    /// Errors traced to it.
    pub errors: u64,
}
