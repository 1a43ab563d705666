//! OTLP trace payloads to stored span rows. The analysis record of each span comes from
//! `meshwake-analysis`' ingest (one derivation of service, version, role... for every input);
//! this module adds what the store keeps besides: the span name and the raw attributes.

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::{Map, Value};

use crate::analysis_bridge::{self, IngestError, SpanRecord};

/// Why a payload could not be decoded.
#[derive(Debug)]
pub enum DecodeError {
    /// Not a valid protobuf `ExportTraceServiceRequest`.
    Protobuf(IngestError),
    /// A JSON body that is not UTF-8.
    NotUtf8(std::str::Utf8Error),
    /// Not a valid OTLP/JSON `ExportTraceServiceRequest`.
    Json(IngestError),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Protobuf(e) | DecodeError::Json(e) => write!(f, "{e}"),
            DecodeError::NotUtf8(e) => write!(f, "OTLP JSON body is not UTF-8: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

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

/// The parts of a span that the analysis record leaves out.
#[derive(Debug, Clone, Default, PartialEq)]
struct Extras {
    name: String,
    attributes: Value,
    resource_attributes: Value,
}

/// Rows from a binary protobuf `ExportTraceServiceRequest`.
pub fn rows_from_protobuf(body: &[u8]) -> Result<Vec<SpanRow>, DecodeError> {
    let records = analysis_bridge::from_otlp_proto(body).map_err(DecodeError::Protobuf)?;
    // Cannot fail once the ingest decoded the same bytes; an empty list only loses extras.
    let extras = ExportTraceServiceRequest::decode(body)
        .map(|r| proto_extras(&r))
        .unwrap_or_default();
    Ok(join(records, extras))
}

/// Rows from OTLP/JSON (one or more `ExportTraceServiceRequest` documents).
pub fn rows_from_json(body: &[u8]) -> Result<Vec<SpanRow>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(DecodeError::NotUtf8)?;
    let records = analysis_bridge::from_otlp_json(text).map_err(DecodeError::Json)?;
    Ok(join(records, json_extras(text)))
}

/// Pairs records with extras; both walk resources → scopes → spans in the same order. Should the
/// walks ever disagree, the rows are kept without extras rather than with someone else's.
fn join(records: Vec<SpanRecord>, extras: Vec<Extras>) -> Vec<SpanRow> {
    let extras = if extras.len() == records.len() {
        extras
    } else {
        Vec::new()
    };
    let mut extras = extras.into_iter();
    records
        .into_iter()
        .map(|record| {
            let e = extras.next().unwrap_or_default();
            SpanRow {
                record,
                name: e.name,
                attributes: or_empty(e.attributes),
                resource_attributes: or_empty(e.resource_attributes),
            }
        })
        .collect()
}

fn or_empty(v: Value) -> Value {
    if v.is_null() {
        Value::Object(Map::new())
    } else {
        v
    }
}

fn proto_extras(req: &ExportTraceServiceRequest) -> Vec<Extras> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map_or_else(|| Value::Object(Map::new()), |r| proto_attrs(&r.attributes));
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push(Extras {
                    name: span.name.clone(),
                    attributes: proto_attrs(&span.attributes),
                    resource_attributes: resource.clone(),
                });
            }
        }
    }
    out
}

/// Attributes as a flat JSON object (`key` → plain JSON value).
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

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Walks OTLP/JSON documents the way the analysis ingest does: a document is an export, a
/// Jaeger v3 `{"result": ...}` wrapper, or an array of those.
fn json_extras(text: &str) -> Vec<Extras> {
    let mut out = Vec::new();
    for doc in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        match doc {
            Ok(doc) => json_document(&doc, &mut out),
            Err(_) => return Vec::new(),
        }
    }
    out
}

fn json_document(doc: &Value, out: &mut Vec<Extras>) {
    if let Some(items) = doc.as_array() {
        items.iter().for_each(|d| json_document(d, out));
        return;
    }
    let export = doc.get("result").unwrap_or(doc);
    let empty = Vec::new();
    let arr = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for rs in export
        .get("resourceSpans")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let resource = rs
            .get("resource")
            .map_or(Value::Null, |r| json_attrs(&arr(r, "attributes")));
        let scopes = arr(rs, "scopeSpans")
            .into_iter()
            .chain(arr(rs, "instrumentationLibrarySpans"));
        for ss in scopes {
            for span in arr(&ss, "spans") {
                out.push(Extras {
                    name: span
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    attributes: json_attrs(&arr(&span, "attributes")),
                    resource_attributes: resource.clone(),
                });
            }
        }
    }
}

fn json_attrs(kvs: &[Value]) -> Value {
    let mut map = Map::new();
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
        "kvlistValue" => json_attrs(
            inner
                .get("values")
                .and_then(Value::as_array)
                .map_or(&[], |a| a.as_slice()),
        ),
        // stringValue, boolValue, doubleValue, bytesValue (base64) are already plain.
        _ => inner.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis_bridge::Kind;
    use meshwake_semconv::attr;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
    };
    use serde_json::json;

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn protobuf_rows_carry_record_and_extras() {
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
            name: "GET /pay".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            status: Some(Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            }),
            attributes: vec![
                kv(
                    attr::MESHWAKE_ROLE,
                    any_value::Value::StringValue("outbound".into()),
                ),
                kv(
                    attr::HTTP_RESPONSE_STATUS_CODE,
                    any_value::Value::IntValue(503),
                ),
                kv(
                    attr::MESHWAKE_PEER_VERSION,
                    any_value::Value::StringValue("v7".into()),
                ),
                kv("flag", any_value::Value::BoolValue(true)),
            ],
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        attr::SERVICE_NAME,
                        any_value::Value::StringValue("checkout".into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let rows = rows_from_protobuf(&req.encode_to_vec()).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.record.span_id, "0102030405060708");
        assert_eq!(r.record.kind, Kind::Client);
        assert!(r.record.is_error);
        assert_eq!(r.record.http_status, Some(503));
        assert_eq!(r.name, "GET /pay");
        assert_eq!(
            r.attributes,
            json!({"meshwake.role": "outbound", "http.response.status_code": 503,
                                        "meshwake.peer.version": "v7", "flag": true})
        );
        assert_eq!(r.resource_attributes, json!({"service.name": "checkout"}));
        assert!(matches!(
            rows_from_protobuf(b"\xff\xff\xff"),
            Err(DecodeError::Protobuf(_))
        ));
    }

    #[test]
    fn json_rows_carry_record_and_extras() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2",
            "attributes":[{"key":"http.response.status_code","value":{"intValue":"200"}},
                          {"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"}]}}}]}]}]}]}"#;
        let rows = rows_from_json(json.as_bytes()).unwrap();
        assert_eq!(rows[0].record.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(rows[0].record.http_status, Some(200));
        assert_eq!(rows[0].name, "x");
        assert_eq!(
            rows[0].attributes,
            json!({"http.response.status_code": 200, "tags": ["a"]})
        );
        assert_eq!(rows[0].resource_attributes, json!({"service.name": "a"}));
        assert!(matches!(rows_from_json(b"nope"), Err(DecodeError::Json(_))));
        assert!(matches!(
            rows_from_json(b"\xff"),
            Err(DecodeError::NotUtf8(_))
        ));
    }

    #[test]
    fn mismatched_extras_are_dropped_not_misattributed() {
        let rows = join(vec![], vec![Extras::default()]);
        assert!(rows.is_empty());
    }
}
