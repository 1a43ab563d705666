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
//!
//! Files: `report.rs` (the report types), `facts.rs` (per-request facts derived from the
//! spans), `suspects.rs` (the tests and the ranking), `blast.rs` (blast radius),
//! `affected.rs` (victims not blamed); [`analyze`] here ties them together.

use std::collections::{BTreeMap, HashSet};

use crate::model::SpanRecord;
use crate::options::AnalysisOptions;
use crate::stats::{Percentiles, FISHER_TEST, MANN_WHITNEY_TEST};

mod affected;
mod blast;
mod facts;
mod report;
mod suspects;

#[cfg(test)]
mod tests;

pub use report::*;

use affected::affected;
use blast::blast_radius;
use facts::Facts;
use suspects::{error_side, latency_regressed, latency_side, rate_regressed, score};

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
