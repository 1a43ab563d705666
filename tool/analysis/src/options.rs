//! Thresholds of the analysis: what counts as enough data and as a real change.
//!
//! The defaults were chosen from the calibration on synthetic meshes (`calibration.rs`,
//! `docs/verdict-power.md`, ADR 0012): at most 1% of noise-only runs name any suspect,
//! while a ×3 self-time canary at 30% of 40 req/s is found within 60 s.

use serde::{Deserialize, Serialize};

/// How the p-values of all the tests of one run are corrected for their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Benjamini-Hochberg: false discovery rate at `alpha` over every test of the run (and
    /// so at most `alpha` chance of any suspect when nothing changed).
    #[default]
    BenjaminiHochberg,
    /// Holm step-down: family-wise error rate at `alpha` (stricter with several culprits).
    Holm,
    /// No correction: each test at `alpha` on its own (one false alarm in five runs of
    /// twenty tests at 0.01; for comparison only).
    None,
}

impl Correction {
    /// How the report names the method.
    pub fn describe(self) -> &'static str {
        match self {
            Correction::BenjaminiHochberg => {
                "Benjamini-Hochberg false discovery rate over every test of the run"
            }
            Correction::Holm => "Holm family-wise error rate over every test of the run",
            Correction::None => "none (each test at alpha on its own)",
        }
    }
}

/// Knobs of [`crate::analyze`]. The defaults are tuned to stay quiet on noise:
/// a finding needs enough samples, a small corrected p-value *and* a change big enough
/// to matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisOptions {
    /// Spans starting before this instant (Unix ns) form the baseline window; the rest is
    /// the current window. `None`: inferred from the telemetry (the earliest rollout, see
    /// [`crate::rollout`]) unless `infer_baseline_end` is off; without a baseline window
    /// only versions of the same service can be compared with each other.
    pub baseline_end_ns: Option<u64>,
    /// Infer the baseline end from the first rollout seen when `baseline_end_ns` is unset.
    pub infer_baseline_end: bool,
    /// Minimum requests on each side of a comparison. Small samples are tested exactly
    /// (Fisher, exact Mann-Whitney), so this only avoids tests that cannot be significant.
    pub min_samples: u64,
    /// Significance level after the correction for multiple comparisons.
    pub alpha: f64,
    /// Correction over all the tests of a run.
    pub correction: Correction,
    /// Own-error-rate increase (absolute, 0.05 = 5 percentage points) that is always big enough.
    pub min_error_rate_delta: f64,
    /// Alternatively, a ratio of own-error rates (candidate / baseline) that is big enough...
    pub min_error_rate_ratio: f64,
    /// ...provided the absolute increase is at least this (keeps 0.01% → 0.03% quiet).
    pub min_error_rate_delta_floor: f64,
    /// Self-time ratio (candidate / baseline, at the median or at p95) needed for a
    /// latency finding: the effect scales with the service.
    pub min_latency_ratio: f64,
    /// And the matching self-time increase in milliseconds (a small absolute floor, so that
    /// 0.2 ms → 0.5 ms stays quiet).
    pub min_latency_delta_ms: f64,
    /// Time into a deployment (CLIENT span minus its SERVER spans: network, proxies,
    /// queues): ratio needed, at the median or p95...
    pub min_wire_ratio: f64,
    /// ...and increase in milliseconds.
    pub min_wire_delta_ms: f64,
    /// Baseline entry requests failing above this rate: the baseline is unhealthy.
    pub unhealthy_error_rate: f64,
    /// A caller request counts as slowed when its duration exceeds this percentile of the
    /// same deployment's unaffected requests.
    pub slow_percentile: f64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            baseline_end_ns: None,
            infer_baseline_end: true,
            min_samples: 5,
            alpha: 0.01,
            correction: Correction::BenjaminiHochberg,
            min_error_rate_delta: 0.05,
            min_error_rate_ratio: 2.0,
            min_error_rate_delta_floor: 0.01,
            min_latency_ratio: 1.3,
            min_latency_delta_ms: 2.0,
            min_wire_ratio: 1.5,
            min_wire_delta_ms: 5.0,
            unhealthy_error_rate: 0.10,
            slow_percentile: 0.95,
        }
    }
}
