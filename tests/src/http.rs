//! A tiny HTTP/1.1 client and server over std sockets: the client sends arbitrary header
//! bytes (non-UTF-8, huge values) that a typed client would refuse; the server lets each
//! test decide every response and records every request it saw.
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server saw it (header names lower-cased).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of a header, lossily as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// A response, from the client's or the server's side.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            ..Default::default()
        }
    }
    pub fn with_header(mut self, k: &str, v: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((k.to_ascii_lowercase(), v.as_ref().to_vec()));
        self
    }
    pub fn with_body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// An HTTP/1.1 server on a free loopback port, one thread per connection, keep-alive.
pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serve every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, s, st) = (handler.clone(), seen2.clone(), stop2.clone());
                std::thread::spawn(move || serve_conn(conn, h, s, st));
            }
        });
        Server { addr, seen, stop }
    }

    /// An upstream that echoes the request headers it received as a JSON object
    /// `{"method":..,"path":..,"headers":{name:[values]}}`.
    pub fn echo() -> Server {
        Server::start(|req| {
            Response::new(200)
                .with_header("content-type", "application/json")
                .with_body(echo_json(req))
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Request {
        self.requests()
            .last()
            .cloned()
            .expect("server saw no request")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

/// The echo body for a request.
pub fn echo_json(req: &Request) -> Vec<u8> {
    let mut headers = serde_json::Map::new();
    for (k, v) in &req.headers {
        let e = headers
            .entry(k.clone())
            .or_insert_with(|| serde_json::Value::Array(vec![]));
        if let serde_json::Value::Array(a) = e {
            a.push(serde_json::Value::String(
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
    }
    serde_json::to_vec(
        &serde_json::json!({"method": req.method, "path": req.path, "headers": headers}),
    )
    .unwrap()
}

fn serve_conn(
    conn: TcpStream,
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        seen.lock().unwrap().push(req.clone());
        let resp = handler(&req);
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            resp.status,
            resp.body.len()
        )
        .into_bytes();
        for (k, v) in &resp.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&resp.body);
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

/// Header pairs: lower-cased name, raw value bytes.
type Headers = Vec<(String, Vec<u8>)>;

fn read_head(reader: &mut impl BufRead) -> Option<(String, Headers)> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).ok()? == 0 {
        return None;
    }
    let first = String::from_utf8_lossy(&line).trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut l = Vec::new();
        if reader.read_until(b'\n', &mut l).ok()? == 0 {
            return None;
        }
        while matches!(l.last(), Some(b'\n') | Some(b'\r')) {
            l.pop();
        }
        if l.is_empty() {
            break;
        }
        let colon = l.iter().position(|&b| b == b':')?;
        let name = String::from_utf8_lossy(&l[..colon])
            .trim()
            .to_ascii_lowercase();
        let mut value = &l[colon + 1..];
        while value.first() == Some(&b' ') {
            value = &value[1..];
        }
        headers.push((name, value.to_vec()));
    }
    Some((first, headers))
}

fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, Vec<u8>)],
    until_eof: bool,
) -> Option<Vec<u8>> {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut l = String::new();
            reader.read_line(&mut l).ok()?;
            let n = usize::from_str_radix(l.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                return Some(body);
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    if let Some(n) = get("content-length") {
        let mut body = vec![0; n.trim().parse().ok()?];
        reader.read_exact(&mut body).ok()?;
        return Some(body);
    }
    let mut body = Vec::new();
    if until_eof {
        reader.read_to_end(&mut body).ok()?;
    }
    Some(body)
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let (first, headers) = read_head(reader)?;
    let mut parts = first.split(' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let body = read_body(reader, &headers, false)?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Send one request (`connection: close`) with raw header bytes and read the response.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: test.local\r\nconnection: close\r\n")
        .into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    s.write_all(&out)?;
    let mut reader = BufReader::new(s);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad HTTP response");
    let (first, headers) = read_head(&mut reader).ok_or_else(bad)?;
    let status = first
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let body = read_body(&mut reader, &headers, true).ok_or_else(bad)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `GET path` with text headers; panics on a transport error.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    let h: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    request(port, "GET", path, &h, b"").unwrap_or_else(|e| panic!("GET :{port}{path} failed: {e}"))
}
