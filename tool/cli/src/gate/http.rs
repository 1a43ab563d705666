//! The gate's endpoints. Handlers only read the latest evaluation (an `Arc` swapped by the
//! evaluator thread): an answer costs a lookup, never an analysis.
//!
//! - `GET /v1/verdict?deployment=SERVICE@VERSION`: always 200 with the verdict JSON for a
//!   well-formed question (Argo Rollouts `web` provider); 400 when the parameter is missing
//!   or malformed.
//! - `POST /v1/flagger`: Flagger's webhook. 200 lets the rollout go on; 412 (fail, or
//!   inconclusive with `on_inconclusive: halt`), 503 (source down) and 400 (bad payload) halt it.
//! - `GET /metrics`, `GET /healthz`.

use crate::collect::http::{respond, text};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::metrics::{self, Health, Stats};
use super::verdict::{self, parse_deployment, Answer, Problem, Verdict};
use super::Evaluation;
use crate::analysis_bridge::Deployment;
use crate::window::unix_now_ns;

/// Verdict endpoint (Argo Rollouts `web` metric provider).
pub const VERDICT_PATH: &str = "/v1/verdict";
/// Flagger webhook endpoint.
pub const FLAGGER_PATH: &str = "/v1/flagger";
/// Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";
/// Liveness.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Largest Flagger payload read (Flagger sends a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 << 10;
/// Flagger metadata key naming the deployment under test.
pub const META_DEPLOYMENT: &str = "deployment";
/// Flagger metadata key: what an inconclusive verdict does (`proceed`, the default, or `halt`).
pub const META_ON_INCONCLUSIVE: &str = "on_inconclusive";

const CT_JSON: &str = "application/json";
const CT_TEXT: &str = "text/plain; charset=utf-8";
const CT_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// State shared by every connection and the evaluator.
pub struct Shared {
    /// Counters and deployments under test.
    pub stats: Stats,
    /// The latest evaluation.
    pub latest: Mutex<Arc<Evaluation>>,
    /// Requests a deployment needs in the window before it is judged.
    pub min_requests: u64,
}

impl Shared {
    fn latest(&self) -> Arc<Evaluation> {
        match self.latest.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn answer(&self, dep: &Deployment) -> Answer {
        self.stats.under_test(dep);
        verdict::judge(&self.latest(), dep, self.min_requests, unix_now_ns())
    }
}

/// The payload Flagger POSTs to a webhook (`CanaryWebhookPayload` in Flagger's source):
/// other fields it may add are ignored, unknown `metadata` keys are refused (typos).
#[derive(Debug, Deserialize)]
struct FlaggerPayload {
    name: String,
    namespace: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let (endpoint, resp) = match (path.as_str(), req.method()) {
        (VERDICT_PATH, &Method::GET) => ("verdict", verdict_endpoint(&shared, req.uri().query())),
        (FLAGGER_PATH, &Method::POST) => ("flagger", flagger(&shared, req).await),
        (METRICS_PATH, &Method::GET) => ("metrics", metrics_endpoint(&shared)),
        (HEALTHZ_PATH, &Method::GET) => ("healthz", text(StatusCode::OK, CT_TEXT, "ok\n".into())),
        (FLAGGER_PATH, _) => ("flagger", method_not_allowed("POST")),
        (VERDICT_PATH | METRICS_PATH | HEALTHZ_PATH, _) => ("other", method_not_allowed("GET")),
        _ => (
            "other",
            error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint {path}; see `meshwake gate --help`"),
            ),
        ),
    };
    shared.stats.answered(endpoint, resp.status().as_u16());
    Ok(resp)
}

fn verdict_endpoint(shared: &Shared, query: Option<&str>) -> Response<Full<Bytes>> {
    let Some(raw) = query_param(query.unwrap_or(""), META_DEPLOYMENT) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing query parameter deployment=SERVICE@VERSION",
        );
    };
    match parse_deployment(&raw) {
        Ok(dep) => json(StatusCode::OK, &shared.answer(&dep)),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn flagger(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")),
    };
    let payload: FlaggerPayload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "body is not a Flagger webhook payload (name, namespace, phase, metadata): {e}"
                ),
            )
        }
    };
    let (dep, halt_on_inconclusive) = match flagger_metadata(&payload) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let mut answer = shared.answer(&dep);
    answer.reason = format!(
        "canary {}/{} ({}): {}",
        payload.namespace,
        payload.name,
        if payload.phase.is_empty() {
            "no phase"
        } else {
            &payload.phase
        },
        answer.reason
    );
    let status = match (answer.verdict, answer.error) {
        (Verdict::Pass, _) => StatusCode::OK,
        (Verdict::Fail, _) => StatusCode::PRECONDITION_FAILED,
        (Verdict::Inconclusive, Some(Problem::SourceDown | Problem::NotEvaluatedYet)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        (Verdict::Inconclusive, _) if halt_on_inconclusive => StatusCode::PRECONDITION_FAILED,
        (Verdict::Inconclusive, _) => StatusCode::OK,
    };
    json(status, &answer)
}

/// The deployment under test and whether an inconclusive verdict halts, from `metadata`.
fn flagger_metadata(p: &FlaggerPayload) -> Result<(Deployment, bool), String> {
    if let Some(k) = p
        .metadata
        .keys()
        .find(|k| *k != META_DEPLOYMENT && *k != META_ON_INCONCLUSIVE)
    {
        return Err(format!(
            "unknown metadata key {k:?} in the webhook of canary {}/{} (known: {META_DEPLOYMENT}, {META_ON_INCONCLUSIVE})",
            p.namespace, p.name
        ));
    }
    let Some(dep) = p.metadata.get(META_DEPLOYMENT) else {
        return Err(format!(
            "the webhook of canary {}/{} needs metadata {META_DEPLOYMENT}: SERVICE@VERSION",
            p.namespace, p.name
        ));
    };
    let halt = match p.metadata.get(META_ON_INCONCLUSIVE).map(String::as_str) {
        None | Some("proceed") => false,
        Some("halt") => true,
        Some(other) => {
            return Err(format!(
                "metadata {META_ON_INCONCLUSIVE} is {other:?}: use proceed or halt"
            ))
        }
    };
    Ok((parse_deployment(dep)?, halt))
}

fn metrics_endpoint(shared: &Shared) -> Response<Full<Bytes>> {
    let eval = shared.latest();
    let now = unix_now_ns();
    let answers: Vec<Answer> = shared
        .stats
        .deployments()
        .iter()
        .map(|d| verdict::judge(&eval, d, shared.min_requests, now))
        .collect();
    let health = Health {
        age_s: (eval.at_ns > 0).then(|| now.saturating_sub(eval.at_ns) as f64 / 1e9),
        took_s: eval.took.as_secs_f64(),
        source_up: eval.report.is_ok(),
        spans: eval.window.spans,
        newest_span_age_s: if eval.window.end_ns == 0 {
            0.0
        } else {
            now.saturating_sub(eval.window.end_ns) as f64 / 1e9
        },
        suspects: eval.report.as_ref().map_or(0, |r| r.suspects.len()),
    };
    text(
        StatusCode::OK,
        CT_PROMETHEUS,
        metrics::render(&shared.stats, &health, &answers),
    )
}

/// The value of `name` in a query string, percent-decoded (`+` is a space); `None` when absent.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name).then(|| percent_decode(v))?
    })
}

/// Decodes `%XX` escapes and `+`; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            respond(status, CT_JSON, Bytes::from(s))
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            CT_TEXT,
            format!("cannot serialise the answer: {e}\n"),
        ),
    }
}

/// An error answer: `{"error": "..."}` with `status`.
fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn too_large() -> Response<Full<Bytes>> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body larger than {MAX_BODY_BYTES} bytes"),
    )
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, &format!("use {allow}"));
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn query_params() {
        let cases: [(&str, Option<&str>); 6] = [
            ("deployment=reviews@v2", Some("reviews@v2")),
            ("a=1&deployment=reviews%40v2", Some("reviews@v2")),
            ("deployment=a+b", Some("a b")),
            ("deployment", Some("")),
            ("other=1", None),
            ("deployment=%zz", None),
        ];
        for (q, want) in cases {
            assert_eq!(query_param(q, "deployment").as_deref(), want, "{q}");
        }
    }

    #[test]
    fn flagger_metadata_rules() {
        let payload = |meta: &[(&str, &str)]| FlaggerPayload {
            name: "reviews".into(),
            namespace: "shop".into(),
            phase: "Progressing".into(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let (dep, halt) = flagger_metadata(&payload(&[("deployment", "reviews@v2")])).unwrap();
        assert_eq!((dep.to_string().as_str(), halt), ("reviews@v2", false));
        let (_, halt) = flagger_metadata(&payload(&[
            ("deployment", "a@b"),
            ("on_inconclusive", "halt"),
        ]))
        .unwrap();
        assert!(halt);
        for bad in [
            vec![],
            vec![("deployment", "nover")],
            vec![("deployment", "a@b"), ("on_inconclusive", "maybe")],
            vec![("deployment", "a@b"), ("deploymnet", "x")],
        ] {
            assert!(flagger_metadata(&payload(&bad)).is_err(), "{bad:?}");
        }
    }
}
