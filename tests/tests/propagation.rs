//! Trace-context propagation through real Envoys: a chain edge → a → b → c of sidecars
//! (one Envoy per workload, apps forwarding the trace headers they receive through their
//! outbound listener), format conversion, sampling, tracestate/baggage, the edge trust
//! policy and context recovery for apps that drop trace headers.
#![allow(clippy::type_complexity)] // test tables are tuples on purpose
use meshwake_tests::mesh::{self, span_of, traceparent_of, Mesh, MeshSpec, WorkloadSpec};
use serde_json::json;

fn chain_mesh(name: &str, edge: serde_json::Value) -> Mesh {
    Mesh::start(MeshSpec::new(name, mesh::chain(&["a", "b", "c"])).edge("a", edge))
}

#[test]
fn chain_keeps_one_trace_and_each_hop_is_the_child_of_the_previous() {
    let m = chain_mesh("prop-chain", json!({}));
    let r = m.get("/orders/42", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());

    let (a, b, c) = (
        m.workload("a", "v1"),
        m.workload("b", "v1"),
        m.workload("c", "v1"),
    );
    let (ta, tb, tc) = (
        traceparent_of(&a.app.last()),
        traceparent_of(&b.app.last()),
        traceparent_of(&c.app.last()),
    );
    assert_eq!(ta.trace_id, tb.trace_id);
    assert_eq!(tb.trace_id, tc.trace_id);
    assert_ne!(ta.parent_id, tb.parent_id);
    assert_ne!(tb.parent_id, tc.parent_id);
    for t in [&ta, &tb, &tc] {
        // 01 sampled, plus 02 (W3C level 2 "random") on traces the edge starts.
        assert!(t.sampled(), "sampled by default: {t:?}");
    }

    // Spans: edge → a in → a out → b in → b out → c in, each the parent of the next.
    let spans = m.wait_trace(&ta.trace_id, 6, 30);
    let one = |svc: &str, role: &str| {
        let s = span_of(&spans, svc, role);
        assert_eq!(s.len(), 1, "{svc} {role}: {s:?}");
        s[0].clone()
    };
    let edge = one("edge", "edge");
    let (a_in, a_out) = (one("a", "inbound"), one("a", "outbound"));
    let (b_in, b_out) = (one("b", "inbound"), one("b", "outbound"));
    let c_in = one("c", "inbound");
    assert_eq!(edge.parent_id_hex(), "", "the edge starts the trace");
    let hops = [&edge, &a_in, &a_out, &b_in, &b_out, &c_in];
    for w in hops.windows(2) {
        assert_eq!(
            w[1].parent_id_hex(),
            w[0].span_id_hex(),
            "{} is not the child of {}",
            w[1].span.name,
            w[0].span.name
        );
    }
    // What each app saw as its parent is its inbound span.
    assert_eq!(ta.parent_id, a_in.span_id_hex());
    assert_eq!(tb.parent_id, b_in.span_id_hex());
    assert_eq!(tc.parent_id, c_in.span_id_hex());
}

/// A client context at a trusting edge: ids, flags, tracestate and baggage go through
/// every hop unchanged except the parent id.
#[test]
fn trusted_edge_continues_outside_trace_with_flags_tracestate_and_baggage() {
    let m = chain_mesh(
        "prop-trust",
        json!({"edge": {"trust_incoming_context": true}}),
    );
    let tid = "0af7651916cd43dd8448eb211c80319c";
    for flags in ["01", "00"] {
        let tp = format!("00-{tid}-b7ad6b7169203331-{flags}");
        let r = m.get(
            "/",
            &[
                ("traceparent", &tp),
                ("tracestate", "meshwake=t61rcWkgMzE,congo=ucfJifl5GOE"),
                ("baggage", "user=alice,meshwake.tenant=blue"),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        for svc in ["a", "b", "c"] {
            let got = m.workload(svc, "v1").app.last();
            let t = traceparent_of(&got);
            assert_eq!(t.trace_id, tid, "{svc}");
            assert_eq!(t.flags, flags, "{svc}: the sampled flag is the caller's");
            assert_ne!(t.parent_id, "b7ad6b7169203331", "{svc}");
            assert_eq!(
                got.header("tracestate").as_deref(),
                Some("meshwake=t61rcWkgMzE,congo=ucfJifl5GOE"),
                "{svc}"
            );
            assert_eq!(
                got.header("baggage").as_deref(),
                Some("user=alice,meshwake.tenant=blue"),
                "{svc}"
            );
        }
    }
    // The sampled trace was exported with the client's span as the edge span's parent.
    let spans = m.wait_trace(tid, 6, 30);
    assert_eq!(
        span_of(&spans, "edge", "edge")[0].parent_id_hex(),
        "b7ad6b7169203331"
    );
    // The unsampled one was not: give the exporters a moment and count again.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(m.trace(tid).len(), 6, "an unsampled request was exported");
}

/// Default edge: outside context is restarted (kept as a link), the mesh's own tracestate
/// key and baggage prefix from outside are dropped.
#[test]
fn untrusted_edge_restarts_outside_trace_and_drops_mesh_owned_state() {
    let m = chain_mesh("prop-edge", json!({}));
    let tid = "0af7651916cd43dd8448eb211c80319c";
    let r = m.get(
        "/",
        &[
            ("traceparent", &format!("00-{tid}-b7ad6b7169203331-01")),
            ("tracestate", "meshwake=forged,congo=ucfJifl5GOE"),
            ("baggage", "meshwake.tenant=forged,user=alice"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let mut new_trace = None;
    for svc in ["a", "b", "c"] {
        let got = m.workload(svc, "v1").app.last();
        let t = traceparent_of(&got);
        assert_ne!(t.trace_id, tid, "{svc}: outside trace continued");
        assert_eq!(
            *new_trace.get_or_insert(t.trace_id.clone()),
            t.trace_id,
            "{svc}"
        );
        let ts = got.header("tracestate").unwrap_or_default();
        assert!(
            !ts.contains("meshwake="),
            "{svc}: outside meshwake tracestate kept: {ts}"
        );
        assert_eq!(
            got.header("baggage").as_deref(),
            Some("user=alice"),
            "{svc}"
        );
    }
    let new_trace = new_trace.unwrap();
    let spans = m.wait_trace(&new_trace, 6, 30);
    let edge = span_of(&spans, "edge", "edge")[0].clone();
    assert_eq!(edge.parent_id_hex(), "");
    assert_eq!(edge.span.links.len(), 1, "outside context kept as a link");
    assert_eq!(meshwake_tests::otlp::hex(&edge.span.links[0].trace_id), tid);
    let e = m.edge.as_ref().unwrap();
    assert_eq!(
        e.meshwake_stat("edge_context_restarted"),
        1,
        "{:#?}",
        meshwake_stats(e)
    );
    assert_eq!(e.meshwake_stat("edge_baggage_stripped"), 1);
}

fn meshwake_stats(e: &meshwake_tests::Envoy) -> Vec<(String, String)> {
    e.stats()
        .into_iter()
        .filter(|(k, _)| k.contains("meshwake."))
        .collect()
}

/// B3 from a Zipkin client: continued (trusting edge), W3C between sidecars, and B3 again
/// for every app (each hop received B3), same ids in both formats.
#[test]
fn b3_single_and_multi_are_continued_and_written_back_next_to_w3c() {
    let m = chain_mesh("prop-b3", json!({"edge": {"trust_incoming_context": true}}));
    // Single header, 64-bit trace id, sampled.
    let r = m.get("/", &[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    for svc in ["a", "b", "c"] {
        let got = m.workload(svc, "v1").app.last();
        let t = traceparent_of(&got);
        assert_eq!(t.trace_id, "0000000000000000a3ce929d0e0e4736", "{svc}");
        assert!(t.sampled(), "{svc}");
        let b3 = got
            .header("b3")
            .unwrap_or_else(|| panic!("{svc}: no b3 written back: {:?}", mesh::header_map(&got)));
        let parts: Vec<&str> = b3.split('-').collect();
        assert!(parts[0].ends_with("a3ce929d0e0e4736"), "{svc}: {b3}");
        assert_eq!(
            parts[1], t.parent_id,
            "{svc}: b3 span id is the W3C parent id: {b3}"
        );
        assert_eq!(parts[2], "1", "{svc}: {b3}");
    }
    // Multi headers, 128-bit, not sampled.
    let r = m.get(
        "/",
        &[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
            ("x-b3-sampled", "0"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    for svc in ["a", "b", "c"] {
        let got = m.workload(svc, "v1").app.last();
        let t = traceparent_of(&got);
        assert_eq!(t.trace_id, "80f198ee56343ba864fe8b2a57d3eff7", "{svc}");
        assert!(!t.sampled(), "{svc}");
        assert_eq!(
            got.header("x-b3-traceid").as_deref(),
            Some("80f198ee56343ba864fe8b2a57d3eff7"),
            "{svc}"
        );
        assert_eq!(
            got.header("x-b3-spanid"),
            Some(t.parent_id.clone()),
            "{svc}"
        );
        assert_eq!(got.header("x-b3-sampled").as_deref(), Some("0"), "{svc}");
    }
    // A sampling-only decision `b3: 0`: a new trace, not sampled anywhere.
    // Only the first (sampled) request is exported: wait for its six spans, then count.
    m.wait_trace("0000000000000000a3ce929d0e0e4736", 6, 30);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = m.otlp.spans().len();
    assert_eq!(
        before, 6,
        "the unsampled x-b3-sampled: 0 request was exported"
    );
    let r = m.get("/", &[("b3", "0")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    for svc in ["a", "b", "c"] {
        let t = traceparent_of(&m.workload(svc, "v1").app.last());
        assert!(!t.sampled(), "{svc}: b3 0 ignored");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(m.otlp.spans().len(), before, "b3: 0 was exported");
}

/// B3 debug (`b3: …-d`, `X-B3-Flags: 1`) survives the W3C hops between sidecars, which have no
/// debug flag in `traceparent`: each meshwake hop carries it in its `tracestate` entry
/// (`meshwake=d`), so the apps of all three hops a → b → c get B3 debug back, and every hop
/// records its span although the sampling ratio is 0 everywhere.
#[test]
fn b3_debug_is_carried_across_three_w3c_hops() {
    let never = json!({"sampling": {"ratio": 0.0}});
    let workloads = mesh::chain(&["a", "b", "c"])
        .into_iter()
        .map(|w| w.config(never.clone()))
        .collect();
    let edge = json!({"sampling": {"ratio": 0.0}, "edge": {"trust_incoming_context": true}});
    let m = Mesh::start(MeshSpec::new("prop-b3-debug", workloads).edge("a", edge));
    #[rustfmt::skip]
    let cases: [(&[(&str, &str)], &str, (&str, &str)); 2] = [
        (&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-d")], "0000000000000000a3ce929d0e0e4736", ("b3", "d")),
        (&[("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"), ("x-b3-spanid", "e457b5a2e4d86bd1"), ("x-b3-flags", "1")],
            "80f198ee56343ba864fe8b2a57d3eff7", ("x-b3-flags", "1")),
    ];
    for (headers, trace, (b3_header, b3_debug)) in cases {
        let r = m.get("/", headers);
        assert_eq!(r.status, 200, "{}", r.body_str());
        for svc in ["a", "b", "c"] {
            let got = m.workload(svc, "v1").app.last();
            let t = traceparent_of(&got);
            assert_eq!(t.trace_id, trace, "{svc}");
            assert!(t.sampled(), "{svc}");
            let ts = got.header("tracestate").unwrap_or_default();
            assert_eq!(ts.split(',').next(), Some("meshwake=d"), "{svc}: {ts}");
            // b3: trace-span-SAMPLING[-parent]; x-b3-flags: 1.
            let b3 = got.header(b3_header).unwrap_or_default();
            let sampling = b3.split('-').nth(2).unwrap_or(&b3);
            assert_eq!(
                sampling, b3_debug,
                "{svc}: {b3_header}: {b3:?} is not debug"
            );
        }
        // Edge, a and b in and out, c in: six spans, none sampled by the ratio.
        m.wait_trace(trace, 6, 30);
    }
    // Control: plain sampled B3 is not turned into debug.
    let r = m.get("/", &[("b3", "b3ce929d0e0e4736-00f067aa0ba902b7-1")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    for svc in ["a", "b", "c"] {
        let got = m.workload(svc, "v1").app.last();
        let ts = got.header("tracestate").unwrap_or_default();
        assert!(!ts.contains("meshwake=d"), "{svc}: {ts}");
        let b3 = got.header("b3").unwrap_or_default();
        assert_eq!(b3.split('-').nth(2), Some("1"), "{svc}: {b3}");
    }
}

/// An app that drops trace headers but forwards `x-request-id`: its outbound sidecar
/// continues the trace of the inbound request it is serving.
#[test]
fn context_recovery_continues_the_trace_when_the_app_drops_trace_headers() {
    let workloads = vec![
        WorkloadSpec::new("a", "v1")
            .calls("b")
            .forgets_trace_headers(),
        WorkloadSpec::new("b", "v1"),
    ];
    let m = Mesh::start(MeshSpec::new("prop-recovery", workloads).edge("a", json!({})));
    let r = m.get("/", &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let (a, b) = (m.workload("a", "v1"), m.workload("b", "v1"));
    let (ta, tb) = (traceparent_of(&a.app.last()), traceparent_of(&b.app.last()));
    assert_eq!(
        ta.trace_id, tb.trace_id,
        "recovered outbound call continues the inbound trace"
    );
    let spans = m.wait_trace(&ta.trace_id, 4, 30);
    let a_in = span_of(&spans, "a", "inbound")[0].clone();
    let a_out = span_of(&spans, "a", "outbound")[0].clone();
    assert_eq!(
        a_out.parent_id_hex(),
        a_in.span_id_hex(),
        "client span is a child of the server span"
    );
    assert_eq!(
        a.envoy.meshwake_stat("context_recovered"),
        1,
        "{:#?}",
        meshwake_stats(&a.envoy)
    );
}

// The W3C Trace Context test suite is tests/tests/w3c_suite.rs.

/// Recovery keys on the whole `x-request-id` as the app forwards it, also when it is long
/// or not text; with recovery off the call starts a new trace.
#[test]
fn context_recovery_with_unusual_request_ids_and_when_disabled() {
    let workloads = vec![
        WorkloadSpec::new("a", "v1")
            .calls("b")
            .forgets_trace_headers(),
        WorkloadSpec::new("b", "v1"),
        WorkloadSpec::new("x", "v1")
            .calls("b")
            .forgets_trace_headers()
            .config(json!({"context_recovery": {"enabled": false}})),
    ];
    let m = Mesh::start(MeshSpec::new("prop-recovery-ids", workloads));
    let (a, b, x) = (
        m.workload("a", "v1"),
        m.workload("b", "v1"),
        m.workload("x", "v1"),
    );
    let long = "r".repeat(300);
    let ids: [&[u8]; 3] = [b"plain-request-id", long.as_bytes(), b"caf\xe9-\xff-id"];
    for rid in ids {
        let r =
            meshwake_tests::request(a.inbound_port(), "GET", "/", &[("x-request-id", rid)], b"")
                .unwrap();
        assert_eq!(r.status, 200, "{}", r.body_str());
        let (ta, tb) = (traceparent_of(&a.app.last()), traceparent_of(&b.app.last()));
        assert_eq!(
            a.app.last().header_bytes("x-request-id"),
            Some(rid),
            "Envoy changed the request id"
        );
        assert_eq!(
            ta.trace_id,
            tb.trace_id,
            "not recovered for x-request-id {:?}",
            String::from_utf8_lossy(rid)
        );
    }
    assert_eq!(a.envoy.meshwake_stat("context_recovered"), 3);

    let r = meshwake_tests::http::get(x.inbound_port(), "/", &[("x-request-id", "rid-off")]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let (tx, tb) = (traceparent_of(&x.app.last()), traceparent_of(&b.app.last()));
    assert_ne!(tx.trace_id, tb.trace_id, "recovered although disabled");
    assert_eq!(x.envoy.meshwake_stat("context_recovered"), 0);
}
