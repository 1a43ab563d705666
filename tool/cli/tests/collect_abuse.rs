//! `meshwake collect` under abuse: slow clients (headers or body trickled, then stalled),
//! clients vanishing mid-body, and hundreds of open connections. Ordinary exports keep being
//! answered quickly and stored throughout. Silent, idle and stalled connections are closed by
//! the header/body read timeouts, and connections past the cap are closed on accept.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{request, start_collector};

/// A valid OTLP/JSON export with one span.
fn body(i: usize) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"abuse"}}}}]}},
        "scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"{i:016x}","name":"GET /x","kind":2,
        "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000005000000"}}]}}]}}]}}"#
    )
}

/// Ordinary exports answered 200, each within `max`; returns the slowest.
fn ordinary_exports(addr: &str, from: usize, n: usize, max: Duration) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in from..from + n {
        let t = Instant::now();
        let r = request(
            addr,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/json")],
            body(i).as_bytes(),
        );
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            took < max,
            "export {i} took {took:?} while the collector was abused"
        );
        slowest = slowest.max(took);
    }
    slowest
}

/// `meshwake_collector_spans_stored_total` from `/metrics`.
fn stored(addr: &str) -> u64 {
    let m = request(addr, "GET", "/metrics", &[], b"").text();
    m.lines()
        .find_map(|l| l.strip_prefix("meshwake_collector_spans_stored_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn slow_and_stalled_clients_do_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spans.db");
    let c = start_collector(&["--db", db.to_str().unwrap()]);
    let mut stalled = Vec::new();
    // 100 clients that send half a request line and stop.
    for _ in 0..100 {
        let mut s = TcpStream::connect(&c.addr).unwrap();
        s.write_all(b"POST /v1/tra").unwrap();
        stalled.push(s);
    }
    // 100 clients that send headers promising 1 MB and trickle a few bytes.
    for _ in 0..100 {
        let mut s = TcpStream::connect(&c.addr).unwrap();
        s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"resourceSpans\":[")
            .unwrap();
        stalled.push(s);
    }
    let slowest = ordinary_exports(&c.addr, 1, 20, Duration::from_secs(2));
    // Clients that vanish mid-body: nothing stored from them, nothing broken.
    for _ in 0..50 {
        let mut s = TcpStream::connect(&c.addr).unwrap();
        s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5000\r\n\r\n\x0a\x80")
            .unwrap();
        drop(s);
    }
    // A trickling client keeps trickling while others are served.
    let mut trickle = TcpStream::connect(&c.addr).unwrap();
    trickle.write_all(b"GET /heal").unwrap();
    for b in b"thz HTTP/1.1\r\nHost: x\r\n" {
        trickle.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    ordinary_exports(&c.addr, 100, 10, Duration::from_secs(2));
    drop(stalled);
    let r = request(&c.addr, "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored(&c.addr) < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stored(&c.addr),
        30,
        "every ordinary span stored, none from the broken clients"
    );
    eprintln!("200 stalled + 50 vanished clients: slowest ordinary export {slowest:?}");
}

#[test]
fn hundreds_of_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spans.db");
    let c = start_collector(&["--db", db.to_str().unwrap()]);
    // 400 idle keep-alive connections held open.
    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(&c.addr).unwrap())
        .collect();
    // 16 threads × 10 exports concurrently.
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let addr = c.addr.clone();
            std::thread::spawn(move || {
                ordinary_exports(&addr, 1000 + t * 10, 10, Duration::from_secs(5))
            })
        })
        .collect();
    let slowest = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap();
    drop(idle);
    // Every span of the 160 exports was stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored(&c.addr) < 160 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows = stored(&c.addr);
    assert_eq!(rows, 160, "spans stored");
    eprintln!("400 idle + 16 concurrent clients: slowest export {slowest:?}, {rows} spans stored");
}

/// Everything the server sends until it closes the connection; panics if it is still open
/// after `limit` (a liveness bound, far above the timeouts under test).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "connection still open after {limit:?} ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// A counter from `/metrics`.
fn counter(addr: &str, name: &str) -> u64 {
    let m = request(addr, "GET", "/metrics", &[], b"").text();
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {m}"))
}

#[test]
fn silent_idle_and_stalled_connections_are_closed_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spans.db");
    let c = start_collector(&[
        "--db",
        db.to_str().unwrap(),
        "--header-read-timeout-secs",
        "3",
        "--body-read-timeout-secs",
        "2",
        "--max-connections",
        "8",
    ]);
    let limit = Duration::from_secs(30);
    // Eight clients that connect and send nothing take every slot.
    let mut silent: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&c.addr).unwrap())
        .collect();
    // The ninth is closed on accept, without an answer.
    let mut ninth = TcpStream::connect(&c.addr).unwrap();
    let _ = ninth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = read_until_closed(&mut ninth, limit);
    assert!(answer.is_empty(), "served past the cap: {answer:?}");
    // The header-read timeout frees the slots: each silent client is disconnected.
    for s in &mut silent {
        let sent = read_until_closed(s, limit);
        assert!(!sent.starts_with(b"HTTP/1.1 200"), "{sent:?}");
    }
    // A keep-alive connection left idle after its request is closed too.
    let mut idle = TcpStream::connect(&c.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let sent = read_until_closed(&mut idle, limit);
    assert!(sent.starts_with(b"HTTP/1.1 200"), "{sent:?}");
    // A body that stops arriving: 408, then the connection is closed.
    let mut stalled = TcpStream::connect(&c.addr).unwrap();
    stalled
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"resourceSpans\":[")
        .unwrap();
    let sent = read_until_closed(&mut stalled, limit);
    assert!(
        sent.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );
    // The collector still serves, and counted what it refused.
    ordinary_exports(&c.addr, 1, 3, limit);
    assert!(counter(&c.addr, "meshwake_collector_rejected_connections_total") >= 1);
    assert_eq!(
        counter(&c.addr, "meshwake_collector_rejected_body_timeout_total"),
        1
    );
    assert_eq!(stored(&c.addr), 3);
}
