//! A fake OTLP/HTTP collector whose behaviour a test changes at any time: healthy, failing
//! statuses, slow, garbage, resetting connections, or not listening at all. Shared by
//! `collector_faults.rs` and `soak.rs` (`#[path]` module).
#![allow(dead_code)]
use meshwake_tests::free_port;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake collector behaves.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// 200 with an empty `ExportTraceServiceResponse`; spans are counted.
    Ok,
    /// This status with these headers, body ignored.
    Status(u16, Vec<(String, String)>),
    /// Read the request, then answer 200 after this long.
    Slow(Duration),
    /// Read the request, then answer bytes that are not HTTP.
    Garbage,
    /// Read the request, then close the connection without answering (gone mid-batch).
    Reset,
    /// Not listening at all: connections are refused.
    Down,
}

/// An OTLP/HTTP collector on a fixed port whose behaviour the test changes at any time,
/// including closing its listening socket (refused connections) and opening it again.
pub struct Collector {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    spans: Arc<Mutex<Vec<(Instant, usize)>>>,
    /// Every request: arrival time, status it got (0: none), hash of its body (a retry
    /// sends the same bytes again).
    calls: Arc<Mutex<Vec<Call>>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Collector {
    pub fn start(mode: Mode) -> Collector {
        let c = Collector {
            port: free_port(),
            mode: Arc::new(Mutex::new(mode)),
            spans: Arc::default(),
            calls: Arc::default(),
            conns: Arc::default(),
            stop: Arc::default(),
        };
        let (port, mode, spans, calls, conns, stop) = (
            c.port,
            c.mode.clone(),
            c.spans.clone(),
            c.calls.clone(),
            c.conns.clone(),
            c.stop.clone(),
        );
        std::thread::spawn(move || {
            let mut listener: Option<TcpListener> = None;
            while !stop.load(Ordering::Relaxed) {
                let down = *mode.lock().unwrap() == Mode::Down;
                if down {
                    listener = None;
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                if listener.is_none() {
                    // std sets SO_REUSEADDR: the port can be bound again right away.
                    match TcpListener::bind(("127.0.0.1", port)) {
                        Ok(l) => {
                            l.set_nonblocking(true).unwrap();
                            listener = Some(l);
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    }
                }
                match listener.as_ref().unwrap().accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        conns.lock().unwrap().push(s.try_clone().unwrap());
                        let (mode, spans, calls) = (mode.clone(), spans.clone(), calls.clone());
                        std::thread::spawn(move || serve(s, mode, spans, calls));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        c
    }

    /// Change the behaviour; going `Down` also drops every open connection.
    pub fn set(&self, mode: Mode) {
        let down = mode == Mode::Down;
        *self.mode.lock().unwrap() = mode;
        if down {
            for s in self.conns.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn spans_received(&self) -> usize {
        self.spans.lock().unwrap().iter().map(|(_, n)| n).sum()
    }

    pub fn spans_received_since(&self, t: Instant) -> usize {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.set(Mode::Down);
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut len = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() && !first {
            break;
        }
        first = false;
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

pub type Call = (Instant, u16, u64);

fn hash(b: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

fn serve(
    s: TcpStream,
    mode: Arc<Mutex<Mode>>,
    spans: Arc<Mutex<Vec<(Instant, usize)>>>,
    calls: Arc<Mutex<Vec<Call>>>,
) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    while let Some(body) = read_request(&mut r) {
        let at = Instant::now();
        let m = mode.lock().unwrap().clone();
        let (status, extra): (u16, Vec<(String, String)>) = match m {
            Mode::Ok => (200, vec![]),
            Mode::Status(code, h) => (code, h),
            Mode::Slow(d) => {
                std::thread::sleep(d);
                (200, vec![])
            }
            Mode::Garbage => {
                calls.lock().unwrap().push((at, 0, hash(&body)));
                let _ = w.write_all(b"\x00\x01garbage\xff\r\n\r\nnot http at all\r\n\r\n");
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            Mode::Reset | Mode::Down => {
                calls.lock().unwrap().push((at, 0, hash(&body)));
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
        };
        calls.lock().unwrap().push((at, status, hash(&body)));
        if status == 200 {
            let n = ExportTraceServiceRequest::decode(body.as_slice())
                .map(|req| {
                    req.resource_spans
                        .iter()
                        .flat_map(|rs| &rs.scope_spans)
                        .map(|ss| ss.spans.len())
                        .sum()
                })
                .unwrap_or(0);
            spans.lock().unwrap().push((at, n));
        }
        let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n");
        if status == 200 {
            out.push_str("content-type: application/x-protobuf\r\n");
        }
        for (k, v) in extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        if w.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}
