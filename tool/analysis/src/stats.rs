//! The statistical tests behind a verdict, kept small and dependency-free.
//!
//! Both tests are one-sided ("is the candidate worse than the baseline?"): an
//! improvement is never a reason to blame a deployment.

/// Name of the error-rate test, as printed in reports.
pub const FISHER_TEST: &str = "Fisher's exact test (one-sided)";
/// Name of the latency test, as printed in reports.
pub const MANN_WHITNEY_TEST: &str =
    "Mann-Whitney U (one-sided; exact up to 60 requests in all, else normal approx. with tie correction)";

/// Fisher's exact test on a 2x2 table: P(candidate has at least `cand_err` errors
/// out of `cand_n`) under the null hypothesis that both samples share one error rate
/// (hypergeometric upper tail, margins fixed).
///
/// Chosen over the two-proportion z-test because error counts are often tiny (a healthy
/// baseline has 0-3 errors), where the normal approximation is badly wrong; the exact
/// sum costs at most `min(total errors, cand_n)` terms.
pub fn fisher_exact_greater(cand_err: u64, cand_n: u64, base_err: u64, base_n: u64) -> f64 {
    let cand_err = cand_err.min(cand_n);
    let base_err = base_err.min(base_n);
    let n = cand_n + base_n;
    let errors = cand_err + base_err;
    if n == 0 || errors == 0 {
        return 1.0;
    }
    let hi = errors.min(cand_n);
    // log of C(errors, k) * C(n - errors, cand_n - k) / C(n, cand_n)
    let denom = ln_choose(n, cand_n);
    let mut p = 0.0;
    for k in cand_err..=hi {
        if cand_n - k > n - errors {
            continue;
        }
        p += (ln_choose(errors, k) + ln_choose(n - errors, cand_n - k) - denom).exp();
    }
    p.clamp(0.0, 1.0)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    if k > n {
        return f64::NEG_INFINITY;
    }
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// ln(n!) via the Lanczos approximation of ln Γ(n + 1) (relative error ~1e-15).
fn ln_factorial(n: u64) -> f64 {
    ln_gamma(n as f64 + 1.0)
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos coefficients, g = 7, n = 9 (Numerical Recipes / Godfrey).
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection; not reached for factorials but keeps the function total.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Largest total sample (both sides) for which the Mann-Whitney p-value is exact.
/// Above it the normal approximation is within ~1e-3 of the exact tail at the levels we
/// use, and the exact count would cost O(n^3) work per test.
pub const MANN_WHITNEY_EXACT_MAX: usize = 60;

/// Mann-Whitney U test that `cand` tends to be larger than `base`: one-sided p-value.
///
/// With at most [`MANN_WHITNEY_EXACT_MAX`] values in all, the p-value is exact: the
/// permutation distribution of the candidate's rank sum (mid-ranks for ties, so the
/// conditional distribution given the ties). Above, the normal approximation with tie and
/// continuity correction. 1.0 when either sample is empty or all values tie.
pub fn mann_whitney_greater(cand: &[f64], base: &[f64]) -> f64 {
    if cand.is_empty() || base.is_empty() {
        return 1.0;
    }
    let ranked = ranks(cand, base);
    if cand.len() + base.len() <= MANN_WHITNEY_EXACT_MAX {
        exact_rank_sum_tail(&ranked, cand.len())
    } else {
        normal_rank_sum_tail(&ranked, cand.len() as f64, base.len() as f64)
    }
}

/// Doubled mid-ranks (integers: ranks are 1-based, ties share the mean of their ranks),
/// each flagged with whether the value is the candidate's, plus the tie term sum(t^3 - t).
struct Ranked {
    doubled: Vec<(u64, bool)>,
    tie_term: f64,
}

fn ranks(cand: &[f64], base: &[f64]) -> Ranked {
    let mut all: Vec<(f64, bool)> = cand
        .iter()
        .map(|&v| (v, true))
        .chain(base.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut doubled = Vec::with_capacity(all.len());
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let value = all.get(i).map(|x| x.0);
        let mut j = i + 1;
        while all.get(j).is_some_and(|x| Some(x.0) == value) {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean (i + 1 + j) / 2, doubled to stay an integer.
        let twice_rank = (i + 1 + j) as u64;
        doubled.extend(
            all.get(i..j)
                .unwrap_or_default()
                .iter()
                .map(|x| (twice_rank, x.1)),
        );
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    Ranked { doubled, tie_term }
}

/// P(rank sum of a random `n1`-subset >= the candidate's), by counting subsets per
/// (size, doubled rank sum) in one pass over the values (a knapsack count, in f64 so that
/// C(60, 30) ~ 1e17 fits; relative rounding error ~1e-15).
fn exact_rank_sum_tail(r: &Ranked, n1: usize) -> f64 {
    let observed: u64 = r.doubled.iter().filter(|x| x.1).map(|x| x.0).sum();
    let max_sum: u64 = r.doubled.iter().map(|x| x.0).sum();
    let width = max_sum as usize + 1;
    // ways[k * width + s]: subsets of size k with doubled rank sum s.
    let mut ways = vec![0.0f64; (n1 + 1) * width];
    if let Some(w) = ways.get_mut(0) {
        *w = 1.0;
    }
    for (seen, &(rank, _)) in r.doubled.iter().enumerate() {
        let rank = rank as usize;
        for k in (1..=n1.min(seen + 1)).rev() {
            for s in (rank..width).rev() {
                let from = ways.get((k - 1) * width + s - rank).copied().unwrap_or(0.0);
                if from != 0.0 {
                    if let Some(to) = ways.get_mut(k * width + s) {
                        *to += from;
                    }
                }
            }
        }
    }
    let row = ways.get(n1 * width..).unwrap_or_default();
    let total: f64 = row.iter().sum();
    let tail: f64 = row.iter().skip(observed as usize).sum();
    if total > 0.0 {
        (tail / total).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

fn normal_rank_sum_tail(r: &Ranked, n1: f64, n2: f64) -> f64 {
    let rank_sum_cand: f64 = r
        .doubled
        .iter()
        .filter(|x| x.1)
        .map(|x| x.0 as f64 / 2.0)
        .sum();
    let n = n1 + n2;
    let u1 = rank_sum_cand - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - r.tie_term / (n * (n - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (u1 - mean - 0.5) / var.sqrt();
    normal_sf(z)
}

/// Benjamini-Hochberg adjusted p-values ("q-values"), in the input order: a test is a
/// discovery at false discovery rate `q` when its adjusted value is below `q`. When every
/// null hypothesis is true (a noise-only run) the chance of any discovery is at most `q`
/// (for independent or positively dependent tests, PRDS), so `q` bounds false-alarm runs.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p.get(b).unwrap_or(&1.0).total_cmp(p.get(a).unwrap_or(&1.0)));
    let mut out = vec![1.0; m];
    let mut running = 1.0f64;
    // Largest p first: q(i) = min over j >= i of p(j) * m / j.
    for (pos, &i) in order.iter().enumerate() {
        let rank = (m - pos) as f64;
        let pi = p.get(i).copied().unwrap_or(1.0);
        running = running.min(pi * m as f64 / rank);
        if let Some(o) = out.get_mut(i) {
            *o = running.clamp(0.0, 1.0);
        }
    }
    out
}

/// Holm's step-down adjusted p-values, in the input order: controls the family-wise error
/// rate (the chance of any false discovery) under any dependence; less powerful than
/// Benjamini-Hochberg when several deployments really regressed.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p.get(a).unwrap_or(&1.0).total_cmp(p.get(b).unwrap_or(&1.0)));
    let mut out = vec![1.0; m];
    let mut running = 0.0f64;
    for (pos, &i) in order.iter().enumerate() {
        let pi = p.get(i).copied().unwrap_or(1.0);
        running = running.max(pi * (m - pos) as f64);
        if let Some(o) = out.get_mut(i) {
            *o = running.clamp(0.0, 1.0);
        }
    }
    out
}

/// Pairs of values above which [`shift_ratio`] thins both samples (evenly, in sorted
/// order): the bound then gets a little wider, never narrower.
const MAX_PAIRS: usize = 40_000;

/// How much larger `cand` is than `base`, as a ratio: the Hodges-Lehmann estimate (the
/// median of the pairwise ratios, the shift the Mann-Whitney test measures, on logs) and
/// its one-sided lower confidence bound (the rank given by the normal approximation of
/// the U distribution at `z`, e.g. 1.645 for 95%). Values are floored at `floor` (> 0) to
/// take logs. `None` when a sample is empty.
pub fn shift_ratio(cand: &[f64], base: &[f64], z: f64, floor: f64) -> Option<(f64, f64)> {
    let thin = |v: &[f64], keep: usize| -> Vec<f64> {
        let mut s: Vec<f64> = v.iter().map(|x| x.max(floor).ln()).collect();
        s.sort_by(f64::total_cmp);
        if s.len() <= keep {
            return s;
        }
        let step = s.len() as f64 / keep as f64;
        (0..keep)
            .filter_map(|i| s.get((i as f64 * step) as usize).copied())
            .collect()
    };
    if cand.is_empty() || base.is_empty() {
        return None;
    }
    let keep = (MAX_PAIRS as f64).sqrt() as usize;
    let (c, b) = if cand.len() * base.len() > MAX_PAIRS {
        (thin(cand, keep), thin(base, keep))
    } else {
        (thin(cand, cand.len()), thin(base, base.len()))
    };
    let mut diffs: Vec<f64> = c
        .iter()
        .flat_map(|x| b.iter().map(move |y| x - y))
        .collect();
    let m = diffs.len();
    let (n1, n2) = (c.len() as f64, b.len() as f64);
    let k = (m as f64 / 2.0 - z * (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt()).floor();
    let k = (k.max(0.0) as usize).min(m - 1);
    let lower = *diffs.select_nth_unstable_by(k, f64::total_cmp).1;
    let mid = *diffs.select_nth_unstable_by(m / 2, f64::total_cmp).1;
    Some((mid.exp(), lower.exp()))
}

/// Upper tail of the standard normal, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function, Chebyshev fit with fractional error < 1.2e-7
/// everywhere (Numerical Recipes `erfcc`), good enough for p-value thresholds.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Percentile `q` in [0, 1] of an ascending-sorted sample, by linear interpolation
/// between closest ranks (Hyndman & Fan type 7, as numpy's default). `None` if empty.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (sorted.get(lo)?, sorted.get(hi)?);
    Some(a + (b - a) * (pos - lo as f64))
}

/// p50 / p95 / p99 of a sample (milliseconds by convention in reports).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// Percentiles of an unsorted sample; zeros when empty.
    pub fn of(values: &[f64]) -> Self {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&v, 0.50).unwrap_or(0.0),
            p95: percentile(&v, 0.95).unwrap_or(0.0),
            p99: percentile(&v, 0.99).unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-12)
    }

    #[rustfmt::skip]
    #[test]
    fn fisher_matches_reference_values() {
        // (cand_err, cand_n, base_err, base_n, expected p) — references from
        // the hypergeometric upper tail computed by hand (math.comb).
        let cases = [
            (3, 3, 0, 3, 0.05),                 // C(3,3)C(3,0)/C(6,3) = 1/20
            (1, 1, 0, 1, 0.5),
            (0, 10, 0, 10, 1.0),                // no errors at all
            (0, 10, 5, 10, 1.0),                // candidate better: upper tail includes everything
            (10, 20, 0, 20, 0.000_217_96),      // C(30,10)/C(40,20)
        ];
        for (ce, cn, be, bn, want) in cases {
            let p = fisher_exact_greater(ce, cn, be, bn);
            assert!(close(p, want, 1e-3), "{ce}/{cn} vs {be}/{bn}: {p} != {want}");
        }
    }

    #[test]
    fn fisher_is_tiny_for_a_clear_regression_and_handles_large_counts() {
        let p = fisher_exact_greater(300, 1000, 10, 4000);
        assert!(p < 1e-100, "{p}");
        let p = fisher_exact_greater(40, 4000, 10, 1000);
        assert!(p > 0.4, "{p}");
        // Inconsistent input (more errors than requests) is clamped, not a panic.
        assert!(fisher_exact_greater(50, 10, 0, 10) < 1e-4);
    }

    #[test]
    fn mann_whitney_detects_shift_and_ignores_identical_samples() {
        let base: Vec<f64> = (0..100).map(f64::from).collect();
        let shifted: Vec<f64> = base.iter().map(|x| x + 50.0).collect();
        assert!(mann_whitney_greater(&shifted, &base) < 1e-10);
        assert!(mann_whitney_greater(&base, &shifted) > 0.99);
        let p = mann_whitney_greater(&base, &base);
        assert!(p > 0.4 && p < 0.6, "{p}");
        // All ties: no variance, no evidence.
        assert_eq!(mann_whitney_greater(&[1.0; 30], &[1.0; 30]), 1.0);
        assert_eq!(mann_whitney_greater(&[], &[1.0]), 1.0);
    }

    #[test]
    fn mann_whitney_small_samples_are_exact() {
        // 5 vs 5 with ties: brute force over the C(10,5) = 252 subsets (mid-ranks) gives
        // 16 subsets with a rank sum >= the observed 35.5 -> p = 16/252. (The normal
        // approximation said 0.0569.)
        let p = mann_whitney_greater(&[3.0, 4.0, 5.0, 6.0, 7.0], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(close(p, 16.0 / 252.0, 1e-9), "{p}");
        // Complete separation, 10 vs 10: 1 / C(20,10).
        let base: Vec<f64> = (0..10).map(f64::from).collect();
        let cand: Vec<f64> = (0..10).map(|i| 100.0 + f64::from(i)).collect();
        let p = mann_whitney_greater(&cand, &base);
        assert!(close(p, 1.0 / 184_756.0, 1e-9), "{p}");
        // Opposite direction: everything is at least as extreme.
        assert!(close(mann_whitney_greater(&base, &cand), 1.0, 1e-12));
        // One versus one.
        assert!(close(mann_whitney_greater(&[2.0], &[1.0]), 0.5, 1e-12));
    }

    #[test]
    fn mann_whitney_large_samples_use_the_normal_approximation() {
        // 31 vs 31 (just above the exact limit): U = 31*31 - 0 when separated; the
        // approximation's tail must still be astronomically small and agree in direction.
        let base: Vec<f64> = (0..31).map(f64::from).collect();
        let p = mann_whitney_greater(&base.iter().map(|x| x + 0.5).collect::<Vec<_>>(), &base);
        assert!(p > 0.3 && p < 0.5, "{p}");
        // Continuity with the exact branch: 30 vs 30 exact and normal agree within 1e-3.
        let a: Vec<f64> = (0..30).map(|i| f64::from(i) * 1.1).collect();
        let b: Vec<f64> = (0..30).map(f64::from).collect();
        let exact = mann_whitney_greater(&a, &b);
        let approx = normal_rank_sum_tail(&ranks(&a, &b), 30.0, 30.0);
        assert!((exact - approx).abs() < 1e-3, "{exact} vs {approx}");
    }

    #[test]
    fn shift_ratio_estimates_a_multiplicative_shift_with_a_lower_bound() {
        let base: Vec<f64> = (1..=40).map(|i| f64::from(i) * 0.5).collect();
        let cand: Vec<f64> = base.iter().map(|x| x * 3.0).collect();
        let (est, lower) = shift_ratio(&cand, &base, 1.645, 1e-3).unwrap();
        assert!((est - 3.0).abs() < 1e-9, "{est}");
        assert!(lower < est && lower > 1.5, "{lower}");
        // Identical samples: estimate 1, lower bound below 1.
        let (est, lower) = shift_ratio(&base, &base, 1.645, 1e-3).unwrap();
        assert!((est - 1.0).abs() < 1e-9 && lower < 1.0, "{est} {lower}");
        // Large samples are thinned, not refused.
        let big: Vec<f64> = (1..=2000).map(f64::from).collect();
        let big2: Vec<f64> = big.iter().map(|x| x * 2.0).collect();
        let (est, lower) = shift_ratio(&big2, &big, 1.645, 1e-3).unwrap();
        assert!((est - 2.0).abs() < 0.05 && lower > 1.8, "{est} {lower}");
        assert_eq!(shift_ratio(&[], &base, 1.645, 1e-3), None);
    }

    #[test]
    fn fdr_adjustments_match_hand_computation() {
        // p = [0.01, 0.04, 0.03, 0.5]; BH: sorted 0.01,0.03,0.04,0.5 -> 0.04,0.0533,0.0533,0.5.
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.04 * 4.0 / 3.0, 0.04 * 4.0 / 3.0, 0.5];
        for (a, b) in q.iter().zip(want) {
            assert!(close(*a, b, 1e-12), "{q:?}");
        }
        // Holm: 0.01*4, max(0.03*3, .04), max(0.04*2, .09), max(0.5, .09).
        let h = holm(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.09, 0.09, 0.5];
        for (a, b) in h.iter().zip(want) {
            assert!(close(*a, b, 1e-12), "{h:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(holm(&[0.9, 0.9]), vec![1.0, 1.0]);
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!(close(normal_sf(0.0), 0.5, 1e-6));
        assert!(close(normal_sf(1.959_964), 0.025, 1e-4));
        assert!(close(normal_sf(-2.326_348), 0.99, 1e-5));
    }

    #[rustfmt::skip]
    #[test]
    fn percentiles_interpolate() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let cases = [(0.0, 1.0), (0.5, 50.5), (0.95, 95.05), (0.99, 99.01), (1.0, 100.0), (2.0, 100.0)];
        for (q, want) in cases {
            assert!(close(percentile(&v, q).unwrap(), want, 1e-9), "q={q}");
        }
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(Percentiles::of(&[3.0, 1.0, 2.0]).p50, 2.0);
    }
}
