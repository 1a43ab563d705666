//! Bodies and trailers through a real Envoy. The module exports no body or trailer callbacks
//! (`scripts/build-wasm.sh`, checked in `module_hygiene.rs`), so Envoy never enters the VM
//! for them: a request and a response, each with a body in several chunks and trailers,
//! still pass byte for byte, the trace context still reaches the upstream and the span is
//! still exported with the response's status.
use meshwake_tests::mesh::traceparent;
use meshwake_tests::{paths, Envoy, EnvoyOptions, OtlpReceiver};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

const CHUNKS: usize = 3;
const CHUNK: usize = 2000;
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A message as read off the wire: head lines, de-chunked body, trailer lines.
#[derive(Debug, Default)]
struct Message {
    head: Vec<String>,
    body: Vec<u8>,
    trailers: Vec<String>,
}

impl Message {
    fn header(&self, name: &str) -> Option<String> {
        find(&self.head, name)
    }
    fn trailer(&self, name: &str) -> Option<String> {
        find(&self.trailers, name)
    }
}

fn find(lines: &[String], name: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// Reads one chunked HTTP/1.1 message (the first line included in `head`).
fn read_chunked(r: &mut impl BufRead) -> Message {
    let mut m = Message::default();
    let line = |r: &mut dyn BufRead| {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    };
    loop {
        let l = line(r);
        if l.is_empty() {
            break;
        }
        m.head.push(l);
    }
    assert!(
        m.header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked")),
        "not chunked: {:?}",
        m.head
    );
    loop {
        let size = usize::from_str_radix(line(r).split(';').next().unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        let mut chunk = vec![0; size + 2];
        r.read_exact(&mut chunk).unwrap();
        m.body.extend_from_slice(&chunk[..size]);
    }
    loop {
        let l = line(r);
        if l.is_empty() {
            return m;
        }
        m.trailers.push(l);
    }
}

/// Writes `CHUNKS` chunks of `CHUNK` bytes of `fill`, each in its own write a few ms apart
/// (so Envoy reads them separately), then the last chunk with `trailer`.
fn write_chunked(w: &mut TcpStream, head: &str, fill: u8, trailer: &str) {
    w.write_all(head.as_bytes()).unwrap();
    for _ in 0..CHUNKS {
        std::thread::sleep(Duration::from_millis(20));
        let mut c = format!("{CHUNK:x}\r\n").into_bytes();
        c.extend(std::iter::repeat_n(fill, CHUNK));
        c.extend_from_slice(b"\r\n");
        w.write_all(&c).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    w.write_all(format!("0\r\n{trailer}\r\n\r\n").as_bytes())
        .unwrap();
}

/// An upstream that reads one chunked request and answers with a chunked body and a trailer.
fn upstream() -> (u16, mpsc::Receiver<Message>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut w = conn.try_clone().unwrap();
            let req = read_chunked(&mut BufReader::new(conn));
            let _ = tx.send(req);
            write_chunked(
                &mut w,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-upstream-trailer\r\n\r\n",
                b'u',
                "x-upstream-trailer: done",
            );
        }
    });
    (port, rx)
}

/// `single.yaml.tmpl` with HTTP/1.1 trailers forwarded both ways (Envoy drops them by default).
fn template_with_trailers() -> String {
    let t = std::fs::read_to_string(paths::root().join("tests/envoy/single.yaml.tmpl")).unwrap();
    let hcm = "          stat_prefix: main\n";
    let cluster = "  - name: upstream\n    connect_timeout: 1s\n";
    assert!(
        t.contains(hcm) && t.contains(cluster),
        "single.yaml.tmpl changed"
    );
    t.replace(
        hcm,
        &format!("{hcm}          http_protocol_options: {{ enable_trailers: true }}\n"),
    )
    .replace(
        cluster,
        &format!(
            "{cluster}    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {{ http_protocol_options: {{ enable_trailers: true }} }}\n"
        ),
    )
}

#[test]
fn chunked_bodies_and_trailers_pass_untouched_and_the_request_is_traced() {
    let otlp = OtlpReceiver::start();
    let (up, requests) = upstream();
    let cfg = r#"{"role":"outbound","identity":{"service":"shop","version":"v1","namespace":"shop"},"export":{"flush_interval_ms":50}}"#;
    let envoy = Envoy::start(
        EnvoyOptions::default()
            .name("bodies")
            .template(template_with_trailers())
            .plugin_config(cfg)
            .var("UPSTREAM_PORT", up)
            .var("OTLP_PORT", otlp.port()),
    );

    let mut s = TcpStream::connect(("127.0.0.1", envoy.listen_port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\ntrailer: x-client-trailer\r\ntraceparent: 00-{CLIENT_TRACE}-00f067aa0ba902b7-01\r\n\r\n"
    );
    write_chunked(&mut s, &head, b'c', "x-client-trailer: sent");
    let resp = read_chunked(&mut BufReader::new(s));

    let req = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(req.body, vec![b'c'; CHUNKS * CHUNK], "request body changed");
    assert_eq!(req.trailer("x-client-trailer").as_deref(), Some("sent"));
    let tp = traceparent(&req.header("traceparent").expect("no traceparent upstream"));
    assert_eq!(tp.trace_id, CLIENT_TRACE, "the trace continues");
    assert_ne!(tp.parent_id, "00f067aa0ba902b7", "our span is the parent");
    assert!(
        req.header("x-meshwake-peer").is_some(),
        "identity sent: {:?}",
        req.head
    );

    assert!(resp.head[0].contains(" 200 "), "{:?}", resp.head);
    assert_eq!(
        resp.body,
        vec![b'u'; CHUNKS * CHUNK],
        "response body changed"
    );
    assert_eq!(resp.trailer("x-upstream-trailer").as_deref(), Some("done"));

    let spans = otlp.wait_spans(1, 10);
    let span = spans
        .iter()
        .find(|s| s.trace_id_hex() == CLIENT_TRACE)
        .unwrap_or_else(|| panic!("no span of the request: {spans:?}"));
    assert_eq!(span.span_id_hex(), tp.parent_id);
    assert_eq!(span.attr_int("http.response.status_code"), Some(200));
}
