//! Scenario tests of [`analyze`] on synthetic meshes (see `synth.rs`).

use super::*;
use crate::model::Deployment;
use crate::synth::{Mesh, Service, Version, T0};

const REQUESTS: usize = 2000;
const DURATION_MS: f64 = 600_000.0;

fn dep(s: &str) -> Deployment {
    let (service, version) = s.split_once('@').unwrap();
    Deployment::new(service, version)
}

fn suspects(r: &Report) -> Vec<String> {
    r.suspects
        .iter()
        .map(|s| s.deployment.to_string())
        .collect()
}

/// Halfway through the run: faults start there, and it splits baseline from current.
fn halfway() -> u64 {
    T0 + (DURATION_MS / 2.0 * 1_000_000.0) as u64
}

#[test]
fn bad_canary_at_depth_1_3_6_ranks_first_with_exact_upstream_chain() {
    for depth in [1usize, 3, 6] {
        let mut mesh = Mesh::chain(depth);
        mesh.services[depth].versions = vec![
            Version::new("v1", 0.8),
            Version::new("v2", 0.2).erroring(0.3),
        ];
        let spans = mesh.generate(REQUESTS, DURATION_MS, 42 + depth as u64);
        let r = analyze(&spans, &AnalysisOptions::default());

        let culprit = format!("s{depth}@v2");
        assert_eq!(suspects(&r), vec![culprit.clone()], "depth {depth}");
        let s = &r.suspects[0];
        assert_eq!(s.rank, 1);
        assert_eq!(s.kind, SuspectKind::Errors);
        assert!(
            matches!(&s.baseline, Baseline::OtherVersions { deployments } if deployments == &vec![dep(&format!("s{depth}@v1"))])
        );
        let e = s.errors.as_ref().unwrap();
        assert_eq!(e.test, FISHER_TEST);
        assert!(e.p_value < 1e-6, "{}", e.p_value);
        assert!(e.candidate.requests > 300 && e.baseline.requests > 1400);
        assert!((e.own_share - 1.0).abs() < 1e-9);

        // Exactly the upstream chain, each at its hop distance.
        let chain: Vec<(String, u32)> = s
            .blast_radius
            .upstream
            .iter()
            .map(|u| (u.deployment.to_string(), u.hops))
            .collect();
        let want: Vec<(String, u32)> = (0..depth)
            .rev()
            .map(|i| (format!("s{i}@v1"), (depth - i) as u32))
            .collect();
        assert_eq!(chain, want, "depth {depth}");
        // Every caller failed exactly when the culprit did: same affected count all the way up.
        let bad = s.blast_radius.bad_requests;
        for u in &s.blast_radius.upstream {
            assert_eq!(
                (u.affected, u.failed, u.total),
                (bad, bad, REQUESTS as u64),
                "{u:?}"
            );
        }
        // Edge route: ~ 0.2 * 0.3 = 6% of /checkout.
        let [route] = s.blast_radius.edge_routes.as_slice() else {
            panic!("{:?}", s.blast_radius)
        };
        assert_eq!(
            (route.service.as_str(), route.route.as_str()),
            ("s0", "/checkout")
        );
        assert_eq!(route.affected, bad);
        assert_eq!(route.total, REQUESTS as u64);
        assert!((0.04..0.08).contains(&route.share), "{}", route.share);

        // Callers are affected, not blamed, and their errors trace back to the culprit.
        for i in 0..depth {
            let a = r
                .affected
                .iter()
                .find(|a| a.deployment == dep(&format!("s{i}@v1")))
                .unwrap();
            assert_eq!(a.blamed_on, vec![dep(&culprit)]);
            assert_eq!(
                a.explained_by.first().map(|o| o.deployment.to_string()),
                Some(culprit.clone())
            );
        }
        // The stable version is healthy.
        let stable = r
            .deployments
            .iter()
            .find(|d| d.deployment == dep(&format!("s{depth}@v1")))
            .unwrap();
        assert_eq!(stable.verdict, Verdict::Healthy);
    }
}

#[test]
fn culprit_at_the_edge_hurts_its_own_routes() {
    let mut mesh = Mesh::chain(2);
    mesh.services[0].versions = vec![
        Version::new("v1", 0.5),
        Version::new("v2", 0.5).erroring(0.2),
    ];
    let r = analyze(
        &mesh.generate(REQUESTS, DURATION_MS, 7),
        &AnalysisOptions::default(),
    );
    assert_eq!(suspects(&r), vec!["s0@v2"]);
    let s = &r.suspects[0];
    assert!(s.blast_radius.upstream.is_empty());
    assert!((0.07..0.13).contains(&s.blast_radius.edge_routes[0].share));
}

#[test]
fn of_two_simultaneous_canaries_only_the_bad_one_is_a_suspect() {
    // s0 calls a and b; both have a canary, only b's is bad.
    let mut mesh = Mesh::chain(0);
    let svc = |name: &str, versions: Vec<Version>| Service {
        name: name.into(),
        versions,
        calls: vec![],
        self_ms: 15.0,
        route: format!("/{name}"),
        instrumented: true,
    };
    mesh.services[0].calls = vec![1, 2];
    mesh.services.push(svc(
        "a",
        vec![Version::new("v1", 0.7), Version::new("v2", 0.3)],
    ));
    mesh.services.push(svc(
        "b",
        vec![
            Version::new("v1", 0.7),
            Version::new("v2", 0.3).erroring(0.15),
        ],
    ));
    let r = analyze(
        &mesh.generate(REQUESTS, DURATION_MS, 3),
        &AnalysisOptions::default(),
    );
    assert_eq!(suspects(&r), vec!["b@v2"]);
    let up: Vec<&str> = r.suspects[0]
        .blast_radius
        .upstream
        .iter()
        .map(|u| u.deployment.service.as_str())
        .collect();
    assert_eq!(up, vec!["s0"]);
    let healthy = |d: &str| {
        r.deployments
            .iter()
            .any(|s| s.deployment == dep(d) && s.verdict == Verdict::Healthy)
    };
    assert!(healthy("a@v2") && healthy("a@v1") && healthy("b@v1"));
}

#[test]
fn latency_regression_is_reported_as_latency_and_blamed_on_the_slow_one() {
    // Baseline-window mode: one version everywhere, s2 gets 80 ms slower halfway through.
    let mut mesh = Mesh::chain(3);
    mesh.fault_start_ns = halfway();
    mesh.services[2].versions = vec![Version::new("v1", 1.0).slower(80.0)];
    let opts = AnalysisOptions {
        baseline_end_ns: Some(halfway()),
        ..Default::default()
    };
    let r = analyze(&mesh.generate(REQUESTS, DURATION_MS, 11), &opts);
    assert_eq!(suspects(&r), vec!["s2@v1"]);
    let s = &r.suspects[0];
    assert_eq!(s.kind, SuspectKind::Latency);
    assert!(s.errors.is_none());
    assert!(matches!(s.baseline, Baseline::BaselineWindow { .. }));
    let l = s.latency.as_ref().unwrap();
    assert_eq!(l.test, MANN_WHITNEY_TEST);
    assert!(
        l.self_p95_delta_ms > 60.0 && l.self_p95_ratio > 3.0,
        "{l:?}"
    );
    assert!(l.own_share > 0.9);
    let chain: Vec<(String, u32)> = s
        .blast_radius
        .upstream
        .iter()
        .map(|u| (u.deployment.to_string(), u.hops))
        .collect();
    assert_eq!(chain, vec![("s1@v1".into(), 1), ("s0@v1".into(), 2)]);
    for u in &s.blast_radius.upstream {
        // Only background noise failed (0.5% per hop).
        assert!(u.failed * 20 < u.affected, "{u:?}");
        assert!(u.slowed as f64 > 0.9 * u.affected as f64, "{u:?}");
    }
    // Callers got slower in total, not in self time: affected, not blamed.
    for d in ["s0@v1", "s1@v1"] {
        let a = r.affected.iter().find(|a| a.deployment == dep(d)).unwrap();
        // (Not asserting on error_regressed: background noise alone moves 1% -> 2.6% here.)
        assert!(a.latency_regressed, "{a:?}");
    }
    // s3, below the slow service, is untouched.
    assert!(r.affected.iter().all(|a| a.deployment != dep("s3@v1")));
}

#[test]
fn error_regression_is_reported_as_errors() {
    let mut mesh = Mesh::chain(3);
    mesh.fault_start_ns = halfway();
    mesh.services[2].versions = vec![Version::new("v1", 1.0).erroring(0.2)];
    let opts = AnalysisOptions {
        baseline_end_ns: Some(halfway()),
        ..Default::default()
    };
    let r = analyze(&mesh.generate(REQUESTS, DURATION_MS, 12), &opts);
    assert_eq!(suspects(&r), vec!["s2@v1"]);
    assert_eq!(r.suspects[0].kind, SuspectKind::Errors);
    assert!(r.suspects[0].latency.is_none());
    // Callers' total error rate went up, significantly, yet they are not suspects.
    for d in ["s0@v1", "s1@v1"] {
        let a = r.affected.iter().find(|a| a.deployment == dep(d)).unwrap();
        assert!(a.error_regressed, "{a:?}");
        assert_eq!(a.explained_by[0].deployment, dep("s2@v1"));
    }
}

#[test]
fn noise_only_gives_no_suspect() {
    for seed in 0..4 {
        let mut mesh = Mesh::chain(4);
        mesh.base_error = 0.02;
        // Identical canaries at two depths.
        mesh.services[1].versions = vec![Version::new("v1", 0.5), Version::new("v2", 0.5)];
        mesh.services[3].versions = vec![Version::new("v1", 0.9), Version::new("v2", 0.1)];
        let opts = AnalysisOptions {
            baseline_end_ns: Some(halfway()),
            ..Default::default()
        };
        let r = analyze(&mesh.generate(REQUESTS, DURATION_MS, 100 + seed), &opts);
        assert!(r.suspects.is_empty(), "seed {seed}: {:?}", suspects(&r));
        assert!(r.affected.is_empty(), "seed {seed}: {:?}", r.affected);
        assert!(r.deployments.iter().all(|d| d.verdict == Verdict::Healthy));
    }
}

#[test]
fn an_uninstrumented_callee_is_blamed_through_its_callers_spans() {
    // s0 -> s1 -> s2, s2 sends no spans and starts failing halfway: s1's errors are all
    // explained by its failing calls, and s2@v1 (named by s1's CLIENT spans) is the suspect.
    let mut mesh = Mesh::chain(2);
    mesh.fault_start_ns = halfway();
    mesh.services[2].instrumented = false;
    mesh.services[2].versions = vec![Version::new("v1", 1.0).erroring(0.3)];
    let opts = AnalysisOptions {
        baseline_end_ns: Some(halfway()),
        ..Default::default()
    };
    let r = analyze(&mesh.generate(REQUESTS, DURATION_MS, 5), &opts);
    assert_eq!(suspects(&r), vec!["s2@v1"]);
    let s = &r.suspects[0];
    assert_eq!(s.kind, SuspectKind::Errors);
    assert!(s.latency.is_none(), "no timing of its own: {:?}", s.latency);
    let up: Vec<(String, u32)> = s
        .blast_radius
        .upstream
        .iter()
        .map(|u| (u.deployment.to_string(), u.hops))
        .collect();
    assert_eq!(up, vec![("s1@v1".into(), 1), ("s0@v1".into(), 2)]);
    let s1 = r
        .affected
        .iter()
        .find(|a| a.deployment == dep("s1@v1"))
        .unwrap();
    assert!(s1.error_regressed);
    assert!(s1.errors > 200 && s1.own_errors < s1.errors / 10, "{s1:?}");
    assert_eq!(s1.blamed_on, vec![dep("s2@v1")]);
    assert_eq!(s1.explained_by[0].deployment, dep("s2@v1"));
}

#[test]
fn empty_and_degenerate_inputs_do_not_panic() {
    let r = analyze(&[], &AnalysisOptions::default());
    assert!(r.suspects.is_empty() && r.deployments.is_empty());
    assert_eq!(r.window.start_ns, 0);
    // A span that is its own parent, and a child whose parent is missing.
    let mut spans = Mesh::chain(1).generate(3, 10.0, 1);
    spans[0].parent_span_id = Some(spans[0].span_id.clone());
    spans[1].parent_span_id = Some("ffffffffffffffff".into());
    spans[2].end_ns = 0;
    let r = analyze(&spans, &AnalysisOptions::default());
    assert!(r.suspects.is_empty());
    serde_json::to_string(&r).unwrap();
}

#[test]
fn report_serializes_for_the_cli_json_output() {
    let mut mesh = Mesh::chain(1);
    mesh.services[1].versions = vec![
        Version::new("v1", 0.5),
        Version::new("v2", 0.5).erroring(0.5),
    ];
    let r = analyze(
        &mesh.generate(400, 60_000.0, 2),
        &AnalysisOptions::default(),
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["suspects"][0]["deployment"], "s1@v2");
    assert_eq!(v["suspects"][0]["kind"], "errors");
    assert_eq!(v["suspects"][0]["baseline"]["kind"], "other_versions");
    assert_eq!(v["suspects"][0]["errors"]["test"], FISHER_TEST);
    assert_eq!(
        v["suspects"][0]["blast_radius"]["upstream"][0]["deployment"],
        "s0@v1"
    );
    assert_eq!(v["deployments"][0]["verdict"], "affected");
    // Options: partial JSON fills defaults, unknown keys are rejected.
    let o: AnalysisOptions = serde_json::from_str(r#"{"alpha": 0.001}"#).unwrap();
    assert_eq!((o.alpha, o.min_samples), (0.001, 5));
    assert!(serde_json::from_str::<AnalysisOptions>(r#"{"alpah": 0.001}"#).is_err());
}

/// The gate's case: no baseline window, a canary that served only the last 5 % of the window,
/// during which the whole machine stalled (every request of the service 40 ms slower). The
/// canary is compared with its peers over the seconds it served, so the stall is no finding;
/// a canary that is itself slower in those seconds still is.
#[test]
fn canary_is_compared_with_its_peers_over_the_seconds_it_served() {
    let stall_from = T0 + (DURATION_MS * 0.95 * 1_000_000.0) as u64;
    let judge = |canary: Version| {
        let mut mesh = Mesh::chain(2);
        mesh.services[1].versions =
            vec![Version::new("v1", 0.5), canary.live(stall_from, u64::MAX)];
        let mut spans = mesh.generate(REQUESTS * 2, DURATION_MS, 7);
        for s in spans.iter_mut() {
            if s.service == "s1" && s.kind == crate::Kind::Server && s.start_ns >= stall_from {
                s.end_ns += 40_000_000;
            }
        }
        let opts = AnalysisOptions {
            infer_baseline_end: false,
            ..AnalysisOptions::default()
        };
        suspects(&analyze(&spans, &opts))
    };
    assert_eq!(judge(Version::new("v2", 0.5)), Vec::<String>::new());
    assert_eq!(judge(Version::new("v2", 0.5).slower(60.0)), vec!["s1@v2"]);
}

/// The machine gets slower after the baseline: every unchanged service's self time grows
/// ×1.6. That is the environment, and no unchanged deployment is blamed for it; one that grows
/// ×4 while its peers grow ×1.6 still is.
#[test]
fn a_slowdown_shared_by_unchanged_deployments_is_not_blamed_on_them() {
    let split = halfway();
    let judge = |own: f64| {
        let mut mesh = Mesh::chain(4);
        for (i, svc) in mesh.services.iter_mut().enumerate() {
            // Same deployment (v1) before and after; only its own time changes at the split.
            let factor = if i == 2 { own } else { 1.6 };
            svc.versions = vec![
                Version::new("v1", 1.0).live(0, split),
                Version::new("v1", 1.0).times(factor).live(split, u64::MAX),
            ];
        }
        let spans = mesh.generate(REQUESTS, DURATION_MS, 11);
        let opts = AnalysisOptions {
            baseline_end_ns: Some(split),
            ..AnalysisOptions::default()
        };
        suspects(&analyze(&spans, &opts))
    };
    assert_eq!(judge(1.6), Vec::<String>::new());
    assert_eq!(judge(4.0).first().map(String::as_str), Some("s2@v1"));
}
