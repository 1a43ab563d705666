//! A fixed-rate (open-loop) HTTP/1.1 load generator, like wrk2: request `i` is due at
//! `start + i / rate`, and its latency is measured from that due time, not from when a
//! connection became free, so a stalled server shows up in the percentiles instead of
//! silently lowering the rate (no coordinated omission).
//!
//! Usage: `load --port P --rate R --duration S [--connections C] [--path /] [--header 'k: v']...
//! [--body-bytes N]` (N > 0: each request is a `POST` with an N-byte body).
//! Prints one JSON object: sent, ok, non_2xx, errors, rate achieved, latency percentiles (µs).
//! Single-threaded epoll loop (mio); timer resolution is epoll's 1 ms, so requests leave in
//! small bursts at high rates (e.g. 20 per ms at 20,000/s), all still timed from their due time.
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

struct Conn {
    sock: TcpStream,
    /// Due time of the request in flight.
    busy: Option<Instant>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

struct Args {
    port: u16,
    rate: f64,
    duration: f64,
    connections: usize,
    request: Vec<u8>,
}

fn args() -> Args {
    let mut a = Args {
        port: 10000,
        rate: 1000.0,
        duration: 10.0,
        connections: 16,
        request: Vec::new(),
    };
    let (mut path, mut headers, mut body) = ("/".to_string(), Vec::new(), 0usize);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--port" => a.port = v.parse().unwrap_or(a.port),
            "--rate" => a.rate = v.parse().unwrap_or(a.rate),
            "--duration" => a.duration = v.parse().unwrap_or(a.duration),
            "--connections" => a.connections = v.parse().unwrap_or(a.connections),
            "--path" => path = v,
            "--header" => headers.push(v),
            "--body-bytes" => body = v.parse().unwrap_or(0),
            _ => {
                eprintln!("load: unknown argument {k}");
                std::process::exit(2)
            }
        }
    }
    let method = if body > 0 { "POST" } else { "GET" };
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\n");
    if body > 0 {
        req.push_str(&format!("content-length: {body}\r\n"));
    }
    for h in headers {
        req.push_str(&h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&"x".repeat(body));
    a.request = req.into_bytes();
    a
}

fn connect(addr: SocketAddr, poll: &Poll, token: usize) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    poll.registry().register(
        &mut s,
        Token(token),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(s)
}

/// Length of a complete response at the start of `b` and its status, if complete.
fn response(b: &[u8]) -> Option<(usize, u16)> {
    let end = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&b[..end]).ok()?;
    let status = head.get(9..12)?.parse().ok()?;
    let mut len = 0usize;
    for l in head.split("\r\n") {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    (b.len() >= end + len).then_some((end + len, status))
}

fn main() -> std::io::Result<()> {
    let a = args();
    let addr: SocketAddr = ([127, 0, 0, 1], a.port).into();
    let mut poll = Poll::new()?;
    let mut conns = Vec::new();
    for i in 0..a.connections {
        conns.push(Conn {
            sock: connect(addr, &poll, i)?,
            busy: None,
            buf: Vec::with_capacity(4096),
            out: Vec::new(),
        });
    }
    let total = (a.rate * a.duration).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let mut idle: VecDeque<usize> = (0..a.connections).collect();
    let mut lat: Vec<u32> = Vec::with_capacity(total as usize);
    let (mut sent, mut ok, mut non2xx, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut events = Events::with_capacity(1024);
    let start = Instant::now() + Duration::from_millis(5);
    let deadline_grace = Duration::from_secs(5);
    let mut read_buf = vec![0u8; 16384];
    loop {
        let now = Instant::now();
        // Send everything due on idle connections; the rest waits, still timed from its due time.
        while sent < total {
            let due = start + interval.mul_f64(sent as f64);
            if due > now {
                break;
            }
            let Some(i) = idle.pop_front() else { break };
            let c = &mut conns[i];
            c.busy = Some(due);
            c.out.extend_from_slice(&a.request);
            match c.sock.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    errors += 1;
                    c.busy = None;
                    c.out.clear();
                    if let Ok(s) = connect(addr, &poll, i) {
                        c.sock = s;
                    }
                    idle.push_back(i);
                }
            }
            sent += 1;
        }
        let in_flight = conns.iter().filter(|c| c.busy.is_some()).count();
        if sent >= total && in_flight == 0 {
            break;
        }
        let end = start + interval.mul_f64(total as f64) + deadline_grace;
        if now > end {
            errors += in_flight as u64;
            break;
        }
        let timeout = if sent < total && !idle.is_empty() {
            let due = start + interval.mul_f64(sent as f64);
            Some(due.saturating_duration_since(now))
        } else {
            Some(Duration::from_millis(100))
        };
        poll.poll(&mut events, timeout)?;
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            if ev.is_writable() && !c.out.is_empty() {
                if let Ok(n) = c.sock.write(&c.out) {
                    c.out.drain(..n);
                }
            }
            if !ev.is_readable() {
                continue;
            }
            let mut closed = false;
            loop {
                match c.sock.read(&mut read_buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => c.buf.extend_from_slice(&read_buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            while let Some((len, status)) = response(&c.buf) {
                c.buf.drain(..len);
                if let Some(due) = c.busy.take() {
                    let us = Instant::now().saturating_duration_since(due).as_micros();
                    lat.push(u32::try_from(us).unwrap_or(u32::MAX));
                    if (200..300).contains(&status) {
                        ok += 1;
                    } else {
                        non2xx += 1;
                    }
                    idle.push_back(i);
                }
            }
            if closed {
                if c.busy.take().is_some() {
                    errors += 1;
                } else {
                    idle.retain(|&j| j != i);
                }
                let _ = poll.registry().deregister(&mut c.sock);
                c.buf.clear();
                c.out.clear();
                if let Ok(s) = connect(addr, &poll, i) {
                    c.sock = s;
                    idle.push_back(i);
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * (lat.len() as f64 - 1.0)).round() as usize;
        lat[i.min(lat.len() - 1)]
    };
    println!(
        "{{\"target_rate\":{},\"duration_s\":{:.3},\"sent\":{sent},\"ok\":{ok},\"non_2xx\":{non2xx},\"errors\":{errors},\"rate\":{:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        a.rate,
        elapsed,
        (ok + non2xx) as f64 / elapsed,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        lat.last().copied().unwrap_or(0)
    );
    Ok(())
}
