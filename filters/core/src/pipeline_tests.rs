//! Engine behaviour per role, without Envoy: headers in, edits out, as the glue applies
//! them. A "workload" is an inbound and an outbound engine sharing one recovery table.
#![allow(clippy::type_complexity)] // test tables are tuples on purpose
use crate::config::{Config, Role};
use crate::notes::Note;
use crate::pipeline::{Completion, Engine, HeaderEdits, RequestState};
use meshwake_identity::{IdentityConfig, NodeMetadata};
use meshwake_trace_context::{HeaderValue, IdGenerator};
use std::collections::HashMap;

struct NoNode;
impl NodeMetadata for NoNode {
    fn get(&self, _: &[&str]) -> Option<String> {
        None
    }
}

fn engine(service: &str, version: &str, extra: &str) -> Engine {
    let (cfg, issues) = Config::parse(extra.as_bytes());
    assert!(issues.is_empty(), "{extra}: {issues:?}");
    let id = IdentityConfig {
        service: Some(service.into()),
        version: Some(version.into()),
        namespace: Some("test".into()),
        workload: Some(format!("{service}-{version}")),
        ..Default::default()
    };
    let (local, _) = meshwake_identity::resolve(&id, &NoNode);
    Engine::new(cfg, local, "test").0
}

type Headers = Vec<(String, Vec<u8>)>;

fn headers(h: &[(&str, &str)]) -> Headers {
    h.iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn apply(h: &mut Headers, e: &HeaderEdits<'_>) {
    for n in &e.remove {
        h.retain(|(k, _)| k != n);
    }
    for (n, v) in &e.set {
        h.retain(|(k, _)| k != n);
        h.push((n.to_string(), v.as_bytes().to_vec()));
    }
}

fn get(h: &Headers, name: &str) -> Option<String> {
    h.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// One workload's VM: recovery slots shared by its inbound and outbound engines.
#[derive(Default)]
struct Vm {
    slots: HashMap<String, Vec<u8>>,
    ids: Option<IdGenerator>,
}

impl Vm {
    fn ids(&mut self) -> &mut IdGenerator {
        self.ids.get_or_insert_with(|| IdGenerator::new([7; 32]))
    }
}

/// Request headers through `e` in `role`; returns the state and the headers after edits.
fn request(e: &Engine, role: Role, vm: &mut Vm, h: &[(&str, &str)]) -> (RequestState, Headers) {
    request_raw(e, role, vm, headers(h))
}

fn request_raw(e: &Engine, role: Role, vm: &mut Vm, mut h: Headers) -> (RequestState, Headers) {
    let slots = vm.slots.clone();
    let slot_count = e.config().context_recovery.slots;
    let mut recall = |kind: &str, key: &[u8]| {
        let k = crate::recovery::slot_key(kind, key, slot_count);
        e.recall_entry(slots.get(&k)?, key, 1_000)
    };
    let (state, edits) = e.on_request(role, &h, 1_000, vm.ids(), &mut recall);
    apply(&mut h, &edits);
    for (k, v) in e.remember(&state) {
        vm.slots.insert(k, v);
    }
    (state, h)
}

fn response(e: &Engine, s: &mut RequestState, h: &[(&str, &str)]) -> Headers {
    let mut h = headers(h);
    let edits = e.on_response(s, &h, 2_000);
    apply(&mut h, &edits);
    h
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn tp_parts(v: &str) -> Vec<String> {
    v.split('-').map(str::to_string).collect()
}

#[test]
fn every_role_continues_a_valid_context_and_names_its_own_span_as_parent() {
    for role in [Role::Inbound, Role::Outbound] {
        let e = engine("a", "v1", "{}");
        let (s, h) = request(&e, role, &mut Vm::default(), &[("traceparent", TP)]);
        let out = tp_parts(&get(&h, "traceparent").unwrap());
        assert_eq!(out[1], TID, "{role:?}");
        assert_eq!(out[2], s.ctx.span_id.to_hex(), "{role:?}");
        assert_eq!(out[3], "01", "{role:?}");
        assert_eq!(s.parent_span_id.unwrap().to_hex(), "00f067aa0ba902b7");
        assert!(s.notes.has(Note::ContextContinued));
    }
}

#[test]
fn sampled_flag_is_the_callers() {
    #[rustfmt::skip]
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")], false),
        (&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")], true),
        (&[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0")], false),
        (&[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d")], true),
        (&[("b3", "0")], false),
        (&[("x-b3-sampled", "0")], false),
        (&[("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"), ("x-b3-spanid", "00f067aa0ba902b7"), ("x-b3-sampled", "1")], true),
    ];
    let e = engine("a", "v1", "{}");
    for (h, sampled) in cases {
        let (s, out) = request(&e, Role::Inbound, &mut Vm::default(), h);
        assert_eq!(s.sampled, *sampled, "{h:?}");
        let flags = tp_parts(&get(&out, "traceparent").unwrap())[3].clone();
        assert_eq!(flags.ends_with('1'), *sampled, "{h:?} -> {flags}");
    }
}

#[test]
fn b3_is_written_back_when_it_arrived_even_next_to_w3c() {
    #[rustfmt::skip]
    let cases: &[(&[(&str, &str)], bool, bool)] = &[
        // headers in, b3 single out, b3 multi out
        (&[("traceparent", TP)], false, false),
        (&[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")], true, false),
        // What the next sidecar receives from a hop that wrote both: W3C wins, B3 stays.
        (&[("traceparent", TP), ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")], true, false),
        (&[("traceparent", TP), ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"), ("x-b3-spanid", "00f067aa0ba902b7"), ("x-b3-sampled", "1")], false, true),
        (&[("b3", "0")], true, false),
    ];
    let e = engine("a", "v1", "{}");
    for (h, single, multi) in cases {
        let (s, out) = request(&e, Role::Inbound, &mut Vm::default(), h);
        assert_eq!(get(&out, "b3").is_some(), *single, "{h:?}: {out:?}");
        assert_eq!(
            get(&out, "x-b3-traceid").is_some(),
            *multi,
            "{h:?}: {out:?}"
        );
        if let Some(b3) = get(&out, "b3") {
            assert!(b3.contains(&s.ctx.span_id.to_hex()), "{b3}");
        }
        if let Some(id) = get(&out, "x-b3-spanid") {
            assert_eq!(id, s.ctx.span_id.to_hex());
        }
    }
    let off = engine("a", "v1", r#"{"propagation":{"inject_received_b3":false}}"#);
    let (_, out) = request(&off, Role::Inbound, &mut Vm::default(), cases[2].0);
    assert_eq!(get(&out, "b3"), None);
}

#[test]
fn edge_restarts_outside_context_unless_trusted() {
    let h: &[(&str, &str)] = &[
        ("traceparent", TP),
        ("tracestate", "meshwake=forged,congo=t61rcWkgMzE"),
        ("baggage", "meshwake.tenant=forged,user=alice"),
        ("x-meshwake-peer", "1;s=admin;v=v9;n=test;w=admin"),
        ("x-meshwake-lineage", "admin@v9"),
    ];
    let untrusted = engine("edge", "v1", "{}");
    let (s, out) = request(&untrusted, Role::Edge, &mut Vm::default(), h);
    assert_ne!(s.ctx.trace_id.to_hex(), TID);
    assert_eq!(s.parent_span_id, None);
    assert_eq!(s.link.as_ref().unwrap().trace_id.to_hex(), TID);
    assert!(!get(&out, "tracestate")
        .unwrap_or_default()
        .contains("meshwake="));
    assert_eq!(get(&out, "baggage").as_deref(), Some("user=alice"));
    for n in [
        Note::EdgeRestarted,
        Note::EdgeStrippedBaggage,
        Note::EdgeStrippedIdentity,
    ] {
        assert!(s.notes.has(n), "{n:?}");
    }
    // Identity from outside is replaced by the edge's own.
    let peer =
        meshwake_identity::header::decode(get(&out, "x-meshwake-peer").unwrap().as_bytes(), None)
            .unwrap();
    assert_eq!(
        (peer.service.as_str(), peer.version.as_str()),
        ("edge", "v1")
    );
    assert_eq!(get(&out, "x-meshwake-lineage").as_deref(), Some("edge@v1"));

    let trusted = engine("edge", "v1", r#"{"edge":{"trust_incoming_context":true}}"#);
    let (s, out) = request(&trusted, Role::Edge, &mut Vm::default(), h);
    assert_eq!(s.ctx.trace_id.to_hex(), TID);
    assert_eq!(s.parent_span_id.unwrap().to_hex(), "00f067aa0ba902b7");
    assert_eq!(
        get(&out, "tracestate").as_deref(),
        Some("meshwake=forged,congo=t61rcWkgMzE")
    );
    assert_eq!(
        get(&out, "baggage").as_deref(),
        Some("meshwake.tenant=forged,user=alice")
    );
    assert_eq!(get(&out, "x-meshwake-lineage").as_deref(), Some("edge@v1"));
}

/// edge → a (inbound, app, outbound) → b inbound: identity, lineage and recovery.
#[test]
fn workload_hands_identity_lineage_and_context_from_inbound_to_outbound() {
    let edge = engine("edge", "v1", "{}");
    let (a_in, a_out) = (
        engine("a", "v2", r#"{"role":"inbound"}"#),
        engine("a", "v2", "{}"),
    );
    let b_in = engine("b", "v1", "{}");
    let mut a_vm = Vm::default();

    let (_, to_a) = request(
        &edge,
        Role::Edge,
        &mut Vm::default(),
        &[("x-request-id", "rid-1")],
    );
    let (mut a_state, to_app) = request_raw(&a_in, Role::Inbound, &mut a_vm, to_a);
    assert_eq!(a_state.source.as_ref().unwrap().service, "edge");
    assert_eq!(a_state.lineage.entries(), ["edge@v1"]);
    assert_eq!(
        get(&to_app, "x-meshwake-peer"),
        None,
        "identity never reaches the app"
    );
    assert_eq!(get(&to_app, "x-meshwake-lineage"), None);

    // The app forgets trace headers but keeps x-request-id.
    let (out_state, to_b) = request(
        &a_out,
        Role::Outbound,
        &mut a_vm,
        &[("x-request-id", "rid-1")],
    );
    assert!(out_state.notes.has(Note::ContextRecovered));
    assert_eq!(out_state.ctx.trace_id, a_state.ctx.trace_id);
    assert_eq!(out_state.parent_span_id, Some(a_state.ctx.span_id));
    assert_eq!(
        get(&to_b, "x-meshwake-lineage").as_deref(),
        Some("edge@v1,a@v2")
    );

    let (mut b_state, _) = request_raw(&b_in, Role::Inbound, &mut Vm::default(), to_b);
    let src = b_state.source.clone().unwrap();
    assert_eq!((src.service.as_str(), src.version.as_str()), ("a", "v2"));
    assert_eq!(b_state.lineage.entries(), ["edge@v1", "a@v2"]);
    assert_eq!(b_state.parent_span_id, Some(out_state.ctx.span_id));

    // Responses: b names itself; a's outbound reads it and strips it before the app.
    let from_b = response(&b_in, &mut b_state, &[(":status", "200")]);
    let mut out_state = out_state;
    let to_app = response(
        &a_out,
        &mut out_state,
        &from_b
            .iter()
            .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(get(&to_app, "x-meshwake-peer"), None);
    let (dst, source) = out_state.destination.clone().unwrap();
    assert_eq!(
        (dst.service.as_str(), dst.version.as_str(), source.as_str()),
        ("b", "v1", "header")
    );
    let _ = response(&a_in, &mut a_state, &[]);
    let c = Completion {
        status: 200,
        response_flags: "-".into(),
        ..Default::default()
    };
    let (span, labels) = a_out.finish(out_state, &c);
    assert_eq!(labels.destination_version, "v1");
    assert_eq!(labels.source_version, "v2");
    assert!(span.is_some());
}

#[test]
fn outbound_without_context_or_request_id_starts_a_trace() {
    let e = engine("a", "v1", "{}");
    let (s, out) = request(&e, Role::Outbound, &mut Vm::default(), &[]);
    assert!(s.notes.has(Note::ContextStarted));
    assert_eq!(s.parent_span_id, None);
    assert!(get(&out, "traceparent").is_some());
    let (s, _) = request(
        &e,
        Role::Outbound,
        &mut Vm::default(),
        &[("x-request-id", "unknown")],
    );
    assert!(s.notes.has(Note::RecoveryMiss));
}

#[test]
fn hmac_mismatch_is_rejected_and_noted_both_ways() {
    let a = engine("a", "v1", r#"{"identity":{"hmac_key":"one"}}"#);
    let b = engine("b", "v1", r#"{"identity":{"hmac_key":"two"}}"#);
    let (mut out_state, to_b) = request(&a, Role::Outbound, &mut Vm::default(), &[]);
    let (mut b_state, _) = request_raw(&b, Role::Inbound, &mut Vm::default(), to_b);
    assert!(b_state.notes.has(Note::PeerSignatureRejected));
    assert!(b_state.notes.has(Note::LineageRejected));
    assert_eq!(b_state.source, None);
    assert!(b_state.lineage.is_empty());
    let from_b = response(&b, &mut b_state, &[]);
    let h: Vec<(&str, &str)> = from_b
        .iter()
        .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap()))
        .collect();
    let _ = response(&a, &mut out_state, &h);
    assert!(out_state.notes.has(Note::PeerSignatureRejected));
    assert_eq!(out_state.destination, None);

    // Same key: accepted.
    let b_same = engine("b", "v1", r#"{"identity":{"hmac_key":"one"}}"#);
    let (_, to_b) = request(&a, Role::Outbound, &mut Vm::default(), &[]);
    let (s, _) = request_raw(&b_same, Role::Inbound, &mut Vm::default(), to_b);
    assert_eq!(s.source.unwrap().service, "a");
}

#[test]
fn lineage_is_bounded_by_lineage_max() {
    let cfg = r#"{"identity":{"lineage_max":3}}"#;
    let services = ["s1", "s2", "s3", "s4", "s5", "s6"];
    let mut to_next: Headers = Vec::new();
    let mut last = None;
    for svc in services {
        let (i, o) = (engine(svc, "v1", cfg), engine(svc, "v1", cfg));
        let mut vm = Vm::default();
        let (s, to_app) = request_raw(&i, Role::Inbound, &mut vm, to_next);
        let fwd: Vec<(&str, &str)> = to_app
            .iter()
            .filter(|(k, _)| k == "traceparent")
            .map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap()))
            .collect();
        let (_, out) = request(&o, Role::Outbound, &mut vm, &fwd);
        to_next = out;
        last = Some(s);
    }
    let last = last.unwrap();
    assert_eq!(last.lineage.entries(), ["s3@v1", "s4@v1", "s5@v1"]);
    assert!(last.lineage.is_truncated());
    assert!(last.notes.has(Note::LineageTruncated));
}

#[test]
fn recovery_finds_long_and_non_utf8_request_ids() {
    let long = "r".repeat(300);
    let ids: [&[u8]; 3] = [b"plain", long.as_bytes(), b"caf\xe9-\xff"];
    let (i, o) = (engine("a", "v1", "{}"), engine("a", "v1", "{}"));
    for rid in ids {
        let mut vm = Vm::default();
        let h = vec![("x-request-id".to_string(), rid.to_vec())];
        let (s_in, _) = request_raw(&i, Role::Inbound, &mut vm, h.clone());
        let (s_out, _) = request_raw(&o, Role::Outbound, &mut vm, h);
        assert!(
            s_out.notes.has(Note::ContextRecovered),
            "{:?}",
            String::from_utf8_lossy(rid)
        );
        assert_eq!(s_out.parent_span_id, Some(s_in.ctx.span_id));
    }
}

#[test]
fn lineage_does_not_depend_on_context_recovery() {
    let off = r#"{"context_recovery":{"enabled":false}}"#;
    let (i, o) = (engine("b", "v1", off), engine("b", "v1", off));
    let mut vm = Vm::default();
    let (_, to_app) = request(
        &i,
        Role::Inbound,
        &mut vm,
        &[
            ("traceparent", TP),
            ("x-meshwake-lineage", "edge@v1,a@v1"),
            ("x-request-id", "r1"),
        ],
    );
    let tp = get(&to_app, "traceparent").unwrap();
    let (s, out) = request(
        &o,
        Role::Outbound,
        &mut vm,
        &[("traceparent", &tp), ("x-request-id", "r1")],
    );
    assert_eq!(
        get(&out, "x-meshwake-lineage").as_deref(),
        Some("edge@v1,a@v1,b@v1")
    );
    assert_eq!(s.lineage.entries(), ["edge@v1", "a@v1", "b@v1"]);
    // Without trace headers nothing is recovered when disabled.
    let (s, _) = request(&o, Role::Outbound, &mut vm, &[("x-request-id", "r1")]);
    assert!(!s.notes.has(Note::ContextRecovered) && !s.notes.has(Note::RecoveryMiss));
    assert!(s.notes.has(Note::ContextStarted));
}

/// Every edit is a host call: nothing is removed that the request does not have, and an
/// ordinary inbound request costs exactly one header write each way.
#[test]
fn edits_touch_only_headers_that_are_there() {
    let e = engine("a", "v1", "{}");
    let h = headers(&[("traceparent", TP), (":path", "/x")]);
    let (mut s, edits) = e.on_request(
        Role::Inbound,
        &h,
        1_000,
        &mut IdGenerator::new([7; 32]),
        &mut |_, _| None,
    );
    assert!(edits.remove.is_empty(), "{edits:?}");
    assert_eq!(
        edits.set.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["traceparent"]
    );
    let r = e.on_response(&mut s, &Vec::<(String, Vec<u8>)>::new(), 0);
    assert_eq!(
        r.set.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["x-meshwake-peer"]
    );
    assert!(r.remove.is_empty());
    assert!(
        s.first_byte_ns.is_none(),
        "no time given, no first-byte event"
    );
    // Identity headers a caller sent are stripped when present.
    let h = headers(&[("traceparent", TP), ("x-meshwake-lineage", "junk")]);
    let (_, edits) = e.on_request(
        Role::Outbound,
        &h,
        1_000,
        &mut IdGenerator::new([7; 32]),
        &mut |_, _| None,
    );
    assert!(
        edits.set.iter().any(|(n, _)| *n == "x-meshwake-lineage"),
        "rewritten: {edits:?}"
    );
    let h = headers(&[("traceparent", TP), ("x-meshwake-lineage", "junk")]);
    let (_, edits) = e.on_request(
        Role::Inbound,
        &h,
        1_000,
        &mut IdGenerator::new([7; 32]),
        &mut |_, _| None,
    );
    assert_eq!(edits.remove, ["x-meshwake-lineage"]);
}

#[test]
fn identity_exchange_off_leaves_trace_context_only() {
    let e = engine("a", "v1", r#"{"identity":{"exchange":false}}"#);
    let mut vm = Vm::default();
    let (mut s, h) = request(&e, Role::Outbound, &mut vm, &[("traceparent", TP)]);
    assert!(get(&h, "x-meshwake-peer").is_none() && get(&h, "x-meshwake-lineage").is_none());
    assert!(get(&h, "traceparent").is_some());
    // The answer's identity is neither read nor let through to the app.
    let h = response(&e, &mut s, &[("x-meshwake-peer", "junk")]);
    assert!(get(&h, "x-meshwake-peer").is_none());
    assert!(s.destination.is_none() && !s.notes.has(Note::PeerMissing));
    let (mut s, _) = request(&e, Role::Inbound, &mut vm, &[("traceparent", TP)]);
    assert!(e.remember(&s).is_empty(), "no lineage to hand over");
    assert!(response(&e, &mut s, &[]).is_empty());
}

/// With spans off a hop records nothing, so it names no span of its own: what reaches the
/// app or the callee is the caller's context exactly as it came, B3 parent included.
#[test]
fn a_hop_without_spans_passes_the_context_on_unchanged() {
    let e = engine(
        "a",
        "v1",
        r#"{"spans":{"enabled":false},"identity":{"exchange":false}}"#,
    );
    let caller = "00f067aa0ba902b7";
    #[rustfmt::skip]
    let cases: &[&[(&str, &str)]] = &[
        &[("traceparent", TP)],
        &[("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")],
        &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-05e3ac9a4f6e3b90")],
        &[("x-b3-traceid", TID), ("x-b3-spanid", caller), ("x-b3-parentspanid", "05e3ac9a4f6e3b90"), ("x-b3-sampled", "1")],
    ];
    for role in [Role::Inbound, Role::Outbound] {
        for h in cases {
            let (s, out) = request(&e, role, &mut Vm::default(), h);
            assert_eq!(s.ctx.span_id.to_hex(), caller, "{role:?} {h:?}");
            for (name, value) in h.iter() {
                assert_eq!(get(&out, name).as_deref(), Some(*value), "{role:?} {h:?}");
            }
            assert_eq!(tp_parts(&get(&out, "traceparent").unwrap())[2], caller);
        }
    }
    // Nothing to write for a W3C context: not even the same traceparent again. A
    // traceparent of another version is rewritten as version 00.
    let (h, none) = (headers(&[("traceparent", TP)]), &mut |_: &str, _: &[u8]| {
        None
    });
    let (_, edits) = e.on_request(Role::Inbound, &h, 1, Vm::default().ids(), none);
    assert!(edits.set.is_empty() && edits.remove.is_empty(), "{edits:?}");
    let v1 = TP.replacen("00", "01", 1);
    let (_, edits) = e.on_request(
        Role::Inbound,
        &headers(&[("traceparent", &v1)]),
        1,
        Vm::default().ids(),
        none,
    );
    assert_eq!(
        edits.set.as_slice(),
        [("traceparent", HeaderValue::from(TP))]
    );
    // Only a value byte for byte as it would be written is kept: one with whitespace
    // around it, or with a flag this version does not know (zeroed on the way out), is
    // written again in its canonical form.
    let unknown_flag = TP.replacen("-01", "-09", 1);
    for (incoming, written) in [
        (format!(" {TP}\t"), TP.to_string()),
        (unknown_flag, TP.to_string()),
    ] {
        let h = headers(&[("traceparent", &incoming)]);
        let (_, edits) = e.on_request(Role::Inbound, &h, 1, Vm::default().ids(), none);
        assert_eq!(
            edits.set.as_slice(),
            [("traceparent", HeaderValue::from(written))],
            "{incoming:?}"
        );
    }
    // No context: one is started, so the app and the callees share a trace id.
    let (s, out) = request(&e, Role::Inbound, &mut Vm::default(), &[]);
    assert_eq!(
        tp_parts(&get(&out, "traceparent").unwrap())[2],
        s.ctx.span_id.to_hex()
    );
    // An app that dropped the context: the callee's parent is still the caller's span.
    let mut vm = Vm::default();
    let id = ("x-request-id", "r-1");
    request(&e, Role::Inbound, &mut vm, &[("traceparent", TP), id]);
    let (s, out) = request(&e, Role::Outbound, &mut vm, &[id]);
    assert!(s.notes.has(Note::ContextRecovered));
    assert_eq!(get(&out, "traceparent").as_deref(), Some(TP));
    // With spans on, the hop's own span is the parent it sends.
    let spans = engine("a", "v1", "{}");
    let (s, out) = request(
        &spans,
        Role::Inbound,
        &mut Vm::default(),
        &[("traceparent", TP)],
    );
    assert_ne!(s.ctx.span_id.to_hex(), caller);
    assert_ne!(get(&out, "traceparent").as_deref(), Some(TP));
}

#[test]
fn stream_end_reads_follow_configuration_and_role() {
    let reads = |cfg: &str, role: Role| {
        let e = engine("a", "v1", cfg);
        let (s, _) = request(&e, role, &mut Vm::default(), &[("traceparent", TP)]);
        e.stream_end_reads(&s)
    };
    let r = reads("{}", Role::Inbound);
    assert!(!r.sizes && !r.protocol && !r.upstream && !r.upstream_workload && !r.grpc_status);
    let r = reads("{}", Role::Outbound);
    assert!(r.upstream && r.upstream_workload && !r.sizes);
    let r = reads(r#"{"spans":{"stream_details":true}}"#, Role::Inbound);
    assert!(r.sizes && r.protocol && r.upstream);
    let r = reads(r#"{"metrics":{"size_histograms":true}}"#, Role::Inbound);
    assert!(r.sizes && !r.protocol && !r.upstream);
    // Details are about spans: without spans they are not read.
    let r = reads(
        r#"{"spans":{"enabled":false,"stream_details":true}}"#,
        Role::Inbound,
    );
    assert!(!r.sizes && !r.protocol);
    assert!(crate::pipeline::needs_response_flags(0));
    assert!(crate::pipeline::needs_response_flags(503));
    assert!(crate::pipeline::needs_response_flags(404));
    assert!(!crate::pipeline::needs_response_flags(200));
    let e = engine("a", "v1", "{}");
    assert!(!e.reads_response_headers(Role::Inbound));
    assert!(e.reads_response_headers(Role::Outbound) && e.reads_response_headers(Role::Edge));
    assert!(!e.wants_first_byte_time());
    assert!(e.wants_start_time());
    let bare = r#"{"spans":{"enabled":false},"metrics":{"enabled":false},"identity":{"exchange":false},"context_recovery":{"enabled":false}}"#;
    assert!(!engine("a", "v1", bare).wants_start_time());
    assert!(engine("a", "v1", r#"{"spans":{"stream_details":true}}"#).wants_first_byte_time());
}

/// The borrowed stream end (what the wasm glue encodes straight into the export queue)
/// encodes to exactly the bytes of the owned span `finish` returns, with the same labels,
/// for every role and outcome; and reused buffers (`on_request_reusing`, a spare from a
/// longer request) give the same request state as fresh ones.
#[test]
fn stream_end_views_encode_like_the_owned_span() {
    use meshwake_telemetry::otlp;
    let long = "x".repeat(300);
    let first: &[(&str, &str)] = &[
        (":path", "/a/very/long/previous/path/123?q=1"),
        (":method", "DELETE"),
        (":authority", "previous.example:8443"),
        ("user-agent", long.as_str()),
        ("x-request-id", "previous-request-id-that-is-long"),
    ];
    let edge = r#"{"edge":{"trust_incoming_context":false}}"#;
    #[rustfmt::skip]
    let cases: &[(Role, &str, &[(&str, &str)], u16, &str, Option<i64>)] = &[
        (Role::Inbound, "{}", &[(":path", "/api/users/42"), (":method", "GET"), (":authority", "svc:8080"), ("traceparent", TP), ("tracestate", "k=v")], 200, "-", None),
        (Role::Outbound, "{}", &[(":path", "/x"), (":method", "POST"), ("content-type", "application/grpc")], 503, "UF", Some(14)),
        (Role::Edge, edge, &[(":path", "/"), ("traceparent", TP), ("user-agent", "curl/8")], 404, "-", None),
        (Role::Inbound, r#"{"spans":{"routes":["/api/users/{id}"]}}"#, &[(":path", "/api/users/7"), (":method", "PUT"), (":authority", "[::1]:80")], 0, "DC", None),
    ];
    for (role, cfg, h, status, flags, grpc) in cases {
        let e = engine("a", "v1", cfg);
        let mut vm = Vm::default();
        let mut recall = |_: &str, _: &[u8]| None;
        let (fresh, _) = e.on_request(*role, &headers(h), 1_000, vm.ids(), &mut recall);
        let (used, _) = e.on_request(*role, &headers(first), 1_000, vm.ids(), &mut recall);
        let (mut s, _) = e.on_request_reusing(
            *role,
            &headers(h),
            1_000,
            &mut IdGenerator::new([7; 32]),
            &mut recall,
            used.into_spare(),
        );
        let strings = |s: &RequestState| {
            [
                &s.method,
                &s.path,
                &s.scheme,
                &s.authority,
                &s.user_agent,
                &s.request_id,
            ]
            .map(String::clone)
        };
        assert_eq!(strings(&s), strings(&fresh), "{role:?} {h:?}");
        s.first_byte_ns = Some(1_500);
        let c = Completion {
            end_ns: 3_000,
            status: *status,
            response_flags: flags.to_string().into(),
            grpc_status: *grpc,
            request_bytes: Some(10),
            upstream_cluster: Some("outbound|80||b.test.svc.cluster.local".into()),
            protocol: "HTTP/2".into(),
            ..Default::default()
        };
        let (span, labels) = e.finish(s.clone(), &c);
        let mut text = crate::pipeline::StreamEndText::default();
        let mut encoded = Vec::new();
        let mut dropped = None;
        let labels_ref = e.stream_end(&mut s, &c, &mut text, |view| {
            otlp::write_span_view(&mut encoded, view);
            dropped = Some(view.dropped_attributes());
        });
        assert_eq!(labels_ref.to_owned_labels(), labels, "{role:?} {h:?}");
        assert_eq!(encoded, otlp::encode_span(&span.unwrap()), "{role:?} {h:?}");
        assert_eq!(dropped, Some(0));
    }
}

#[test]
fn only_a_hop_that_copies_request_text_holds_buffers_worth_keeping() {
    let h = [
        ("traceparent", TP),
        (":path", "/a"),
        ("x-request-id", "r-1"),
    ];
    let lean = engine(
        "a",
        "v1",
        r#"{"spans":{"enabled":false},"context_recovery":{"enabled":false}}"#,
    );
    let (s, _) = request(&lean, Role::Inbound, &mut Vm::default(), &h);
    assert!(!s.holds_spare());
    let (s, _) = request(
        &engine("a", "v1", "{}"),
        Role::Inbound,
        &mut Vm::default(),
        &h,
    );
    assert!(s.holds_spare());
}
