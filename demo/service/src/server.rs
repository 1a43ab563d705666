//! Request handling: `/healthz`, `/echo`, and every other path does the configured "work".

use std::collections::BTreeMap;
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
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let resp = match req.uri().path() {
        HEALTHZ_PATH => plain(StatusCode::OK, "ok\n"),
        ECHO_PATH => echo(&app, &req),
        _ => work(&app, &req).await,
    };
    Ok(resp)
}

fn echo(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
        "headers": headers,
    });
    json_response(app, StatusCode::OK, &body)
}

async fn work(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let c = &app.config;
    let latency = app.rng.latency_ms(c.latency_ms_p50, c.latency_jitter_ms);
    tokio::time::sleep(Duration::from_secs_f64(latency / 1000.0)).await;
    if app.rng.chance(c.timeout_rate) {
        tokio::time::sleep(Duration::from_millis(c.hang_ms)).await;
        let body =
            json!({"service": c.service, "version": c.version, "error": "simulated timeout"});
        return json_response(app, StatusCode::GATEWAY_TIMEOUT, &body);
    }

    let headers = downstream::forwarded(req.headers(), &c.forward_headers);
    let timeout = Duration::from_millis(c.downstream_timeout_ms);
    let mut outcomes = Vec::with_capacity(app.targets.len());
    if c.parallel {
        let tasks: Vec<_> = app
            .targets
            .iter()
            .map(|t| {
                let (t, headers, outbound) = (t.clone(), headers.clone(), c.outbound);
                tokio::spawn(async move { downstream::call(&t, outbound, &headers, timeout).await })
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
            outcomes.push(downstream::call(t, c.outbound, &headers, timeout).await);
        }
    }
    let failed = outcomes.iter().any(|o| !o.is_success());
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
    if let (Some(e), Some(obj)) = (error, body.as_object_mut()) {
        obj.insert("error".into(), Value::from(e));
    }
    json_response(app, status, &body)
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
