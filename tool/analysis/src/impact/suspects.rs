//! Whether a deployment regressed against its baseline (own errors: Fisher's exact test;
//! self time: Mann-Whitney U), and how suspects are ranked.

use super::facts::Req;
use super::report::{ErrorSide, LatencySide, Suspect};
use crate::options::AnalysisOptions;
use crate::stats::{fisher_exact_greater, mann_whitney_greater, Percentiles};

pub(super) fn error_side(reqs: &[&Req]) -> ErrorSide {
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

pub(super) fn latency_side(reqs: &[&Req]) -> LatencySide {
    let dur: Vec<f64> = reqs.iter().map(|r| r.dur_ms).collect();
    let own: Vec<f64> = reqs.iter().map(|r| r.self_ms).collect();
    LatencySide {
        requests: reqs.len() as u64,
        latency_ms: Percentiles::of(&dur),
        self_time_ms: Percentiles::of(&own),
    }
}

/// Rate test shared by own and total errors: (p-value, delta, ratio) when significant.
pub(super) fn rate_regressed(
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
pub(super) fn latency_regressed(
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

/// Ranking heuristic: own share × (1 + effect) × (1 + significance) × (1 + breadth).
/// Own share dominates so that a deployment whose problem is partly its callees' ranks
/// below the callee; effect and significance break ties; breadth favours the suspect
/// that hurt more users.
pub(super) fn score(s: &Suspect) -> f64 {
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
