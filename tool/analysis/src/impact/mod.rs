//! The analysis proper: which deployment regressed (suspects), which ones only suffer
//! from a callee (affected, not blamed), and how far each suspect's damage spread.
//!
//! Method, in order:
//! 1. Every SERVER span is a request served by its deployment. Its error is *own* unless
//!    one of its outgoing calls failed because of the callee (callee's SERVER span failed,
//!    or the call failed without an HTTP 4xx: 5xx, timeout, connection failure). Its *self
//!    time* is its duration minus the union of its outgoing calls.
//!    A call that reached no span of its callee (refused, crashed, uninstrumented) is a
//!    request of the callee its CLIENT span names. The *time into* a request is its
//!    caller's CLIENT span minus it (network, proxies, queues), for single-attempt calls.
//! 2. The baseline ends at `baseline_end_ns`, or else at the first rollout seen in the
//!    spans ([`crate::rollout`]). A deployment that served before it is compared with its
//!    own baseline window; a newcomer with the versions it replaced. Own-error rate:
//!    Fisher's exact test; self time and time into it: Mann-Whitney U (exact for small
//!    samples). Every p-value of the run is corrected together (Benjamini-Hochberg by
//!    default); a finding needs a corrected p below alpha and a large enough effect (see
//!    [`AnalysisOptions`]). A failing or drifting baseline lowers alpha ([`crate::health`]).
//! 3. For each suspect, its bad requests are walked up the trace (caller requests, hop by
//!    hop) to the edge, giving the callers and edge routes it hurt.
//!
//! Files: `report.rs` (the report types), `facts.rs` (per-request facts derived from the
//! spans), `suspects.rs` (the tests and the ranking), `blast.rs` (blast radius),
//! `affected.rs` (victims not blamed); [`analyze`] here ties them together.

use std::collections::{BTreeMap, HashSet};

use crate::health;
use crate::model::SpanRecord;
use crate::options::AnalysisOptions;
use crate::rollout;
use crate::stats::{Percentiles, FISHER_TEST, MANN_WHITNEY_TEST};

mod affected;
mod blast;
mod facts;
mod report;
mod suspects;

#[cfg(test)]
mod scenario_tests;
#[cfg(test)]
mod tests;

pub use report::*;

use affected::affected;
use blast::blast_radius;
use facts::{while_serving, Facts, Req};
use suspects::{
    correct, durations, error_side, latency_side, rate_test, score, self_times, shift_test,
    wire_side, wire_times, Shift, Tested,
};

/// One deployment's comparison with its baseline, before the correction.
struct Comparison<'f> {
    dep: usize,
    baseline: Baseline,
    cand: Vec<&'f Req>,
    base: Vec<&'f Req>,
    errors: Option<(Tested, f64, Option<f64>)>,
    latency: Option<(Tested, Shift)>,
    time_into: Option<(Tested, Shift)>,
    total_errors: Option<Tested>,
    total_latency: Option<Tested>,
}

fn compare<'f>(
    dep: usize,
    baseline: Baseline,
    cand: Vec<&'f Req>,
    base: Vec<&'f Req>,
    opts: &AnalysisOptions,
) -> Comparison<'f> {
    let (ce, be) = (error_side(&cand), error_side(&base));
    let timed_base = match baseline {
        Baseline::OtherVersions { .. } => while_serving(&cand, &base, opts.min_samples),
        _ => base.clone(),
    };
    Comparison {
        dep,
        baseline,
        errors: rate_test(ce.own_errors, ce.requests, be.own_errors, be.requests, opts),
        latency: shift_test(
            &self_times(&cand),
            &self_times(&timed_base),
            opts.min_latency_ratio,
            opts.min_latency_delta_ms,
            opts,
        ),
        time_into: shift_test(
            &wire_times(&cand),
            &wire_times(&timed_base),
            opts.min_wire_ratio,
            opts.min_wire_delta_ms,
            opts,
        ),
        total_errors: rate_test(ce.errors, ce.requests, be.errors, be.requests, opts).map(|t| t.0),
        total_latency: shift_test(
            &durations(&cand),
            &durations(&timed_base),
            opts.min_latency_ratio,
            opts.min_latency_delta_ms,
            opts,
        )
        .map(|t| t.0),
        cand,
        base,
    }
}

/// Applies the correction to one family of tests; true where a finding stands.
fn decide(tests: &[Option<Tested>], opts: &AnalysisOptions, alpha: f64) -> Vec<(bool, f64)> {
    let raw: Vec<f64> = tests.iter().flatten().map(|t| t.p).collect();
    let mut q = correct(&raw, opts.correction).into_iter();
    tests
        .iter()
        .map(|t| match t {
            Some(t) => {
                let q = q.next().unwrap_or(1.0);
                (t.big_enough && q < alpha, q)
            }
            None => (false, 1.0),
        })
        .collect()
}

/// Where the baseline ends: given, else the first rollout seen (when allowed).
fn split_of(opts: &AnalysisOptions, rollouts: &[rollout::Rollout]) -> (Option<u64>, bool) {
    match opts.baseline_end_ns {
        Some(t) => (Some(t), false),
        None if opts.infer_baseline_end => {
            let t = rollout::baseline_end(rollouts);
            (t, t.is_some())
        }
        None => (None, false),
    }
}

/// Analyses `spans`; never fails (an empty or unusable input gives an empty report).
pub fn analyze(spans: &[SpanRecord], opts: &AnalysisOptions) -> Report {
    let rollouts = rollout::infer(spans);
    let (split, inferred) = split_of(opts, &rollouts);
    let baseline_health = health::assess(spans, split, opts);
    let facts = Facts::new(spans, split);
    let window = Window {
        start_ns: facts
            .idx
            .spans
            .iter()
            .map(|s| s.start_ns)
            .min()
            .unwrap_or(0),
        end_ns: facts.idx.spans.iter().map(|s| s.end_ns).max().unwrap_or(0),
        baseline_end_ns: split,
        baseline_end_inferred: inferred,
    };
    let traces: HashSet<&str> = facts
        .idx
        .spans
        .iter()
        .map(|s| s.trace_id.as_str())
        .collect();

    let mut summaries = Vec::new();
    let mut comparisons: Vec<Comparison<'_>> = Vec::new();
    for (dep, deployment) in facts.deps.iter().enumerate() {
        let cand = facts.current_of(dep);
        if cand.is_empty() {
            continue;
        }
        let base = facts.baseline_of(dep, opts);
        let lat = latency_side(&cand);
        summaries.push(DeploymentSummary {
            deployment: deployment.clone(),
            requests: cand.len() as u64,
            errors: cand.iter().filter(|r| r.failed).count() as u64,
            own_errors: cand.iter().filter(|r| r.own_error).count() as u64,
            latency_ms: lat.latency_ms,
            self_time_ms: lat.self_time_ms,
            baseline: base.as_ref().map(|b| b.0.clone()),
            verdict: Verdict::Healthy,
        });
        if let Some((baseline, base)) = base {
            comparisons.push(compare(dep, baseline, cand, base, opts));
        }
    }
    discount_shared_slowdown(&facts, &mut comparisons, opts);
    let (suspects, tests) =
        suspects_of(&facts, &comparisons, opts, baseline_health.effective_alpha);
    let total_regressions = total_regressions(&comparisons, opts, baseline_health.effective_alpha);
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
        time_into_test: MANN_WHITNEY_TEST.to_owned(),
        correction: format!(
            "{} (alpha {})",
            opts.correction.describe(),
            baseline_health.effective_alpha
        ),
        tests,
        baseline_health,
        rollouts,
        options: opts.clone(),
        suspects,
        affected,
        deployments: summaries,
    }
}

/// Unchanged deployments needed to tell a slowdown they share from one of their own.
const SHARED_SLOWDOWN_MIN_PEERS: usize = 2;

/// An unchanged deployment (compared with its own past) is blamed for latency only beyond
/// the slowdown its unchanged peers share: when the machine or the network gets slower
/// (a neighbour's benchmark, a saturated node), every unchanged deployment's self time and
/// time into it grow together, and that is the environment, not a deployment. The shared
/// slowdown is the median over the *other* unchanged deployments (at least two) of their
/// typical and p95 ratios, so one deployment's own regression does not excuse itself.
/// Measured: fanout.yaml at 20 req/s on a saturated machine blamed two mid services that do
/// not call the canary (self time ×1.3-1.4, like their peers'); now only the canary. A
/// slowdown that hits one deployment harder than its peers still counts (the fallback
/// scenario on a machine 100 % busy with others: `details@v1` self p95 ×2.3 while its peers'
/// median was ×1.24). Canaries are compared with their peers in the same seconds
/// (`Facts::baseline_of`) and are left as they are.
fn discount_shared_slowdown(
    facts: &Facts<'_>,
    comparisons: &mut [Comparison<'_>],
    opts: &AnalysisOptions,
) {
    let own_past = |c: &Comparison<'_>| {
        matches!(&c.baseline, Baseline::BaselineWindow { deployments }
            if deployments.len() == 1 && deployments.first() == facts.deps.get(c.dep))
    };
    let shifts = |pick: fn(&Comparison<'_>) -> Option<Shift>| -> Vec<(usize, Shift)> {
        comparisons
            .iter()
            .enumerate()
            .filter(|(_, c)| own_past(c))
            .filter_map(|(i, c)| pick(c).map(|s| (i, s)))
            .collect()
    };
    let latency = shifts(|c| c.latency.map(|l| l.1));
    let wire = shifts(|c| c.time_into.map(|w| w.1));
    for (i, env) in shared_env(&latency) {
        if let Some((t, s)) = comparisons.get_mut(i).and_then(|c| c.latency.as_mut()) {
            t.big_enough = s.big_enough(opts.min_latency_ratio, opts.min_latency_delta_ms, env);
        }
    }
    for (i, env) in shared_env(&wire) {
        if let Some((t, s)) = comparisons.get_mut(i).and_then(|c| c.time_into.as_mut()) {
            t.big_enough = s.big_enough(opts.min_wire_ratio, opts.min_wire_delta_ms, env);
        }
    }
}

/// For each of `shifts`, the median (typical, p95) ratio of the others, when there are enough.
fn shared_env(shifts: &[(usize, Shift)]) -> Vec<(usize, (f64, f64))> {
    if shifts.len() < SHARED_SLOWDOWN_MIN_PEERS + 1 {
        return Vec::new();
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => 1.0,
            _ if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(1.0),
            _ => {
                (v.get(n / 2 - 1).copied().unwrap_or(1.0) + v.get(n / 2).copied().unwrap_or(1.0))
                    / 2.0
            }
        }
    };
    shifts
        .iter()
        .map(|&(i, _)| {
            let others = || shifts.iter().filter(move |(j, _)| *j != i).map(|(_, s)| *s);
            let typical = median(others().map(|s| s.typical_ratio).collect());
            let p95 = median(others().map(|s| s.p95_ratio.min(1e6)).collect());
            (i, (typical, p95))
        })
        .collect()
}

/// Total (not own) regressions, to list victims that would otherwise look guilty: a
/// family of its own, corrected the same way.
fn total_regressions(
    comparisons: &[Comparison<'_>],
    opts: &AnalysisOptions,
    alpha: f64,
) -> BTreeMap<usize, (bool, bool)> {
    let family: Vec<Option<Tested>> = comparisons
        .iter()
        .flat_map(|c| [c.total_errors, c.total_latency])
        .collect();
    let decided = decide(&family, opts, alpha);
    comparisons
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = |k: usize| decided.get(2 * i + k).is_some_and(|d| d.0);
            (c.dep, (at(0), at(1)))
        })
        .collect()
}

/// The suspects, ranked, and the number of tests in their family.
fn suspects_of(
    facts: &Facts<'_>,
    comparisons: &[Comparison<'_>],
    opts: &AnalysisOptions,
    alpha: f64,
) -> (Vec<Suspect>, usize) {
    let family: Vec<Option<Tested>> = comparisons
        .iter()
        .flat_map(|c| {
            [
                c.errors.map(|e| e.0),
                c.latency.map(|l| l.0),
                c.time_into.map(|w| w.0),
            ]
        })
        .collect();
    let tests = family.iter().flatten().count();
    let decided = decide(&family, opts, alpha);
    let mut suspects = Vec::new();
    for (i, c) in comparisons.iter().enumerate() {
        let at = |k: usize| decided.get(3 * i + k).copied().unwrap_or((false, 1.0));
        if let Some(s) = suspect(facts, c, [at(0), at(1), at(2)], opts) {
            suspects.push(s);
        }
    }
    suspects.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });
    for (i, s) in suspects.iter_mut().enumerate() {
        s.rank = i + 1;
    }
    (suspects, tests)
}

/// The suspect of a comparison, if any of its three tests stands (`decided`: finding,
/// corrected p-value, for errors, self time and time into).
fn suspect(
    facts: &Facts<'_>,
    c: &Comparison<'_>,
    decided: [(bool, f64); 3],
    opts: &AnalysisOptions,
) -> Option<Suspect> {
    let [(err_ok, err_q), (lat_ok, lat_q), (wire_ok, wire_q)] = decided;
    let (ce, be) = (error_side(&c.cand), error_side(&c.base));
    let errors = c
        .errors
        .filter(|_| err_ok)
        .map(|(t, delta, ratio)| ErrorFinding {
            test: FISHER_TEST.to_owned(),
            p_value: t.p,
            q_value: err_q,
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
    let (cl, bl) = (latency_side(&c.cand), latency_side(&c.base));
    let latency = c.latency.filter(|_| lat_ok).map(|(t, sh)| {
        let total_delta = cl.latency_ms.p95 - bl.latency_ms.p95;
        LatencyFinding {
            test: MANN_WHITNEY_TEST.to_owned(),
            p_value: t.p,
            q_value: lat_q,
            candidate: cl,
            baseline: bl,
            self_p95_ratio: sh.p95_ratio,
            self_p95_delta_ms: sh.p95_delta_ms,
            self_p50_ratio: sh.p50_ratio,
            self_p50_delta_ms: sh.p50_delta_ms,
            typical_ratio: sh.typical_ratio,
            typical_ratio_low: sh.typical_ratio_low,
            own_share: if total_delta > 0.0 {
                (sh.p95_delta_ms.max(sh.p50_delta_ms) / total_delta).clamp(0.0, 1.0)
            } else {
                1.0
            },
        }
    });
    let (cw, bw) = (wire_times(&c.cand), wire_times(&c.base));
    let time_into = c
        .time_into
        .filter(|_| wire_ok)
        .map(|(t, sh)| TimeIntoFinding {
            test: MANN_WHITNEY_TEST.to_owned(),
            p_value: t.p,
            q_value: wire_q,
            candidate: wire_side(&cw),
            baseline: wire_side(&bw),
            p50_ratio: sh.p50_ratio,
            p95_ratio: sh.p95_ratio,
            p50_delta_ms: sh.p50_delta_ms,
            p95_delta_ms: sh.p95_delta_ms,
            typical_ratio: sh.typical_ratio,
            typical_ratio_low: sh.typical_ratio_low,
        });
    let kind = match (&errors, latency.is_some() || time_into.is_some()) {
        (Some(_), true) => SuspectKind::ErrorsAndLatency,
        (Some(_), false) => SuspectKind::Errors,
        (None, true) => SuspectKind::Latency,
        (None, false) => return None,
    };
    let slow_self = Percentiles::of(&self_times(&c.base)).p95;
    let slow_wire = Percentiles::of(&bw).p95;
    let bad: Vec<usize> = c
        .cand
        .iter()
        .filter(|r| {
            (errors.is_some() && r.own_error)
                || (latency.is_some() && r.timed && r.self_ms > slow_self)
                || (time_into.is_some() && r.wire_ms.is_some_and(|w| w > slow_wire))
        })
        .map(|r| r.span)
        .collect();
    let mut s = Suspect {
        rank: 0,
        deployment: facts.deps.get(c.dep)?.clone(),
        kind,
        score: 0.0,
        baseline: c.baseline.clone(),
        errors,
        latency,
        time_into,
        blast_radius: blast_radius(facts, c.dep, &bad, opts),
    };
    s.score = score(&s);
    Some(s)
}
