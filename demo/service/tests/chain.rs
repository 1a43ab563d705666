//! Two demo services chained: front → back. Checks header forwarding and failure propagation.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Service {
    child: Child,
    addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshwake-demo-service"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--latency-ms-p50",
            "1",
            "--latency-jitter-ms",
            "0",
            "--seed",
            "7",
        ])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    Service { child, addr }
}

/// Minimal HTTP/1.1 GET; returns (status, body).
fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").unwrap().1;
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn forwards_trace_headers_downstream() {
    let back = start(&["--service", "back", "--version", "v2"]);
    let echo = format!("http://{}/echo", back.addr);
    let front = start(&[
        "--service",
        "front",
        "--call",
        &echo,
        "--call",
        &echo,
        "--parallel",
    ]);
    let (status, body) = get(
        &front.addr,
        "/checkout",
        &[
            ("traceparent", TRACEPARENT),
            ("tracestate", "vendor=1"),
            ("baggage", "user=42"),
            ("x-b3-sampled", "1"),
            ("x-request-id", "req-1"),
            ("authorization", "do-not-forward"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["service"], "front");
    let downstream = body["downstream"].as_array().unwrap();
    assert_eq!(downstream.len(), 2);
    for d in downstream {
        assert_eq!(d["status"], 200);
        let h = &d["body"]["headers"];
        assert_eq!(h["traceparent"], TRACEPARENT);
        assert_eq!(h["tracestate"], "vendor=1");
        assert_eq!(h["baggage"], "user=42");
        assert_eq!(h["x-b3-sampled"], "1");
        assert_eq!(h["x-request-id"], "req-1");
        assert!(h.get("authorization").is_none(), "{h}");
        assert_eq!(d["body"]["version"], "v2");
    }
}

#[test]
fn propagates_downstream_failure_as_502() {
    let back = start(&["--service", "back", "--error-rate", "1"]);
    let front = start(&[
        "--service",
        "front",
        "--call",
        &format!("http://{}/pay", back.addr),
    ]);
    let (status, body) = get(&front.addr, "/", &[]);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["downstream"][0]["status"], 500);

    // An unreachable downstream fails the same way.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let front = start(&[
        "--call",
        &format!("http://{dead}/"),
        "--downstream-timeout-ms",
        "500",
    ]);
    let (status, body) = get(&front.addr, "/", &[]);
    assert_eq!(status, 502);
    assert!(body["downstream"][0]["error"].is_string(), "{body}");
}

#[test]
fn routes_through_outbound_sidecar_with_host_header() {
    // The "sidecar" here is the back service itself: what matters is where we connect and the Host.
    let back = start(&["--service", "back"]);
    let front = start(&[
        "--call",
        "http://payments.mesh:9080/echo",
        "--outbound",
        &back.addr,
    ]);
    let (status, body) = get(&front.addr, "/", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["downstream"][0]["body"]["headers"]["host"],
        "payments.mesh:9080"
    );
    assert_eq!(get(&back.addr, "/healthz", &[]).0, 200);
}

#[test]
fn fallback_absorbs_a_failing_call_and_marks_the_answer_degraded() {
    let back = start(&["--service", "back", "--error-rate", "1"]);
    let url = format!("http://{}/recommend", back.addr);
    let front = start(&["--service", "front", "--call", &url, "--fallback", &url]);
    let (status, body) = get(&front.addr, "/", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["degraded"], serde_json::json!([url]));
    assert_eq!(body["downstream"][0]["status"], 500);
    // Its caller sees the marker on the answer.
    let top = start(&["--call", &format!("http://{}/", front.addr)]);
    let (status, body) = get(&top.addr, "/", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["downstream"][0]["degraded"], true);
}

#[test]
fn crash_closes_the_connection_unanswered_and_callers_reuse_connections() {
    let crashing = start(&["--reset-rate", "1"]);
    let mut s = TcpStream::connect(&crashing.addr).unwrap();
    s.write_all(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert_eq!(resp, "", "answered: {resp}");
    // Health checks are never crashed.
    assert_eq!(get(&crashing.addr, "/healthz", &[]).0, 200);

    // Ten calls from front to back go over pooled connections, not ten new ones.
    let back = start(&["--service", "back"]);
    let front = start(&["--call", &format!("http://{}/echo", back.addr)]);
    let ports: std::collections::BTreeSet<String> = (0..10)
        .map(|_| {
            let (status, body) = get(&front.addr, "/", &[]);
            assert_eq!(status, 200, "{body}");
            body["downstream"][0]["body"]["peer"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ports.len() <= 2, "{} connections for 10 calls", ports.len());
}
