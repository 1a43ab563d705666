//! Thresholds of the analysis: what counts as enough data and as a real change.

use serde::{Deserialize, Serialize};

/// Knobs of [`crate::analyze`]. The defaults are tuned to stay quiet on noise:
/// a finding needs enough samples, a small p-value *and* a change big enough to matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisOptions {
    /// Spans starting before this instant (Unix ns) form the baseline window; the rest is
    /// the current window. `None`: the whole input is the current window, and only
    /// versions of the same service can be compared with each other.
    pub baseline_end_ns: Option<u64>,
    /// Minimum requests on each side of a comparison.
    pub min_samples: u64,
    /// Significance level: a finding needs p below it.
    pub alpha: f64,
    /// Own-error-rate increase (absolute, 0.05 = 5 percentage points) that is always big enough.
    pub min_error_rate_delta: f64,
    /// Alternatively, a ratio of own-error rates (candidate / baseline) that is big enough...
    pub min_error_rate_ratio: f64,
    /// ...provided the absolute increase is at least this (keeps 0.01% → 0.03% quiet).
    pub min_error_rate_delta_floor: f64,
    /// Self-time p95 ratio (candidate / baseline) needed for a latency finding.
    pub min_latency_ratio: f64,
    /// And self-time p95 increase in milliseconds needed for a latency finding.
    pub min_latency_delta_ms: f64,
    /// A caller request counts as slowed when its duration exceeds this percentile of the
    /// same deployment's unaffected requests.
    pub slow_percentile: f64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            baseline_end_ns: None,
            min_samples: 20,
            alpha: 0.01,
            min_error_rate_delta: 0.05,
            min_error_rate_ratio: 2.0,
            min_error_rate_delta_floor: 0.01,
            min_latency_ratio: 1.5,
            min_latency_delta_ms: 20.0,
            slow_percentile: 0.95,
        }
    }
}
