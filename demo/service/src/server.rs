//! Request handling: `/healthz`, `/echo`, and every other path does the configured "work".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::config::Config;
use crate::downstream::{self, Outcome, Target};
use crate::rng::Rng;

/// Health endpoint.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Endpoint answering with the request headers it received, as JSON.
pub const ECHO_PATH: &str = "/echo";
/// Response header naming the answering deployment (`service@version`).
pub const DEPLOYMENT_HEADER: &str = "x-demo-deployment";

/// Immutable per-instance state shared by every request.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// Parsed `--call` targets.
    pub targets: Vec<Target>,
    /// Random source for latency and failures.
    pub rng: Rng,
    /// Idle connections to the downstreams (through the outbound sidecar).
    pub pool: downstream::Pool,
}

/// The simulated crash: the connection closes without an answer.
#[derive(Debug)]
pub struct Crash;

impl std::fmt::Display for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "simulated crash: connection closed without an answer")
    }
}

impl std::error::Error for Crash {}

/// Handles one request; errors become responses, except the simulated crash (`reset_rate`),
/// which hyper turns into a connection closed without an answer.
pub async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Crash> {
    let resp = match req.uri().path() {
        HEALTHZ_PATH => plain(StatusCode::OK, "ok\n"),
        ECHO_PATH => echo(&app, peer, &req),
        _ if app.rng.chance(app.config.reset_rate) => return Err(Crash),
        _ => work(&app, &req).await,
    };
    Ok(resp)
}

fn echo(app: &App, peer: SocketAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let body = json!({
        "service": app.config.service,
        "version": app.config.version,
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "peer": peer.to_string(),
        "headers": headers,
    });
    json_response(app, StatusCode::OK, &body)
}

async fn work(app: &Arc<App>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let c = &app.config;
    let latency = app.rng.latency_ms(c.latency_ms_p50, c.latency_jitter_ms);
    tokio::time::sleep(Duration::from_secs_f64(latency / 1000.0)).await;
    if app.rng.chance(c.timeout_rate) {
        tokio::time::sleep(Duration::from_millis(c.hang_ms)).await;
        let body =
            json!({"service": c.service, "version": c.version, "error": "simulated timeout"});
        return json_response(app, StatusCode::GATEWAY_TIMEOUT, &body);
    }

    let outcomes = call_downstreams(app, req).await;
    let is_fallback = |o: &Outcome| c.fallbacks.contains(&o.url);
    let failed = outcomes.iter().any(|o| !o.is_success() && !is_fallback(o));
    let degraded: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.is_success() && is_fallback(o))
        .map(|o| o.url.as_str())
        .collect();
    let (status, error) = if failed {
        // Propagate a downstream failure as a real app does: a 502 of our own.
        (StatusCode::BAD_GATEWAY, Some("downstream failed"))
    } else if app.rng.chance(c.error_rate) {
        (StatusCode::INTERNAL_SERVER_ERROR, Some("simulated error"))
    } else {
        (StatusCode::OK, None)
    };
    let mut body = json!({
        "service": c.service,
        "version": c.version,
        "latency_ms": (latency * 10.0).round() / 10.0,
        "downstream": outcomes,
    });
    if let Some(obj) = body.as_object_mut() {
        if let Some(e) = error {
            obj.insert("error".into(), Value::from(e));
        }
        if !degraded.is_empty() {
            obj.insert("degraded".into(), json!(degraded));
        }
    }
    let mut resp = json_response(app, status, &body);
    if !degraded.is_empty() && status == StatusCode::OK {
        resp.headers_mut().insert(
            downstream::DEGRADED_HEADER,
            HeaderValue::from_static("fallback"),
        );
    }
    resp
}

/// Calls every downstream, at once or one after another; one outcome per call, in order.
async fn call_downstreams(app: &Arc<App>, req: &Request<Incoming>) -> Vec<Outcome> {
    let c = &app.config;
    let headers = downstream::forwarded(req.headers(), &c.forward_headers);
    let timeout = Duration::from_millis(c.downstream_timeout_ms);
    let mut outcomes = Vec::with_capacity(app.targets.len());
    if c.parallel {
        let tasks: Vec<_> = (0..app.targets.len())
            .map(|i| {
                let (app, headers) = (app.clone(), headers.clone());
                tokio::spawn(async move {
                    let Some(t) = app.targets.get(i) else {
                        return Outcome::failed("", "no such target".into());
                    };
                    downstream::call(&app.pool, t, app.config.outbound, &headers, timeout).await
                })
            })
            .collect();
        for (task, t) in tasks.into_iter().zip(&app.targets) {
            outcomes.push(
                task.await
                    .unwrap_or_else(|e| Outcome::failed(&t.url, e.to_string())),
            );
        }
    } else {
        for t in &app.targets {
            outcomes.push(downstream::call(&app.pool, t, c.outbound, &headers, timeout).await);
        }
    }
    outcomes
}

fn json_response(app: &App, status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!("{}@{}", app.config.service, app.config.version))
    {
        resp.headers_mut().insert(DEPLOYMENT_HEADER, v);
    }
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}
