//! Calls to downstream services, as an instrumented application makes them: the incoming trace
//! headers are copied onto every outgoing request, and connections go to the outbound sidecar
//! when one is configured (the URL's host then only routes, through the Host header).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{HeaderMap, Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpStream;

/// Headers an instrumented app forwards: W3C trace context and baggage, B3 (single and multi),
/// Envoy's request id, and meshwake's lineage (which the sidecars can only see if the app carries it).
pub const FORWARDED_HEADERS: [&str; 12] = [
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-request-id",
    "x-meshwake-lineage",
    "x-ot-span-context",
];

/// Largest downstream body read.
pub const MAX_DOWNSTREAM_BODY: usize = 1 << 20;
/// Largest downstream body embedded in our own answer (an `/echo`, a leaf's answer): the
/// answer of a deep fan-out would otherwise carry, re-parsed and re-serialized at every hop,
/// the whole tree below it.
pub const MAX_EMBEDDED_BODY: usize = 2048;
/// Idle connections kept per destination.
const MAX_IDLE: usize = 64;

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Idle HTTP/1.1 connections by destination (`host:port`), reused as a real app's client
/// does: a new connection per call would cost the sidecar a connection set-up each time.
#[derive(Default)]
pub struct Pool {
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<Sender>>>,
}

impl Pool {
    fn take(&self, dest: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(dest)?;
        list.retain(|s| !s.is_closed());
        // One still finishing its previous exchange stays for the next call.
        let ready = list.iter().rposition(Sender::is_ready)?;
        Some(list.swap_remove(ready))
    }

    fn give_back(&self, dest: &str, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(dest.to_owned()).or_default();
            if list.len() < MAX_IDLE {
                list.push(sender);
            }
        }
    }
}

/// A parsed `--call` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// As given.
    pub url: String,
    /// `host[:port]`, sent as Host.
    pub authority: String,
    /// `host:port` to connect to when there is no sidecar.
    pub connect: String,
    /// Path and query.
    pub path: String,
}

impl Target {
    /// Parses an `http://host[:port]/path` URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("only http:// URLs are supported (TLS is the sidecar's job)".into());
        }
        let authority = uri.authority().ok_or("missing host")?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target {
            url: url.to_string(),
            authority: authority.as_str().to_string(),
            connect: format!("{}:{port}", authority.host()),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        })
    }
}

/// What one downstream call gave.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The URL called.
    pub url: String,
    /// HTTP status, when a response came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The response body (JSON when it parses, else a string), up to [`MAX_EMBEDDED_BODY`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The answer came from the callee's fallback (header `x-demo-degraded`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
    /// Why no usable response came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Outcome {
    /// A call that produced no response.
    pub fn failed(url: &str, error: String) -> Self {
        Outcome {
            url: url.to_string(),
            status: None,
            body: None,
            degraded: false,
            error: Some(error),
        }
    }

    /// A 2xx/3xx answer arrived.
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| s < 400)
    }
}

/// A downstream call that failed before a response arrived.
#[derive(Debug)]
enum CallError {
    Connect(std::io::Error),
    Http(hyper::Error),
    Timeout,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "connect: {e}"),
            CallError::Http(e) => write!(f, "http: {e}"),
            CallError::Timeout => write!(f, "timed out"),
        }
    }
}

/// The headers of `incoming` to copy onto downstream requests.
pub fn forwarded(incoming: &HeaderMap, extra: &[String]) -> Vec<(HeaderName, HeaderValue)> {
    let extra = extra
        .iter()
        .filter_map(|h| HeaderName::try_from(h.as_str()).ok());
    FORWARDED_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .chain(extra)
        .flat_map(|name| {
            incoming
                .get_all(&name)
                .iter()
                .map(move |v| (name.clone(), v.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What came back: status, body, degraded marker.
struct Answer {
    status: u16,
    body: Bytes,
    degraded: bool,
}

/// Calls `target` (through `outbound` when set) with `headers`, giving up after `timeout`.
pub async fn call(
    pool: &Pool,
    target: &Target,
    outbound: Option<SocketAddr>,
    headers: &[(HeaderName, HeaderValue)],
    timeout: Duration,
) -> Outcome {
    let result = tokio::time::timeout(timeout, send(pool, target, outbound, headers)).await;
    let mut outcome = Outcome::failed(&target.url, String::new());
    match result {
        Ok(Ok(answer)) => {
            outcome.error = None;
            outcome.status = Some(answer.status);
            outcome.degraded = answer.degraded;
            outcome.body = (answer.body.len() <= MAX_EMBEDDED_BODY).then(|| {
                serde_json::from_slice(&answer.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&answer.body).into_owned())
                })
            });
        }
        Ok(Err(e)) => outcome.error = Some(e.to_string()),
        Err(_) => outcome.error = Some(CallError::Timeout.to_string()),
    }
    outcome
}

async fn connect(target: &Target, outbound: Option<SocketAddr>) -> Result<Sender, CallError> {
    let stream = match outbound {
        Some(addr) => TcpStream::connect(addr).await,
        None => TcpStream::connect(target.connect.as_str()).await,
    }
    .map_err(CallError::Connect)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(CallError::Http)?;
    // The connection task ends when the connection closes; its errors show up on requests.
    tokio::spawn(conn);
    Ok(sender)
}

fn request(target: &Target, headers: &[(HeaderName, HeaderValue)]) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = target
        .path
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    if let Ok(host) = HeaderValue::from_str(&target.authority) {
        req.headers_mut().insert(HOST, host);
    }
    for (name, value) in headers {
        req.headers_mut().append(name.clone(), value.clone());
    }
    req
}

async fn send(
    pool: &Pool,
    target: &Target,
    outbound: Option<SocketAddr>,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<Answer, CallError> {
    let dest = outbound.map_or_else(|| target.connect.clone(), |a| a.to_string());
    // An idle connection may have been closed by the peer meanwhile: then one fresh try.
    let (mut sender, reused) = match pool.take(&dest) {
        Some(s) => (s, true),
        None => (connect(target, outbound).await?, false),
    };
    let resp = match sender.send_request(request(target, headers)).await {
        Ok(r) => r,
        Err(_) if reused => {
            sender = connect(target, outbound).await?;
            sender
                .send_request(request(target, headers))
                .await
                .map_err(CallError::Http)?
        }
        Err(e) => return Err(CallError::Http(e)),
    };
    let status = resp.status().as_u16();
    let degraded = resp.headers().contains_key(DEGRADED_HEADER);
    // A body over the limit is dropped rather than failing the call: only the status matters.
    let body = Limited::new(resp.into_body(), MAX_DOWNSTREAM_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes());
    if let Ok(body) = body {
        pool.give_back(&dest, sender);
        return Ok(Answer {
            status,
            body,
            degraded,
        });
    }
    Ok(Answer {
        status,
        body: Bytes::new(),
        degraded,
    })
}

/// Response header of an answer given by a fallback (a failed call absorbed).
pub const DEGRADED_HEADER: &str = "x-demo-degraded";

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn parses_targets() {
        let t = Target::parse("http://payments:9080/pay?x=1").unwrap();
        assert_eq!((t.authority.as_str(), t.connect.as_str(), t.path.as_str()), ("payments:9080", "payments:9080", "/pay?x=1"));
        let t = Target::parse("http://cart").unwrap();
        assert_eq!((t.connect.as_str(), t.path.as_str()), ("cart:80", "/"));
        for bad in ["https://x/", "x/y", "http:///nohost", ""] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwards_only_trace_headers_and_extras() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        h.insert("x-b3-sampled", HeaderValue::from_static("1"));
        h.insert("authorization", HeaderValue::from_static("secret"));
        h.insert("x-tenant", HeaderValue::from_static("t1"));
        let got = forwarded(&h, &["x-tenant".to_string()]);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["traceparent", "x-b3-sampled", "x-tenant"]);
    }
}
