//! Is the baseline itself healthy? Verdicts against a baseline that was already failing or
//! saturating are comparisons of noise with noise: the report says so first and lowers its
//! confidence (a stricter significance level) instead of naming culprits from it.

use serde::Serialize;

use crate::model::{Kind, SpanRecord};
use crate::options::AnalysisOptions;
use crate::stats::{mann_whitney_greater, percentile};

/// Entry-request latency in the second half of the baseline over the first half (medians)
/// above which the baseline is drifting, as a saturating machine does.
pub const DRIFT_RATIO: f64 = 1.5;
/// And the significance that drift needs (one-sided Mann-Whitney, second half slower).
const DRIFT_P: f64 = 1e-3;
/// Entry requests needed in the baseline to judge it at all.
const MIN_ENTRY: usize = 20;
/// Factor applied to `alpha` when the baseline is unhealthy.
pub const UNHEALTHY_ALPHA_FACTOR: f64 = 0.1;

/// How far the report can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The baseline looks healthy and stable.
    Normal,
    /// The baseline was failing or drifting: fewer, stronger findings only.
    Low,
    /// No baseline window to judge (canary comparisons within one window only).
    Unknown,
}

/// The baseline's health, reported before the suspects.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineHealth {
    /// Confidence of the report.
    pub confidence: Confidence,
    /// Entry requests (edge SERVER spans, or SERVER spans without a parent) in the baseline.
    pub entry_requests: u64,
    /// Their error rate.
    pub entry_error_rate: f64,
    /// Median entry latency, second half of the baseline over the first half.
    pub latency_drift: Option<f64>,
    /// Why the confidence is low, in words; empty when normal.
    pub reasons: Vec<String>,
    /// Significance level actually used (alpha, or alpha × 0.1 when unhealthy).
    pub effective_alpha: f64,
}

/// Judges the baseline window `[.., split_ns)` of `spans`.
pub fn assess(
    spans: &[SpanRecord],
    split_ns: Option<u64>,
    opts: &AnalysisOptions,
) -> BaselineHealth {
    let mut h = BaselineHealth {
        confidence: Confidence::Unknown,
        entry_requests: 0,
        entry_error_rate: 0.0,
        latency_drift: None,
        reasons: Vec::new(),
        effective_alpha: opts.alpha,
    };
    let Some(split) = split_ns else {
        return h;
    };
    let mut entry: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.kind == Kind::Server && s.start_ns < split)
        .filter(|s| s.is_edge() || s.parent_span_id.is_none())
        .collect();
    if entry.len() < MIN_ENTRY {
        return h;
    }
    entry.sort_by_key(|s| s.start_ns);
    let failed = entry
        .iter()
        .filter(|s| s.is_error || s.http_status.is_some_and(|c| c >= 500))
        .count();
    h.entry_requests = entry.len() as u64;
    h.entry_error_rate = failed as f64 / entry.len() as f64;
    h.confidence = Confidence::Normal;
    if h.entry_error_rate > opts.unhealthy_error_rate {
        h.reasons.push(format!(
            "{:.1}% of the {} entry requests already failed before the rollout (above {:.0}%)",
            100.0 * h.entry_error_rate,
            entry.len(),
            100.0 * opts.unhealthy_error_rate
        ));
    }
    let ms = |s: &&SpanRecord| s.duration_ns() as f64 / 1e6;
    let half = entry.len() / 2;
    let first: Vec<f64> = entry
        .get(..half)
        .unwrap_or_default()
        .iter()
        .map(ms)
        .collect();
    let second: Vec<f64> = entry
        .get(half..)
        .unwrap_or_default()
        .iter()
        .map(ms)
        .collect();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5).unwrap_or(0.0)
    };
    let (m1, m2) = (median(&first), median(&second));
    if m1 > 0.0 {
        let drift = m2 / m1;
        h.latency_drift = Some(drift);
        if drift >= DRIFT_RATIO && mann_whitney_greater(&second, &first) < DRIFT_P {
            h.reasons.push(format!(
                "entry latency rose ×{drift:.1} within the baseline itself (median {m1:.1} → {m2:.1} ms): the mesh was not steady, maybe saturated"
            ));
        }
    }
    if !h.reasons.is_empty() {
        h.confidence = Confidence::Low;
        h.effective_alpha = opts.alpha * UNHEALTHY_ALPHA_FACTOR;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Mesh, T0};

    #[test]
    fn healthy_failing_and_drifting_baselines() {
        let opts = AnalysisOptions::default();
        let split = T0 + 30_000_000_000;
        let mut mesh = Mesh::chain(2);
        let spans = mesh.generate(1200, 60_000.0, 1);
        let h = assess(&spans, Some(split), &opts);
        assert_eq!(h.confidence, Confidence::Normal, "{h:?}");
        assert!(h.entry_requests > 500);
        assert_eq!(assess(&spans, None, &opts).confidence, Confidence::Unknown);

        mesh.base_error = 0.15;
        let h = assess(&mesh.generate(1200, 60_000.0, 2), Some(split), &opts);
        assert_eq!(h.confidence, Confidence::Low);
        assert!(h.reasons[0].contains("already failed"), "{h:?}");
        assert!((h.effective_alpha - opts.alpha * 0.1).abs() < 1e-12);

        // Saturation: every request in the second quarter is 3× slower.
        mesh.base_error = 0.005;
        let mut spans = mesh.generate(1200, 60_000.0, 3);
        for s in spans
            .iter_mut()
            .filter(|s| s.start_ns >= T0 + 15_000_000_000)
        {
            s.end_ns = s.start_ns + 3 * s.duration_ns();
        }
        let h = assess(&spans, Some(split), &opts);
        assert_eq!(h.confidence, Confidence::Low);
        assert!(h.latency_drift.unwrap() > 2.0, "{h:?}");
    }
}
