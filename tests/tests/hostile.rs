//! Hostile input through a real Envoy with `failure_policy: FAIL_CLOSED` (a dead VM would turn
//! every request into a 503): non-UTF-8 bytes, 60 KiB values, thousands of tracestate and
//! baggage members, duplicated and conflicting trace headers, uppercase hex, wrong lengths,
//! every field at its limit and one past, 500 headers.
//!
//! After every hostile request an ordinary request through the same Envoy must still succeed
//! with the filter visibly at work (its context continued upstream, `x-meshwake` on the
//! response); what reaches the app must be well-formed and bounded; the filter's counters must
//! show what it rejected; and every span must still be exported, with bounded attributes.
//! The whole table runs once per role.
use meshwake_semconv::{header, stat};
use meshwake_tests::otlp::ReceivedSpan;
use meshwake_tests::{
    http, wait_for, Envoy, EnvoyOptions, OtlpReceiver, Request, Response, Server,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::collections::BTreeMap;

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PID: &str = "00f067aa0ba902b7";
const KIB60: usize = 60 * 1024;

fn tp() -> String {
    format!("00-{TID}-{PID}-01")
}

/// What a case expects beyond the checks every case gets.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Trace {
    /// The incoming trace id `TID` is continued (inbound/outbound; the edge restarts anyway).
    Continued,
    /// A new trace is started.
    Restarted,
    /// Either is acceptable; only well-formedness is checked.
    Any,
}

type Check = fn(&Request) -> Result<(), String>;
type Headers = Vec<(String, Vec<u8>)>;

struct Case {
    name: &'static str,
    headers: Headers,
    path: String,
    trace: Trace,
    /// Counters (`<namespace>.meshwake.<name>`) that must grow, checked on the inbound role.
    notes: &'static [&'static str],
    /// Extra check of what the app received (inbound) or the upstream received.
    check: Option<Check>,
}

fn case(
    name: &'static str,
    headers: Vec<(&str, Vec<u8>)>,
    trace: Trace,
    notes: &'static [&'static str],
) -> Case {
    Case {
        name,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        path: String::new(),
        trace,
        notes,
        check: None,
    }
}

fn b(s: impl AsRef<[u8]>) -> Vec<u8> {
    s.as_ref().to_vec()
}

fn members(n: usize, f: impl Fn(usize) -> String) -> Vec<u8> {
    (0..n).map(f).collect::<Vec<_>>().join(",").into_bytes()
}

fn tracestate_members(r: &Request) -> usize {
    r.header_all("tracestate")
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|m| !m.trim().is_empty())
        .count()
}

fn baggage_members(r: &Request) -> usize {
    r.header_all("baggage")
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|m| !m.trim().is_empty())
        .count()
}

fn no_tracestate(r: &Request) -> Result<(), String> {
    match r.header("tracestate") {
        None => Ok(()),
        Some(v) => Err(format!(
            "an invalid tracestate must be dropped, app got {} bytes",
            v.len()
        )),
    }
}

fn peer_field(len: usize) -> Vec<u8> {
    format!("1;s={};v=v1;n=shop;w=caller", "a".repeat(len)).into_bytes()
}

fn lineage(n: usize) -> Vec<u8> {
    members(n, |i| format!("svc{i}@v{i}"))
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Trace::*;
    let tp = tp();
    let upper = tp.to_uppercase();
    let mut v = vec![
        // Trace context: malformed values start a new trace and are counted.
        case("traceparent with \\xff\\xfe bytes", vec![("traceparent", [b"00-\xff\xfe".as_slice(), &tp.as_bytes()[5..]].concat())], Restarted, &[stat::note::CONTEXT_INVALID, stat::note::CONTEXT_STARTED]),
        case("traceparent with lone continuation bytes", vec![("traceparent", [b"\x80\x80".as_slice(), &tp.as_bytes()[2..]].concat())], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("traceparent in uppercase hex", vec![("traceparent", b(&upper))], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("traceparent one char short (54)", vec![("traceparent", b(&tp[..54]))], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("traceparent one char long (56)", vec![("traceparent", b(format!("{tp}1")))], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("traceparent version ff", vec![("traceparent", b(tp.replacen("00-", "ff-", 1)))], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("traceparent all-zero trace id", vec![("traceparent", b(format!("00-{}-{PID}-01", "0".repeat(32))))], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("traceparent all-zero parent id", vec![("traceparent", b(format!("00-{TID}-{}-01", "0".repeat(16))))], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("traceparent empty", vec![("traceparent", b(""))], Restarted, &[]),
        case("traceparent 60 KiB (version 00)", vec![("traceparent", b(format!("{tp}-{}", "a".repeat(KIB60))))], Restarted, &[stat::note::CONTEXT_INVALID]),
        // A later version may carry more fields: parsed by its version-00 prefix.
        case("traceparent 60 KiB (future version)", vec![("traceparent", b(format!("cc-{TID}-{PID}-01-{}", "a".repeat(KIB60))))], Continued, &[stat::note::CONTEXT_CONTINUED]),
        case("traceparent padded with spaces and tabs", vec![("traceparent", b(format!(" \t{tp}\t ")))], Continued, &[stat::note::CONTEXT_CONTINUED]),
        case("traceparent duplicated (identical)", vec![("traceparent", b(&tp)), ("traceparent", b(&tp))], Any, &[]),
        case("traceparent duplicated (conflicting)", vec![("traceparent", b(&tp)), ("traceparent", b(format!("00-{}-{PID}-01", "1".repeat(32))))], Any, &[]),
        case("traceparent and a conflicting b3", vec![("traceparent", b(&tp)), ("b3", b(format!("{}-{PID}-1", "2".repeat(32))))], Continued, &[stat::note::CONTEXT_CONTINUED]),
        case("b3 single garbage and conflicting x-b3-*", vec![("b3", b(b"zz-\xff")), ("x-b3-traceid", b("3".repeat(32))), ("x-b3-spanid", b("4".repeat(16))), ("x-b3-sampled", b("1"))], Any, &[]),
        case("b3 60 KiB", vec![("b3", b("a".repeat(KIB60)))], Restarted, &[stat::note::CONTEXT_INVALID]),
        case("x-b3-traceid uppercase, wrong length span id", vec![("x-b3-traceid", b("A".repeat(32))), ("x-b3-spanid", b("b".repeat(15)))], Any, &[]),
        // tracestate: limits are 32 members, keys 256, values 256 characters (W3C).
        case("tracestate 3000 members", vec![("traceparent", b(&tp)), ("tracestate", members(3000, |i| format!("k{i}=v")))], Continued, &[stat::note::CONTEXT_CONTINUED]),
        case("tracestate 60 KiB value", vec![("traceparent", b(&tp)), ("tracestate", b(format!("k={}", "v".repeat(KIB60))))], Continued, &[]),
        case("tracestate \\xff bytes", vec![("traceparent", b(&tp)), ("tracestate", b(b"k=\xff\xfe"))], Continued, &[]),
        case("tracestate 32 members (limit)", vec![("traceparent", b(&tp)), ("tracestate", members(32, |i| format!("k{i}=v")))], Continued, &[]),
        case("tracestate 33 members (one past)", vec![("traceparent", b(&tp)), ("tracestate", members(33, |i| format!("k{i}=v")))], Continued, &[]),
        case("tracestate value 256 chars (limit)", vec![("traceparent", b(&tp)), ("tracestate", b(format!("k={}", "v".repeat(256))))], Continued, &[]),
        case("tracestate value 257 chars (one past)", vec![("traceparent", b(&tp)), ("tracestate", b(format!("k={}", "v".repeat(257))))], Continued, &[]),
        case("tracestate duplicated key", vec![("traceparent", b(&tp)), ("tracestate", b("a=1,a=2"))], Continued, &[]),
        // baggage: 180 members, 8192 bytes (W3C).
        case("baggage 5000 members", vec![("traceparent", b(&tp)), ("baggage", members(5000, |i| format!("k{i}=v")))], Continued, &[]),
        case("baggage 60 KiB value", vec![("traceparent", b(&tp)), ("baggage", b(format!("k={}", "v".repeat(KIB60))))], Continued, &[]),
        case("baggage 180 members (limit)", vec![("traceparent", b(&tp)), ("baggage", members(180, |i| format!("k{i}=v")))], Continued, &[]),
        case("baggage 181 members (one past)", vec![("traceparent", b(&tp)), ("baggage", members(181, |i| format!("k{i}=v")))], Continued, &[]),
        case("baggage \\xff and bad escapes", vec![("traceparent", b(&tp)), ("baggage", b(b"a=\xff,b=%zz,c=ok"))], Continued, &[]),
        // meshwake's own headers: identity (fields of at most 63 bytes) and lineage.
        case("x-meshwake-peer \\xff\\xfe", vec![(header::PEER, b(b"1;s=\xff\xfe;v=v1"))], Any, &[stat::note::PEER_IDENTITY_MALFORMED]),
        case("x-meshwake-peer 60 KiB", vec![(header::PEER, peer_field(KIB60))], Any, &[stat::note::PEER_IDENTITY_MALFORMED]),
        case("x-meshwake-peer field 63 bytes (limit)", vec![(header::PEER, peer_field(63))], Any, &[]),
        case("x-meshwake-peer field 64 bytes (one past)", vec![(header::PEER, peer_field(64))], Any, &[stat::note::PEER_IDENTITY_MALFORMED]),
        case("x-meshwake-peer duplicated", vec![(header::PEER, peer_field(3)), (header::PEER, b("1;s=other;v=v9"))], Any, &[]),
        case("x-meshwake-lineage \\xff", vec![(header::LINEAGE, b(b"a@\xff"))], Any, &[stat::note::LINEAGE_REJECTED]),
        case("x-meshwake-lineage 60 KiB", vec![(header::LINEAGE, lineage(5000))], Any, &[stat::note::LINEAGE_REJECTED]),
        case("x-meshwake-lineage 8 entries (cap)", vec![(header::LINEAGE, lineage(8))], Any, &[]),
        case("x-meshwake-lineage 9 entries (one past the cap)", vec![(header::LINEAGE, lineage(9))], Any, &[stat::note::LINEAGE_TRUNCATED]),
        // Everything else the filter reads.
        case("x-request-id 60 KiB and \\xff", vec![("x-request-id", [b"\xff".as_slice(), "r".repeat(KIB60).as_bytes()].concat())], Any, &[]),
        case("user-agent 60 KiB", vec![("user-agent", b("u".repeat(KIB60)))], Any, &[]),
        case("content-type grpc with junk", vec![("content-type", b(b"application/grpc\xff\xfe"))], Any, &[]),
        case("x-meshwake-force-sample junk", vec![(header::FORCE_SAMPLE, b(b"\xff"))], Any, &[]),
    ];
    let mut many = case("500 headers and a valid traceparent at the end", vec![], Continued, &[stat::note::CONTEXT_CONTINUED]);
    many.headers = (0..500).map(|i| (format!("x-junk-{i}"), b(format!("v{i}\u{e9}")))).collect();
    many.headers.push(("traceparent".into(), b(&tp)));
    v.push(many);
    let mut long_path = case("60 KiB path", vec![("traceparent", b(&tp))], Continued, &[]);
    long_path.path = format!("/{}", "p/".repeat(KIB60 / 2));
    v.push(long_path);
    for c in v.iter_mut() {
        c.check = match c.name {
            "tracestate 3000 members" | "tracestate 60 KiB value" | "tracestate \\xff bytes"
            | "tracestate 33 members (one past)" | "tracestate value 257 chars (one past)" => Some(no_tracestate),
            // W3C Level 2: the list survives a repeated key; its first member is kept.
            "tracestate duplicated key" => Some(|r| {
                (r.header("tracestate").as_deref() == Some("a=1")).then_some(()).ok_or(format!("want a=1, got {:?}", r.header("tracestate")))
            }),
            "tracestate 32 members (limit)" => Some(|r| {
                (tracestate_members(r) == 32).then_some(()).ok_or(format!("32 members kept, got {}", tracestate_members(r)))
            }),
            "tracestate value 256 chars (limit)" => Some(|r| {
                (r.header("tracestate").map(|v| v.len()) == Some(258)).then_some(()).ok_or("256-char value kept".into())
            }),
            "baggage 180 members (limit)" | "baggage 181 members (one past)" | "baggage 5000 members" => Some(|r| {
                (baggage_members(r) == 180).then_some(()).ok_or(format!("180 members kept, got {}", baggage_members(r)))
            }),
            "baggage \\xff and bad escapes" => Some(|r| {
                (r.header("baggage").as_deref() == Some("c=ok")).then_some(()).ok_or(format!("only c=ok kept: {:?}", r.header("baggage")))
            }),
            _ => None,
        };
    }
    v
}

fn start(role: &str) -> (Envoy, Server, OtlpReceiver) {
    let otlp = OtlpReceiver::start();
    let upstream = Server::start(|_| Response::new(200).with_body("ok"));
    let cfg = format!(
        r#"{{"role":"{role}","debug_header":true,"identity":{{"service":"hostile","version":"v1","namespace":"shop","workload":"hostile-v1"}},"export":{{"flush_interval_ms":50}}}}"#
    );
    let envoy = Envoy::start(
        EnvoyOptions::default()
            .name(format!("hostile-{role}"))
            .template("hostile.yaml.tmpl")
            .plugin_config(cfg)
            .var("UPSTREAM_PORT", upstream.port())
            .var("OTLP_PORT", otlp.port()),
    );
    (envoy, upstream, otlp)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The one `traceparent` the app/upstream received: well-formed version 00, lowercase,
/// non-zero ids. Returns its trace id.
fn valid_traceparent(r: &Request) -> Result<String, String> {
    let all = r.header_all("traceparent");
    let [v] = all.as_slice() else {
        return Err(format!("exactly one traceparent expected, got {all:?}"));
    };
    let p: Vec<&str> = v.split('-').collect();
    let ok = v.len() == 55
        && p.len() == 4
        && p[0] == "00"
        && p.iter().all(|x| is_lower_hex(x))
        && p[1] != "0".repeat(32)
        && p[2] != "0".repeat(16);
    ok.then(|| p[1].to_string())
        .ok_or(format!("malformed traceparent {v:?}"))
}

/// Checks every case gets, whatever the role: one valid traceparent; B3 (if written) agrees
/// with it; tracestate/baggage within W3C limits; meshwake headers well-formed and bounded.
fn common_checks(role: &str, r: &Request) -> Result<String, String> {
    let tid = valid_traceparent(r)?;
    if let Some(b3) = r.header("b3") {
        let b3_tid = b3.split('-').next().unwrap_or_default();
        if b3_tid.len() == 32 && b3_tid != tid {
            return Err(format!("b3 {b3} disagrees with traceparent trace id {tid}"));
        }
    }
    if let Some(x) = r.header("x-b3-traceid") {
        if x.len() == 32
            && x != tid
            && r.header_all("x-b3-traceid").len() == 1
            && r.header("x-b3-spanid").is_some()
        {
            // Only the filter's own x-b3 (written together with traceparent) must agree.
            if role != "outbound" {
                return Err(format!("x-b3-traceid {x} disagrees with traceparent {tid}"));
            }
        }
    }
    if let Some(ts) = r.header("tracestate") {
        if ts.len() > 512 || tracestate_members(r) > 32 {
            return Err(format!(
                "tracestate over the W3C limits: {} bytes",
                ts.len()
            ));
        }
    }
    let bag: usize = r.header_all("baggage").iter().map(|v| v.len()).sum();
    if bag > 8192 || baggage_members(r) > 180 {
        return Err(format!(
            "baggage over the W3C limits: {bag} bytes, {} members",
            baggage_members(r)
        ));
    }
    match role {
        // The app never sees identity headers: they are the sidecars' business.
        "inbound" => {
            for h in [header::PEER, header::LINEAGE] {
                if r.header(h).is_some() {
                    return Err(format!("{h} leaked to the app"));
                }
            }
        }
        // Upstream sees exactly our own identity and a bounded lineage.
        _ => {
            let peer = r.header_all(header::PEER);
            if peer != ["1;s=hostile;v=v1;n=shop;w=hostile-v1"] {
                return Err(format!("x-meshwake-peer is not ours: {peer:?}"));
            }
            let lineage = r.header_all(header::LINEAGE);
            if lineage.len() != 1 || lineage[0].len() > 1024 {
                return Err(format!("x-meshwake-lineage: {lineage:?}"));
            }
        }
    }
    Ok(tid)
}

/// Which of `notes` grew since `before`, waiting up to `secs` for all of them (counters are
/// published at stream end, just after the response).
fn grown_within<'a>(
    envoy: &Envoy,
    before: &BTreeMap<String, u64>,
    notes: &[&'a str],
    secs: u64,
) -> Vec<&'a str> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let now = envoy.meshwake_counters();
        let grown: Vec<&str> = notes
            .iter()
            .copied()
            .filter(|n| now.get(*n).copied().unwrap_or(0) > before.get(*n).copied().unwrap_or(0))
            .collect();
        if grown.len() == notes.len() || std::time::Instant::now() > deadline {
            return grown;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn run_table(role: &str) {
    let (mut envoy, upstream, otlp) = start(role);
    let port = envoy.listen_port();
    let ordinary_tp = format!("00-{}-{PID}-01", "5".repeat(32));
    let mut failures = Vec::new();
    let mut requests = 0u64;
    for (i, c) in cases().into_iter().enumerate() {
        let before = envoy.meshwake_counters();
        let path = if c.path.is_empty() {
            format!("/hostile/{i}")
        } else {
            c.path.clone()
        };
        let hdrs: Vec<(&str, &[u8])> = c
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let r = http::request(port, "GET", &path, &hdrs, b"");
        requests += 1;
        let mut fail = |what: String| failures.push(format!("[{role}] {}: {what}", c.name));
        match &r {
            Ok(r) if r.status == 200 => {}
            Ok(r) => fail(format!("status {} (body {:?})", r.status, r.body_str())),
            Err(e) => fail(format!("transport error {e}")),
        }
        if let Ok(r) = &r {
            if role != "edge" && r.header(header::DEBUG).is_none() {
                fail("no x-meshwake response header: the filter did not run".into());
            }
        }
        if let Some(seen) = upstream
            .requests()
            .into_iter()
            .rev()
            .find(|q| q.path == path)
        {
            match common_checks(role, &seen) {
                Err(e) => fail(e),
                Ok(tid) => {
                    let expect = if role == "edge" {
                        Trace::Restarted
                    } else {
                        c.trace
                    };
                    let continued = tid == TID;
                    if expect == Trace::Continued && !continued {
                        fail(format!("trace {TID} not continued (got {tid})"));
                    }
                    if expect == Trace::Restarted && continued {
                        fail("hostile context continued".into());
                    }
                }
            }
            if role == "inbound" {
                if let Some(check) = c.check {
                    if let Err(e) = check(&seen) {
                        fail(e);
                    }
                }
            }
        } else if r.as_ref().is_ok_and(|r| r.status == 200) {
            fail("upstream never saw the request".into());
        }
        if role == "inbound" && !c.notes.is_empty() {
            let grown = grown_within(&envoy, &before, c.notes, 3);
            if grown.len() != c.notes.len() {
                fail(format!(
                    "counters {:?} should have grown, only {grown:?} did",
                    c.notes
                ));
            }
        }
        // The same Envoy still serves ordinary traffic, with the filter at work.
        let ok = http::request(
            port,
            "GET",
            &format!("/ordinary/{i}"),
            &[("traceparent", ordinary_tp.as_bytes())],
            b"",
        );
        requests += 1;
        match ok {
            Ok(r) if r.status == 200 && (role == "edge" || r.header(header::DEBUG).is_some()) => {
                let seen = upstream
                    .requests()
                    .into_iter()
                    .rev()
                    .find(|q| q.path == format!("/ordinary/{i}"));
                match seen.as_ref().map(|s| common_checks(role, s)) {
                    Some(Ok(tid)) if role == "edge" || tid == "5".repeat(32) => {}
                    other => fail(format!("ordinary request after it: upstream saw {other:?}")),
                }
            }
            other => fail(format!("ordinary request after it failed: {other:?}")),
        }
        envoy.assert_alive();
    }
    assert!(
        !envoy.log().contains("panic"),
        "the VM panicked: see {}",
        envoy.log_path.display()
    );
    assert!(
        failures.is_empty(),
        "{} failures over {} requests:\n{}",
        failures.len(),
        requests,
        failures.join("\n")
    );

    // Every request became a span or a counted sampling decision; every span was exported
    // and decodes with bounded attributes.
    let c = wait_for(10, "every span exported", || {
        let c = envoy.meshwake_counters();
        let created = c.get(stat::SPANS_CREATED).copied().unwrap_or(0);
        let sampled_out = c.get(stat::SPANS_DROPPED_SAMPLED_OUT).copied().unwrap_or(0);
        (created + sampled_out == requests
            && c.get(stat::SPANS_EXPORTED).copied().unwrap_or(0) == created)
            .then_some(c)
    });
    let spans = otlp.wait_spans(c[stat::SPANS_CREATED] as usize, 5);
    for s in &spans {
        check_bounded(s);
    }
    for k in [
        "dropped_queue_full",
        "dropped_export_failed",
        "dropped_rejected",
    ] {
        assert_eq!(
            c.get(&format!("spans.{k}")).copied().unwrap_or(0),
            0,
            "{k}: {c:?}"
        );
    }
    eprintln!(
        "[{role}] {requests} requests, {} spans exported; counters: {c:?}",
        spans.len()
    );
}

fn check_bounded(s: &ReceivedSpan) {
    assert!(
        s.span.name.len() <= 512,
        "span name {} bytes",
        s.span.name.len()
    );
    for kv in &s.span.attributes {
        let len = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(v)) => v.len(),
            Some(Value::ArrayValue(a)) => a.values.len() * 200,
            _ => 0,
        };
        assert!(len <= 2048, "attribute {} is {len} bytes", kv.key);
    }
}

#[test]
fn hostile_headers_inbound() {
    run_table("inbound");
}

#[test]
fn hostile_headers_outbound() {
    run_table("outbound");
}

#[test]
fn hostile_headers_edge() {
    run_table("edge");
}

/// Many hostile requests at once on keep-alive connections, interleaved with ordinary ones:
/// nothing fails and the VM survives (memory bounded: the queue never grows past its cap).
#[test]
fn hostile_burst_keeps_serving() {
    let (mut envoy, upstream, _otlp) = start("inbound");
    let port = envoy.listen_port();
    let table = cases();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let reqs: Vec<(String, Headers)> = table
                .iter()
                .map(|c| (format!("/burst/{t}"), c.headers.clone()))
                .collect();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for _ in 0..3 {
                    for (path, h) in &reqs {
                        let hdrs: Vec<(&str, &[u8])> =
                            h.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                        statuses.push(
                            http::request(port, "GET", path, &hdrs, b"")
                                .map(|r| r.status)
                                .unwrap_or(0),
                        );
                        statuses.push(
                            http::request(port, "GET", "/ordinary", &[], b"")
                                .map(|r| r.status)
                                .unwrap_or(0),
                        );
                    }
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let bad: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests failed: {bad:?}",
        bad.len(),
        statuses.len()
    );
    assert_eq!(upstream.requests().len(), statuses.len());
    envoy.assert_alive();
    let c = envoy.meshwake_counters();
    assert!(c.get(stat::EXPORT_QUEUE_DEPTH).copied().unwrap_or(0) <= 8192);
    eprintln!("burst: {} requests; counters {c:?}", statuses.len());
}
