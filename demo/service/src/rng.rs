//! A small, lock-free random source (SplitMix64). Demo traffic needs variety, not cryptography,
//! and this keeps the dependency list short; a fixed seed makes runs reproducible.

use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Thread-safe SplitMix64.
#[derive(Debug)]
pub struct Rng {
    state: AtomicU64,
}

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng {
            state: AtomicU64::new(seed),
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Log-normal latency in ms with median `p50` and spread `jitter` (ms), capped at 50 × p50 + jitter
    /// so one unlucky draw cannot stall the demo.
    pub fn latency_ms(&self, p50: f64, jitter: f64) -> f64 {
        if p50 <= 0.0 {
            return self.unit() * jitter;
        }
        let sigma = (1.0 + jitter / p50).ln();
        (p50 * (sigma * self.normal()).exp()).min(50.0 * p50 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_median_and_bounds() {
        let rng = Rng::new(42);
        let mut draws: Vec<f64> = (0..2001).map(|_| rng.latency_ms(10.0, 5.0)).collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[1000];
        assert!((8.5..11.5).contains(&median), "median {median}");
        assert!(draws.iter().all(|d| (0.0..=505.0).contains(d)));
        assert!((0..100).all(|_| (0.0..3.0).contains(&rng.latency_ms(0.0, 3.0))));
    }

    #[test]
    fn chance_extremes() {
        let rng = Rng::new(1);
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
    }
}
