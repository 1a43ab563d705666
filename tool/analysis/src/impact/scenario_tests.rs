//! Scenarios of issue 17: what a team must be able to trust (no false alarm on identical
//! rollouts, the 3× canary found, small samples, time on the wire, never blaming an
//! unchanged version, retries, crashes, fallbacks, an unhealthy baseline).

use super::*;
use crate::calibration::{noise_scenario, power_scenario, Cell, Effect};
use crate::health::Confidence;
use crate::model::Deployment;
use crate::synth::{Latency, Mesh, Version, T0};

const S: u64 = 1_000_000_000;

fn names(r: &Report) -> Vec<String> {
    r.suspects
        .iter()
        .map(|s| s.deployment.to_string())
        .collect()
}

/// No count of affected requests exceeds its total (the `403/399` bug).
fn assert_counts_within_totals(r: &Report) {
    for s in &r.suspects {
        for u in &s.blast_radius.upstream {
            assert!(u.affected <= u.total, "{}: {u:?}", s.deployment);
            assert!(u.failed <= u.affected && u.slowed <= u.affected, "{u:?}");
        }
        for e in &s.blast_radius.edge_routes {
            assert!(e.affected <= e.total, "{}: {e:?}", s.deployment);
        }
    }
}

/// `s0 -> s1 -> s2`, log-normal latency, 1% error floor, a rollout of s2 at `at`.
fn mesh_with_canary(at: u64, canary: Version, share: f64) -> Mesh {
    let mut mesh = Mesh::chain(2);
    mesh.latency = Latency::LogNormal(0.5);
    mesh.base_error = 0.01;
    mesh.fault_start_ns = at;
    mesh.services[2].versions = vec![Version::new("v1", 1.0 - share), canary.live(at, u64::MAX)];
    mesh
}

#[test]
fn identical_rollouts_over_noise_name_nobody() {
    for seed in 0..2 {
        let sc = noise_scenario(seed);
        let r = analyze(&sc.spans(), &AnalysisOptions::default());
        assert!(r.suspects.is_empty(), "seed {seed}: {:?}", names(&r));
        assert!(r.window.baseline_end_inferred, "seed {seed}");
        assert!(r.tests > 2 * sc.deployments / 2, "{} tests", r.tests);
    }
}

#[test]
fn three_times_slower_6ms_canary_at_30_percent_of_40_rps_is_found_in_60_s() {
    let cell = Cell {
        effect: Effect::LatencyRatio(3.0),
        share: 0.3,
        rate: 40.0,
        seconds: 60.0,
    };
    for seed in 0..3 {
        let sc = power_scenario(cell, seed);
        let r = analyze(&sc.spans(), &AnalysisOptions::default());
        assert_eq!(names(&r).first(), sc.culprit.as_ref(), "seed {seed}");
        let s = &r.suspects[0];
        let l = s.latency.as_ref().unwrap();
        assert!(l.self_p50_ratio > 2.0, "{l:?}");
        assert!(
            matches!(&s.baseline, Baseline::OtherVersions { deployments } if deployments == &vec![Deployment::new("svc2", "v1")])
        );
        assert_counts_within_totals(&r);
    }
}

#[test]
fn small_samples_ten_times_slower_is_found_and_twenty_percent_is_not() {
    // 20 requests in 4 minutes: 10 per side; s1 changes at the half. With 10 requests a
    // ×1.2 change can look like ×1.7 by chance (σ = 0.3): "not found" means rarely.
    let half = T0 + 120 * S;
    let opts = AnalysisOptions {
        baseline_end_ns: Some(half),
        ..Default::default()
    };
    let mut small_found = 0;
    for seed in 0..20 {
        let mut mesh = Mesh::chain(1);
        mesh.latency = Latency::LogNormal(0.3);
        mesh.base_error = 0.0;
        mesh.fault_start_ns = half;
        mesh.services[1].versions = vec![Version::new("v1", 1.0).times(10.0)];
        let r = analyze(&mesh.generate(20, 240_000.0, seed), &opts);
        assert_eq!(names(&r), ["s1@v1"], "seed {seed}");
        let l = r.suspects[0].latency.as_ref().unwrap();
        assert_eq!((l.candidate.requests, l.baseline.requests), (10, 10));
        mesh.services[1].versions = vec![Version::new("v1", 1.0).times(1.2)];
        let r = analyze(&mesh.generate(20, 240_000.0, seed), &opts);
        small_found += usize::from(!r.suspects.is_empty());
    }
    assert!(small_found <= 1, "×1.2 found in {small_found} of 20 runs");
}

#[test]
fn time_into_a_version_is_blamed_on_it_with_its_blast_radius() {
    let at = T0 + 60 * S;
    let mesh = mesh_with_canary(at, Version::new("v2", 0.3).wire_delay(20.0), 0.3);
    let r = analyze(
        &mesh.generate(4800, 120_000.0, 1),
        &AnalysisOptions::default(),
    );
    assert_eq!(names(&r), ["s2@v2"]);
    let s = &r.suspects[0];
    assert_eq!(s.kind, SuspectKind::Latency);
    assert!(
        s.latency.is_none(),
        "its own time did not change: {:?}",
        s.latency
    );
    let w = s.time_into.as_ref().unwrap();
    assert!(w.p50_delta_ms > 15.0 && w.candidate.calls > 500, "{w:?}");
    let up: Vec<String> = s
        .blast_radius
        .upstream
        .iter()
        .map(|u| u.deployment.to_string())
        .collect();
    assert_eq!(up, ["s1@v1", "s0@v1"]);
    assert!(s.blast_radius.upstream[0].slowed * 2 > s.blast_radius.upstream[0].affected);
    assert_counts_within_totals(&r);
    let text = crate::render_text(&r, false);
    assert!(text.contains("time into s2@v2"), "{text}");
}

#[test]
fn an_unchanged_version_is_compared_with_its_own_past_not_with_a_faster_newcomer() {
    // The canary is three times *faster*: compared with it, the stable version would look
    // guilty. It is compared with its own baseline window instead, and nobody is blamed.
    let at = T0 + 60 * S;
    let mesh = mesh_with_canary(at, Version::new("v2", 0.5).times(0.3), 0.5);
    let r = analyze(
        &mesh.generate(2400, 120_000.0, 2),
        &AnalysisOptions::default(),
    );
    assert!(r.suspects.is_empty(), "{:?}", names(&r));
    let v1 = r
        .deployments
        .iter()
        .find(|d| d.deployment == Deployment::new("s2", "v1"))
        .unwrap();
    assert_eq!(
        v1.baseline,
        Some(Baseline::BaselineWindow {
            deployments: vec![Deployment::new("s2", "v1")]
        })
    );
    let v2 = r
        .deployments
        .iter()
        .find(|d| d.deployment == Deployment::new("s2", "v2"))
        .unwrap();
    assert!(
        matches!(&v2.baseline, Some(Baseline::OtherVersions { deployments }) if deployments == &vec![Deployment::new("s2", "v1")])
    );
}

#[test]
fn retries_mask_failures_from_the_caller_but_not_from_the_callee() {
    let at = T0 + 60 * S;
    let mut mesh = mesh_with_canary(at, Version::new("v2", 0.3).erroring(0.3), 0.3);
    mesh.retries = 2;
    let r = analyze(
        &mesh.generate(2400, 120_000.0, 3),
        &AnalysisOptions::default(),
    );
    assert_eq!(names(&r), ["s2@v2"]);
    let e = r.suspects[0].errors.as_ref().unwrap();
    assert!(e.candidate.own_error_rate > 0.2, "{e:?}");
    // s1's own errors are its 1% floor: a failed attempt retried successfully explains
    // nothing, and an own failure of s1 next to a masked one is still its own.
    let s1 = r
        .deployments
        .iter()
        .find(|d| d.deployment == Deployment::new("s1", "v1"))
        .unwrap();
    assert_ne!(s1.verdict, Verdict::Suspect);
    assert!(s1.own_errors as f64 <= 0.03 * s1.requests as f64, "{s1:?}");
    assert_counts_within_totals(&r);
}

#[test]
fn a_canary_refusing_connections_is_blamed_through_its_callers_spans() {
    let at = T0 + 60 * S;
    let mesh = mesh_with_canary(at, Version::new("v2", 0.3).crashing(0.5), 0.3);
    let spans = mesh.generate(2400, 120_000.0, 4);
    let r = analyze(&spans, &AnalysisOptions::default());
    assert_eq!(names(&r), ["s2@v2"]);
    let e = r.suspects[0].errors.as_ref().unwrap();
    assert!(e.candidate.own_error_rate > 0.35, "{e:?}");
    let up: Vec<String> = r.suspects[0]
        .blast_radius
        .upstream
        .iter()
        .map(|u| u.deployment.to_string())
        .collect();
    assert_eq!(up, ["s1@v1", "s0@v1"]);
    assert_counts_within_totals(&r);
}

#[test]
fn a_fallback_absorbs_the_failure_yet_the_callee_is_blamed() {
    let at = T0 + 60 * S;
    let mut mesh = mesh_with_canary(at, Version::new("v2", 0.3).erroring(0.4), 0.3);
    mesh.fallbacks = vec![1];
    let r = analyze(
        &mesh.generate(2400, 120_000.0, 5),
        &AnalysisOptions::default(),
    );
    assert_eq!(names(&r), ["s2@v2"]);
    assert!(
        r.affected.iter().all(|a| !a.error_regressed),
        "{:?}",
        r.affected
    );
    assert_counts_within_totals(&r);
}

#[test]
fn an_unhealthy_baseline_is_said_first_and_lowers_confidence() {
    let at = T0 + 60 * S;
    let mut mesh = mesh_with_canary(at, Version::new("v2", 0.3), 0.3);
    mesh.base_error = 0.08; // ~22% of entry requests fail over three hops
    let r = analyze(
        &mesh.generate(2400, 120_000.0, 6),
        &AnalysisOptions::default(),
    );
    assert_eq!(r.baseline_health.confidence, Confidence::Low);
    assert!(r.suspects.is_empty(), "{:?}", names(&r));
    let text = crate::render_text(&r, false);
    let warn = text.find("LOW CONFIDENCE").unwrap();
    assert!(warn < text.find("tests:").unwrap(), "{text}");
}

#[test]
fn the_rollout_moment_is_inferred_and_printed_as_wall_clock_time() {
    let at = T0 + 60 * S;
    let mesh = mesh_with_canary(at, Version::new("v2", 0.3).erroring(0.2), 0.3);
    let r = analyze(
        &mesh.generate(2400, 120_000.0, 7),
        &AnalysisOptions::default(),
    );
    assert_eq!(names(&r), ["s2@v2"]);
    assert!(r.window.baseline_end_inferred);
    let split = r.window.baseline_end_ns.unwrap();
    assert!(split >= at && split < at + 2 * S, "{}", split - at);
    let text = crate::render_text(&r, false);
    assert!(text.contains("2023-11-14T22:13:20.000Z"), "{text}");
    assert!(text.contains("inferred: the first rollout seen"), "{text}");
    assert!(text.contains("s2@v2 at 22:14:2"), "{text}");
    assert!(text.contains("Benjamini-Hochberg"), "{text}");
}
