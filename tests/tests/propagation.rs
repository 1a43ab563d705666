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

// ------------------------------------------------------------------------------------
// W3C Trace Context test suite (w3c/trace-context `test/test.py`), ported to Rust.
//
// test.py plays the caller of a "vendor service" and the server of its callbacks. Here the
// service is one meshwake workload: inbound sidecar → an app copying `traceparent` and
// `tracestate` → outbound sidecar → the harness server. Both sidecars parse and rewrite the
// context, so every case goes through the filter twice. STRICT_LEVEL 2 cases are included.

type Tracestate = Vec<(String, String)>;

/// All `tracestate` values the harness got, combined (test.py's `Tracestate.from_string`).
fn tracestate_of(r: &meshwake_tests::Request) -> Tracestate {
    r.header_all("tracestate")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|m| {
            let (k, v) = m
                .split_once('=')
                .unwrap_or_else(|| panic!("bad tracestate member {m:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn ts_get<'a>(ts: &'a Tracestate, k: &str) -> Option<&'a str> {
    ts.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

const W3C_TID: &str = "12345678901234567890123456789012";

type Check = Box<dyn Fn(&mesh::Traceparent, &Tracestate) -> Result<(), String>>;

fn same_trace() -> Check {
    Box::new(|tp, _| {
        (tp.trace_id == W3C_TID)
            .then_some(())
            .ok_or(format!("trace id {} is not the caller's", tp.trace_id))
    })
}
fn new_trace() -> Check {
    Box::new(|tp, _| {
        (tp.trace_id != W3C_TID)
            .then_some(())
            .ok_or("caller's trace id kept".into())
    })
}
fn ts_has(pairs: &'static [(&'static str, &'static str)]) -> Check {
    Box::new(move |_, ts| {
        for (k, v) in pairs {
            if ts_get(ts, k) != Some(v) {
                return Err(format!("tracestate {ts:?} lacks {k}={v}"));
            }
        }
        Ok(())
    })
}
fn ts_lacks(keys: &'static [&'static str]) -> Check {
    Box::new(
        move |_, ts| match keys.iter().find(|k| ts_get(ts, k).is_some()) {
            Some(k) => Err(format!("tracestate {ts:?} kept {k}")),
            None => Ok(()),
        },
    )
}
fn all(checks: Vec<Check>) -> Check {
    Box::new(move |tp, ts| checks.iter().try_for_each(|c| c(tp, ts)))
}

fn tp(v: &str) -> (String, String) {
    ("traceparent".into(), v.into())
}
fn ts(v: &str) -> (String, String) {
    ("tracestate".into(), v.into())
}
const TP00: &str = "00-12345678901234567890123456789012-1234567890123456-00";
const TP01: &str = "00-12345678901234567890123456789012-1234567890123456-01";

/// (test.py case name, request headers, expectation on the callback's context)
fn w3c_cases() -> Vec<(&'static str, Vec<(String, String)>, Check)> {
    let key_plain: String = ('a'..='z').collect::<String>() + "0123456789_-*/";
    let key_vendor = format!("{key_plain}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x2b)
        .chain(0x2d..=0x3c)
        .chain(0x3e..=0x7e)
        .map(char::from)
        .collect();
    let tsv = |k: &str, v: &str| -> Check {
        let (k, v) = (k.to_string(), v.to_string());
        Box::new(move |_, ts| {
            (ts_get(ts, &k) == Some(&v))
                .then_some(())
                .ok_or(format!("tracestate lost {k}"))
        })
    };
    let parent_changed: Check = Box::new(|tp, _| {
        (tp.parent_id != "1234567890123456")
            .then_some(())
            .ok_or("parent id not replaced".into())
    });
    let many = |n: usize| -> Vec<(String, String)> {
        let members: Vec<String> = (1..=n).map(|i| format!("bar{i:02}={i:02}")).collect();
        let mut h = vec![tp(TP00)];
        h.extend(members.chunks(10).map(|c| ts(&c.join(","))));
        h
    };
    let count = |n: usize| -> Check {
        Box::new(move |_, ts| {
            (ts.len() == n)
                .then_some(())
                .ok_or(format!("{} tracestate members, want {n}", ts.len()))
        })
    };
    let mut c: Vec<(&'static str, Vec<(String, String)>, Check)> = vec![
        ("test_both_traceparent_and_tracestate_missing", vec![], Box::new(|_, _| Ok(()))),
        ("test_traceparent_included_tracestate_missing", vec![tp(TP01)], all(vec![same_trace(), parent_changed])),
        ("test_traceparent_duplicated", vec![tp("00-12345678901234567890123456789011-1234567890123456-01"), tp(TP01)],
            all(vec![new_trace(), Box::new(|tp, _| (tp.trace_id != "12345678901234567890123456789011").then_some(()).ok_or("kept first".into()))])),
        ("test_traceparent_header_name/trace-parent", vec![("trace-parent".into(), TP01.into())], new_trace()),
        ("test_traceparent_header_name/trace.parent", vec![("trace.parent".into(), TP01.into())], new_trace()),
        ("test_traceparent_header_name_valid_casing/TraceParent", vec![("TraceParent".into(), TP01.into())], same_trace()),
        ("test_traceparent_header_name_valid_casing/TrAcEpArEnT", vec![("TrAcEpArEnT".into(), TP01.into())], same_trace()),
        ("test_traceparent_header_name_valid_casing/TRACEPARENT", vec![("TRACEPARENT".into(), TP01.into())], same_trace()),
        ("test_traceparent_version_0x00/trailing-dot", vec![tp("00-12345678901234567890123456789012-1234567890123456-01.")], new_trace()),
        ("test_traceparent_version_0x00/future-fields", vec![tp("00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like")], new_trace()),
        ("test_traceparent_version_0xcc", vec![tp("cc-12345678901234567890123456789012-1234567890123456-01")], same_trace()),
        ("test_traceparent_version_0xcc/future-fields", vec![tp("cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like")], same_trace()),
        ("test_traceparent_version_0xcc/bad-separator", vec![tp("cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like")], new_trace()),
        ("test_traceparent_version_0xff", vec![tp("ff-12345678901234567890123456789012-1234567890123456-01")], new_trace()),
        ("test_traceparent_version_illegal_characters/.0", vec![tp(".0-12345678901234567890123456789012-1234567890123456-01")], new_trace()),
        ("test_traceparent_version_illegal_characters/0.", vec![tp("0.-12345678901234567890123456789012-1234567890123456-01")], new_trace()),
        ("test_traceparent_version_too_long/000", vec![tp("000-12345678901234567890123456789012-1234567890123456-01")], new_trace()),
        ("test_traceparent_version_too_long/0000", vec![tp("0000-12345678901234567890123456789012-1234567890123456-01")], new_trace()),
        ("test_traceparent_version_too_short", vec![tp("0-12345678901234567890123456789012-1234567890123456-01")], new_trace()),
        ("test_traceparent_trace_id_all_zero", vec![tp("00-00000000000000000000000000000000-1234567890123456-01")],
            Box::new(|tp, _| (tp.trace_id != "00000000000000000000000000000000").then_some(()).ok_or("zero trace id".into()))),
        ("test_traceparent_trace_id_illegal_characters/lead", vec![tp("00-.2345678901234567890123456789012-1234567890123456-01")], Box::new(|_, _| Ok(()))),
        ("test_traceparent_trace_id_illegal_characters/trail", vec![tp("00-1234567890123456789012345678901.-1234567890123456-01")], Box::new(|_, _| Ok(()))),
        ("test_traceparent_trace_id_too_long", vec![tp("00-123456789012345678901234567890123-1234567890123456-01")],
            Box::new(|tp, _| (![W3C_TID, "23456789012345678901234567890123"].contains(&tp.trace_id.as_str())).then_some(()).ok_or("kept a slice of a too-long id".into()))),
        ("test_traceparent_trace_id_too_short", vec![tp("00-1234567890123456789012345678901-1234567890123456-01")], Box::new(|_, _| Ok(()))),
        ("test_traceparent_parent_id_all_zero", vec![tp("00-12345678901234567890123456789012-0000000000000000-01")], new_trace()),
        ("test_traceparent_parent_id_illegal_characters/lead", vec![tp("00-12345678901234567890123456789012-.234567890123456-01")], new_trace()),
        ("test_traceparent_parent_id_illegal_characters/trail", vec![tp("00-12345678901234567890123456789012-123456789012345.-01")], new_trace()),
        ("test_traceparent_parent_id_too_long", vec![tp("00-12345678901234567890123456789012-12345678901234567-01")], new_trace()),
        ("test_traceparent_parent_id_too_short", vec![tp("00-12345678901234567890123456789012-123456789012345-01")], new_trace()),
        ("test_traceparent_trace_flags_illegal_characters/.0", vec![tp("00-12345678901234567890123456789012-1234567890123456-.0")], new_trace()),
        ("test_traceparent_trace_flags_illegal_characters/0.", vec![tp("00-12345678901234567890123456789012-1234567890123456-0.")], new_trace()),
        ("test_traceparent_trace_flags_too_long", vec![tp("00-12345678901234567890123456789012-1234567890123456-001")], new_trace()),
        ("test_traceparent_trace_flags_too_short", vec![tp("00-12345678901234567890123456789012-1234567890123456-1")], new_trace()),
        ("test_traceparent_ows_handling/space-lead", vec![tp(" 00-12345678901234567890123456789012-1234567890123456-01")], same_trace()),
        ("test_traceparent_ows_handling/tab-lead", vec![tp("\t00-12345678901234567890123456789012-1234567890123456-01")], same_trace()),
        ("test_traceparent_ows_handling/space-trail", vec![tp("00-12345678901234567890123456789012-1234567890123456-01 ")], same_trace()),
        ("test_traceparent_ows_handling/tab-trail", vec![tp("00-12345678901234567890123456789012-1234567890123456-01\t")], same_trace()),
        ("test_traceparent_ows_handling/both", vec![tp("\t 00-12345678901234567890123456789012-1234567890123456-01 \t")], same_trace()),
        // test.py compares the two lengths; discarding (0 both times) is what we do.
        ("test_tracestate_included_traceparent_missing/foo", vec![ts("foo=1")], count(0)),
        ("test_tracestate_included_traceparent_missing/foo,bar", vec![ts("foo=1,bar=2")], count(0)),
        ("test_tracestate_included_traceparent_included", vec![tp(TP00), ts("foo=1,bar=2")], all(vec![same_trace(), ts_has(&[("foo", "1"), ("bar", "2")])])),
        ("test_tracestate_header_name/trace-state", vec![tp(TP00), ("trace-state".into(), "foo=1".into())], ts_lacks(&["foo"])),
        ("test_tracestate_header_name/trace.state", vec![tp(TP00), ("trace.state".into(), "foo=1".into())], ts_lacks(&["foo"])),
        ("test_tracestate_header_name_valid_casing/TraceState", vec![tp(TP00), ("TraceState".into(), "foo=1".into())], ts_has(&[("foo", "1")])),
        ("test_tracestate_header_name_valid_casing/TrAcEsTaTe", vec![tp(TP00), ("TrAcEsTaTe".into(), "foo=1".into())], ts_has(&[("foo", "1")])),
        ("test_tracestate_header_name_valid_casing/TRACESTATE", vec![tp(TP00), ("TRACESTATE".into(), "foo=1".into())], ts_has(&[("foo", "1")])),
        ("test_tracestate_empty_header/only", vec![tp(TP00), ts("")], all(vec![same_trace(), count(0)])),
        ("test_tracestate_empty_header/after", vec![tp(TP00), ts("foo=1"), ts("")], all(vec![same_trace(), ts_has(&[("foo", "1")])])),
        ("test_tracestate_empty_header/before", vec![tp(TP00), ts(""), ts("foo=1")], all(vec![same_trace(), ts_has(&[("foo", "1")])])),
        ("test_tracestate_multiple_headers_different_keys", vec![tp(TP00), ts("foo=1,bar=2"), ts("rojo=1,congo=2"), ts("baz=3")],
            all(vec![same_trace(), Box::new(|_, ts| {
                let keys: Vec<&str> = ts.iter().map(|(k, _)| k.as_str()).collect();
                (keys == ["foo", "bar", "rojo", "congo", "baz"]).then_some(()).ok_or(format!("order {keys:?}"))
            })])),
        ("test_tracestate_duplicated_keys/foo=1,foo=1", vec![tp(TP00), ts("foo=1,foo=1")], all(vec![same_trace(), ts_lacks(&["foo"])])),
        ("test_tracestate_duplicated_keys/foo=1,foo=2", vec![tp(TP00), ts("foo=1,foo=2")], all(vec![same_trace(), ts_lacks(&["foo"])])),
        ("test_tracestate_duplicated_keys/two-headers-same", vec![tp(TP00), ts("foo=1"), ts("foo=1")], all(vec![same_trace(), ts_lacks(&["foo"])])),
        ("test_tracestate_duplicated_keys/two-headers-diff", vec![tp(TP00), ts("foo=1"), ts("foo=2")], all(vec![same_trace(), ts_lacks(&["foo"])])),
        ("test_tracestate_all_allowed_characters/plain", vec![tp(TP00), ts(&format!("{key_plain}={value}"))], tsv(&key_plain, &value)),
        ("test_tracestate_all_allowed_characters/vendor", vec![tp(TP00), ts(&format!("{key_vendor}={value}"))], tsv(&key_vendor, &value)),
        ("test_tracestate_ows_handling/spaces-tabs", vec![tp(TP00), ts("foo=1 \t , \t bar=2, \t baz=3")], ts_has(&[("foo", "1"), ("bar", "2"), ("baz", "3")])),
        ("test_tracestate_ows_handling/tabs-spaces", vec![tp(TP00), ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3")], ts_has(&[("foo", "1"), ("bar", "2"), ("baz", "3")])),
        ("test_tracestate_ows_handling/space-lead", vec![tp(TP00), ts(" foo=1")], all(vec![same_trace(), ts_has(&[("foo", "1")])])),
        ("test_tracestate_ows_handling/tab-lead", vec![tp(TP00), ts("\tfoo=1")], all(vec![same_trace(), ts_has(&[("foo", "1")])])),
        ("test_tracestate_ows_handling/space-trail", vec![tp(TP00), ts("foo=1 ")], all(vec![same_trace(), ts_has(&[("foo", "1")])])),
        ("test_tracestate_ows_handling/tab-trail", vec![tp(TP00), ts("foo=1\t")], all(vec![same_trace(), ts_has(&[("foo", "1")])])),
        ("test_tracestate_ows_handling/both", vec![tp(TP00), ts("\t foo=1 \t")], all(vec![same_trace(), ts_has(&[("foo", "1")])])),
        ("test_tracestate_key_illegal_characters/space", vec![tp(TP00), ts("foo =1")], ts_lacks(&["foo "])),
        ("test_tracestate_key_illegal_characters/upper", vec![tp(TP00), ts("FOO=1")], ts_lacks(&["FOO"])),
        ("test_tracestate_key_illegal_characters/dot", vec![tp(TP00), ts("foo.bar=1")], ts_lacks(&["foo.bar"])),
        ("test_tracestate_key_illegal_vendor_format/foo@", vec![tp(TP00), ts("foo@=1,bar=2")], ts_lacks(&["bar"])),
        ("test_tracestate_key_illegal_vendor_format/@foo", vec![tp(TP00), ts("@foo=1,bar=2")], ts_lacks(&["bar"])),
        ("test_tracestate_key_illegal_vendor_format/foo@@bar", vec![tp(TP00), ts("foo@@bar=1,bar=2")], ts_lacks(&["bar"])),
        ("test_tracestate_key_illegal_vendor_format/foo@bar@baz", vec![tp(TP00), ts("foo@bar@baz=1,bar=2")], ts_lacks(&["bar"])),
        ("test_tracestate_member_count_limit/32", many(32), all(vec![ts_has(&[("bar01", "01")]), count(32)])),
        ("test_tracestate_member_count_limit/33", many(33), ts_lacks(&["bar01"])),
        ("test_tracestate_value_illegal_characters/foo=bar=baz", vec![tp(TP00), ts("foo=bar=baz")], ts_lacks(&["foo"])),
        ("test_tracestate_value_illegal_characters/empty-value", vec![tp(TP00), ts("foo=,bar=3")], ts_lacks(&["foo", "bar"])),
    ];
    let z256 = format!("{}=1", "z".repeat(256));
    let z257 = format!("{}=1", "z".repeat(257));
    let tenant_ok = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    let tenant_long = format!("{}@v=1", "t".repeat(242));
    let vendor_long = format!("t@{}=1", "v".repeat(15));
    c.push((
        "test_tracestate_key_length_limit/256",
        vec![tp(TP00), ts("foo=1"), ts(&z256)],
        ts_has(&[("foo", "1")]),
    ));
    c.push((
        "test_tracestate_key_length_limit/257",
        vec![tp(TP00), ts("foo=1"), ts(&z257)],
        ts_lacks(&["foo"]),
    ));
    c.push((
        "test_tracestate_key_length_limit/tenant-241-vendor-14",
        vec![tp(TP00), ts("foo=1"), ts(&tenant_ok)],
        ts_has(&[("foo", "1")]),
    ));
    c.push((
        "test_tracestate_key_length_limit/tenant-242",
        vec![tp(TP00), ts("foo=1"), ts(&tenant_long)],
        ts_lacks(&["foo"]),
    ));
    c.push((
        "test_tracestate_key_length_limit/vendor-15",
        vec![tp(TP00), ts("foo=1"), ts(&vendor_long)],
        ts_lacks(&["foo"]),
    ));
    c
}

fn w3c_service(name: &str) -> (Mesh, meshwake_tests::Server) {
    let harness = meshwake_tests::Server::start(|_| meshwake_tests::Response::new(200));
    let svc = WorkloadSpec::new("vendor", "v1").calls_external("harness-v1", harness.port());
    (Mesh::start(MeshSpec::new(name, vec![svc])), harness)
}

#[test]
fn w3c_trace_context_test_suite() {
    let (m, harness) = w3c_service("prop-w3c");
    let port = m.workload("vendor", "v1").inbound_port();
    let mut failed = Vec::new();
    let cases = w3c_cases();
    for (name, headers, check) in &cases {
        let h: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let before = harness.requests().len();
        let r = meshwake_tests::request(port, "POST", "/test", &h, b"").unwrap();
        let callbacks = harness.requests();
        let outcome = if r.status != 200 || callbacks.len() != before + 1 {
            Err(format!(
                "status {} and {} callbacks",
                r.status,
                callbacks.len() - before
            ))
        } else {
            let cb = callbacks.last().unwrap();
            match cb.header_all("traceparent").as_slice() {
                [one] => check(&mesh::traceparent(one), &tracestate_of(cb)),
                other => Err(format!("expected one traceparent, got {other:?}")),
            }
        };
        println!(
            "{name}: {}",
            outcome
                .as_ref()
                .map_or_else(|e| format!("FAIL {e}"), |_| "pass".into())
        );
        if let Err(e) = outcome {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} W3C cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// test.py `AdvancedTest`: one request, three callbacks.
#[test]
fn w3c_advanced_multiple_callbacks() {
    let (m, harness) = w3c_service("prop-w3c-adv");
    let port = m.workload("vendor", "v1").inbound_port();
    #[rustfmt::skip]
    let cases: &[(&str, &[(&str, &str)], Option<bool>)] = &[
        // name, headers, Some(true) = caller's trace id kept, Some(false) = zero id replaced
        ("test_multiple_requests_with_valid_traceparent", &[("traceparent", TP01)], Some(true)),
        ("test_multiple_requests_without_traceparent", &[], None),
        ("test_multiple_requests_with_illegal_traceparent", &[("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")], Some(false)),
    ];
    for (name, headers, keeps) in cases {
        let before = harness.requests().len();
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        h.push((mesh::FANOUT_HEADER, "3"));
        let r = meshwake_tests::http::get(port, "/test", &h);
        assert_eq!(r.status, 200, "{name}");
        let cbs = harness.requests().split_off(before);
        assert_eq!(cbs.len(), 3, "{name}");
        let tps: Vec<_> = cbs.iter().map(traceparent_of).collect();
        let traces: std::collections::BTreeSet<_> =
            tps.iter().map(|t| t.trace_id.clone()).collect();
        let parents: std::collections::BTreeSet<_> =
            tps.iter().map(|t| t.parent_id.clone()).collect();
        assert_eq!(traces.len(), 1, "{name}: {tps:?}");
        assert_eq!(parents.len(), 3, "{name}: {tps:?}");
        match keeps {
            Some(true) => assert!(traces.contains(W3C_TID), "{name}"),
            Some(false) => assert!(
                !traces.contains("00000000000000000000000000000000"),
                "{name}"
            ),
            None => {}
        }
    }
}

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
