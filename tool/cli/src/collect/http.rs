//! The OTLP/HTTP request handler: `POST /v1/traces`, `GET /metrics`, `GET /healthz`.
//!
//! Responses follow the OTLP/HTTP spec
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp-response>): 200 with an empty
//! `ExportTraceServiceResponse` in the request's encoding, 400 with a `google.rpc.Status` for a bad
//! body, 503 with `Retry-After` when the collector cannot take the data now.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ALLOW, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
};
use hyper::{Method, Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::metrics::{inc, BadBody, Stats};
use super::writer::Batch;
use crate::otlp;

/// Path of the OTLP/HTTP traces endpoint.
pub const TRACES_PATH: &str = "/v1/traces";
/// Path of the Prometheus metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// Path of the health endpoint.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: &str = "1";

const CT_PROTOBUF: &str = "application/x-protobuf";
const CT_JSON: &str = "application/json";
const CT_TEXT: &str = "text/plain; charset=utf-8";
const CT_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `google.rpc.Code.INVALID_ARGUMENT`.
const RPC_INVALID_ARGUMENT: i32 = 3;
/// `google.rpc.Code.UNAVAILABLE`.
const RPC_UNAVAILABLE: i32 = 14;

/// State shared by every connection.
pub struct Shared {
    /// Counters.
    pub stats: Arc<Stats>,
    /// Queue to the writer.
    pub writer: mpsc::Sender<Batch>,
    /// Largest accepted body, before and after decompression.
    pub max_body_bytes: usize,
    /// Longest time a request body may take to arrive; then 408 and the connection closes.
    pub body_read_timeout: std::time::Duration,
}

/// `google.rpc.Status`, the error body OTLP/HTTP asks for.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => CT_PROTOBUF,
            Encoding::Json => CT_JSON,
        }
    }
}

/// Handles one request; never fails (errors become responses).
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path();
    let method = req.method();
    let resp = match (path, method) {
        (TRACES_PATH, &Method::POST) => export(&shared, req).await,
        (METRICS_PATH, &Method::GET) => text(StatusCode::OK, CT_PROMETHEUS, shared.stats.render()),
        (HEALTHZ_PATH, &Method::GET) => text(StatusCode::OK, CT_TEXT, "ok\n".into()),
        (TRACES_PATH, _) => method_not_allowed("POST"),
        (METRICS_PATH | HEALTHZ_PATH, _) => method_not_allowed("GET"),
        _ => text(StatusCode::NOT_FOUND, CT_TEXT, "not found\n".into()),
    };
    Ok(resp)
}

async fn export(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let stats = &shared.stats;
    inc(&stats.requests);
    let Some(encoding) = media_type(req.headers().get(CONTENT_TYPE)) else {
        inc(&stats.unsupported_media);
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CT_TEXT,
            format!("use Content-Type {CT_PROTOBUF} or {CT_JSON}\n"),
        );
    };
    let gzip = match header_str(req.headers().get(CONTENT_ENCODING)).as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(_) => {
            inc(&stats.unsupported_media);
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                CT_TEXT,
                "use gzip or no Content-Encoding\n".into(),
            );
        }
    };
    // Refuse early when the client announces an oversized body: nothing is read.
    let announced =
        header_str(req.headers().get(CONTENT_LENGTH)).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > shared.max_body_bytes as u64) {
        return too_large(stats);
    }
    // A deadline for the whole body: a client trickling bytes must not hold a handler forever.
    let collected = tokio::time::timeout(
        shared.body_read_timeout,
        Limited::new(req.into_body(), shared.max_body_bytes).collect(),
    )
    .await;
    let Ok(collected) = collected else {
        inc(&stats.body_timeouts);
        return close(text(
            StatusCode::REQUEST_TIMEOUT,
            CT_TEXT,
            "request body not received in time\n".into(),
        ));
    };
    let body = match collected {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(stats),
        Err(e) => {
            return bad_body(
                stats,
                encoding,
                BadBody::Read,
                &format!("cannot read body: {e}"),
            )
        }
    };
    let body = if gzip {
        match gunzip(&body, shared.max_body_bytes) {
            Ok(Some(b)) => Bytes::from(b),
            Ok(None) => return too_large(stats),
            Err(e) => {
                return bad_body(
                    stats,
                    encoding,
                    BadBody::Gzip,
                    &format!("invalid gzip body: {e}"),
                )
            }
        }
    } else {
        body
    };
    let decoded = match encoding {
        Encoding::Protobuf => otlp::rows_from_protobuf(&body),
        Encoding::Json => otlp::rows_from_json(&body),
    };
    let rows = match decoded {
        Ok(rows) => rows,
        Err(e) => {
            let reason = match e {
                otlp::DecodeError::Protobuf(_) => BadBody::Protobuf,
                otlp::DecodeError::Json(_) | otlp::DecodeError::NotUtf8(_) => BadBody::Json,
            };
            return bad_body(stats, encoding, reason, &e.to_string());
        }
    };
    if rows.is_empty() {
        return ok(encoding);
    }
    let (reply, outcome) = oneshot::channel();
    if shared.writer.try_send(Batch { rows, reply }).is_err() {
        inc(&stats.busy);
        return unavailable(encoding, "span store queue is full");
    }
    match outcome.await {
        Ok(Ok(_)) => ok(encoding),
        // Already counted and logged by the writer.
        Ok(Err(e)) => unavailable(encoding, &e.to_string()),
        Err(_) => unavailable(encoding, "span store writer stopped"),
    }
}

/// The encoding named by `Content-Type`, ignoring parameters such as `charset`.
fn media_type(v: Option<&HeaderValue>) -> Option<Encoding> {
    let v = header_str(v)?;
    match v.split(';').next().map(str::trim) {
        Some(CT_PROTOBUF) => Some(Encoding::Protobuf),
        Some(CT_JSON) => Some(Encoding::Json),
        _ => None,
    }
}

fn header_str(v: Option<&HeaderValue>) -> Option<String> {
    v.and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
}

/// Inflates `body`; `Ok(None)` when the result would exceed `max` bytes (a gzip bomb).
fn gunzip(body: &[u8], max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)?;
    Ok((out.len() <= max).then_some(out))
}

fn ok(encoding: Encoding) -> Response<Full<Bytes>> {
    let body = match encoding {
        Encoding::Protobuf => Bytes::from(ExportTraceServiceResponse::default().encode_to_vec()),
        Encoding::Json => Bytes::from_static(b"{}"),
    };
    respond(StatusCode::OK, encoding.content_type(), body)
}

fn status_body(encoding: Encoding, code: i32, message: &str) -> Bytes {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.into(),
        }
        .encode_to_vec()
        .into(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into(),
    }
}

fn bad_body(
    stats: &Stats,
    encoding: Encoding,
    reason: BadBody,
    message: &str,
) -> Response<Full<Bytes>> {
    stats.bad_body(reason);
    let body = status_body(encoding, RPC_INVALID_ARGUMENT, message);
    respond(StatusCode::BAD_REQUEST, encoding.content_type(), body)
}

fn unavailable(encoding: Encoding, message: &str) -> Response<Full<Bytes>> {
    let body = status_body(encoding, RPC_UNAVAILABLE, message);
    let mut resp = respond(
        StatusCode::SERVICE_UNAVAILABLE,
        encoding.content_type(),
        body,
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    resp
}

fn too_large(stats: &Stats) -> Response<Full<Bytes>> {
    inc(&stats.too_large);
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        CT_TEXT,
        "request body too large\n".into(),
    )
}

/// The response with `Connection: close`: the rest of the request is never read.
fn close(mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = text(
        StatusCode::METHOD_NOT_ALLOWED,
        CT_TEXT,
        "method not allowed\n".into(),
    );
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

pub(crate) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    respond(status, content_type, Bytes::from(body))
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn media_types() {
        let cases = [
            ("application/x-protobuf", Some(Encoding::Protobuf)),
            ("application/json; charset=utf-8", Some(Encoding::Json)),
            ("Application/JSON", Some(Encoding::Json)),
            ("text/plain", None),
            ("application/grpc", None),
        ];
        for (v, want) in cases {
            assert_eq!(media_type(Some(&HeaderValue::from_static(v))), want, "{v}");
        }
        assert_eq!(media_type(None), None);
    }

    #[test]
    fn gunzip_limits_output() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[0u8; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 1000).unwrap().map(|b| b.len()), Some(1000));
        assert_eq!(gunzip(&gz, 999).unwrap(), None);
        assert!(gunzip(b"not gzip", 10).is_err());
    }
}
