//! The wasm module's own dispatcher keeps a stream's state from `proxy_on_context_create`
//! to `proxy_on_log` and exports no `proxy_on_delete` (filters/wasm/src/dispatch.rs). These
//! streams end every way a stream can in real Envoy: answered, reset by the client while
//! the upstream still works, and answered by Envoy itself when the upstream is gone; each
//! time the `streams.active` gauge must come back down, and no state may be evicted.
use meshwake_tests::envoy::Build;
use meshwake_tests::{wait_for, Envoy, EnvoyOptions, OtlpReceiver};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

const HELD: usize = 5;
const RESET: usize = 2;

/// An upstream that accepts requests and answers each only when told: the sender gets
/// one `()` per request to answer, in arrival order.
fn held_upstream() -> (u16, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (arrived_tx, arrived) = mpsc::channel();
    let (answer, answer_rx) = mpsc::channel::<()>();
    let answer_rx = std::sync::Arc::new(std::sync::Mutex::new(answer_rx));
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let (arrived_tx, answer_rx) = (arrived_tx.clone(), answer_rx.clone());
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = arrived_tx.send(());
                if answer_rx.lock().unwrap().recv().is_ok() {
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                }
            });
        }
    });
    (port, arrived, answer)
}

fn send_get(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: shop\r\n\r\n").unwrap();
    s
}

fn status_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") && s.read(&mut b).unwrap_or(0) == 1 {
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).trim().to_string()
}

fn wait_active(envoy: &Envoy, want: u64) {
    let name = format!("{}.meshwake.streams.active", envoy.build.stat_namespace());
    wait_for(15, &format!("{name} = {want}"), || {
        let v = envoy
            .stats_now()
            .get(&name)
            .and_then(|v| v.parse::<u64>().ok());
        (v == Some(want)).then_some(())
    });
}

#[test]
fn stream_state_lives_from_request_to_log_whichever_way_the_stream_ends() {
    let otlp = OtlpReceiver::start();
    let (up, arrived, answer) = held_upstream();
    let cfg = r#"{"role":"outbound","identity":{"service":"shop","version":"v1","namespace":"shop"},"export":{"flush_interval_ms":50}}"#;
    // The wasm build's dispatcher (the native build's state is Envoy's per-stream filter).
    let opts = EnvoyOptions {
        build: Build::Wasm,
        ..Default::default()
    };
    let envoy = Envoy::start(
        opts.name("stream-lifecycle")
            .plugin_config(cfg)
            .var("UPSTREAM_PORT", up)
            .var("OTLP_PORT", otlp.port()),
    );

    // Held at the upstream: their state is live.
    let mut clients: Vec<TcpStream> = (0..HELD)
        .map(|i| send_get(envoy.listen_port(), &format!("/held/{i}")))
        .collect();
    for _ in 0..HELD {
        arrived.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    wait_active(&envoy, HELD as u64);

    // Reset by the client before any answer: Envoy still ends them through the log callback.
    for c in clients.drain(..RESET) {
        c.shutdown(Shutdown::Both).unwrap();
    }
    wait_active(&envoy, (HELD - RESET) as u64);

    // Answered: the rest end normally (the upstream threads of the reset ones take their
    // answer too, into a closed connection).
    for _ in 0..HELD {
        answer.send(()).unwrap();
    }
    for c in &mut clients {
        assert!(status_line(c).contains(" 200 "));
    }
    wait_active(&envoy, 0);

    // Answered by Envoy itself (the upstream is gone: 503 from the router).
    drop(answer);
    let mut c = send_get(envoy.listen_port(), "/gone");
    arrived.recv_timeout(Duration::from_secs(10)).unwrap();
    let line = status_line(&mut c);
    assert!(line.contains(" 503 ") || line.is_empty(), "{line}");
    wait_active(&envoy, 0);

    assert_eq!(envoy.meshwake_stat("streams_evicted"), 0);
    // Every stream was recorded at its end: 2 resets, 3 answers, 1 local reply.
    let spans = otlp.wait_spans(HELD + 1, 10);
    assert_eq!(spans.len(), HELD + 1, "{spans:?}");
}
