//! Parsing OTLP trace exports into [`SpanRecord`]s.
//!
//! Two inputs:
//! - OTLP/JSON `ExportTraceServiceRequest` (spec: <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>),
//!   one object per line as the Collector `file` exporter writes it, or pretty-printed, or wrapped as
//!   `{"result": {...}}` by the Jaeger query API v3 (`/api/v3/traces/...`).
//! - OTLP/protobuf `ExportTraceServiceRequest` bytes, as received by the CLI's collector.

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde::Deserialize;
use serde_json::Value;

use crate::model::{Kind, SpanRecord, UNKNOWN_SERVICE, UNKNOWN_VERSION};
use meshwake_semconv::attr;

/// Length of a trace id in bytes (OTLP `Span.trace_id`).
pub const TRACE_ID_BYTES: usize = 16;
/// Length of a span id in bytes (OTLP `Span.span_id`).
pub const SPAN_ID_BYTES: usize = 8;

// OTLP enum values (opentelemetry/proto/trace/v1/trace.proto).
const SPAN_KIND_SERVER: i64 = 2;
const SPAN_KIND_CLIENT: i64 = 3;
const STATUS_CODE_ERROR: i64 = 2;

// Attribute keys: the filter's naming contract (meshwake-semconv, docs/CONVENTIONS.md).
const ATTR_SERVICE_NAME: &str = attr::SERVICE_NAME;
const ATTR_SERVICE_VERSION: &str = attr::SERVICE_VERSION;
const ATTR_ROLE: &str = attr::MESHWAKE_ROLE;
const ATTR_STATUS_CODE: &str = attr::HTTP_RESPONSE_STATUS_CODE;
/// Pre-1.0 semantic conventions name, still emitted by many SDKs.
const ATTR_STATUS_CODE_OLD: &str = attr::HTTP_STATUS_CODE_OLD;
const ATTR_ROUTE: &str = attr::HTTP_ROUTE;
const ATTR_PEER_SERVICE: &str = attr::PEER_SERVICE;
const ATTR_PEER_VERSION: &str = attr::MESHWAKE_PEER_VERSION;
const ATTR_UPSTREAM_CLUSTER: &str = attr::ENVOY_UPSTREAM_CLUSTER;

/// Why an export could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestError {
    /// The text is not JSON, or not shaped like an `ExportTraceServiceRequest`.
    Json {
        /// 1-based line where the parser stopped.
        line: usize,
        /// Parser message.
        message: String,
    },
    /// A JSON document that is neither an export request nor a Jaeger v3 `result` wrapper.
    NotAnExport {
        /// 1-based index of the document in the input.
        document: usize,
    },
    /// A trace or span id that is neither hex nor base64 of the right length.
    InvalidId {
        /// Which field (`traceId`, `spanId`, `parentSpanId`).
        field: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// A timestamp that is not a non-negative integer number of nanoseconds.
    InvalidTime {
        /// Which field.
        field: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// The protobuf bytes do not decode as an `ExportTraceServiceRequest`.
    Protobuf(String),
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json { line, message } => {
                write!(f, "invalid OTLP JSON at line {line}: {message}")
            }
            Self::NotAnExport { document } => write!(
                f,
                "JSON document {document} has neither `resourceSpans` nor `result.resourceSpans`"
            ),
            Self::InvalidId { field, value } => write!(f, "invalid {field} {value:?}"),
            Self::InvalidTime { field, value } => write!(f, "invalid {field} {value:?}"),
            Self::Protobuf(m) => write!(f, "invalid OTLP protobuf: {m}"),
        }
    }
}

impl std::error::Error for IngestError {}

// ---- OTLP/JSON shapes (only the fields we read; unknown fields are ignored) ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JsonExport {
    #[serde(default)]
    resource_spans: Vec<JsonResourceSpans>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonResourceSpans {
    #[serde(default)]
    resource: Option<JsonResource>,
    #[serde(default)]
    scope_spans: Vec<JsonScopeSpans>,
    /// Name used before OTLP 0.15; older collectors still write it.
    #[serde(default)]
    instrumentation_library_spans: Vec<JsonScopeSpans>,
}

#[derive(Deserialize)]
struct JsonResource {
    #[serde(default)]
    attributes: Vec<JsonKeyValue>,
}

#[derive(Deserialize)]
struct JsonScopeSpans {
    #[serde(default)]
    spans: Vec<JsonSpan>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    span_id: String,
    #[serde(default)]
    parent_span_id: String,
    #[serde(default)]
    name: String,
    /// Integer per the spec, but some encoders write the enum name.
    #[serde(default)]
    kind: Value,
    #[serde(default)]
    start_time_unix_nano: Value,
    #[serde(default)]
    end_time_unix_nano: Value,
    #[serde(default)]
    attributes: Vec<JsonKeyValue>,
    #[serde(default)]
    status: Option<JsonStatus>,
}

#[derive(Deserialize)]
struct JsonStatus {
    #[serde(default)]
    code: Value,
}

#[derive(Deserialize)]
#[serde(try_from = "RawKeyValue")]
struct JsonKeyValue {
    key: String,
    value: Option<JsonAnyValue>,
    /// The value as written (`{"intValue": "5"}`...), for [`DecodedSpan::attributes`].
    raw: Value,
}

/// A key-value as read, checked into a [`JsonKeyValue`] (same errors as a typed read).
#[derive(Deserialize)]
struct RawKeyValue {
    key: String,
    #[serde(default)]
    value: Value,
}

impl TryFrom<RawKeyValue> for JsonKeyValue {
    type Error = serde_json::Error;

    fn try_from(kv: RawKeyValue) -> Result<Self, Self::Error> {
        let value = Option::<JsonAnyValue>::deserialize(&kv.value)?;
        Ok(Self {
            key: kv.key,
            value,
            raw: kv.value,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonAnyValue {
    string_value: Option<String>,
    /// int64 is a JSON string per the spec, but numbers are accepted.
    int_value: Option<Value>,
    bool_value: Option<bool>,
    double_value: Option<f64>,
}

/// A typed attribute value, common to both encodings.
enum Attr<'a> {
    Str(&'a str),
    Int(i64),
    Other,
}

/// A span with what its [`SpanRecord`] leaves out: the name and every attribute, for callers
/// that keep spans whole (the CLI's span store). Read in the same pass as the record.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSpan {
    /// The fields the analysis reads.
    pub record: SpanRecord,
    /// Span name.
    pub name: String,
    /// Span attributes as a flat JSON object (`key` → plain JSON value).
    pub attributes: Value,
    /// Resource attributes as a flat JSON object.
    pub resource_attributes: Value,
}

/// Parses OTLP/JSON text: any number of JSON documents (one per line, or concatenated),
/// each an `ExportTraceServiceRequest`, a Jaeger v3 `{"result": ...}` wrapper, or an array of those.
pub fn from_otlp_json(text: &str) -> Result<Vec<SpanRecord>, IngestError> {
    json_spans(text, &mut |record, _| record)
}

/// [`from_otlp_json`] with each span's name and attributes.
pub fn decode_otlp_json(text: &str) -> Result<Vec<DecodedSpan>, IngestError> {
    json_spans(text, &mut |record, raw| raw.decoded(record))
}

/// Calls `emit` on every span of the documents in `text`, in input order.
fn json_spans<T>(
    text: &str,
    emit: &mut impl FnMut(SpanRecord, RawSpan<'_>) -> T,
) -> Result<Vec<T>, IngestError> {
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    for (i, doc) in stream.enumerate() {
        let doc = doc.map_err(|e| IngestError::Json {
            line: e.line(),
            message: e.to_string(),
        })?;
        json_document(doc, i + 1, &mut out, emit)?;
    }
    Ok(out)
}

fn json_document<T>(
    doc: Value,
    index: usize,
    out: &mut Vec<T>,
    emit: &mut impl FnMut(SpanRecord, RawSpan<'_>) -> T,
) -> Result<(), IngestError> {
    match doc {
        Value::Array(items) => {
            for item in items {
                json_document(item, index, out, emit)?;
            }
            Ok(())
        }
        Value::Object(mut map) => {
            let export = if let Some(result) = map.remove("result") {
                result
            } else if map.contains_key("resourceSpans") {
                Value::Object(map)
            } else {
                return Err(IngestError::NotAnExport { document: index });
            };
            let export: JsonExport =
                serde_json::from_value(export).map_err(|e| IngestError::Json {
                    line: 0,
                    message: format!("document {index}: {e}"),
                })?;
            json_export(export, out, emit)
        }
        _ => Err(IngestError::NotAnExport { document: index }),
    }
}

fn json_export<T>(
    export: JsonExport,
    out: &mut Vec<T>,
    emit: &mut impl FnMut(SpanRecord, RawSpan<'_>) -> T,
) -> Result<(), IngestError> {
    for rs in export.resource_spans {
        let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        let res = ResourceIds::from_attrs(attrs.iter().map(|kv| (kv.key.as_str(), json_attr(kv))));
        for ss in rs
            .scope_spans
            .iter()
            .chain(&rs.instrumentation_library_spans)
        {
            for span in &ss.spans {
                let raw = RawSpan::Json {
                    name: &span.name,
                    attributes: &span.attributes,
                    resource: &attrs,
                };
                out.push(emit(json_span(span, &res)?, raw));
            }
        }
    }
    Ok(())
}

fn json_attr(kv: &JsonKeyValue) -> Attr<'_> {
    let Some(v) = &kv.value else {
        return Attr::Other;
    };
    if let Some(s) = &v.string_value {
        return Attr::Str(s);
    }
    if let Some(i) = v.int_value.as_ref().and_then(json_i64) {
        return Attr::Int(i);
    }
    let _ = (v.bool_value, v.double_value);
    Attr::Other
}

fn json_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn json_span(s: &JsonSpan, res: &ResourceIds) -> Result<SpanRecord, IngestError> {
    let kind = match &s.kind {
        Value::String(name) => match name.as_str() {
            "SPAN_KIND_SERVER" => SPAN_KIND_SERVER,
            "SPAN_KIND_CLIENT" => SPAN_KIND_CLIENT,
            _ => json_i64(&s.kind).unwrap_or(0),
        },
        other => json_i64(other).unwrap_or(0),
    };
    let status = match s.status.as_ref().map(|st| &st.code) {
        Some(Value::String(name)) if name == "STATUS_CODE_ERROR" => STATUS_CODE_ERROR,
        Some(v) => json_i64(v).unwrap_or(0),
        None => 0,
    };
    let parent = if s.parent_span_id.is_empty() {
        None
    } else {
        Some(text_id(&s.parent_span_id, SPAN_ID_BYTES, "parentSpanId")?)
    };
    let span = SpanParts {
        trace_id: text_id(&s.trace_id, TRACE_ID_BYTES, "traceId")?,
        span_id: text_id(&s.span_id, SPAN_ID_BYTES, "spanId")?,
        parent_span_id: parent,
        name: &s.name,
        kind,
        start_ns: json_time(&s.start_time_unix_nano, "startTimeUnixNano")?,
        end_ns: json_time(&s.end_time_unix_nano, "endTimeUnixNano")?,
        status,
    };
    Ok(span.build(
        res,
        s.attributes
            .iter()
            .map(|kv| (kv.key.as_str(), json_attr(kv))),
    ))
}

fn json_time(v: &Value, field: &'static str) -> Result<u64, IngestError> {
    let parsed = match v {
        Value::Null => Some(0),
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| IngestError::InvalidTime {
        field,
        value: truncate(&v.to_string()),
    })
}

/// Ids are hex in OTLP/JSON; Jaeger and protobuf-to-JSON mappers sometimes write base64.
fn text_id(s: &str, bytes: usize, field: &'static str) -> Result<String, IngestError> {
    let bad = || IngestError::InvalidId {
        field,
        value: truncate(s),
    };
    if s.len() == bytes * 2 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(s.to_ascii_lowercase());
    }
    let raw = base64_decode(s).ok_or_else(bad)?;
    if raw.len() != bytes {
        return Err(bad());
    }
    Ok(hex(&raw))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            s.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

/// Standard or URL-safe base64, padding optional. `None` on any invalid character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Decodes OTLP/protobuf `ExportTraceServiceRequest` bytes (the body of `POST /v1/traces`
/// with `content-type: application/x-protobuf`, or the gRPC message).
pub fn from_otlp_proto(bytes: &[u8]) -> Result<Vec<SpanRecord>, IngestError> {
    proto_spans(bytes, |record, _| record)
}

/// [`from_otlp_proto`] with each span's name and attributes.
pub fn decode_otlp_proto(bytes: &[u8]) -> Result<Vec<DecodedSpan>, IngestError> {
    proto_spans(bytes, |record, raw| raw.decoded(record))
}

/// Calls `emit` on every span of the export in `bytes`, in input order.
fn proto_spans<T>(
    bytes: &[u8],
    mut emit: impl FnMut(SpanRecord, RawSpan<'_>) -> T,
) -> Result<Vec<T>, IngestError> {
    let req = ExportTraceServiceRequest::decode(bytes)
        .map_err(|e| IngestError::Protobuf(e.to_string()))?;
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let res = ResourceIds::from_attrs(attrs.iter().map(proto_attr));
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let parent = if s.parent_span_id.is_empty() {
                    None
                } else {
                    Some(bytes_id(&s.parent_span_id, SPAN_ID_BYTES, "parentSpanId")?)
                };
                let span = SpanParts {
                    trace_id: bytes_id(&s.trace_id, TRACE_ID_BYTES, "traceId")?,
                    span_id: bytes_id(&s.span_id, SPAN_ID_BYTES, "spanId")?,
                    parent_span_id: parent,
                    name: &s.name,
                    kind: i64::from(s.kind),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    status: s.status.as_ref().map_or(0, |st| i64::from(st.code)),
                };
                let raw = RawSpan::Proto {
                    name: &s.name,
                    attributes: &s.attributes,
                    resource: attrs,
                };
                out.push(emit(
                    span.build(&res, s.attributes.iter().map(proto_attr)),
                    raw,
                ));
            }
        }
    }
    Ok(out)
}

fn proto_attr(kv: &KeyValue) -> (&str, Attr<'_>) {
    let v = match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Attr::Str(s),
        Some(any_value::Value::IntValue(i)) => Attr::Int(*i),
        _ => Attr::Other,
    };
    (kv.key.as_str(), v)
}

fn bytes_id(b: &[u8], len: usize, field: &'static str) -> Result<String, IngestError> {
    if b.len() != len {
        return Err(IngestError::InvalidId {
            field,
            value: hex(b.get(..b.len().min(32)).unwrap_or_default()),
        });
    }
    Ok(hex(b))
}

/// One span's name and attributes as decoded, in either encoding.
enum RawSpan<'a> {
    Proto {
        name: &'a str,
        attributes: &'a [KeyValue],
        resource: &'a [KeyValue],
    },
    Json {
        name: &'a str,
        attributes: &'a [JsonKeyValue],
        resource: &'a [JsonKeyValue],
    },
}

impl RawSpan<'_> {
    fn decoded(&self, record: SpanRecord) -> DecodedSpan {
        let (name, attributes, resource_attributes) = match self {
            Self::Proto {
                name,
                attributes,
                resource,
            } => (*name, proto_attrs(attributes), proto_attrs(resource)),
            Self::Json {
                name,
                attributes,
                resource,
            } => (*name, json_attrs(attributes), json_attrs(resource)),
        };
        DecodedSpan {
            record,
            name: name.to_owned(),
            attributes,
            resource_attributes,
        }
    }
}

/// Protobuf attributes as a flat JSON object (`key` → plain JSON value).
fn proto_attrs(attrs: &[KeyValue]) -> Value {
    Value::Object(
        attrs
            .iter()
            .map(|kv| (kv.key.clone(), proto_value(kv.value.as_ref())))
            .collect(),
    )
}

fn proto_value(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| proto_value(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => proto_attrs(&l.values),
        // String-table references (profiles only) carry no value in trace payloads.
        #[allow(unreachable_patterns)]
        Some(_) | None => Value::Null,
    }
}

/// OTLP/JSON attributes as a flat JSON object (`key` → plain JSON value).
fn json_attrs(kvs: &[JsonKeyValue]) -> Value {
    Value::Object(
        kvs.iter()
            .map(|kv| (kv.key.clone(), json_value(&kv.raw)))
            .collect(),
    )
}

/// OTLP/JSON `AnyValue` (`{"intValue": "5"}`...) to a plain JSON value.
fn json_value(v: &Value) -> Value {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return Value::Null;
    };
    match kind.as_str() {
        "intValue" => match inner {
            Value::String(s) => s.parse::<i64>().map_or_else(|_| inner.clone(), Value::from),
            other => other.clone(),
        },
        "arrayValue" => Value::Array(
            inner
                .get("values")
                .and_then(Value::as_array)
                .map_or_else(Vec::new, |a| a.iter().map(json_value).collect()),
        ),
        "kvlistValue" => raw_kvs(
            inner
                .get("values")
                .and_then(Value::as_array)
                .map_or(&[], |a| a.as_slice()),
        ),
        // stringValue, boolValue, doubleValue, bytesValue (base64) are already plain.
        _ => inner.clone(),
    }
}

/// A `kvlistValue`'s entries (not checked by the typed read) as a flat JSON object.
fn raw_kvs(kvs: &[Value]) -> Value {
    let mut map = serde_json::Map::new();
    for kv in kvs {
        if let Some(key) = kv.get("key").and_then(Value::as_str) {
            map.insert(
                key.to_string(),
                kv.get("value").map_or(Value::Null, json_value),
            );
        }
    }
    Value::Object(map)
}

/// Resource attributes we keep.
struct ResourceIds {
    service: String,
    version: String,
}

impl ResourceIds {
    fn from_attrs<'a>(attrs: impl Iterator<Item = (&'a str, Attr<'a>)>) -> Self {
        let mut r = Self {
            service: UNKNOWN_SERVICE.to_owned(),
            version: UNKNOWN_VERSION.to_owned(),
        };
        for (k, v) in attrs {
            match (k, v) {
                (ATTR_SERVICE_NAME, Attr::Str(s)) if !s.is_empty() => r.service = s.to_owned(),
                (ATTR_SERVICE_VERSION, Attr::Str(s)) if !s.is_empty() => r.version = s.to_owned(),
                _ => {}
            }
        }
        r
    }
}

/// The encoding-independent part of a span, before attributes are applied.
struct SpanParts<'a> {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    name: &'a str,
    kind: i64,
    start_ns: u64,
    end_ns: u64,
    status: i64,
}

impl SpanParts<'_> {
    fn build<'a>(
        self,
        res: &ResourceIds,
        attrs: impl Iterator<Item = (&'a str, Attr<'a>)>,
    ) -> SpanRecord {
        let mut rec = SpanRecord {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            service: res.service.clone(),
            version: res.version.clone(),
            kind: match self.kind {
                SPAN_KIND_SERVER => Kind::Server,
                SPAN_KIND_CLIENT => Kind::Client,
                _ => Kind::Other,
            },
            role: None,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            is_error: self.status == STATUS_CODE_ERROR,
            http_status: None,
            route: None,
            peer_service: None,
            peer_version: None,
        };
        let mut old_status = None;
        let mut cluster = None;
        for (k, v) in attrs {
            match (k, v) {
                (ATTR_ROLE, Attr::Str(s)) => rec.role = Some(s.to_owned()),
                (ATTR_UPSTREAM_CLUSTER, Attr::Str(s)) => cluster = Some(s),
                (ATTR_ROUTE, Attr::Str(s)) => rec.route = Some(s.to_owned()),
                (ATTR_PEER_SERVICE, Attr::Str(s)) => rec.peer_service = Some(s.to_owned()),
                (ATTR_PEER_VERSION, Attr::Str(s)) => rec.peer_version = Some(s.to_owned()),
                (ATTR_STATUS_CODE, v) => rec.http_status = status_code(&v),
                (ATTR_STATUS_CODE_OLD, v) => old_status = status_code(&v),
                _ => {}
            }
        }
        if rec.http_status.is_none() {
            rec.http_status = old_status;
        }
        if rec.route.is_none() && !self.name.is_empty() {
            rec.route = Some(self.name.to_owned());
        }
        if rec.kind == Kind::Client {
            fill_peer_from_cluster(&mut rec, cluster);
        }
        rec
    }
}

/// A CLIENT span without the callee's identity (a refused or crashed callee answers no
/// `x-meshwake-peer`, and a tracer other than meshwake's may not infer it) still names it by
/// the Envoy upstream cluster it was routed to: the filter's own default patterns
/// (`<service>-<version>`, Istio `outbound|port|subset|host`) fill in what is missing, so
/// a failure with no callee span is blamed on that callee rather than on its caller.
fn fill_peer_from_cluster(rec: &mut SpanRecord, cluster: Option<&str>) {
    let known = |v: &Option<String>| v.as_deref().is_some_and(|v| v != UNKNOWN_VERSION);
    if known(&rec.peer_service) && known(&rec.peer_version) {
        return;
    }
    static PATTERNS: std::sync::OnceLock<Vec<meshwake_identity::ClusterPattern>> =
        std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(meshwake_identity::fallback::default_patterns);
    let Some(hints) = cluster.and_then(|c| patterns.iter().find_map(|p| p.match_cluster(c))) else {
        return;
    };
    if !known(&rec.peer_service) {
        if let Some(s) = hints.service {
            rec.peer_service = Some(s.to_owned());
        }
    }
    // A version only for the service the cluster names (never graft it onto another peer).
    if !known(&rec.peer_version) && rec.peer_service.as_deref() == hints.service {
        rec.peer_version = hints.version.map(str::to_owned);
    }
}

fn status_code(v: &Attr<'_>) -> Option<u16> {
    match v {
        Attr::Int(i) => u16::try_from(*i).ok(),
        Attr::Str(s) => s.parse().ok(),
        Attr::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    const SAMPLE: &str = include_str!("../testdata/otlp-file-exporter.jsonl");

    #[test]
    fn parses_collector_file_exporter_output() {
        let spans = from_otlp_json(SAMPLE).unwrap();
        assert_eq!(spans.len(), 4);
        let edge = &spans[0];
        assert_eq!(edge.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(edge.span_id, "eee19b7ec3c1b174");
        assert_eq!(edge.parent_span_id, None);
        assert_eq!(
            (edge.service.as_str(), edge.version.as_str()),
            ("frontend", "v1")
        );
        assert_eq!(edge.kind, Kind::Server);
        assert_eq!(edge.role.as_deref(), Some("edge"));
        assert_eq!(edge.route.as_deref(), Some("/checkout"));
        assert_eq!(edge.http_status, Some(500));
        assert!(edge.is_error);
        assert_eq!(edge.duration_ns(), 250_000_000);

        let client = &spans[1];
        assert_eq!(client.kind, Kind::Client);
        assert_eq!(client.parent_span_id.as_deref(), Some("eee19b7ec3c1b174"));
        assert_eq!(client.peer_service.as_deref(), Some("cart"));
        assert_eq!(client.peer_version.as_deref(), Some("v2"));
        // No http.route: the span name stands in.
        assert_eq!(client.route.as_deref(), Some("egress cart"));

        let cart = &spans[2];
        assert_eq!(
            (cart.service.as_str(), cart.version.as_str()),
            ("cart", "v2")
        );
        assert_eq!(cart.http_status, Some(503));
        assert!(cart.is_error);
        // Second line: enum names instead of integers, legacy status attribute, missing version.
        let other = &spans[3];
        assert_eq!(other.kind, Kind::Server);
        assert_eq!(other.version, UNKNOWN_VERSION);
        assert_eq!(other.http_status, Some(200));
        assert!(!other.is_error);
    }

    #[test]
    fn parses_jaeger_v3_wrapper_with_base64_ids() {
        let doc = r#"{"result":{"resourceSpans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"cart"}}]},
            "scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"7uGbfsPBsXQ=",
            "kind":2,"startTimeUnixNano":10,"endTimeUnixNano":20,"status":{}}]}]}]}}"#;
        let spans = from_otlp_json(doc).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(spans[0].span_id, "eee19b7ec3c1b174");
        assert_eq!(spans[0].service, "cart");
        assert_eq!(spans[0].duration_ns(), 10);
    }

    #[test]
    fn decoded_spans_carry_the_same_records_and_every_attribute() {
        let decoded = decode_otlp_json(SAMPLE).unwrap();
        let records: Vec<SpanRecord> = decoded.iter().map(|d| d.record.clone()).collect();
        assert_eq!(records, from_otlp_json(SAMPLE).unwrap());
        let edge = &decoded[0];
        assert_eq!(edge.attributes["meshwake.role"], "edge");
        assert_eq!(edge.resource_attributes["service.name"], "frontend");
        assert!(!edge.name.is_empty());
        // The raw values are kept, but still checked as the typed read did.
        let bad = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","attributes":[{"key":"x","value":{"boolValue":"yes"}}]}]}]}]}"#;
        assert!(matches!(
            decode_otlp_json(bad),
            Err(IngestError::Json { .. })
        ));
        assert!(matches!(from_otlp_json(bad), Err(IngestError::Json { .. })));
    }

    /// One CLIENT span of `web` with these attributes (JSON `attributes` entries).
    fn client_with(attrs: &str) -> SpanRecord {
        let doc = format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[
            {{"key":"service.name","value":{{"stringValue":"web"}}}}]}},
            "scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","kind":3,"startTimeUnixNano":10,"endTimeUnixNano":20,
            "status":{{"code":2}},"attributes":[{attrs}]}}]}}]}}]}}"#
        );
        from_otlp_json(&doc).unwrap().remove(0)
    }

    fn peer(s: &SpanRecord) -> (Option<&str>, Option<&str>) {
        (s.peer_service.as_deref(), s.peer_version.as_deref())
    }

    #[test]
    fn client_span_without_peer_identity_names_its_callee_by_cluster() {
        let cluster = |c: &str| {
            format!(r#"{{"key":"envoy.upstream_cluster","value":{{"stringValue":"{c}"}}}}"#)
        };
        // A refused connection (UF): no peer header, only the cluster the call was routed to.
        assert_eq!(
            peer(&client_with(&cluster("api-v2"))),
            (Some("api"), Some("v2"))
        );
        let istio = cluster("outbound|9080|v3|reviews.shop.svc.cluster.local");
        assert_eq!(peer(&client_with(&istio)), (Some("reviews"), Some("v3")));
        // Not a `<service>-<version>` name: nothing is made up.
        assert_eq!(peer(&client_with(&cluster("redis-6379"))), (None, None));
        // Peer identity wins; an unknown version is filled only for the same service.
        let named = |svc: &str, ver: &str| {
            format!(
                r#"{{"key":"peer.service","value":{{"stringValue":"{svc}"}}}},
                {{"key":"meshwake.peer.version","value":{{"stringValue":"{ver}"}}}},{}"#,
                cluster("api-v2")
            )
        };
        assert_eq!(
            peer(&client_with(&named("cart", "v1"))),
            (Some("cart"), Some("v1"))
        );
        assert_eq!(
            peer(&client_with(&named("api", "unknown"))),
            (Some("api"), Some("v2"))
        );
        assert_eq!(
            peer(&client_with(&named("cart", "unknown"))),
            (Some("cart"), Some("unknown"))
        );
    }

    #[test]
    fn empty_input_is_no_spans() {
        assert_eq!(from_otlp_json("").unwrap(), vec![]);
        assert_eq!(from_otlp_json("{\"resourceSpans\":[]}\n").unwrap(), vec![]);
    }

    #[rustfmt::skip]
    #[test]
    fn rejects_bad_input_with_typed_errors() {
        let span = |fields: &str| format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{{fields}}}]}}]}}]}}"#);
        let ok_ids = r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174""#;
        type Check = fn(&IngestError) -> bool;
        let cases: Vec<(String, Check)> = vec![
            ("{not json".into(),                       |e| matches!(e, IngestError::Json { .. })),
            ("42".into(),                              |e| matches!(e, IngestError::NotAnExport { document: 1 })),
            ("{\"foo\":1}".into(),                     |e| matches!(e, IngestError::NotAnExport { .. })),
            ("{\"resourceSpans\":3}".into(),           |e| matches!(e, IngestError::Json { .. })),
            (span(r#""traceId":"abc","spanId":"eee19b7ec3c1b174""#), |e| matches!(e, IngestError::InvalidId { field: "traceId", .. })),
            (span(r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"zz""#), |e| matches!(e, IngestError::InvalidId { field: "spanId", .. })),
            (span(&format!(r#"{ok_ids},"parentSpanId":"12""#)), |e| matches!(e, IngestError::InvalidId { field: "parentSpanId", .. })),
            (span(&format!(r#"{ok_ids},"startTimeUnixNano":"-5""#)), |e| matches!(e, IngestError::InvalidTime { .. })),
            (span(&format!(r#"{ok_ids},"endTimeUnixNano":1.5"#)), |e| matches!(e, IngestError::InvalidTime { .. })),
        ];
        for (input, check) in cases {
            let err = from_otlp_json(&input).unwrap_err();
            assert!(check(&err), "{input} -> {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_protobuf_export() {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", any_value::Value::StringValue("cart".into())),
                        kv(
                            "service.version",
                            any_value::Value::StringValue("v2".into()),
                        ),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                        parent_span_id: vec![9; 8],
                        name: "ingress".into(),
                        kind: 2,
                        start_time_unix_nano: 100,
                        end_time_unix_nano: 300,
                        attributes: vec![
                            kv(
                                "meshwake.role",
                                any_value::Value::StringValue("inbound".into()),
                            ),
                            kv("http.response.status_code", any_value::Value::IntValue(502)),
                            kv(
                                "http.route",
                                any_value::Value::StringValue("/cart/{id}".into()),
                            ),
                        ],
                        status: Some(Status {
                            code: 2,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let spans = from_otlp_proto(&req.encode_to_vec()).unwrap();
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.trace_id, "ab".repeat(16));
        assert_eq!(s.span_id, "0102030405060708");
        assert_eq!(s.parent_span_id.as_deref(), Some("0909090909090909"));
        assert_eq!(s.deployment().to_string(), "cart@v2");
        assert_eq!(
            (s.kind, s.http_status, s.is_error),
            (Kind::Server, Some(502), true)
        );
        assert_eq!(s.route.as_deref(), Some("/cart/{id}"));
        assert_eq!(s.role.as_deref(), Some("inbound"));
    }

    #[test]
    fn rejects_bad_protobuf() {
        assert!(matches!(
            from_otlp_proto(&[0xff, 0xff, 0xff]),
            Err(IngestError::Protobuf(_))
        ));
        let mut req = ExportTraceServiceRequest::default();
        req.resource_spans.push(ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 3],
                    span_id: vec![1; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(matches!(
            from_otlp_proto(&req.encode_to_vec()),
            Err(IngestError::InvalidId {
                field: "traceId",
                ..
            })
        ));
        assert_eq!(from_otlp_proto(&[]).unwrap(), vec![]);
    }
}
