//! OTLP trace payloads to stored span rows. Decoding is `meshwake-analysis`' ingest (one
//! derivation of service, version, role... for every input), which also hands over what the
//! store keeps besides the record: the span name and the raw attributes, from the same pass.

use std::fmt;

use crate::analysis_bridge::{self, DecodedSpan, IngestError};

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

/// A span as stored: the analysis record plus what the analysis does not need but a human
/// might (name, raw attributes), decoded in one pass by the analysis ingest.
pub type SpanRow = DecodedSpan;

/// Rows from a binary protobuf `ExportTraceServiceRequest`.
pub fn rows_from_protobuf(body: &[u8]) -> Result<Vec<SpanRow>, DecodeError> {
    analysis_bridge::decode_otlp_proto(body).map_err(DecodeError::Protobuf)
}

/// Rows from OTLP/JSON (one or more `ExportTraceServiceRequest` documents).
pub fn rows_from_json(body: &[u8]) -> Result<Vec<SpanRow>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(DecodeError::NotUtf8)?;
    analysis_bridge::decode_otlp_json(text).map_err(DecodeError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis_bridge::Kind;
    use meshwake_semconv::attr;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
    };
    use prost::Message;
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
}
