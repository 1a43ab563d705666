//! The analysis proper: which deployment regressed (suspects), which ones only suffer
//! from a callee (affected, not blamed), and how far each suspect's damage spread.
//!
//! Method, in order:
//! 1. Every SERVER span is a request served by its deployment. Its error is *own* unless
//!    one of its outgoing calls failed because of the callee (callee's SERVER span failed,
//!    or the call failed without an HTTP 4xx: 5xx, timeout, connection failure). Its *self
//!    time* is its duration minus the union of its outgoing calls.
//! 2. Each deployment's current requests are compared with the other versions of the same
//!    service in the same window (canary vs stable) or, when there are none, with the
//!    service's requests before `baseline_end_ns`. Own-error rate: Fisher's exact test;
//!    self time: Mann-Whitney U. A finding needs enough samples, p < alpha and a large
//!    enough effect (see [`AnalysisOptions`]).
//! 3. For each suspect, its bad requests are walked up the trace (caller requests, hop by
//!    hop) to the edge, giving the callers and edge routes it hurt.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::model::{Deployment, Kind, SpanRecord};
use crate::options::AnalysisOptions;
use crate::stats::{
    fisher_exact_greater, mann_whitney_greater, percentile, Percentiles, FISHER_TEST,
    MANN_WHITNEY_TEST,
};
use crate::traces::{covered_ns, TraceIndex, MAX_DEPTH};

/// Result of [`analyze`]; printed by `meshwake impact` (text, `--json`, `--html`).
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
    /// The suspect deployment, current window.
    pub candidate: LatencySide,
    /// The baseline.
    pub baseline: LatencySide,
    /// Self-time p95 ratio (candidate / baseline).
    pub self_p95_ratio: f64,
    /// Self-time p95 increase, ms.
    pub self_p95_delta_ms: f64,
    /// Share of the duration p95 increase that is self time (1 = all of it).
    pub own_share: f64,
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

/// Facts about one request (SERVER span).
struct Req {
    span: usize,
    dep: usize,
    current: bool,
    failed: bool,
    own_error: bool,
    dur_ms: f64,
    self_ms: f64,
}

const NS_PER_MS: f64 = 1_000_000.0;
/// Route label when a span has neither `http.route` nor a name.
const UNKNOWN_ROUTE: &str = "(unknown)";

fn span_failed(s: &SpanRecord) -> bool {
    s.is_error || s.http_status.is_some_and(|c| c >= 500)
}

/// Everything the analysis derives from the spans before testing.
struct Facts<'a> {
    idx: TraceIndex<'a>,
    deps: Vec<Deployment>,
    reqs: Vec<Req>,
    req_of_span: HashMap<usize, usize>,
    /// Request indices per deployment.
    by_dep: Vec<Vec<usize>>,
}

impl<'a> Facts<'a> {
    fn new(spans: &'a [SpanRecord], opts: &AnalysisOptions) -> Self {
        let idx = TraceIndex::new(spans);
        let mut dep_ids: BTreeMap<Deployment, usize> = BTreeMap::new();
        for s in &idx.spans {
            if s.kind == Kind::Server {
                dep_ids.entry(s.deployment()).or_insert(0);
            }
        }
        for (i, v) in dep_ids.values_mut().enumerate() {
            *v = i;
        }
        let deps: Vec<Deployment> = dep_ids.keys().cloned().collect();
        let split = opts.baseline_end_ns.unwrap_or(0);
        let mut reqs = Vec::new();
        let mut req_of_span = HashMap::new();
        let mut by_dep = vec![Vec::new(); deps.len()];
        for (i, s) in idx.spans.iter().enumerate() {
            if s.kind != Kind::Server {
                continue;
            }
            let Some(&dep) = dep_ids.get(&s.deployment()) else {
                continue;
            };
            let calls = idx.calls_of(i);
            let failed = span_failed(s);
            let explained = failed && calls.iter().any(|&c| call_propagates(&idx, c));
            let mut intervals: Vec<(u64, u64)> = calls
                .iter()
                .filter_map(|&c| idx.span(c).map(|c| (c.start_ns, c.end_ns)))
                .collect();
            let busy = covered_ns(s.start_ns, s.end_ns.max(s.start_ns), &mut intervals);
            req_of_span.insert(i, reqs.len());
            if let Some(list) = by_dep.get_mut(dep) {
                list.push(reqs.len());
            }
            reqs.push(Req {
                span: i,
                dep,
                current: s.start_ns >= split,
                failed,
                own_error: failed && !explained,
                dur_ms: s.duration_ns() as f64 / NS_PER_MS,
                self_ms: s.duration_ns().saturating_sub(busy) as f64 / NS_PER_MS,
            });
        }
        Self {
            idx,
            deps,
            reqs,
            req_of_span,
            by_dep,
        }
    }

    fn req(&self, r: usize) -> Option<&Req> {
        self.reqs.get(r)
    }

    fn current_of(&self, dep: usize) -> Vec<&Req> {
        self.by_dep.get(dep).map_or_else(Vec::new, |l| {
            l.iter()
                .filter_map(|&r| self.req(r))
                .filter(|r| r.current)
                .collect()
        })
    }

    /// The population `dep` is compared with, if it is large enough.
    fn baseline_of(&self, dep: usize, opts: &AnalysisOptions) -> Option<(Baseline, Vec<&Req>)> {
        let me = self.deps.get(dep)?;
        let same_service = |r: &&Req| {
            self.deps
                .get(r.dep)
                .is_some_and(|d| d.service == me.service)
        };
        let others: Vec<&Req> = self
            .reqs
            .iter()
            .filter(|r| r.current && r.dep != dep)
            .filter(same_service)
            .collect();
        if others.len() as u64 >= opts.min_samples {
            return Some((
                Baseline::OtherVersions {
                    deployments: self.deps_of(&others),
                },
                others,
            ));
        }
        opts.baseline_end_ns?;
        let before: Vec<&Req> = self
            .reqs
            .iter()
            .filter(|r| !r.current)
            .filter(same_service)
            .collect();
        (before.len() as u64 >= opts.min_samples).then(|| {
            (
                Baseline::BaselineWindow {
                    deployments: self.deps_of(&before),
                },
                before,
            )
        })
    }

    fn deps_of(&self, reqs: &[&Req]) -> Vec<Deployment> {
        let set: BTreeSet<usize> = reqs.iter().map(|r| r.dep).collect();
        set.iter()
            .filter_map(|&d| self.deps.get(d).cloned())
            .collect()
    }

    fn is_edge(&self, span: usize) -> bool {
        self.idx.span(span).is_some_and(|s| s.is_edge()) || self.idx.server_ancestor(span).is_none()
    }

    /// Deepest failing deployments under a failed request, counted once each.
    fn origins(&self, span: usize, depth: usize, out: &mut BTreeSet<Deployment>) {
        if depth > MAX_DEPTH {
            return;
        }
        for c in self.idx.calls_of(span) {
            if !call_propagates(&self.idx, c) {
                continue;
            }
            let failing: Vec<usize> = self
                .idx
                .callees_of(c)
                .into_iter()
                .filter(|&x| self.idx.span(x).is_some_and(span_failed))
                .collect();
            if failing.is_empty() {
                if let Some(call) = self.idx.span(c) {
                    out.insert(call.peer_deployment().unwrap_or_else(|| {
                        Deployment::new("unknown", crate::model::UNKNOWN_VERSION)
                    }));
                }
            }
            for x in failing {
                match self.req_of_span.get(&x).and_then(|&r| self.req(r)) {
                    Some(r) if r.own_error => {
                        if let Some(d) = self.deps.get(r.dep) {
                            out.insert(d.clone());
                        }
                    }
                    _ => self.origins(x, depth + 1, out),
                }
            }
        }
    }
}

/// A failed call explains its caller's failure when the callee failed, or when the call
/// failed without a 4xx (a 4xx means the caller asked for something wrong).
fn call_propagates(idx: &TraceIndex<'_>, call: usize) -> bool {
    if idx
        .callees_of(call)
        .into_iter()
        .any(|x| idx.span(x).is_some_and(span_failed))
    {
        return true;
    }
    idx.span(call).is_some_and(|c| {
        (c.is_error || c.http_status.is_some_and(|s| s >= 500))
            && !c.http_status.is_some_and(|s| (400..500).contains(&s))
    })
}

fn error_side(reqs: &[&Req]) -> ErrorSide {
    let n = reqs.len() as u64;
    let errors = reqs.iter().filter(|r| r.failed).count() as u64;
    let own = reqs.iter().filter(|r| r.own_error).count() as u64;
    let rate = |k: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    ErrorSide {
        requests: n,
        errors,
        own_errors: own,
        error_rate: rate(errors),
        own_error_rate: rate(own),
    }
}

fn latency_side(reqs: &[&Req]) -> LatencySide {
    let dur: Vec<f64> = reqs.iter().map(|r| r.dur_ms).collect();
    let own: Vec<f64> = reqs.iter().map(|r| r.self_ms).collect();
    LatencySide {
        requests: reqs.len() as u64,
        latency_ms: Percentiles::of(&dur),
        self_time_ms: Percentiles::of(&own),
    }
}

/// Rate test shared by own and total errors: (p-value, delta, ratio) when significant.
fn rate_regressed(
    c_err: u64,
    c_n: u64,
    b_err: u64,
    b_n: u64,
    opts: &AnalysisOptions,
) -> Option<(f64, f64, Option<f64>)> {
    if c_n < opts.min_samples || b_n < opts.min_samples || c_n == 0 || b_n == 0 {
        return None;
    }
    let (cr, br) = (c_err as f64 / c_n as f64, b_err as f64 / b_n as f64);
    let delta = cr - br;
    let ratio = (br > 0.0).then(|| cr / br);
    let ratio_ok = ratio.map_or(cr > 0.0, |r| r >= opts.min_error_rate_ratio);
    let effect = delta >= opts.min_error_rate_delta
        || (ratio_ok && delta >= opts.min_error_rate_delta_floor);
    if !effect {
        return None;
    }
    let p = fisher_exact_greater(c_err, c_n, b_err, b_n);
    (p < opts.alpha).then_some((p, delta, ratio))
}

/// Distribution test shared by self time and duration: (p-value, p95 ratio, p95 delta).
fn latency_regressed(
    cand: &[f64],
    base: &[f64],
    opts: &AnalysisOptions,
) -> Option<(f64, f64, f64)> {
    if (cand.len() as u64) < opts.min_samples || (base.len() as u64) < opts.min_samples {
        return None;
    }
    let (c95, b95) = (Percentiles::of(cand).p95, Percentiles::of(base).p95);
    let delta = c95 - b95;
    let ratio = if b95 > 0.0 {
        c95 / b95
    } else if c95 > 0.0 {
        f64::INFINITY
    } else {
        1.0
    };
    if ratio < opts.min_latency_ratio || delta < opts.min_latency_delta_ms {
        return None;
    }
    let p = mann_whitney_greater(cand, base);
    // JSON has no infinity: report a zero-baseline ratio as the delta-based maximum.
    let ratio = if ratio.is_finite() { ratio } else { f64::MAX };
    (p < opts.alpha).then_some((p, ratio, delta))
}

/// Analyses `spans`; never fails (an empty or unusable input gives an empty report).
pub fn analyze(spans: &[SpanRecord], opts: &AnalysisOptions) -> Report {
    let facts = Facts::new(spans, opts);
    let window = Window {
        start_ns: facts
            .idx
            .spans
            .iter()
            .map(|s| s.start_ns)
            .min()
            .unwrap_or(0),
        end_ns: facts.idx.spans.iter().map(|s| s.end_ns).max().unwrap_or(0),
        baseline_end_ns: opts.baseline_end_ns,
    };
    let traces: HashSet<&str> = facts
        .idx
        .spans
        .iter()
        .map(|s| s.trace_id.as_str())
        .collect();

    let mut suspects = Vec::new();
    let mut summaries = Vec::new();
    let mut total_regressions: BTreeMap<usize, (bool, bool)> = BTreeMap::new();
    for (dep, deployment) in facts.deps.iter().enumerate() {
        let cand = facts.current_of(dep);
        if cand.is_empty() {
            continue;
        }
        let base = facts.baseline_of(dep, opts);
        summaries.push(DeploymentSummary {
            deployment: deployment.clone(),
            requests: cand.len() as u64,
            errors: cand.iter().filter(|r| r.failed).count() as u64,
            own_errors: cand.iter().filter(|r| r.own_error).count() as u64,
            latency_ms: latency_side(&cand).latency_ms,
            self_time_ms: latency_side(&cand).self_time_ms,
            baseline: base.as_ref().map(|b| b.0.clone()),
            verdict: Verdict::Healthy,
        });
        let Some((baseline, base)) = base else {
            continue;
        };
        let (ce, be) = (error_side(&cand), error_side(&base));
        let errors = rate_regressed(ce.own_errors, ce.requests, be.own_errors, be.requests, opts)
            .map(|(p, delta, ratio)| ErrorFinding {
                test: FISHER_TEST.to_owned(),
                p_value: p,
                candidate: ce,
                baseline: be,
                own_rate_delta: delta,
                own_rate_ratio: ratio,
                own_share: if ce.errors == 0 {
                    1.0
                } else {
                    ce.own_errors as f64 / ce.errors as f64
                },
            });
        let self_c: Vec<f64> = cand.iter().map(|r| r.self_ms).collect();
        let self_b: Vec<f64> = base.iter().map(|r| r.self_ms).collect();
        let (cl, bl) = (latency_side(&cand), latency_side(&base));
        let latency = latency_regressed(&self_c, &self_b, opts).map(|(p, ratio, delta)| {
            let total_delta = cl.latency_ms.p95 - bl.latency_ms.p95;
            LatencyFinding {
                test: MANN_WHITNEY_TEST.to_owned(),
                p_value: p,
                candidate: cl,
                baseline: bl,
                self_p95_ratio: ratio,
                self_p95_delta_ms: delta,
                own_share: if total_delta > 0.0 {
                    (delta / total_delta).clamp(0.0, 1.0)
                } else {
                    1.0
                },
            }
        });
        // Total (not own) regressions, to list victims that would otherwise look guilty.
        let dur_c: Vec<f64> = cand.iter().map(|r| r.dur_ms).collect();
        let dur_b: Vec<f64> = base.iter().map(|r| r.dur_ms).collect();
        total_regressions.insert(
            dep,
            (
                rate_regressed(ce.errors, ce.requests, be.errors, be.requests, opts).is_some(),
                latency_regressed(&dur_c, &dur_b, opts).is_some(),
            ),
        );
        let kind = match (&errors, &latency) {
            (Some(_), Some(_)) => SuspectKind::ErrorsAndLatency,
            (Some(_), None) => SuspectKind::Errors,
            (None, Some(_)) => SuspectKind::Latency,
            (None, None) => continue,
        };
        let slow_self = Percentiles::of(&self_b).p95;
        let bad: Vec<usize> = cand
            .iter()
            .filter(|r| {
                (errors.is_some() && r.own_error) || (latency.is_some() && r.self_ms > slow_self)
            })
            .map(|r| r.span)
            .collect();
        let blast_radius = blast_radius(&facts, dep, &bad, opts);
        let mut s = Suspect {
            rank: 0,
            deployment: deployment.clone(),
            kind,
            score: 0.0,
            baseline,
            errors,
            latency,
            blast_radius,
        };
        s.score = score(&s);
        suspects.push(s);
    }
    suspects.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });
    for (i, s) in suspects.iter_mut().enumerate() {
        s.rank = i + 1;
    }

    let affected = affected(&facts, &suspects, &total_regressions, &summaries);
    for sum in &mut summaries {
        if suspects.iter().any(|s| s.deployment == sum.deployment) {
            sum.verdict = Verdict::Suspect;
        } else if affected.iter().any(|a| a.deployment == sum.deployment) {
            sum.verdict = Verdict::Affected;
        }
    }
    Report {
        window,
        spans: facts.idx.spans.len(),
        traces: traces.len(),
        error_test: FISHER_TEST.to_owned(),
        latency_test: MANN_WHITNEY_TEST.to_owned(),
        options: opts.clone(),
        suspects,
        affected,
        deployments: summaries,
    }
}

/// Ranking heuristic: own share × (1 + effect) × (1 + significance) × (1 + breadth).
/// Own share dominates so that a deployment whose problem is partly its callees' ranks
/// below the callee; effect and significance break ties; breadth favours the suspect
/// that hurt more users.
fn score(s: &Suspect) -> f64 {
    let mut total = 0.0;
    let signif = |p: f64| (-p.max(1e-300).log10()).min(30.0) / 10.0;
    if let Some(e) = &s.errors {
        let effect = (1.0 + 100.0 * e.own_rate_delta.max(0.0)).ln();
        total += e.own_share * (1.0 + effect) * (1.0 + signif(e.p_value));
    }
    if let Some(l) = &s.latency {
        let effect =
            l.self_p95_ratio.clamp(1.0, 1e6).ln() + (1.0 + l.self_p95_delta_ms.max(0.0)).ln() / 3.0;
        total += l.own_share * (1.0 + effect) * (1.0 + signif(l.p_value));
    }
    let reach = s
        .blast_radius
        .edge_routes
        .iter()
        .map(|r| r.share)
        .fold(0.0, f64::max);
    total * (1.0 + reach + 0.05 * s.blast_radius.upstream.len() as f64)
}

fn blast_radius(
    facts: &Facts<'_>,
    suspect: usize,
    bad: &[usize],
    opts: &AnalysisOptions,
) -> BlastRadius {
    // deployment -> (min hops, affected request spans)
    let mut up: BTreeMap<usize, (u32, BTreeSet<usize>)> = BTreeMap::new();
    let mut edges: BTreeSet<usize> = BTreeSet::new();
    for &span in bad {
        if facts.is_edge(span) {
            edges.insert(span);
        }
        let (mut cur, mut prev_dep, mut hops) = (span, suspect, 0u32);
        for _ in 0..MAX_DEPTH {
            let Some(a) = facts.idx.server_ancestor(cur) else {
                break;
            };
            let Some(req) = facts.req_of_span.get(&a).and_then(|&r| facts.req(r)) else {
                break;
            };
            if req.dep != prev_dep {
                hops += 1;
                prev_dep = req.dep;
            }
            if req.dep != suspect && hops > 0 {
                let e = up.entry(req.dep).or_insert((hops, BTreeSet::new()));
                e.0 = e.0.min(hops);
                e.1.insert(a);
            }
            if facts.is_edge(a) {
                edges.insert(a);
            }
            cur = a;
        }
    }
    let slow_count = |dep: usize, affected: &BTreeSet<usize>| -> (u64, u64, u64) {
        let all = facts.current_of(dep);
        // Reference: the requests the suspect did not touch, baseline window included.
        let mut normal: Vec<f64> = facts
            .by_dep
            .get(dep)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|&r| facts.req(r))
            .filter(|r| !affected.contains(&r.span))
            .map(|r| r.dur_ms)
            .collect();
        normal.sort_by(f64::total_cmp);
        let limit = percentile(&normal, opts.slow_percentile).unwrap_or(f64::INFINITY);
        let hit: Vec<&Req> = affected
            .iter()
            .filter_map(|s| facts.req_of_span.get(s).and_then(|&r| facts.req(r)))
            .collect();
        (
            all.len() as u64,
            hit.iter().filter(|r| r.failed).count() as u64,
            hit.iter().filter(|r| r.dur_ms > limit).count() as u64,
        )
    };
    let mut upstream: Vec<UpstreamImpact> = up
        .iter()
        .filter_map(|(&dep, (hops, spans))| {
            let (total, failed, slowed) = slow_count(dep, spans);
            Some(UpstreamImpact {
                deployment: facts.deps.get(dep)?.clone(),
                hops: *hops,
                affected: spans.len() as u64,
                total,
                share: share(spans.len() as u64, total),
                failed,
                slowed,
            })
        })
        .collect();
    upstream.sort_by(|a, b| {
        a.hops
            .cmp(&b.hops)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });

    // Edge routes are keyed by service, not version: users hit a route, whatever answers it.
    let route_key = |span: usize| -> Option<(String, String)> {
        let s = facts.idx.span(span)?;
        Some((
            s.service.clone(),
            s.route.clone().unwrap_or_else(|| UNKNOWN_ROUTE.to_owned()),
        ))
    };
    // Edge requests per route, baseline window included (the reference for "slow").
    let mut totals: BTreeMap<(String, String), Vec<&Req>> = BTreeMap::new();
    for r in facts.reqs.iter().filter(|r| facts.is_edge(r.span)) {
        if let Some(k) = route_key(r.span) {
            totals.entry(k).or_default().push(r);
        }
    }
    let mut hit: BTreeMap<(String, String), Vec<&Req>> = BTreeMap::new();
    for &e in &edges {
        if let (Some(k), Some(r)) = (
            route_key(e),
            facts.req_of_span.get(&e).and_then(|&r| facts.req(r)),
        ) {
            hit.entry(k).or_default().push(r);
        }
    }
    let mut edge_routes: Vec<EdgeRouteImpact> = hit
        .into_iter()
        .map(|((service, route), reqs)| {
            let all = totals.get(&(service.clone(), route.clone()));
            let hit_spans: HashSet<usize> = reqs.iter().map(|r| r.span).collect();
            let mut normal: Vec<f64> = all
                .map(|a| {
                    a.iter()
                        .filter(|r| !hit_spans.contains(&r.span))
                        .map(|r| r.dur_ms)
                        .collect()
                })
                .unwrap_or_default();
            normal.sort_by(f64::total_cmp);
            let limit = percentile(&normal, opts.slow_percentile).unwrap_or(f64::INFINITY);
            let current = all.map_or(0, |a| a.iter().filter(|r| r.current).count() as u64);
            let total = current.max(reqs.len() as u64);
            EdgeRouteImpact {
                service,
                route,
                affected: reqs.len() as u64,
                total,
                share: share(reqs.len() as u64, total),
                failed: reqs.iter().filter(|r| r.failed).count() as u64,
                slowed: reqs.iter().filter(|r| r.dur_ms > limit).count() as u64,
            }
        })
        .collect();
    edge_routes.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.route.cmp(&b.route))
    });
    BlastRadius {
        bad_requests: bad.len() as u64,
        upstream,
        edge_routes,
    }
}

fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (part as f64 / total as f64).min(1.0)
    }
}

fn affected(
    facts: &Facts<'_>,
    suspects: &[Suspect],
    total_regressions: &BTreeMap<usize, (bool, bool)>,
    summaries: &[DeploymentSummary],
) -> Vec<Affected> {
    let blamed: HashSet<&Deployment> = suspects.iter().map(|s| &s.deployment).collect();
    let mut out = Vec::new();
    for sum in summaries {
        if blamed.contains(&sum.deployment) {
            continue;
        }
        let Some(dep) = facts.deps.iter().position(|d| *d == sum.deployment) else {
            continue;
        };
        let (error_regressed, latency_regressed) = total_regressions
            .get(&dep)
            .copied()
            .unwrap_or((false, false));
        let mut blamed_on = Vec::new();
        let mut max_share: f64 = 0.0;
        for s in suspects {
            if let Some(u) = s
                .blast_radius
                .upstream
                .iter()
                .find(|u| u.deployment == sum.deployment)
            {
                blamed_on.push(s.deployment.clone());
                max_share = max_share.max(u.share);
            }
        }
        if blamed_on.is_empty() && !error_regressed && !latency_regressed {
            continue;
        }
        let mut origins: BTreeMap<Deployment, u64> = BTreeMap::new();
        for r in facts
            .current_of(dep)
            .into_iter()
            .filter(|r| r.failed && !r.own_error)
        {
            let mut set = BTreeSet::new();
            facts.origins(r.span, 0, &mut set);
            for d in set {
                *origins.entry(d).or_default() += 1;
            }
        }
        let mut explained_by: Vec<Origin> = origins
            .into_iter()
            .map(|(deployment, errors)| Origin { deployment, errors })
            .collect();
        explained_by.sort_by(|a, b| {
            b.errors
                .cmp(&a.errors)
                .then_with(|| a.deployment.cmp(&b.deployment))
        });
        out.push(Affected {
            deployment: sum.deployment.clone(),
            requests: sum.requests,
            errors: sum.errors,
            own_errors: sum.own_errors,
            error_regressed,
            latency_regressed,
            blamed_on,
            max_share,
            explained_by,
        });
    }
    out.sort_by(|a, b| {
        b.max_share
            .total_cmp(&a.max_share)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });
    out
}

#[cfg(test)]
#[path = "impact_tests.rs"]
mod tests;
