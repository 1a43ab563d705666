//! `meshwake gate` and `meshwake impact --watch` against a real span store: synthetic mesh
//! traffic (seeded) is exported as OTLP JSON to a real `meshwake collect`, which writes the
//! `spans.db` the gate then serves verdicts from. The verdicts come from the analysis run by
//! the gate; nothing here knows them in advance except by the traffic's design.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Start of the synthetic traffic (Unix s): in the past, as a recorded demo would be.
const T0_S: u64 = 1_750_000_000;
/// Edge requests and how long they span.
const TRACES: u64 = 1200;
const TRAFFIC_MS: u64 = 120_000;
/// search@v2 serves this many requests only: below the gate's default minimum of 20.
const FEW: u64 = 6;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn attr(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

/// One span as OTLP JSON, in a resource of its own deployment.
#[allow(clippy::too_many_arguments)]
fn span(
    dep: (&str, &str),
    trace: &str,
    id: &str,
    parent: Option<&str>,
    kind: u8,
    role: &str,
    (start, end): (u64, u64),
    status: u16,
    peer: Option<(&str, &str)>,
    name: &str,
) -> Value {
    let mut attrs = vec![
        attr("meshwake.role", json!({ "stringValue": role })),
        attr(
            "http.response.status_code",
            json!({ "intValue": status.to_string() }),
        ),
    ];
    if let Some((service, version)) = peer {
        attrs.push(attr("peer.service", json!({ "stringValue": service })));
        attrs.push(attr(
            "meshwake.peer.version",
            json!({ "stringValue": version }),
        ));
    }
    let mut s = json!({
        "traceId": trace, "spanId": id, "name": name, "kind": kind,
        "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
        "attributes": attrs,
    });
    if let Some(p) = parent {
        s["parentSpanId"] = json!(p);
    }
    if status >= 500 {
        s["status"] = json!({ "code": 2 });
    }
    json!({
        "resource": { "attributes": [
            attr("service.name", json!({ "stringValue": dep.0 })),
            attr("service.version", json!({ "stringValue": dep.1 })),
        ]},
        "scopeSpans": [{ "spans": [s] }],
    })
}

/// The traffic's design: which version serves a request and how it behaves.
/// pay@v2 fails 40 % of its requests; cart@v2 is as good as cart@v1; search@v2 is rare.
fn pick(route: u64, i: u64, rng: &mut Rng) -> (&'static str, &'static str, f64) {
    let coin = rng.f64() < 0.5;
    match route {
        0 => (
            "pay",
            if coin { "v1" } else { "v2" },
            if coin { 0.005 } else { 0.4 },
        ),
        1 => ("cart", if coin { "v1" } else { "v2" }, 0.005),
        _ => {
            let rare = i % 3 == 2 && i / 3 >= TRACES / 3 - FEW;
            ("search", if rare { "v2" } else { "v1" }, 0.005)
        }
    }
}

/// One trace: edge SERVER → edge CLIENT → service SERVER.
fn trace(i: u64, rng: &mut Rng) -> Vec<Value> {
    let route = i % 3;
    let (service, version, error_p) = pick(route, i, rng);
    let trace_id = format!("{:032x}", rng.next() as u128 | 1);
    let ids: Vec<String> = (0..3).map(|_| format!("{:016x}", rng.next() | 1)).collect();
    let start = T0_S * 1_000_000_000 + i * TRAFFIC_MS * 1_000_000 / TRACES;
    let self_ns = 4_000_000 + (rng.f64() * 2_000_000.0) as u64;
    let failed = rng.f64() < error_p;
    let status = if failed { 503 } else { 200 };
    let path = format!("/{service}");
    let (c_start, s_start) = (start + 500_000, start + 700_000);
    let s_end = s_start + self_ns;
    let (c_end, end) = (s_end + 200_000, s_end + 700_000);
    vec![
        span(
            ("edge", "v1"),
            &trace_id,
            &ids[0],
            None,
            2,
            "edge",
            (start, end),
            status,
            None,
            &format!("GET {path}"),
        ),
        span(
            ("edge", "v1"),
            &trace_id,
            &ids[1],
            Some(&ids[0]),
            3,
            "outbound",
            (c_start, c_end),
            status,
            Some((service, version)),
            &format!("egress {service}"),
        ),
        span(
            (service, version),
            &trace_id,
            &ids[2],
            Some(&ids[1]),
            2,
            "inbound",
            (s_start, s_end),
            status,
            None,
            &format!("GET {path}"),
        ),
    ]
}

fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The spans.db every test reads, written once through a real collector.
fn spans_db() -> &'static Path {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("spans.db");
        let collector = common::start_collector(&["--db", db.to_str().unwrap()]);
        let mut rng = Rng(7);
        let mut batch = Vec::new();
        let mut sent = 0;
        for i in 0..TRACES {
            batch.extend(trace(i, &mut rng));
            if batch.len() >= 300 || i + 1 == TRACES {
                let body = json!({ "resourceSpans": batch }).to_string();
                let r = common::request(
                    &collector.addr,
                    "POST",
                    "/v1/traces",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                assert_eq!(r.status, 200, "{}", r.text());
                sent += batch.len();
                batch.clear();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = common::request(&collector.addr, "GET", "/metrics", &[], b"").text();
            let stored = metric_value(&m, "meshwake_collector_spans_stored_total").unwrap_or(0.0);
            if stored as usize >= sent {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "collector stored {stored} of {sent}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(collector);
        (dir, db)
    })
    .1
}

/// A running `meshwake gate`, killed on drop.
struct Gate {
    child: Child,
    addr: String,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gate {
    fn start(args: &[&str]) -> Gate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshwake"))
            .args(["gate", "--listen", "127.0.0.1:0", "--interval", "1s"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // The evaluator may report a source down before the server says where it listens.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let listening = lines
            .by_ref()
            .map(Result::unwrap)
            .find(|l| l.contains("listening on http://"))
            .expect("the gate exited before listening");
        let addr = listening
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap()
            .to_string();
        // Keep reading stderr so that the gate never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let gate = Gate { child, addr };
        gate.wait_evaluations(1);
        gate
    }

    fn metrics(&self) -> String {
        common::request(&self.addr, "GET", "/metrics", &[], b"").text()
    }

    fn wait_evaluations(&self, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric_value(&self.metrics(), "meshwake_gate_evaluations_total").unwrap_or(0.0)
            < f64::from(n)
        {
            assert!(
                Instant::now() < deadline,
                "no evaluation: {}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn verdict(&self, deployment: &str) -> (u16, Value) {
        let r = common::request(
            &self.addr,
            "GET",
            &format!("/v1/verdict?deployment={deployment}"),
            &[],
            b"",
        );
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    fn flagger(&self, body: &str) -> (u16, Value) {
        let r = common::request(
            &self.addr,
            "POST",
            "/v1/flagger",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        (
            r.status,
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }
}

fn db_gate() -> Gate {
    Gate::start(&["--db", spans_db().to_str().unwrap(), "--window", "10m"])
}

#[test]
fn verdicts_pass_fail_inconclusive() {
    let gate = db_gate();
    let (status, bad) = gate.verdict("pay@v2");
    assert_eq!(status, 200);
    assert_eq!(bad["verdict"], "fail", "{bad:#}");
    assert_eq!(bad["deployment"], "pay@v2");
    assert!(
        bad["reason"].as_str().unwrap().contains("suspect #1"),
        "{bad:#}"
    );
    assert_eq!(bad["suspects"][0]["deployment"], "pay@v2");
    assert!(
        bad["suspects"][0]["edge_routes"][0]
            .as_str()
            .unwrap()
            .contains("/pay"),
        "{bad:#}"
    );
    assert!(bad["window"]["spans"].as_u64().unwrap() > 3 * (TRACES - 10));
    assert_eq!(bad["window"]["seconds"], 600.0);

    for good in ["pay@v1", "cart@v2", "cart@v1"] {
        let (status, v) = gate.verdict(good);
        assert_eq!(status, 200);
        assert_eq!(v["verdict"], "pass", "{v:#}");
        assert_eq!(v["missing_requests"], 0);
        assert!(
            v["reason"].as_str().unwrap().contains("not a suspect"),
            "{v:#}"
        );
        // Suspects are listed whoever is asked about: a controller's log shows the culprit.
        assert_eq!(v["suspects"][0]["deployment"], "pay@v2");
    }

    let (status, few) = gate.verdict("search@v2");
    assert_eq!(status, 200);
    assert_eq!(few["verdict"], "inconclusive", "{few:#}");
    assert_eq!(few["requests"], FEW);
    assert_eq!(few["missing_requests"], 20 - FEW);
    assert!(
        few["reason"].as_str().unwrap().contains("14 more needed"),
        "{few:#}"
    );
    assert!(few.get("error").is_none());

    // The same store with a higher bar: nobody has enough traffic, nobody is judged...
    drop(gate);
    let strict = Gate::start(&[
        "--db",
        spans_db().to_str().unwrap(),
        "--window",
        "10m",
        "--min-requests",
        "1000",
    ]);
    let (_, v) = strict.verdict("cart@v2");
    assert_eq!(v["verdict"], "inconclusive", "{v:#}");
    // ...and a short window slides to the end of the recording: fewer spans.
    let short = Gate::start(&["--db", spans_db().to_str().unwrap(), "--window", "30s"]);
    let (_, v) = short.verdict("cart@v1");
    let spans = v["window"]["spans"].as_u64().unwrap();
    assert!(spans > 3 * TRACES / 5 && spans < 3 * TRACES / 3, "{v:#}");
    assert_eq!(v["window"]["seconds"], 30.0);
}

#[test]
fn flagger_webhook_contract() {
    let gate = db_gate();
    let payload = |meta: Value| {
        json!({ "name": "pay", "namespace": "shop", "phase": "Progressing",
                "checksum": "abc", "metadata": meta })
        .to_string()
    };
    let (status, v) = gate.flagger(&payload(json!({ "deployment": "cart@v2" })));
    assert_eq!(
        (status, v["verdict"].as_str()),
        (200, Some("pass")),
        "{v:#}"
    );
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .starts_with("canary shop/pay (Progressing): "));

    let (status, v) = gate.flagger(&payload(json!({ "deployment": "pay@v2" })));
    assert_eq!(status, 412, "a failing canary must halt the rollout: {v:#}");
    assert_eq!(v["verdict"], "fail");
    assert!(
        v["reason"].as_str().unwrap().contains("own errors"),
        "{v:#}"
    );

    // Too little traffic: proceed by default, halt when asked to.
    let (status, v) = gate.flagger(&payload(json!({ "deployment": "search@v2" })));
    assert_eq!((status, v["verdict"].as_str()), (200, Some("inconclusive")));
    let (status, _) = gate.flagger(&payload(
        json!({ "deployment": "search@v2", "on_inconclusive": "halt" }),
    ));
    assert_eq!(status, 412);

    // Bad payloads are refused with the reason, never crash the gate.
    for (body, needle) in [
        ("{not json".to_string(), "not a Flagger webhook payload"),
        (
            json!({ "metadata": {} }).to_string(),
            "not a Flagger webhook payload",
        ),
        (payload(json!({})), "needs metadata deployment"),
        (payload(json!({ "deployment": "pay" })), "SERVICE@VERSION"),
        (
            payload(json!({ "deployment": "pay@v2", "deploymnet": "x" })),
            "unknown metadata key",
        ),
        (
            payload(json!({ "deployment": "pay@v2", "on_inconclusive": "later" })),
            "proceed or halt",
        ),
    ] {
        let (status, v) = gate.flagger(&body);
        assert_eq!(status, 400, "{body}: {v:#}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{body}: {v:#}"
        );
    }
    // Too large: announced, refused before the body is sent.
    let r = common::request(
        &gate.addr,
        "POST",
        "/v1/flagger",
        &[("Content-Length", "10000000"), ("Expect", "100-continue")],
        b"",
    );
    assert_eq!(r.status, 413);
    let r = common::request(&gate.addr, "GET", "/v1/flagger", &[], b"");
    assert_eq!(r.status, 405);
    assert!(r.head.contains("allow: POST"), "{}", r.head);
}

#[test]
fn bad_questions_get_clear_errors_and_metrics_show_the_verdicts() {
    let gate = db_gate();
    for (path, status, needle) in [
        ("/v1/verdict", 400, "missing query parameter deployment"),
        ("/v1/verdict?deployment=pay", 400, "SERVICE@VERSION"),
        ("/v1/verdict?deployment=%ZZ", 400, "missing query parameter"),
        ("/v2/anything", 404, "meshwake gate --help"),
    ] {
        let r = common::request(&gate.addr, "GET", path, &[], b"");
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.text().contains(needle), "{path}: {}", r.text());
    }
    let (status, v) = gate.verdict("nosuch@v1");
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "inconclusive");
    assert_eq!(v["error"], "unknown_deployment", "{v:#}");
    assert!(v["reason"]
        .as_str()
        .unwrap()
        .contains("unknown deployment nosuch@v1"));

    gate.verdict("pay@v2");
    gate.verdict("cart@v2");
    let m = gate.metrics();
    for line in [
        "meshwake_gate_verdict{deployment=\"pay@v2\",verdict=\"fail\"} 1",
        "meshwake_gate_verdict{deployment=\"pay@v2\",verdict=\"pass\"} 0",
        "meshwake_gate_verdict{deployment=\"cart@v2\",verdict=\"pass\"} 1",
        "meshwake_gate_verdict{deployment=\"nosuch@v1\",verdict=\"inconclusive\"} 1",
        "meshwake_gate_source_up 1",
        "meshwake_gate_suspects 1",
        "meshwake_gate_http_requests_total{endpoint=\"verdict\",code=\"400\"} 3",
        "meshwake_gate_http_requests_total{endpoint=\"other\",code=\"404\"} 1",
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    assert!(
        metric_value(&m, "meshwake_gate_window_spans").unwrap() > 3000.0,
        "{m}"
    );
    assert!(metric_value(&m, "meshwake_gate_last_evaluation_age_seconds").unwrap() < 60.0);
    let r = common::request(&gate.addr, "GET", "/healthz", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
}

#[test]
fn source_down_is_inconclusive_and_the_gate_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("later.db");
    let gate = Gate::start(&["--db", db.to_str().unwrap(), "--window", "10m"]);
    let (status, v) = gate.verdict("pay@v2");
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "inconclusive");
    assert_eq!(v["error"], "source_down", "{v:#}");
    assert!(
        v["reason"].as_str().unwrap().contains("does not exist"),
        "{v:#}"
    );
    let (status, _) = gate.flagger(
        &json!({"name": "pay", "namespace": "shop", "metadata": {"deployment": "pay@v2"}})
            .to_string(),
    );
    assert_eq!(status, 503);
    assert!(gate.metrics().contains("meshwake_gate_source_up 0"));

    // The store appears (the collector started late): the next evaluations find the culprit.
    // The write-ahead log first (the collector was killed before a checkpoint), then the file.
    let wal = spans_db().with_extension("db-wal");
    if wal.exists() {
        std::fs::copy(&wal, db.with_extension("db-wal")).unwrap();
    }
    std::fs::copy(spans_db(), &db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = gate.verdict("pay@v2");
        if v["verdict"] == "fail" {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(gate.metrics().contains("meshwake_gate_source_up 1"));
}

#[test]
fn help_documents_every_endpoint() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args(["gate", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "GET  /v1/verdict?deployment=SERVICE@VERSION",
        "POST /v1/flagger",
        "GET  /metrics",
        "GET  /healthz",
        "on_inconclusive",
        "successCondition: result.verdict != \"fail\"",
        "--window",
        "--min-requests",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    // No source is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args(["gate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn impact_watch_prints_verdict_changes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args(["impact", "--db", spans_db().to_str().unwrap()])
        .args(["--watch", "1s", "--window", "10m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The header and one line per deployment (7), then three more evaluations.
    let mut seen = Vec::new();
    let mut deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
            if seen.len() == 8 {
                deadline = Instant::now() + Duration::from_secs(3);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.starts_with("watching span store"), "{text}");
    let fail = seen
        .iter()
        .find(|l| l.contains("pay@v2: new -> FAIL: pay@v2 is suspect #1"));
    assert!(fail.is_some(), "{text}");
    assert!(text.contains("cart@v2: new -> pass"), "{text}");
    assert!(text.contains("search@v2: new -> inconclusive"), "{text}");
    // Nothing changes afterwards: no second line for pay@v2 (only heartbeats would follow).
    assert_eq!(text.matches("pay@v2:").count(), 1, "{text}");
}
