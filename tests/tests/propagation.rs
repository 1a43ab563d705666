//! Trace-context propagation through real Envoys: a chain edge → a → b → c of sidecars
//! (one Envoy per workload, apps forwarding the trace headers they receive through their
//! outbound listener), format conversion, sampling, tracestate/baggage, the edge trust
//! policy and context recovery for apps that drop trace headers.
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
    let spans = m.wait_trace(&ta.trace_id, 6, 10);
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
