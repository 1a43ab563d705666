//! When did each deployment roll out? Inferred from the telemetry alone, so that nobody has
//! to pass a baseline timestamp by hand.
//!
//! A deployment is a *newcomer* when it appears later than chance allows: if it serves a
//! share `s` of its service's requests once it is there, the chance that it served none of
//! the `k` requests its service served before is `(1 - s)^k`; below [`SURPRISE`] the first
//! appearance is a rollout. A version already present whose traffic share jumps (a canary
//! promoted from 10% to 50%) is a rollout at the jump, found by the split that best
//! separates two binomial shares (likelihood ratio), when the jump is large and certain.

use std::collections::BTreeMap;

use crate::model::{Deployment, Kind, SpanRecord};

/// Chance below which a late first appearance is not luck but a rollout.
pub const SURPRISE: f64 = 1e-4;
/// Smallest traffic-share change reported as a jump (absolute).
pub const MIN_SHARE_JUMP: f64 = 0.15;
/// Log-likelihood ratio a share jump needs (≈ p < 1e-6 for one change point, with room
/// for searching every split).
pub const MIN_JUMP_LLR: f64 = 15.0;

/// How a rollout was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The deployment first appeared then.
    FirstSeen,
    /// Its share of the service's traffic jumped then.
    ShareJump,
}

/// An inferred rollout.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rollout {
    /// The deployment rolled out.
    pub deployment: Deployment,
    /// Moment (Unix ns): its first request, or the first request after the share jump.
    pub at_ns: u64,
    /// How it was recognised.
    pub signal: Signal,
    /// Its share of the service's requests afterwards.
    pub share_after: f64,
    /// Its share before (0 for a newcomer).
    pub share_before: f64,
}

/// Rollouts seen in `spans` (SERVER spans only), earliest first.
pub fn infer(spans: &[SpanRecord]) -> Vec<Rollout> {
    // service -> its requests in time order: (start, deployment)
    let mut by_service: BTreeMap<&str, Vec<(u64, Deployment)>> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.kind == Kind::Server) {
        by_service
            .entry(s.service.as_str())
            .or_default()
            .push((s.start_ns, s.deployment()));
    }
    let mut out = Vec::new();
    for reqs in by_service.values_mut() {
        reqs.sort_by_key(|r| r.0);
        let versions: BTreeMap<&Deployment, ()> = reqs.iter().map(|r| (&r.1, ())).collect();
        for dep in versions.keys() {
            if let Some(r) = first_seen(reqs, dep).or_else(|| share_jump(reqs, dep)) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| {
        a.at_ns
            .cmp(&b.at_ns)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });
    out
}

/// The earliest rollout moment, the natural end of the baseline.
pub fn baseline_end(rollouts: &[Rollout]) -> Option<u64> {
    rollouts.iter().map(|r| r.at_ns).min()
}

fn first_seen(reqs: &[(u64, Deployment)], dep: &Deployment) -> Option<Rollout> {
    let first = reqs.iter().position(|r| &r.1 == dep)?;
    let after = reqs.get(first..)?;
    let share = after.iter().filter(|r| &r.1 == dep).count() as f64 / after.len() as f64;
    // Present from the very first request: not a rollout (as far as this input tells).
    if first == 0 {
        return None;
    }
    // (1 - s)^k, in logs: the chance that k earlier requests all missed it by luck.
    let log_chance = first as f64 * (1.0 - share).max(1e-300).ln();
    if log_chance >= SURPRISE.ln() {
        return None;
    }
    Some(Rollout {
        deployment: dep.clone(),
        at_ns: reqs.get(first)?.0,
        signal: Signal::FirstSeen,
        share_after: share,
        share_before: 0.0,
    })
}

/// Best single change point of `dep`'s share (only upward jumps are rollouts).
fn share_jump(reqs: &[(u64, Deployment)], dep: &Deployment) -> Option<Rollout> {
    let n = reqs.len();
    let total_hits = reqs.iter().filter(|r| &r.1 == dep).count();
    let ll = |k: usize, m: usize| -> f64 {
        if m == 0 {
            return 0.0;
        }
        let p = k as f64 / m as f64;
        let term = |c: f64, q: f64| if c > 0.0 { c * q.ln() } else { 0.0 };
        term(k as f64, p) + term((m - k) as f64, 1.0 - p)
    };
    let whole = ll(total_hits, n);
    let mut best: Option<(f64, usize, f64, f64)> = None;
    let mut hits_before = 0;
    // Leave at least 20 requests on each side: a share needs a few requests to mean anything.
    for (i, r) in reqs.iter().enumerate() {
        if i >= 20 && n - i >= 20 {
            let (b, a) = (hits_before, total_hits - hits_before);
            let llr = ll(b, i) + ll(a, n - i) - whole;
            let (sb, sa) = (b as f64 / i as f64, a as f64 / (n - i) as f64);
            if sa - sb >= MIN_SHARE_JUMP && best.is_none_or(|x| llr > x.0) {
                best = Some((llr, i, sb, sa));
            }
        }
        hits_before += usize::from(&r.1 == dep);
    }
    let (llr, i, before, after) = best?;
    (llr >= MIN_JUMP_LLR).then_some(Rollout {
        deployment: dep.clone(),
        at_ns: reqs.get(i)?.0,
        signal: Signal::ShareJump,
        share_after: after,
        share_before: before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Mesh, Version, T0};

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_canary_is_found_at_its_first_request_and_stable_versions_are_not_rollouts() {
        let mut mesh = Mesh::chain(2);
        let at = T0 + 60 * S;
        mesh.services[2].versions = vec![
            Version::new("v1", 0.9),
            Version::new("v2", 0.1).live(at, u64::MAX),
        ];
        let spans = mesh.generate(2400, 120_000.0, 1);
        let r = infer(&spans);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].deployment, Deployment::new("s2", "v2"));
        assert_eq!(r[0].signal, Signal::FirstSeen);
        // The first v2 request is within a second or so of the rollout (10% of 20 req/s).
        assert!(
            r[0].at_ns >= at && r[0].at_ns < at + 3 * S,
            "{}",
            r[0].at_ns - at
        );
        assert_eq!(baseline_end(&r), Some(r[0].at_ns));
    }

    #[test]
    fn a_rare_version_present_from_the_start_is_not_a_rollout() {
        // 2% of 20 req/s: the first request may come a few seconds in, which is not surprising.
        let mut mesh = Mesh::chain(1);
        mesh.services[1].versions = vec![Version::new("v1", 0.98), Version::new("v2", 0.02)];
        for seed in 0..20 {
            let r = infer(&mesh.generate(1200, 60_000.0, seed));
            assert!(r.is_empty(), "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn a_full_rollout_and_a_share_jump_are_found() {
        let mut mesh = Mesh::chain(1);
        let at = T0 + 30 * S;
        mesh.services[1].versions = vec![
            Version::new("v1", 1.0).live(0, at),
            Version::new("v2", 1.0).live(at, u64::MAX),
        ];
        mesh.services[0].versions = vec![
            Version::new("v1", 0.9).live(0, at),
            Version::new("v2", 0.1).live(0, at),
            Version::new("v1", 0.5).live(at, u64::MAX),
            Version::new("v2", 0.5).live(at, u64::MAX),
        ];
        let r = infer(&mesh.generate(1200, 60_000.0, 3));
        let got: Vec<(String, Signal)> = r
            .iter()
            .map(|r| (r.deployment.to_string(), r.signal))
            .collect();
        assert!(
            got.contains(&("s1@v2".into(), Signal::FirstSeen)),
            "{got:?}"
        );
        assert!(
            got.contains(&("s0@v2".into(), Signal::ShareJump)),
            "{got:?}"
        );
        assert_eq!(got.len(), 2, "{got:?}");
        for x in &r {
            assert!(x.at_ns.abs_diff(at) < 2 * S, "{x:?}");
        }
    }
}
