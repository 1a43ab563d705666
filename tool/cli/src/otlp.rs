//! OTLP trace payloads: decoding (protobuf and OTLP JSON) and flattening into span rows.
//!
//! Attribute keys follow docs/CONVENTIONS.md.

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use prost::Message;
use serde_json::{Map, Value};

use crate::analysis_bridge::SpanRecord;

/// Resource attribute naming the service.
pub const ATTR_SERVICE_NAME: &str = "service.name";
/// Resource attribute naming the deployment version.
pub const ATTR_SERVICE_VERSION: &str = "service.version";
/// Span attribute with the meshwake hop role.
pub const ATTR_ROLE: &str = "meshwake.role";
/// Span attribute with the HTTP status code (int).
pub const ATTR_HTTP_STATUS: &str = "http.response.status_code";
/// Span attribute with the route template.
pub const ATTR_HTTP_ROUTE: &str = "http.route";
/// Span attribute with the request path, used when no route template is known.
pub const ATTR_URL_PATH: &str = "url.path";
/// Span attribute naming the peer service.
pub const ATTR_PEER_SERVICE: &str = "peer.service";
/// Span attribute naming the peer's deployment version.
pub const ATTR_PEER_VERSION: &str = "meshwake.peer.version";
/// Service name used when the resource has none (as the OTel SDKs do).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Why a payload could not be decoded.
#[derive(Debug)]
pub enum DecodeError {
    /// The protobuf bytes are not an `ExportTraceServiceRequest`.
    Protobuf(prost::DecodeError),
    /// The JSON is not an OTLP/JSON `ExportTraceServiceRequest`.
    Json(serde_json::Error),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Protobuf(e) => write!(f, "invalid OTLP protobuf: {e}"),
            DecodeError::Json(e) => write!(f, "invalid OTLP JSON: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a binary protobuf `ExportTraceServiceRequest`.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest, DecodeError> {
    ExportTraceServiceRequest::decode(body).map_err(DecodeError::Protobuf)
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` (hex ids, camelCase keys, string int64s).
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, DecodeError> {
    serde_json::from_slice(body).map_err(DecodeError::Json)
}

/// A span as stored: the analysis record plus what the analysis does not need but a human might.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    /// The fields the analysis reads.
    pub record: SpanRecord,
    /// Span name.
    pub name: String,
    /// Span attributes as a JSON object.
    pub attributes: Value,
    /// Resource attributes as a JSON object.
    pub resource_attributes: Value,
}

/// Flattens every span of a request into rows.
pub fn rows_from_request(req: &ExportTraceServiceRequest) -> Vec<SpanRow> {
    let mut rows = Vec::new();
    for rs in &req.resource_spans {
        let resource_attrs: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        let service = find_str(resource_attrs, ATTR_SERVICE_NAME)
            .unwrap_or(UNKNOWN_SERVICE)
            .to_string();
        let version = find_str(resource_attrs, ATTR_SERVICE_VERSION).map(str::to_string);
        let resource_json = attrs_to_json(resource_attrs);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                rows.push(row_from_span(span, &service, version.as_deref(), &resource_json));
            }
        }
    }
    rows
}

fn row_from_span(span: &Span, service: &str, version: Option<&str>, resource: &Value) -> SpanRow {
    let attrs = &span.attributes;
    let is_error = span.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32);
    let record = SpanRecord {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
        service: service.to_string(),
        version: version.map(str::to_string),
        kind: kind_name(span.kind).to_string(),
        role: find_str(attrs, ATTR_ROLE).map(str::to_string),
        start_ns: span.start_time_unix_nano,
        end_ns: span.end_time_unix_nano,
        is_error,
        http_status: find_int(attrs, ATTR_HTTP_STATUS).and_then(|v| u16::try_from(v).ok()),
        route: find_str(attrs, ATTR_HTTP_ROUTE)
            .or_else(|| find_str(attrs, ATTR_URL_PATH))
            .map(str::to_string),
        peer_service: find_str(attrs, ATTR_PEER_SERVICE).map(str::to_string),
        peer_version: find_str(attrs, ATTR_PEER_VERSION).map(str::to_string),
    };
    SpanRow {
        record,
        name: span.name.clone(),
        attributes: attrs_to_json(attrs),
        resource_attributes: resource.clone(),
    }
}

/// OTLP span kind as its upper-case name (`SERVER`, `CLIENT`, ...).
pub fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "SERVER",
        Ok(SpanKind::Client) => "CLIENT",
        Ok(SpanKind::Internal) => "INTERNAL",
        Ok(SpanKind::Producer) => "PRODUCER",
        Ok(SpanKind::Consumer) => "CONSUMER",
        Ok(SpanKind::Unspecified) | Err(_) => "UNSPECIFIED",
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn find_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match find(attrs, key) {
        Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn find_int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match find(attrs, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        // Some emitters send status codes as strings; accept them rather than lose the field.
        Some(any_value::Value::StringValue(s)) => s.parse().ok(),
        _ => None,
    }
}

/// Attributes as a flat JSON object (`key` → plain JSON value).
pub fn attrs_to_json(attrs: &[KeyValue]) -> Value {
    let mut map = Map::new();
    for kv in attrs {
        map.insert(kv.key.clone(), any_to_json(kv.value.as_ref()));
    }
    Value::Object(map)
}

fn any_to_json(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_to_json(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => attrs_to_json(&l.values),
        // String-table references (profiles only) carry no value in trace payloads.
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }

    fn request(span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv(ATTR_SERVICE_NAME, any_value::Value::StringValue("checkout".into())),
                        kv(ATTR_SERVICE_VERSION, any_value::Value::StringValue("v2".into())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn flattens_span_fields() {
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            name: "GET /pay".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            status: Some(Status { code: StatusCode::Error as i32, ..Default::default() }),
            attributes: vec![
                kv(ATTR_ROLE, any_value::Value::StringValue("outbound".into())),
                kv(ATTR_HTTP_STATUS, any_value::Value::IntValue(503)),
                kv(ATTR_URL_PATH, any_value::Value::StringValue("/pay".into())),
                kv(ATTR_PEER_SERVICE, any_value::Value::StringValue("payments".into())),
                kv(ATTR_PEER_VERSION, any_value::Value::StringValue("v7".into())),
            ],
            ..Default::default()
        };
        let rows = rows_from_request(&request(span));
        assert_eq!(rows.len(), 1);
        let r = &rows[0].record;
        assert_eq!(r.trace_id, "ab".repeat(16));
        assert_eq!(r.span_id, "0102030405060708");
        assert_eq!(r.parent_span_id, None);
        assert_eq!((r.service.as_str(), r.version.as_deref()), ("checkout", Some("v2")));
        assert_eq!((r.kind.as_str(), r.role.as_deref()), ("CLIENT", Some("outbound")));
        assert!(r.is_error);
        assert_eq!(r.http_status, Some(503));
        assert_eq!(r.route.as_deref(), Some("/pay"));
        assert_eq!(r.peer_version.as_deref(), Some("v7"));
        assert_eq!(rows[0].attributes["http.response.status_code"], 503);
    }

    #[rustfmt::skip]
    #[test]
    fn kind_names() {
        for (kind, name) in [(0, "UNSPECIFIED"), (1, "INTERNAL"), (2, "SERVER"), (3, "CLIENT"),
                             (4, "PRODUCER"), (5, "CONSUMER"), (99, "UNSPECIFIED")] {
            assert_eq!(kind_name(kind), name);
        }
    }

    #[test]
    fn decodes_otlp_json_and_rejects_garbage() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2",
            "attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}}]}]}]}]}"#;
        let rows = rows_from_request(&decode_json(json.as_bytes()).unwrap());
        assert_eq!(rows[0].record.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(rows[0].record.http_status, Some(200));
        assert_eq!(rows[0].record.kind, "SERVER");
        assert!(matches!(decode_json(b"nope"), Err(DecodeError::Json(_))));
        assert!(matches!(decode_protobuf(b"\xff\xff\xff"), Err(DecodeError::Protobuf(_))));
    }
}
