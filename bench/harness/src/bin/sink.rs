//! A tiny OTLP/HTTP receiver that accepts and discards: it answers every `POST` with an empty
//! `200` (a valid empty `ExportTraceServiceResponse`) and counts the spans in each
//! `ExportTraceServiceRequest` by walking just enough protobuf
//! (`resource_spans` = 1 → `scope_spans` = 2 → `spans` = 2).
//!
//! `GET /count` returns `{"spans":N,"requests":N,"bytes":N,"bad":N}` (cumulative).
//!
//! Also the upstream of the benchmark's body cases: any request to `/body/N` has its body
//! read and gets `200` with an `N`-byte body (at most 1 MiB), not counted as an export.
//!
//! Usage: `sink <port>`. One thread per connection: Envoy opens only a few to a collector.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    /// Bodies that did not decode as an ExportTraceServiceRequest (or were compressed).
    bad: AtomicU64,
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(4318);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("sink: bind 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    let counts = Arc::new(Counts::default());
    for stream in listener.incoming().flatten() {
        let c = counts.clone();
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let _ = serve(stream, &c);
        });
    }
}

fn serve(stream: TcpStream, c: &Counts) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut r = BufReader::with_capacity(1 << 16, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request_line = line.trim_end().to_string();
        if request_line.is_empty() {
            continue;
        }
        let (mut len, mut chunked, mut encoded) = (0usize, false, false);
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "content-length" => len = v.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "content-encoding" => encoded = !v.eq_ignore_ascii_case("identity"),
                    _ => {}
                }
            }
        }
        body.clear();
        if chunked {
            read_chunked(&mut r, &mut body)?;
        } else {
            body.resize(len, 0);
            r.read_exact(&mut body)?;
        }
        if request_line.starts_with("GET /count") {
            let j = format!(
                "{{\"spans\":{},\"requests\":{},\"bytes\":{},\"bad\":{}}}",
                c.spans.load(Relaxed),
                c.requests.load(Relaxed),
                c.bytes.load(Relaxed),
                c.bad.load(Relaxed)
            );
            write!(
                out,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{j}",
                j.len()
            )?;
            continue;
        }
        if let Some(n) = body_size(&request_line) {
            // One write: head and body reach Envoy together, as from a buffering server.
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {n}\r\n\r\n"
            )
            .into_bytes();
            resp.extend_from_slice(&BODY[..n]);
            out.write_all(&resp)?;
            continue;
        }
        c.requests.fetch_add(1, Relaxed);
        c.bytes.fetch_add(body.len() as u64, Relaxed);
        match (encoded, count_spans(&body)) {
            (false, Some(n)) => {
                c.spans.fetch_add(n, Relaxed);
            }
            _ => {
                c.bad.fetch_add(1, Relaxed);
            }
        }
        out.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )?;
    }
}

/// The largest body the sink answers with, and its bytes.
const MAX_BODY: usize = 1 << 20;
static BODY: [u8; MAX_BODY] = [b'x'; MAX_BODY];

/// `N` of a `<METHOD> /body/N HTTP/1.1` request line.
fn body_size(request_line: &str) -> Option<usize> {
    let path = request_line.split(' ').nth(1)?;
    let n: usize = path.strip_prefix("/body/")?.parse().ok()?;
    Some(n.min(MAX_BODY))
}

fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size =
            usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            // Trailers until the blank line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..])?;
        line.clear();
        r.read_line(&mut line)?;
    }
}

/// Walks one protobuf message, calling `f(field, bytes)` for each length-delimited field.
fn fields(mut b: &[u8], mut f: impl FnMut(u64, &[u8]) -> Option<()>) -> Option<()> {
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match key & 7 {
            0 => {
                varint(&mut b)?;
            }
            1 => b = b.get(8..)?,
            5 => b = b.get(4..)?,
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                let v = b.get(..n)?;
                b = b.get(n..)?;
                f(key >> 3, v)?;
            }
            _ => return None,
        }
    }
    Some(())
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Spans in an `ExportTraceServiceRequest`, `None` if it does not parse.
fn count_spans(body: &[u8]) -> Option<u64> {
    let mut n = 0u64;
    fields(body, |f, rs| {
        if f != 1 {
            return Some(());
        }
        fields(rs, |f, ss| {
            if f != 2 {
                return Some(());
            }
            fields(ss, |f, _span| {
                if f == 2 {
                    n += 1;
                }
                Some(())
            })
        })
    })?;
    Some(n)
}
