//! Deployment-version tagging and peer metadata exchange through real Envoys: one Envoy per
//! workload, a weighted split between two versions, lineage over long chains, spoofing
//! from outside the edge, HMAC mismatches, and identity headers never leaving the mesh.
use meshwake_semconv::{attr, header};
use meshwake_tests::mesh::{self, lineage, span_of, traceparent_of, Mesh, MeshSpec, WorkloadSpec};
use meshwake_tests::otlp::ReceivedSpan;
use serde_json::{json, Value};

const OWNED: [&str; 2] = [header::PEER, header::LINEAGE];

fn one<'a>(spans: &'a [ReceivedSpan], svc: &str, role: &str) -> &'a ReceivedSpan {
    let s = span_of(spans, svc, role);
    assert_eq!(s.len(), 1, "{svc} {role}: {} spans", s.len());
    s[0]
}

/// (peer.service, meshwake.peer.version, meshwake.peer.version_source) of a span.
fn peer(s: &ReceivedSpan) -> (String, String, String) {
    (
        s.attr_str(attr::PEER_SERVICE).unwrap_or_default(),
        s.attr_str(attr::MESHWAKE_PEER_VERSION).unwrap_or_default(),
        s.attr_str(attr::MESHWAKE_PEER_VERSION_SOURCE)
            .unwrap_or_default(),
    )
}

fn p(svc: &str, ver: &str, src: &str) -> (String, String, String) {
    (svc.into(), ver.into(), src.into())
}

fn assert_no_identity_headers(m: &Mesh) {
    for w in &m.workloads {
        for r in w.received() {
            for h in OWNED {
                assert_eq!(r.header(h), None, "{} app saw {h}", w.spec.id());
            }
        }
    }
}

#[test]
fn weighted_split_every_hop_names_the_version_that_served() {
    let workloads = vec![
        WorkloadSpec::new("a", "v1").calls("b"),
        WorkloadSpec::new("b", "v1").calls("c"),
        WorkloadSpec::new("b", "v2").calls("c"),
        WorkloadSpec::new("c", "v1"),
    ];
    let m = Mesh::start(MeshSpec::new("id-split", workloads).edge("a", json!({})));
    let mut served = Vec::new();
    for i in 0..12 {
        let r = m.get(&format!("/item/{i}"), &[]);
        assert_eq!(r.status, 200, "{}", r.body_str());
        for h in OWNED {
            assert_eq!(r.header(h), None, "{h} leaked to the client");
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let b = &body["downstream"][0];
        let version = b["version"].as_str().unwrap().to_string();
        let tp = mesh::traceparent(b["received"]["traceparent"].as_str().unwrap());
        served.push((tp.trace_id, version));
    }
    let versions: std::collections::BTreeSet<_> = served.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        versions.len(),
        2,
        "12 requests over a 50/50 split all went to {versions:?}"
    );

    for (trace, v) in &served {
        let spans = m.wait_trace(trace, 6, 30);
        assert_eq!(peer(one(&spans, "edge", "edge")), p("a", "v1", "header"));
        assert_eq!(peer(one(&spans, "a", "inbound")), p("edge", "v1", "header"));
        assert_eq!(
            peer(one(&spans, "a", "outbound")),
            p("b", v, "header"),
            "trace {trace}"
        );
        let b_in = one(&spans, "b", "inbound");
        assert_eq!(
            b_in.resource_str(attr::SERVICE_VERSION).as_deref(),
            Some(v.as_str())
        );
        assert_eq!(peer(b_in), p("a", "v1", "header"));
        let b_out = one(&spans, "b", "outbound");
        assert_eq!(
            b_out.resource_str(attr::SERVICE_VERSION).as_deref(),
            Some(v.as_str())
        );
        assert_eq!(peer(b_out), p("c", "v1", "header"));
        let c_in = one(&spans, "c", "inbound");
        assert_eq!(peer(c_in), p("b", v, "header"), "trace {trace}");
        assert_eq!(
            lineage(c_in),
            ["edge@v1".to_string(), "a@v1".into(), format!("b@{v}")]
        );
    }
    assert_no_identity_headers(&m);
}

#[test]
fn lineage_over_a_long_chain_is_bounded_by_lineage_max() {
    let cap = json!({"identity": {"lineage_max": 3}});
    let workloads: Vec<WorkloadSpec> = mesh::chain(&["s1", "s2", "s3", "s4", "s5"])
        .into_iter()
        .map(|w| w.config(cap.clone()))
        .collect();
    let m = Mesh::start(MeshSpec::new("id-lineage", workloads).edge("s1", cap.clone()));
    let r = m.get("/", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let trace = traceparent_of(&m.workload("s5", "v1").app.last()).trace_id;
    let spans = m.wait_trace(&trace, 10, 30);
    #[rustfmt::skip]
    let want: &[(&str, &[&str])] = &[
        ("s1", &["edge@v1"]),
        ("s2", &["edge@v1", "s1@v1"]),
        ("s3", &["edge@v1", "s1@v1", "s2@v1"]),
        ("s4", &["s1@v1", "s2@v1", "s3@v1"]),
        ("s5", &["s2@v1", "s3@v1", "s4@v1"]),
    ];
    for (svc, lin) in want {
        assert_eq!(lineage(one(&spans, svc, "inbound")), *lin, "{svc} inbound");
    }
    // Outbound spans carry what they sent: the lineage including themselves.
    assert_eq!(
        lineage(one(&spans, "s4", "outbound")),
        ["s2@v1", "s3@v1", "s4@v1"]
    );
    for svc in ["s4", "s5"] {
        let e = &m.workload(svc, "v1").envoy;
        assert!(
            e.meshwake_stat("lineage_truncated") >= 1,
            "{svc}: truncation not counted"
        );
    }
    assert_eq!(
        m.workload("s2", "v1")
            .envoy
            .meshwake_stat("lineage_truncated"),
        0
    );
    assert_no_identity_headers(&m);
}

#[test]
fn spoofed_identity_from_outside_is_ignored_and_identity_never_leaves_the_mesh() {
    let m = Mesh::start(MeshSpec::new("id-spoof", mesh::chain(&["a", "b"])).edge("a", json!({})));
    let r = m.get(
        "/",
        &[
            (header::PEER, "1;s=payments;v=v9;n=prod;w=payments-v9"),
            (header::LINEAGE, "payments@v9,admin@v1"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    for h in OWNED {
        assert_eq!(
            r.header(h),
            None,
            "{h} in the edge's response to the client"
        );
    }
    let trace = traceparent_of(&m.workload("a", "v1").app.last()).trace_id;
    let spans = m.wait_trace(&trace, 4, 30);
    let a_in = one(&spans, "a", "inbound");
    assert_eq!(peer(a_in), p("edge", "v1", "header"));
    assert_eq!(lineage(a_in), ["edge@v1"]);
    assert_eq!(lineage(one(&spans, "b", "inbound")), ["edge@v1", "a@v1"]);
    let e = m.edge.as_ref().unwrap();
    assert_eq!(e.meshwake_stat("edge_identity_stripped"), 1);
    assert_no_identity_headers(&m);
}

#[test]
fn hmac_mismatch_between_sidecars_is_rejected_and_counted() {
    let key = |k: &str| json!({"identity": {"hmac_key": k}});
    let workloads = vec![
        WorkloadSpec::new("a", "v1").calls("b").config(key("one")),
        WorkloadSpec::new("b", "v1").config(key("two")),
    ];
    let m = Mesh::start(MeshSpec::new("id-hmac", workloads).edge("a", key("one")));
    let r = m.get("/", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let trace = traceparent_of(&m.workload("b", "v1").app.last()).trace_id;
    let spans = m.wait_trace(&trace, 4, 30);
    // Same key edge → a: accepted.
    assert_eq!(peer(one(&spans, "a", "inbound")), p("edge", "v1", "header"));
    // a → b: b rejects a's identity and lineage; a rejects b's answer and falls back to
    // the cluster name `b-v1`.
    let b_in = one(&spans, "b", "inbound");
    assert_eq!(peer(b_in), p("", "", "unknown"));
    assert!(lineage(b_in).is_empty());
    assert_eq!(peer(one(&spans, "a", "outbound")), p("b", "v1", "cluster"));
    let (a, b) = (&m.workload("a", "v1").envoy, &m.workload("b", "v1").envoy);
    assert_eq!(b.meshwake_stat("peer_identity_rejected"), 1);
    assert_eq!(b.meshwake_stat("lineage_rejected"), 1);
    assert_eq!(a.meshwake_stat("peer_identity_rejected"), 1);
    assert_no_identity_headers(&m);
}

/// Lineage is handed from inbound to outbound by trace id whatever `context_recovery`
/// says: turning recovery off (for apps that forward headers) must not cut lineage.
#[test]
fn lineage_survives_with_context_recovery_disabled() {
    let off = json!({"context_recovery": {"enabled": false}});
    let workloads: Vec<WorkloadSpec> = mesh::chain(&["a", "b", "c"])
        .into_iter()
        .map(|w| w.config(off.clone()))
        .collect();
    let m = Mesh::start(MeshSpec::new("id-norecovery", workloads).edge("a", off.clone()));
    let r = m.get("/", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let trace = traceparent_of(&m.workload("c", "v1").app.last()).trace_id;
    let spans = m.wait_trace(&trace, 6, 30);
    assert_eq!(
        lineage(one(&spans, "c", "inbound")),
        ["edge@v1", "a@v1", "b@v1"]
    );
}

/// Without `x-meshwake-peer` in the answer (a server outside meshwake) and with a cluster name
/// no pattern matches, the outbound sidecar names the peer from Istio's endpoint metadata
/// `istio.workload`, as istiod puts it on every endpoint: a real Envoy cluster carries it.
#[test]
fn peer_identity_falls_back_to_istio_workload_endpoint_metadata() {
    let legacy = meshwake_tests::Server::start(|_| meshwake_tests::Response::new(200));
    let workloads = vec![
        WorkloadSpec::new("a", "v1")
            .calls_external("legacy", legacy.port())
            .external_istio_workload("reviews-v2;bookinfo;reviews;v2;Kubernetes"),
        // Same call, no metadata: the peer stays unknown (the fallback has nothing else).
        WorkloadSpec::new("x", "v1").calls_external("legacy", legacy.port()),
    ];
    let m = Mesh::start(MeshSpec::new("id-host-meta", workloads));
    for svc in ["a", "x"] {
        let w = m.workload(svc, "v1");
        let r = meshwake_tests::http::get(w.inbound_port(), "/", &[]);
        assert_eq!(r.status, 200, "{}", r.body_str());
        let trace = traceparent_of(&legacy.last()).trace_id;
        let spans = m.wait_trace(&trace, 2, 30);
        let out = one(&spans, svc, "outbound");
        if svc == "x" {
            assert_ne!(peer(out).0, "reviews", "a peer named without metadata");
            continue;
        }
        assert_eq!(peer(out), p("reviews", "v2", "host_metadata"));
        assert_eq!(
            out.attr_str("meshwake.peer.namespace").as_deref(),
            Some("bookinfo")
        );
        let want = [
            ("reporter", "source"),
            ("destination_workload", "reviews-v2"),
            ("destination_workload_namespace", "bookinfo"),
            ("destination_service", "reviews"),
            ("destination_version", "v2"),
        ];
        let matches = |l: &&str| {
            l.starts_with("meshwake_requests_total{")
                && want
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        };
        let found = (0..250).find_map(|_| {
            let line = w
                .envoy
                .prometheus()
                .lines()
                .find(matches)
                .map(str::to_string);
            if line.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(40));
            }
            line
        });
        let line = found.unwrap_or_else(|| {
            let scrape = w.envoy.prometheus();
            let ours: Vec<&str> = scrape
                .lines()
                .filter(|l| l.starts_with("meshwake_requests_total"))
                .collect();
            panic!(
                "no meshwake_requests_total with {want:?} in\n{}",
                ours.join("\n")
            )
        });
        assert!(line.ends_with(" 1"), "{line}");
    }
}
