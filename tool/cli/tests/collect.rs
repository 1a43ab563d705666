//! `meshwake collect` end to end: OTLP/HTTP in, SQLite rows and /metrics counters out.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::io::Write;

use common::{request, start_collector};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;

const PROTO: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const GZIP: (&str, &str) = ("Content-Encoding", "gzip");

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn proto_request(service: &str, version: &str, span_ids: &[u8]) -> ExportTraceServiceRequest {
    let spans = span_ids
        .iter()
        .map(|id| Span {
            trace_id: vec![0x11; 16],
            span_id: vec![*id; 8],
            name: format!("span {id}"),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: 1_000 + u64::from(*id),
            end_time_unix_nano: 2_000 + u64::from(*id),
            attributes: vec![kv("meshwake.role", "inbound"), kv("http.route", "/pay")],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service), kv("service.version", version)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn metric(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
    line.unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const JSON_BODY: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"cart"}},{"key":"service.version","value":{"stringValue":"v2"}}]},
  "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
  "name":"GET /cart","kind":3,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000005000000",
  "status":{"code":2},
  "attributes":[{"key":"http.response.status_code","value":{"intValue":"503"}},
                {"key":"peer.service","value":{"stringValue":"payments"}}]}]}]}]}"#;

#[test]
fn stores_protobuf_json_and_gzip_and_counts_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spans.db");
    let c = start_collector(&["--db", db.to_str().unwrap(), "--max-body-bytes", "64KiB"]);

    // Protobuf: 200 with an empty protobuf ExportTraceServiceResponse.
    let body = proto_request("checkout", "v1", &[1, 2]).encode_to_vec();
    let r = request(&c.addr, "POST", "/v1/traces", &[PROTO], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .head
        .to_ascii_lowercase()
        .contains("content-type: application/x-protobuf"));
    assert_eq!(
        ExportTraceServiceResponse::decode(r.body.as_slice()).unwrap(),
        ExportTraceServiceResponse::default()
    );
    // The same spans again are stored once (exporters retry).
    assert_eq!(
        request(&c.addr, "POST", "/v1/traces", &[PROTO], &body).status,
        200
    );

    // JSON: 200 with `{}`.
    let r = request(
        &c.addr,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json; charset=utf-8")],
        JSON_BODY.as_bytes(),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));

    // Gzip, both encodings.
    let body = gzip(&proto_request("payments", "v3", &[3]).encode_to_vec());
    assert_eq!(
        request(&c.addr, "POST", "/v1/traces", &[PROTO, GZIP], &body).status,
        200
    );
    let json_gz = gzip(
        JSON_BODY
            .replace("eee19b7ec3c1b174", "aaaaaaaaaaaaaaaa")
            .as_bytes(),
    );
    assert_eq!(
        request(&c.addr, "POST", "/v1/traces", &[JSON, GZIP], &json_gz).status,
        200
    );

    // Bad bodies: 400 with a google.rpc.Status, counted by reason.
    let r = request(
        &c.addr,
        "POST",
        "/v1/traces",
        &[PROTO],
        b"\xff\xff\xff\xff garbage",
    );
    assert_eq!(r.status, 400);
    let r = request(&c.addr, "POST", "/v1/traces", &[JSON], b"{not json");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("\"code\":3"), "{}", r.text());
    assert_eq!(
        request(&c.addr, "POST", "/v1/traces", &[PROTO, GZIP], b"not gzip").status,
        400
    );

    // Too large: announced (refused before the body is sent) and after inflating.
    let r = request(
        &c.addr,
        "POST",
        "/v1/traces",
        &[
            PROTO,
            ("Content-Length", "10000000"),
            ("Expect", "100-continue"),
        ],
        b"",
    );
    assert_eq!(r.status, 413);
    let bomb = gzip(&vec![0u8; 200 * 1024]);
    assert_eq!(
        request(&c.addr, "POST", "/v1/traces", &[PROTO, GZIP], &bomb).status,
        413
    );

    // Other content types, methods, paths.
    assert_eq!(
        request(
            &c.addr,
            "POST",
            "/v1/traces",
            &[("Content-Type", "text/plain")],
            b"x"
        )
        .status,
        415
    );
    assert_eq!(
        request(
            &c.addr,
            "POST",
            "/v1/traces",
            &[PROTO, ("Content-Encoding", "br")],
            b"x"
        )
        .status,
        415
    );
    let r = request(&c.addr, "GET", "/v1/traces", &[], b"");
    assert_eq!(r.status, 405);
    assert!(r.head.to_ascii_lowercase().contains("allow: post"));
    assert_eq!(
        request(&c.addr, "POST", "/v1/logs", &[PROTO], b"").status,
        404
    );
    assert_eq!(request(&c.addr, "GET", "/healthz", &[], b"").status, 200);

    // Rows, read while the collector runs (WAL lets readers in).
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
    let (service, version, kind, is_error, status, peer, attrs): (String, String, String, bool, i64, String, String) = conn
        .query_row(
            "SELECT service, version, kind, is_error, http_status, peer_service, attributes FROM spans WHERE span_id = 'eee19b7ec3c1b174'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap();
    assert_eq!(
        (
            service.as_str(),
            version.as_str(),
            kind.as_str(),
            is_error,
            status,
            peer.as_str()
        ),
        ("cart", "v2", "client", true, 503, "payments")
    );
    let attrs: serde_json::Value = serde_json::from_str(&attrs).unwrap();
    assert_eq!(attrs["http.response.status_code"], 503);
    let (role, route, name): (String, String, String) = conn
        .query_row(
            "SELECT role, route, name FROM spans WHERE span_id = '0101010101010101'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (role.as_str(), route.as_str(), name.as_str()),
        ("inbound", "/pay", "span 1")
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    // Counters.
    let m = request(&c.addr, "GET", "/metrics", &[], b"").text();
    // Every POST to /v1/traces: 5 stored, 3 bad, 2 too large, 2 unsupported.
    assert_eq!(metric(&m, "meshwake_collector_requests_total"), 12);
    assert_eq!(metric(&m, "meshwake_collector_spans_stored_total"), 5);
    assert_eq!(
        metric(
            &m,
            "meshwake_collector_bad_bodies_total{reason=\"protobuf\"}"
        ),
        1
    );
    assert_eq!(
        metric(&m, "meshwake_collector_bad_bodies_total{reason=\"json\"}"),
        1
    );
    assert_eq!(
        metric(&m, "meshwake_collector_bad_bodies_total{reason=\"gzip\"}"),
        1
    );
    assert_eq!(metric(&m, "meshwake_collector_rejected_too_large_total"), 2);
    assert_eq!(
        metric(
            &m,
            "meshwake_collector_rejected_unsupported_media_type_total"
        ),
        2
    );
    assert_eq!(metric(&m, "meshwake_collector_store_errors_total"), 0);
    assert_eq!(metric(&m, "meshwake_collector_rejected_busy_total"), 0);

    // The stored spans feed `impact --db`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args(["impact", "--db", db.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["spans"], 5);
}

#[test]
fn max_spans_prunes_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spans.db");
    let c = start_collector(&["--db", db.to_str().unwrap(), "--max-spans", "3"]);
    for ids in [[1u8, 2], [3, 4], [5, 6]] {
        let body = proto_request("svc", "v1", &ids).encode_to_vec();
        assert_eq!(
            request(&c.addr, "POST", "/v1/traces", &[PROTO], &body).status,
            200
        );
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT span_id FROM spans ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ids,
        ["0404040404040404", "0505050505050505", "0606060606060606"]
    );
}
