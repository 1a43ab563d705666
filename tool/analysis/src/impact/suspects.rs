//! Whether a deployment regressed against its baseline, and how suspects are ranked.
//!
//! Three tests per deployment: own errors (Fisher's exact test), self time and time into
//! it (Mann-Whitney U, exact for small samples). Every p-value of the run goes into one
//! family corrected for multiple comparisons (Benjamini-Hochberg by default); a finding
//! needs its corrected p-value below alpha *and* an effect big enough to matter.

use super::facts::Req;
use super::report::{ErrorSide, LatencySide, Suspect, WireSide};
use crate::options::{AnalysisOptions, Correction};
use crate::stats::{
    benjamini_hochberg, fisher_exact_greater, holm, mann_whitney_greater, percentile, shift_ratio,
    Percentiles,
};

/// One-sided confidence of the lower bound a latency ratio must clear (z of 95%).
const EFFECT_Z: f64 = 1.645;
/// Requests per side needed before p95 alone can make an effect big enough: below, p95 is
/// little more than the maximum.
const TAIL_MIN_SAMPLES: usize = 100;
/// Floor of latency values before taking logs, ms.
const LOG_FLOOR_MS: f64 = 1e-3;

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
    let timed: Vec<&&Req> = reqs.iter().filter(|r| r.timed).collect();
    let dur: Vec<f64> = timed.iter().map(|r| r.dur_ms).collect();
    let own: Vec<f64> = timed.iter().map(|r| r.self_ms).collect();
    LatencySide {
        requests: timed.len() as u64,
        latency_ms: Percentiles::of(&dur),
        self_time_ms: Percentiles::of(&own),
    }
}

pub(super) fn wire_side(samples: &[f64]) -> WireSide {
    WireSide {
        calls: samples.len() as u64,
        wire_ms: Percentiles::of(samples),
    }
}

/// Self times of the requests that have their own timing.
pub(super) fn self_times(reqs: &[&Req]) -> Vec<f64> {
    reqs.iter().filter(|r| r.timed).map(|r| r.self_ms).collect()
}

/// Durations of the requests that have their own timing.
pub(super) fn durations(reqs: &[&Req]) -> Vec<f64> {
    reqs.iter().filter(|r| r.timed).map(|r| r.dur_ms).collect()
}

/// Times into the requests (single-attempt calls only).
pub(super) fn wire_times(reqs: &[&Req]) -> Vec<f64> {
    reqs.iter().filter_map(|r| r.wire_ms).collect()
}

/// One test of the run, before the correction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tested {
    /// Raw one-sided p-value.
    pub(super) p: f64,
    /// The effect is big enough to report.
    pub(super) big_enough: bool,
}

/// Rate test shared by own and total errors. `None` when a side is too small.
pub(super) fn rate_test(
    c_err: u64,
    c_n: u64,
    b_err: u64,
    b_n: u64,
    opts: &AnalysisOptions,
) -> Option<(Tested, f64, Option<f64>)> {
    let min = opts.min_samples.max(1);
    if c_n < min || b_n < min {
        return None;
    }
    let (cr, br) = (c_err as f64 / c_n as f64, b_err as f64 / b_n as f64);
    let delta = cr - br;
    let ratio = (br > 0.0).then(|| cr / br);
    let ratio_ok = ratio.map_or(cr > 0.0, |r| r >= opts.min_error_rate_ratio);
    let big_enough = delta >= opts.min_error_rate_delta
        || (ratio_ok && delta >= opts.min_error_rate_delta_floor);
    let p = fisher_exact_greater(c_err, c_n, b_err, b_n);
    Some((Tested { p, big_enough }, delta, ratio))
}

/// The size of a latency shift: the typical ratio (Hodges-Lehmann) with its lower bound,
/// and the medians and p95s.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shift {
    pub(super) p50_ratio: f64,
    pub(super) p95_ratio: f64,
    pub(super) p95_delta_ms: f64,
    pub(super) p50_delta_ms: f64,
    /// Hodges-Lehmann ratio (median of pairwise ratios).
    pub(super) typical_ratio: f64,
    /// Its one-sided 95% lower confidence bound.
    pub(super) typical_ratio_low: f64,
    /// Both sides have enough samples for the p95 to count.
    pub(super) tail_ok: bool,
}

impl Shift {
    /// The shift is big enough once the environment's own shift is taken out: `env` is the
    /// (typical, p95) ratio the environment alone explains (1.0, 1.0 when none).
    pub(super) fn big_enough(&self, min_ratio: f64, min_delta_ms: f64, env: (f64, f64)) -> bool {
        let (typical_env, p95_env) = (env.0.max(1.0), env.1.max(1.0));
        (self.typical_ratio_low / typical_env >= min_ratio && self.p50_delta_ms >= min_delta_ms)
            || (self.tail_ok
                && self.p95_ratio / p95_env >= min_ratio
                && self.p95_delta_ms >= min_delta_ms)
    }
}

fn ratio(c: f64, b: f64) -> f64 {
    if b > 0.0 {
        c / b
    } else if c > 0.0 {
        // JSON has no infinity: a zero baseline reports the largest finite ratio.
        f64::MAX
    } else {
        1.0
    }
}

/// Distribution test shared by self time, duration and time into a deployment. The shift
/// is big enough when the typical request is at least `min_ratio` times slower with 95%
/// confidence and the median `min_delta_ms` slower; or, with enough requests to estimate
/// a tail, when p95 is `min_ratio` times and `min_delta_ms` higher. `None` when a side is
/// too small.
pub(super) fn shift_test(
    cand: &[f64],
    base: &[f64],
    min_ratio: f64,
    min_delta_ms: f64,
    opts: &AnalysisOptions,
) -> Option<(Tested, Shift)> {
    let min = opts.min_samples.max(1);
    if (cand.len() as u64) < min || (base.len() as u64) < min {
        return None;
    }
    let (c, b) = (sorted(cand), sorted(base));
    let q = |v: &[f64], x: f64| percentile(v, x).unwrap_or(0.0);
    let (typical, low) = shift_ratio(cand, base, EFFECT_Z, LOG_FLOOR_MS)?;
    let shift = Shift {
        p50_ratio: ratio(q(&c, 0.5), q(&b, 0.5)),
        p95_ratio: ratio(q(&c, 0.95), q(&b, 0.95)),
        p50_delta_ms: q(&c, 0.5) - q(&b, 0.5),
        p95_delta_ms: q(&c, 0.95) - q(&b, 0.95),
        typical_ratio: typical,
        typical_ratio_low: low,
        tail_ok: c.len().min(b.len()) >= TAIL_MIN_SAMPLES,
    };
    let big_enough = shift.big_enough(min_ratio, min_delta_ms, (1.0, 1.0));
    let p = mann_whitney_greater(cand, base);
    Some((Tested { p, big_enough }, shift))
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Corrected p-values of a family of tests, in order.
pub(super) fn correct(p: &[f64], method: Correction) -> Vec<f64> {
    match method {
        Correction::BenjaminiHochberg => benjamini_hochberg(p),
        Correction::Holm => holm(p),
        Correction::None => p.to_vec(),
    }
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
        let r = l.self_p95_ratio.max(l.self_p50_ratio);
        let effect = r.clamp(1.0, 1e6).ln() + (1.0 + l.self_p95_delta_ms.max(0.0)).ln() / 3.0;
        total += l.own_share * (1.0 + effect) * (1.0 + signif(l.p_value));
    }
    if let Some(w) = &s.time_into {
        let r = w.p95_ratio.max(w.p50_ratio);
        let effect = r.clamp(1.0, 1e6).ln() + (1.0 + w.p95_delta_ms.max(0.0)).ln() / 3.0;
        total += (1.0 + effect) * (1.0 + signif(w.p_value));
    }
    let reach = s
        .blast_radius
        .edge_routes
        .iter()
        .map(|r| r.share)
        .fold(0.0, f64::max);
    total * (1.0 + reach + 0.05 * s.blast_radius.upstream.len() as f64)
}
