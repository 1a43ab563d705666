//! The W3C Trace Context test suite (w3c/trace-context `test/test.py`, as published at
//! commit acab820 "Fix tracestate key grammar tests", #584), ported to Rust and run with
//! `SPEC_LEVEL=2 STRICT_LEVEL=2`: its 41 tests, one entry per test.py method, each with that
//! method's requests in order and its assertions on what the harness received.
//!
//! test.py plays the caller of a "vendor service" and the server of its callbacks. Here the
//! service is one meshwake workload: inbound sidecar → an app copying `traceparent` and
//! `tracestate` → outbound sidecar → the harness server. Both sidecars parse and rewrite the
//! context, so every request goes through the filter twice. The harness reads the callback
//! the way test.py does: exactly one valid `traceparent`, and `tracestate` through test.py's
//! `Tracestate.from_string` (its key/value regexes; a repeated key keeps the first value; an
//! invalid member is an error, as test.py's `ValueError`).
#![allow(clippy::type_complexity)] // test tables are tuples on purpose
use meshwake_tests::mesh::{self, traceparent_of, Mesh, MeshSpec, WorkloadSpec};

/// test.py `tracecontext.Tracestate`: ordered members, the first value of a repeated key.
#[derive(Debug, Default)]
struct Tracestate(Vec<(String, String)>);

impl Tracestate {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    /// `str(tracestate)`: `key=value` joined with `,`.
    fn to_str(&self) -> String {
        let members: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        members.join(",")
    }
}

/// test.py `_KEY_FORMAT = [0-9a-z][_0-9a-z\-\*\/@]{0,255}`
fn harness_key_ok(k: &str) -> bool {
    let b = k.as_bytes();
    let first = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let rest = |c: &u8| first(c) || b"_-*/@".contains(c);
    b.first().is_some_and(first) && b.len() <= 256 && b.iter().skip(1).all(rest)
}

/// test.py `_VALUE_FORMAT = [\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]`
fn harness_value_ok(v: &str) -> bool {
    let chr = |c: &u8| (0x20..=0x7e).contains(c) && *c != b',' && *c != b'=';
    let b = v.as_bytes();
    (1..=256).contains(&b.len()) && b.iter().all(chr) && b.last() != Some(&b' ')
}

/// test.py `Tracestate.from_string` over every `tracestate` value of the callback, in order:
/// split on `[ \t]*,[ \t]*`, skip empty members, match `key=value` or fail.
fn harness_tracestate(values: &[String]) -> Result<Tracestate, String> {
    let mut ts = Tracestate::default();
    for value in values {
        let pieces: Vec<&str> = value.split(',').collect();
        for (i, piece) in pieces.iter().enumerate() {
            let mut member = *piece;
            if i > 0 {
                member = member.trim_start_matches([' ', '\t']);
            }
            if i + 1 < pieces.len() {
                member = member.trim_end_matches([' ', '\t']);
            }
            if member.is_empty() {
                continue;
            }
            let (k, v) = member
                .split_once('=')
                .filter(|(k, v)| harness_key_ok(k) && harness_value_ok(v))
                .ok_or(format!("illegal key-value format {member:?}"))?;
            if ts.get(k).is_none() {
                ts.0.push((k.to_string(), v.to_string()));
            }
        }
    }
    Ok(ts)
}

/// test.py `Traceparent.from_string` on the callback's only `traceparent` (test.py's
/// `get_traceparent` asserts there is exactly one).
fn harness_traceparent(values: &[String]) -> Result<mesh::Traceparent, String> {
    let [one] = values else {
        return Err(format!("expect one traceparent header, got {values:?}"));
    };
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match one.split('-').collect::<Vec<_>>().as_slice() {
        [v, t, p, f, ..] if hex(v, 2) && *v != "ff" && hex(t, 32) && hex(p, 16) && hex(f, 2) => {
            Ok(mesh::Traceparent {
                version: v.to_string(),
                trace_id: t.to_string(),
                parent_id: p.to_string(),
                flags: f.to_string(),
            })
        }
        _ => Err(format!("invalid traceparent {one:?}")),
    }
}

/// What the harness read from one callback.
struct Seen {
    tp: mesh::Traceparent,
    ts: Tracestate,
}

/// test.py's assertions after one request: on this request's [`Seen`] (last) and the earlier
/// ones of the same test method.
type Check = Box<dyn Fn(&[Seen]) -> Result<(), String>>;

fn last(seen: &[Seen]) -> &Seen {
    seen.last().expect("a check runs after its request")
}
fn ok() -> Check {
    Box::new(|_| Ok(()))
}
/// `assertEqual(traceparent.trace_id.hex(), id)`
fn trace_is(id: &'static str) -> Check {
    Box::new(move |s| {
        let got = &last(s).tp.trace_id;
        (got == id)
            .then_some(())
            .ok_or(format!("trace id {got}, want {id}"))
    })
}
/// `assertNotEqual(traceparent.trace_id.hex(), id)`
fn trace_is_not(id: &'static str) -> Check {
    Box::new(move |s| {
        (last(s).tp.trace_id != id)
            .then_some(())
            .ok_or(format!("trace id {id} kept"))
    })
}
/// `assertIn(k, tracestate)` and `assertEqual(tracestate[k], v)` for each pair.
fn ts_has(pairs: Vec<(String, String)>) -> Check {
    Box::new(move |s| {
        let ts = &last(s).ts;
        match pairs.iter().find(|(k, v)| ts.get(k) != Some(v.as_str())) {
            Some((k, v)) => Err(format!("tracestate {:?} lacks {k}={v}", ts.to_str())),
            None => Ok(()),
        }
    })
}
/// `assertRaises(KeyError, lambda: tracestate[k])` for each key.
fn ts_lacks(keys: &'static [&'static str]) -> Check {
    Box::new(move |s| {
        let ts = &last(s).ts;
        match keys.iter().find(|k| ts.get(k).is_some()) {
            Some(k) => Err(format!("tracestate {:?} kept {k}", ts.to_str())),
            None => Ok(()),
        }
    })
}
/// `assertTrue(any(m in str(tracestate) for m in members))`
fn ts_str_has_any(members: &'static [&'static str]) -> Check {
    Box::new(move |s| {
        let text = last(s).ts.to_str();
        members
            .iter()
            .any(|m| text.contains(m))
            .then_some(())
            .ok_or(format!("tracestate {text:?} has none of {members:?}"))
    })
}
fn all(checks: Vec<Check>) -> Check {
    Box::new(move |s| checks.iter().try_for_each(|c| c(s)))
}
fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

type Headers = Vec<(String, String)>;
fn h(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const TID: &str = "12345678901234567890123456789012";
const TP00: &str = "00-12345678901234567890123456789012-1234567890123456-00";
const TP01: &str = "00-12345678901234567890123456789012-1234567890123456-01";

/// A traceparent test.py expects to be rejected: a request with it must start a new trace.
fn rejected(tp: &str) -> (Headers, Check) {
    (h(&[("traceparent", tp)]), trace_is_not(TID))
}
/// A traceparent test.py expects to be continued.
fn continued(name: &str, tp: &str) -> (Headers, Check) {
    (h(&[(name, tp)]), trace_is(TID))
}
/// `traceparent: TP00` then the given tracestate headers.
fn with_ts(tracestates: &[&str]) -> Headers {
    let mut headers = h(&[("traceparent", TP00)]);
    headers.extend(
        tracestates
            .iter()
            .map(|v| ("tracestate".to_string(), v.to_string())),
    );
    headers
}

/// `TraceContextTest` (37 methods) and `TraceContext2Test` (1): (method, requests).
fn trace_context_tests() -> Vec<(&'static str, Vec<(Headers, Check)>)> {
    let mut t: Vec<(&'static str, Vec<(Headers, Check)>)> = Vec::new();
    traceparent_tests(&mut t);
    tracestate_tests(&mut t);
    tracestate_strict_tests(&mut t);
    t.push((
        "TraceContext2Test.test_propagates_random_flag",
        vec![(
            h(&[(
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-02",
            )]),
            all(vec![
                trace_is(TID),
                Box::new(|s| {
                    let tp = &last(s).tp;
                    let flags = u8::from_str_radix(&tp.flags, 16).unwrap_or(0);
                    if tp.parent_id == "1234567890123456" {
                        Err("parent id not replaced".into())
                    } else if flags & 0x02 == 0 {
                        Err(format!("random flag not set in {:02x}", flags))
                    } else {
                        Ok(())
                    }
                }),
            ]),
        )],
    ));
    t
}

#[rustfmt::skip]
fn traceparent_tests(t: &mut Vec<(&'static str, Vec<(Headers, Check)>)>) {
    let parent_changed: Check = Box::new(|s| {
        (last(s).tp.parent_id != "1234567890123456").then_some(()).ok_or("parent id not replaced".into())
    });
    t.push(("test_both_traceparent_and_tracestate_missing", vec![(vec![], ok())]));
    t.push(("test_traceparent_included_tracestate_missing", vec![(h(&[("traceparent", TP01)]), all(vec![trace_is(TID), parent_changed]))]));
    t.push(("test_traceparent_duplicated", vec![(
        h(&[("traceparent", "00-12345678901234567890123456789011-1234567890123456-01"), ("traceparent", TP01)]),
        all(vec![trace_is_not("12345678901234567890123456789011"), trace_is_not(TID)]),
    )]));
    t.push(("test_traceparent_header_name", vec![
        (h(&[("trace-parent", TP01)]), trace_is_not(TID)),
        (h(&[("trace.parent", TP01)]), trace_is_not(TID)),
    ]));
    t.push(("test_traceparent_header_name_valid_casing", vec![
        continued("TraceParent", TP01), continued("TrAcEpArEnT", TP01), continued("TRACEPARENT", TP01),
    ]));
    t.push(("test_traceparent_version_0x00", vec![
        rejected("00-12345678901234567890123456789012-1234567890123456-01."),
        rejected("00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like"),
    ]));
    t.push(("test_traceparent_version_0xcc", vec![
        continued("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01"),
        continued("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like"),
        rejected("cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like"),
    ]));
    t.push(("test_traceparent_version_0xff", vec![rejected("ff-12345678901234567890123456789012-1234567890123456-01")]));
    t.push(("test_traceparent_version_illegal_characters", vec![
        rejected(".0-12345678901234567890123456789012-1234567890123456-01"),
        rejected("0.-12345678901234567890123456789012-1234567890123456-01"),
    ]));
    t.push(("test_traceparent_version_too_long", vec![
        rejected("000-12345678901234567890123456789012-1234567890123456-01"),
        rejected("0000-12345678901234567890123456789012-1234567890123456-01"),
    ]));
    t.push(("test_traceparent_version_too_short", vec![rejected("0-12345678901234567890123456789012-1234567890123456-01")]));
    t.push(("test_traceparent_trace_id_all_zero", vec![(
        h(&[("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")]),
        trace_is_not("00000000000000000000000000000000"),
    )]));
    // test.py compares the output id with the (non-hex) input, which a valid output never equals.
    t.push(("test_traceparent_trace_id_illegal_characters", vec![
        (h(&[("traceparent", "00-.2345678901234567890123456789012-1234567890123456-01")]), trace_is_not(".2345678901234567890123456789012")),
        (h(&[("traceparent", "00-1234567890123456789012345678901.-1234567890123456-01")]), trace_is_not("1234567890123456789012345678901.")),
    ]));
    t.push(("test_traceparent_trace_id_too_long", vec![(
        h(&[("traceparent", "00-123456789012345678901234567890123-1234567890123456-01")]),
        all(vec![trace_is_not("123456789012345678901234567890123"), trace_is_not(TID), trace_is_not("23456789012345678901234567890123")]),
    )]));
    t.push(("test_traceparent_trace_id_too_short", vec![(
        h(&[("traceparent", "00-1234567890123456789012345678901-1234567890123456-01")]),
        trace_is_not("1234567890123456789012345678901"),
    )]));
    t.push(("test_traceparent_parent_id_all_zero", vec![rejected("00-12345678901234567890123456789012-0000000000000000-01")]));
    t.push(("test_traceparent_parent_id_illegal_characters", vec![
        rejected("00-12345678901234567890123456789012-.234567890123456-01"),
        rejected("00-12345678901234567890123456789012-123456789012345.-01"),
    ]));
    t.push(("test_traceparent_parent_id_too_long", vec![rejected("00-12345678901234567890123456789012-12345678901234567-01")]));
    t.push(("test_traceparent_parent_id_too_short", vec![rejected("00-12345678901234567890123456789012-123456789012345-01")]));
    t.push(("test_traceparent_trace_flags_illegal_characters", vec![
        rejected("00-12345678901234567890123456789012-1234567890123456-.0"),
        rejected("00-12345678901234567890123456789012-1234567890123456-0."),
    ]));
    t.push(("test_traceparent_trace_flags_too_long", vec![rejected("00-12345678901234567890123456789012-1234567890123456-001")]));
    t.push(("test_traceparent_trace_flags_too_short", vec![rejected("00-12345678901234567890123456789012-1234567890123456-1")]));
    t.push(("test_traceparent_ows_handling", [
        " 00-12345678901234567890123456789012-1234567890123456-01",
        "\t00-12345678901234567890123456789012-1234567890123456-01",
        "00-12345678901234567890123456789012-1234567890123456-01 ",
        "00-12345678901234567890123456789012-1234567890123456-01\t",
        "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
    ].iter().map(|tp| continued("traceparent", tp)).collect()));
}

#[rustfmt::skip]
fn tracestate_tests(t: &mut Vec<(&'static str, Vec<(Headers, Check)>)>) {
    let foo1 = || ts_has(pairs(&[("foo", "1")]));
    t.push(("test_tracestate_included_traceparent_missing", vec![
        (h(&[("tracestate", "foo=1")]), ok()),
        (h(&[("tracestate", "foo=1,bar=2")]), Box::new(|s| {
            let (a, b) = (s[0].ts.0.len(), s[1].ts.0.len());
            (a == b).then_some(()).ok_or(format!("{a} then {b} tracestate members"))
        })),
    ]));
    t.push(("test_tracestate_included_traceparent_included", vec![
        (with_ts(&["foo=1,bar=2"]), all(vec![trace_is(TID), ts_has(pairs(&[("foo", "1"), ("bar", "2")]))])),
    ]));
    t.push(("test_tracestate_header_name", vec![
        (h(&[("traceparent", TP00), ("trace-state", "foo=1")]), ts_lacks(&["foo"])),
        (h(&[("traceparent", TP00), ("trace.state", "foo=1")]), ts_lacks(&["foo"])),
    ]));
    t.push(("test_tracestate_header_name_valid_casing", ["TraceState", "TrAcEsTaTe", "TRACESTATE"]
        .iter().map(|name| (h(&[("traceparent", TP00), (name, "foo=1")]), foo1())).collect()));
    // test.py's first assertion (`not tracestate or tracestate != ''`) always holds.
    t.push(("test_tracestate_empty_header", vec![
        (with_ts(&[""]), trace_is(TID)),
        (with_ts(&["foo=1", ""]), all(vec![trace_is(TID), foo1()])),
        (with_ts(&["", "foo=1"]), all(vec![trace_is(TID), foo1()])),
    ]));
    t.push(("test_tracestate_multiple_headers_different_keys", vec![(
        with_ts(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
        all(vec![trace_is(TID), Box::new(|s| {
            let text = last(s).ts.to_str();
            let at: Vec<Option<usize>> = ["foo=1", "bar=2", "rojo=1", "congo=2", "baz=3"].iter().map(|m| text.find(m)).collect();
            let in_order = at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]);
            in_order.then_some(()).ok_or(format!("tracestate {text:?}: members missing or out of order"))
        })]),
    )]));
    let key_plain: String = ('a'..='z').collect::<String>() + "0123456789_-*/";
    let key_vendor = format!("{key_plain}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x2b).chain(0x2d..=0x3c).chain(0x3e..=0x7e).map(char::from).collect();
    t.push(("test_tracestate_all_allowed_characters", [key_plain, key_vendor].into_iter().map(|k| {
        (with_ts(&[&format!("{k}={value}")]), ts_has(vec![(k, value.clone())]))
    }).collect()));
    let foo_bar_baz = || ts_has(pairs(&[("foo", "1"), ("bar", "2"), ("baz", "3")]));
    let mut ows: Vec<(Headers, Check)> = vec![
        (with_ts(&["foo=1 \t , \t bar=2, \t baz=3"]), foo_bar_baz()),
        (with_ts(&["foo=1\t \t,\t \tbar=2,\t \tbaz=3"]), foo_bar_baz()),
    ];
    ows.extend([" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"].iter().map(|v| {
        (with_ts(&[v]), all(vec![trace_is(TID), foo1()]))
    }));
    t.push(("test_tracestate_ows_handling", ows));
}

/// The `@unittest.skipIf(STRICT_LEVEL < 2, "strict")` tracestate methods.
#[rustfmt::skip]
fn tracestate_strict_tests(t: &mut Vec<(&'static str, Vec<(Headers, Check)>)>) {
    t.push(("test_tracestate_duplicated_keys", vec![
        (with_ts(&["foo=1,foo=1"]), all(vec![trace_is(TID), ts_str_has_any(&["foo=1"])])),
        (with_ts(&["foo=1,foo=2"]), all(vec![trace_is(TID), ts_str_has_any(&["foo=1", "foo=2"])])),
        (with_ts(&["foo=1", "foo=1"]), all(vec![trace_is(TID), ts_str_has_any(&["foo=1"])])),
        (with_ts(&["foo=1", "foo=2"]), all(vec![trace_is(TID), ts_str_has_any(&["foo=1", "foo=2"])])),
    ]));
    t.push(("test_tracestate_key_illegal_characters", vec![
        (with_ts(&["foo =1"]), ts_lacks(&["foo "])),
        (with_ts(&["FOO=1"]), ts_lacks(&["FOO"])),
        (with_ts(&["foo.bar=1"]), ts_lacks(&["foo.bar"])),
    ]));
    t.push(("test_tracestate_key_illegal_vendor_format", vec![
        (with_ts(&["foo@=1,bar=2"]), ts_has(pairs(&[("foo@", "1"), ("bar", "2")]))),
        (with_ts(&["@foo=1,bar=2"]), ts_lacks(&["bar"])),
        (with_ts(&["foo@@bar=1,bar=2"]), ts_has(pairs(&[("foo@@bar", "1"), ("bar", "2")]))),
        (with_ts(&["foo@bar@baz=1,bar=2"]), ts_has(pairs(&[("foo@bar@baz", "1"), ("bar", "2")]))),
    ]));
    let bars = |n: usize| -> Vec<String> {
        let members: Vec<String> = (1..=n).map(|i| format!("bar{i:02}={i:02}")).collect();
        members.chunks(10).map(|c| c.join(",")).collect()
    };
    let (b32, b33) = (bars(32), bars(33));
    t.push(("test_tracestate_member_count_limit", vec![
        (with_ts(&b32.iter().map(String::as_str).collect::<Vec<_>>()), all(vec![
            ts_has(pairs(&[("bar01", "01")])),
            Box::new(|s| { let n = last(s).ts.0.len(); (n == 32).then_some(()).ok_or(format!("{n} members, want 32")) }),
        ])),
        (with_ts(&b33.iter().map(String::as_str).collect::<Vec<_>>()), ts_lacks(&["bar01"])),
    ]));
    let key_ok = |key: String| -> (Headers, Check) {
        (with_ts(&["foo=1", &format!("{key}=1")]), ts_has(vec![("foo".into(), "1".into()), (key, "1".into())]))
    };
    t.push(("test_tracestate_key_length_limit", vec![
        key_ok("z".repeat(256)),
        (with_ts(&["foo=1", &format!("{}=1", "z".repeat(257))]), ts_lacks(&["foo"])),
        key_ok(format!("{}@{}", "t".repeat(241), "v".repeat(14))),
        key_ok(format!("{}@v", "t".repeat(242))),
        key_ok(format!("t@{}", "v".repeat(15))),
    ]));
    t.push(("test_tracestate_value_illegal_characters", vec![
        (with_ts(&["foo=bar=baz"]), ts_lacks(&["foo"])),
        (with_ts(&["foo=,bar=3"]), ts_lacks(&["foo", "bar"])),
    ]));
}

fn w3c_service(name: &str) -> (Mesh, meshwake_tests::Server) {
    let harness = meshwake_tests::Server::start(|_| meshwake_tests::Response::new(200));
    let svc = WorkloadSpec::new("vendor", "v1").calls_external("harness-v1", harness.port());
    (Mesh::start(MeshSpec::new(name, vec![svc])), harness)
}

/// test.py `make_single_request_and_get_tracecontext`: one request to the service, the
/// context of its one callback to the harness as test.py parses it.
fn send(port: u16, harness: &meshwake_tests::Server, headers: &Headers) -> Result<Seen, String> {
    let h: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    let before = harness.requests().len();
    let r = meshwake_tests::request(port, "POST", "/test", &h, b"").map_err(|e| e.to_string())?;
    let callbacks = harness.requests();
    if r.status != 200 || callbacks.len() != before + 1 {
        return Err(format!(
            "status {} and {} callbacks",
            r.status,
            callbacks.len() - before
        ));
    }
    let cb = callbacks.last().ok_or("no callback")?;
    Ok(Seen {
        tp: harness_traceparent(&cb.header_all("traceparent"))?,
        ts: harness_tracestate(&cb.header_all("tracestate"))?,
    })
}

/// One test.py method: its requests in order, stopping at the first failed assertion.
fn run_method(
    port: u16,
    harness: &meshwake_tests::Server,
    steps: &[(Headers, Check)],
) -> Result<(), String> {
    let mut seen = Vec::new();
    for (i, (headers, check)) in steps.iter().enumerate() {
        seen.push(send(port, harness, headers).map_err(|e| format!("request {}: {e}", i + 1))?);
        check(&seen).map_err(|e| format!("request {}: {e}", i + 1))?;
    }
    Ok(())
}

/// test.py's `TraceContextTest` and `TraceContext2Test`: 38 of the suite's 41 tests.
#[test]
fn w3c_trace_context_level2_strict() {
    let (m, harness) = w3c_service("w3c-suite");
    let port = m.workload("vendor", "v1").inbound_port();
    let tests = trace_context_tests();
    assert_eq!(
        tests.len(),
        38,
        "test.py has 37 TraceContextTest + 1 TraceContext2Test methods"
    );
    let mut failed = Vec::new();
    for (name, steps) in &tests {
        let outcome = run_method(port, &harness, steps);
        println!(
            "{name} ... {}",
            outcome
                .as_ref()
                .map_or_else(|e| format!("FAIL {e}"), |_| "ok".into())
        );
        if let Err(e) = outcome {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} W3C tests failed:\n{}",
        failed.len(),
        tests.len(),
        failed.join("\n")
    );
}

/// test.py `AdvancedTest` (the other 3 tests): one request, three callbacks.
#[test]
fn w3c_advanced_multiple_callbacks() {
    let (m, harness) = w3c_service("w3c-suite-adv");
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
        assert_eq!(parents.len(), 3, "{name}: {tps:?}");
        match keeps {
            Some(true) => assert!(traces.len() == 1 && traces.contains(TID), "{name}: {tps:?}"),
            Some(false) => assert!(
                !traces.contains("00000000000000000000000000000000"),
                "{name}"
            ),
            None => {}
        }
    }
}

/// The port's reading of callbacks is test.py's: a check that it rejects what test.py rejects.
#[test]
fn harness_parsing_follows_test_py() {
    let s = |v: &[&str]| harness_tracestate(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert_eq!(
        s(&["foo=1 \t, bar=2", "foo=3"]).unwrap().to_str(),
        "foo=1,bar=2"
    );
    assert_eq!(s(&["foo@@bar=1"]).unwrap().to_str(), "foo@@bar=1");
    for bad in [
        "@foo=1", " foo=1", "foo=1 ", "foo", "Foo=1", "foo=a=b", "foo=",
    ] {
        assert!(s(&[bad]).is_err(), "{bad:?} accepted");
    }
    assert!(s(&[&format!("{}=1", "z".repeat(257))]).is_err());
    assert!(harness_traceparent(&[TP00.into(), TP00.into()]).is_err());
    assert!(harness_traceparent(&[
        "ff-12345678901234567890123456789012-1234567890123456-00".into()
    ])
    .is_err());
    assert_eq!(harness_traceparent(&[TP01.into()]).unwrap().trace_id, TID);
}
