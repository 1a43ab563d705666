//! Spans exported over OTLP by a real Envoy: every field of every span of a two-hop request,
//! checked against what went on the wire, decoded with the OpenTelemetry protobuf schema.
//! Also the export path itself: request shape, retries after 503, an absent collector, and
//! one span per request.
use meshwake_semconv::{attr, stat};
use meshwake_tests::otlp::ReceivedSpan;
use meshwake_tests::{
    free_port, http, stats_tags, Envoy, EnvoyOptions, OtlpReceiver, Request, Response, Server,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A plugin configuration as the JSON string a template placeholder takes.
fn cfg(role: &str, service: &str, version: &str, extra: &str) -> String {
    let c = format!(
        r#"{{"role":"{role}","identity":{{"service":"{service}","version":"{version}","namespace":"shop","workload":"{service}-{version}"}},"export":{{"flush_interval_ms":50,"initial_backoff_ms":50,"max_backoff_ms":200}}{extra}}}"#
    );
    serde_json::to_string(&c).unwrap()
}

/// One HTTP/1.1 request with every header given verbatim (including `host`), `connection: close`;
/// the response keeps its headers except `content-length` and `connection`.
fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    s.write_all(&out).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    let mut resp = Response::new(status);
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            } else if !k.eq_ignore_ascii_case("connection") {
                resp = resp.with_header(k, v.trim());
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    resp.with_body(body)
}

/// Headers of `req` minus the hop-by-hop ones our raw client sets itself.
fn forwardable(req: &Request) -> Vec<(String, Vec<u8>)> {
    req.headers
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "connection" | "content-length" | "transfer-encoding"
            )
        })
        .cloned()
        .collect()
}

struct Chain {
    envoy: Envoy,
    otlp: OtlpReceiver,
    app_a: Server,
    wire: Server,
    app_b: Server,
}

/// client -> a_in -> app A -> a_out -> wire tap -> b_in -> app B (see `chain.yaml.tmpl`).
/// App A forwards `traceparent` as a well-behaved app does and calls `backend.shop:8080`;
/// app B answers 42 bytes with the status asked for in the `x-status` request header.
/// `app_b_port`: None for a live app B, Some(dead port) for a connection failure.
fn chain(app_b_port: Option<u16>) -> Chain {
    let otlp = OtlpReceiver::start();
    let (a_out, b_in) = (free_port(), free_port());
    let app_b = Server::start(|req| {
        let status = req
            .header("x-status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        Response::new(status).with_body(vec![b'b'; 42])
    });
    let wire = Server::start(move |req| {
        // Response headers too: the callee's identity header travels back this way.
        raw_request(b_in, &req.method, &req.path, &forwardable(req), &req.body)
    });
    let app_a = Server::start(move |req| {
        let mut h = vec![
            ("host".to_string(), b"backend.shop:8080".to_vec()),
            ("user-agent".to_string(), b"app-a/1.0".to_vec()),
        ];
        for name in ["traceparent", "x-status"] {
            if let Some(v) = req.header_bytes(name) {
                h.push((name.to_string(), v.to_vec()));
            }
        }
        let r = raw_request(a_out, "POST", &req.path, &h, b"hello-from-a");
        Response::new(r.status).with_body(r.body)
    });
    // Every attribute, the per-request property reads included (`stream_details`).
    let routes = r#","spans":{"routes":["/users/{user}"],"stream_details":true}"#;
    let details = r#","spans":{"stream_details":true}"#;
    let envoy = Envoy::start(stats_tags::with_stats_tags(
        EnvoyOptions::default()
            .name("spans-chain")
            .template("chain.yaml.tmpl")
            .var("A_OUT_PORT", a_out)
            .var("B_IN_PORT", b_in)
            .var("WIRE_PORT", wire.port())
            .var("APP_A_PORT", app_a.port())
            .var("APP_B_PORT", app_b_port.unwrap_or(app_b.port()))
            .var("OTLP_PORT", otlp.port())
            .var("PLUGIN_A_IN", cfg("inbound", "frontend", "v1", details))
            .var("PLUGIN_A_OUT", cfg("outbound", "frontend", "v1", details))
            .var("PLUGIN_B_IN", cfg("inbound", "backend", "v2", routes)),
    ));
    Chain {
        envoy,
        otlp,
        app_a,
        wire,
        app_b,
    }
}

/// The three spans of one trace, by role and service.
struct Three {
    a_in: ReceivedSpan,
    a_out: ReceivedSpan,
    b_in: ReceivedSpan,
}

fn three(spans: &[ReceivedSpan], trace: &str) -> Three {
    let of_trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id_hex() == trace).collect();
    assert_eq!(of_trace.len(), 3, "spans of trace {trace}: {of_trace:#?}");
    let pick = |role: &str, service: &str| {
        let v: Vec<&&ReceivedSpan> = of_trace
            .iter()
            .filter(|s| {
                s.attr_str(attr::MESHWAKE_ROLE).as_deref() == Some(role)
                    && s.resource_str(attr::SERVICE_NAME).as_deref() == Some(service)
            })
            .collect();
        assert_eq!(v.len(), 1, "{role} span of {service}: {of_trace:#?}");
        (*v[0]).clone()
    };
    Three {
        a_in: pick("inbound", "frontend"),
        a_out: pick("outbound", "frontend"),
        b_in: pick("inbound", "backend"),
    }
}

/// `traceparent` value → (trace id, parent id, flags).
fn parse_tp(v: &str) -> (String, String, String) {
    let p: Vec<&str> = v.split('-').collect();
    assert_eq!(p.len(), 4, "{v}");
    assert_eq!(p[0], "00", "{v}");
    (p[1].into(), p[2].into(), p[3].into())
}

/// Attributes as `key → printable value`, for exact comparison.
fn attrs(s: &ReceivedSpan) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kv in &s.span.attributes {
        let v = kv
            .value
            .as_ref()
            .and_then(|v| v.value.as_ref())
            .expect("attribute without value");
        let text = match v {
            Value::StringValue(s) => format!("{s:?}"),
            Value::IntValue(i) => format!("int:{i}"),
            Value::BoolValue(b) => format!("bool:{b}"),
            Value::DoubleValue(d) => format!("double:{d}"),
            Value::ArrayValue(a) => format!(
                "[{}]",
                a.values
                    .iter()
                    .map(|x| match x.value.as_ref() {
                        Some(Value::StringValue(s)) => format!("{s:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => format!("{other:?}"),
        };
        assert!(
            out.insert(kv.key.clone(), text).is_none(),
            "duplicate attribute {}",
            kv.key
        );
    }
    out
}

fn expect_attrs(s: &ReceivedSpan, want: &[(&str, String)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(attrs(s), want, "attributes of span {}", s.span.name);
}

fn st(s: &str) -> String {
    format!("{s:?}")
}
fn int(i: i64) -> String {
    format!("int:{i}")
}

fn resource_of(s: &ReceivedSpan) -> BTreeMap<String, String> {
    s.resource
        .attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                other => panic!("resource attribute {} is not a string: {other:?}", kv.key),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn expect_resource(s: &ReceivedSpan, service: &str, version: &str) {
    let r = resource_of(s);
    let sdk_version = r
        .get(attr::TELEMETRY_SDK_VERSION)
        .cloned()
        .unwrap_or_default();
    assert!(
        !sdk_version.is_empty() && sdk_version.split('.').count() == 3,
        "sdk version {sdk_version:?}"
    );
    let want: BTreeMap<String, String> = [
        (attr::SERVICE_NAME, service),
        (attr::SERVICE_VERSION, version),
        (attr::SERVICE_NAMESPACE, "shop"),
        (attr::K8S_NAMESPACE_NAME, "shop"),
        (attr::TELEMETRY_SDK_NAME, "meshwake"),
        (attr::TELEMETRY_SDK_LANGUAGE, "rust"),
        (attr::TELEMETRY_SDK_VERSION, sdk_version.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(r, want, "resource of {}", s.span.name);
}

fn status_code(s: &ReceivedSpan) -> StatusCode {
    s.span.status.as_ref().map_or(StatusCode::Unset, |st| {
        StatusCode::try_from(st.code).unwrap()
    })
}

/// W3C flag sampled, plus OTLP's "has is_remote" bit (0x100), and is_remote (0x200) when set.
const SAMPLED: u32 = 0x01;
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn header_of(r: &Request, name: &str) -> String {
    r.header(name)
        .unwrap_or_else(|| panic!("{name} missing at {} {:?}", r.path, r.headers))
}

#[test]
fn two_hop_request_exports_three_spans_matching_the_wire() {
    let c = chain(None);
    let (client_trace, client_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let t0 = now_ns();
    let r = http::get(
        c.envoy.port("A_IN_PORT"),
        "/users/12345?x=1",
        &[
            ("user-agent", "curl/8"),
            (
                "traceparent",
                &format!("00-{client_trace}-{client_parent}-01"),
            ),
        ],
    );
    let t1 = now_ns();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.body.len(), 42);
    let spans = c.otlp.wait_spans(3, 10);
    let t = three(&spans, client_trace);
    let (a_in, a_out, b_in) = (&t.a_in, &t.a_out, &t.b_in);

    // Ids: the chain the exporter reports is the one that went on the wire.
    let (app_a_req, wire_req, app_b_req) = (c.app_a.last(), c.wire.last(), c.app_b.last());
    let at_app_a = parse_tp(&header_of(&app_a_req, "traceparent"));
    let at_wire = parse_tp(&header_of(&wire_req, "traceparent"));
    let at_app_b = parse_tp(&header_of(&app_b_req, "traceparent"));
    for (seen, span) in [(&at_app_a, a_in), (&at_wire, a_out), (&at_app_b, b_in)] {
        assert_eq!(seen.0, client_trace);
        assert_eq!(
            seen.1,
            span.span_id_hex(),
            "wire parent id vs exported span id of {}",
            span.span.name
        );
        assert_eq!(seen.2, "01", "sampled flag on the wire");
    }
    assert_eq!(a_in.parent_id_hex(), client_parent);
    assert_eq!(a_out.parent_id_hex(), a_in.span_id_hex());
    assert_eq!(b_in.parent_id_hex(), a_out.span_id_hex());
    let ids: BTreeSet<String> = [a_in, a_out, b_in]
        .iter()
        .map(|s| s.span_id_hex())
        .collect();
    assert_eq!(ids.len(), 3, "span ids are distinct");
    for s in [a_in, a_out, b_in] {
        assert_eq!(s.span.trace_id.len(), 16);
        assert_eq!(s.span.span_id.len(), 8);
        assert_ne!(s.span_id_hex(), "0000000000000000");
        assert_eq!(s.span.trace_state, "");
        assert_eq!(
            s.span.flags & 0xff & SAMPLED,
            SAMPLED,
            "sampled flag of {}",
            s.span.name
        );
        assert_eq!(
            s.span.flags & HAS_IS_REMOTE,
            HAS_IS_REMOTE,
            "{}",
            s.span.flags
        );
        assert!(s.span.links.is_empty());
        assert_eq!(
            (
                s.span.dropped_attributes_count,
                s.span.dropped_events_count,
                s.span.dropped_links_count
            ),
            (0, 0, 0)
        );
    }
    // Server spans continue a parent from another process.
    assert_eq!(a_in.span.flags & IS_REMOTE, IS_REMOTE);
    assert_eq!(b_in.span.flags & IS_REMOTE, IS_REMOTE);

    // Kinds and names: ids templated, configured template wins and sets http.route.
    assert_eq!(a_in.span.kind(), SpanKind::Server);
    assert_eq!(a_out.span.kind(), SpanKind::Client);
    assert_eq!(b_in.span.kind(), SpanKind::Server);
    assert_eq!(a_in.span.name, "GET /users/{id}");
    assert_eq!(a_out.span.name, "POST /users/{id}");
    assert_eq!(b_in.span.name, "POST /users/{user}");

    // Timestamps: nanoseconds since the epoch, within the test's window, nested causally.
    let slack = 1_000_000; // Envoy's clock has microsecond resolution
    for s in [a_in, a_out, b_in] {
        let (start, end) = (s.span.start_time_unix_nano, s.span.end_time_unix_nano);
        assert!(
            t0 - slack <= start && start <= end && end <= t1 + slack,
            "{}: {t0} <= {start} <= {end} <= {t1}",
            s.span.name
        );
        assert_eq!(s.span.events.len(), 1, "{:?}", s.span.events);
        let ev = &s.span.events[0];
        assert_eq!(ev.name, "first_upstream_byte");
        assert!(start <= ev.time_unix_nano && ev.time_unix_nano <= end);
    }
    let (sa, sb, sc) = (
        a_in.span.start_time_unix_nano,
        a_out.span.start_time_unix_nano,
        b_in.span.start_time_unix_nano,
    );
    assert!(
        sa <= sb && sb <= sc,
        "starts in causal order: {sa} {sb} {sc}"
    );
    let (ea, eb, ec) = (
        a_in.span.end_time_unix_nano,
        a_out.span.end_time_unix_nano,
        b_in.span.end_time_unix_nano,
    );
    assert!(ec <= eb && eb <= ea, "ends in causal order: {ec} {eb} {ea}");

    // Attributes, every one of them.
    let lineage_a = r#"["frontend@v1"]"#.to_string();
    expect_attrs(
        a_in,
        &[
            (attr::HTTP_REQUEST_METHOD, st("GET")),
            (attr::URL_PATH, st("/users/12345")),
            (attr::URL_SCHEME, st("http")),
            (attr::HTTP_RESPONSE_STATUS_CODE, int(200)),
            (attr::SERVER_ADDRESS, st("test.local")),
            (attr::NETWORK_PROTOCOL_VERSION, st("1.1")),
            (attr::USER_AGENT_ORIGINAL, st("curl/8")),
            (attr::HTTP_REQUEST_BODY_SIZE, int(0)),
            (attr::HTTP_RESPONSE_BODY_SIZE, int(42)),
            (attr::ENVOY_RESPONSE_FLAGS, st("-")),
            (attr::ENVOY_UPSTREAM_CLUSTER, st("app_a")),
            (
                attr::ENVOY_UPSTREAM_HOST,
                st(&format!("127.0.0.1:{}", c.app_a.port())),
            ),
            (
                attr::ENVOY_REQUEST_ID,
                st(&header_of(&app_a_req, "x-request-id")),
            ),
            (attr::MESHWAKE_ROLE, st("inbound")),
            // The client is no meshwake workload: no peer, and we say so.
            (attr::MESHWAKE_PEER_VERSION_SOURCE, st("unknown")),
        ],
    );
    expect_attrs(
        a_out,
        &[
            (attr::HTTP_REQUEST_METHOD, st("POST")),
            (attr::URL_PATH, st("/users/12345")),
            (attr::URL_SCHEME, st("http")),
            (attr::HTTP_RESPONSE_STATUS_CODE, int(200)),
            (attr::SERVER_ADDRESS, st("backend.shop")),
            (attr::SERVER_PORT, int(8080)),
            (attr::NETWORK_PROTOCOL_VERSION, st("1.1")),
            (attr::USER_AGENT_ORIGINAL, st("app-a/1.0")),
            (attr::HTTP_REQUEST_BODY_SIZE, int(12)),
            (attr::HTTP_RESPONSE_BODY_SIZE, int(42)),
            (attr::ENVOY_RESPONSE_FLAGS, st("-")),
            (attr::ENVOY_UPSTREAM_CLUSTER, st("svc_b")),
            (
                attr::ENVOY_UPSTREAM_HOST,
                st(&format!("127.0.0.1:{}", c.wire.port())),
            ),
            (
                attr::ENVOY_REQUEST_ID,
                st(&header_of(&wire_req, "x-request-id")),
            ),
            (attr::MESHWAKE_ROLE, st("outbound")),
            (attr::PEER_SERVICE, st("backend")),
            (attr::MESHWAKE_PEER_VERSION, st("v2")),
            (attr::MESHWAKE_PEER_NAMESPACE, st("shop")),
            (attr::MESHWAKE_PEER_VERSION_SOURCE, st("header")),
            (attr::MESHWAKE_LINEAGE, lineage_a.clone()),
        ],
    );
    expect_attrs(
        b_in,
        &[
            (attr::HTTP_REQUEST_METHOD, st("POST")),
            (attr::URL_PATH, st("/users/12345")),
            (attr::URL_SCHEME, st("http")),
            (attr::HTTP_ROUTE, st("/users/{user}")),
            (attr::HTTP_RESPONSE_STATUS_CODE, int(200)),
            (attr::SERVER_ADDRESS, st("backend.shop")),
            (attr::SERVER_PORT, int(8080)),
            (attr::NETWORK_PROTOCOL_VERSION, st("1.1")),
            (attr::USER_AGENT_ORIGINAL, st("app-a/1.0")),
            (attr::HTTP_REQUEST_BODY_SIZE, int(12)),
            (attr::HTTP_RESPONSE_BODY_SIZE, int(42)),
            (attr::ENVOY_RESPONSE_FLAGS, st("-")),
            (attr::ENVOY_UPSTREAM_CLUSTER, st("app_b")),
            (
                attr::ENVOY_UPSTREAM_HOST,
                st(&format!("127.0.0.1:{}", c.app_b.port())),
            ),
            (
                attr::ENVOY_REQUEST_ID,
                st(&header_of(&app_b_req, "x-request-id")),
            ),
            (attr::MESHWAKE_ROLE, st("inbound")),
            (attr::PEER_SERVICE, st("frontend")),
            (attr::MESHWAKE_PEER_VERSION, st("v1")),
            (attr::MESHWAKE_PEER_NAMESPACE, st("shop")),
            (attr::MESHWAKE_PEER_VERSION_SOURCE, st("header")),
            (attr::MESHWAKE_LINEAGE, lineage_a),
        ],
    );
    for s in [a_in, a_out, b_in] {
        assert_eq!(status_code(s), StatusCode::Unset, "{}", s.span.name);
    }
    expect_resource(a_in, "frontend", "v1");
    expect_resource(a_out, "frontend", "v1");
    expect_resource(b_in, "backend", "v2");
}

/// One request through the chain with app B answering `status`; returns its three spans.
fn with_status(c: &Chain, status: u16, seen: usize) -> Three {
    let trace = format!("{:032x}", 0xabc000 + u128::from(status));
    let r = http::get(
        c.envoy.port("A_IN_PORT"),
        "/orders/9f1c2d3e4b5a6978",
        &[
            ("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01")),
            ("x-status", &status.to_string()),
        ],
    );
    assert_eq!(r.status, status);
    let spans = c.otlp.wait_spans(seen + 3, 10);
    three(&spans, &trace)
}

#[test]
fn error_status_per_kind_and_error_type() {
    let c = chain(None);
    // 5xx: every span is an error.
    let t = with_status(&c, 503, 0);
    for s in [&t.a_in, &t.a_out, &t.b_in] {
        assert_eq!(status_code(s), StatusCode::Error, "{}", s.span.name);
        assert_eq!(s.attr_int(attr::HTTP_RESPONSE_STATUS_CODE), Some(503));
        assert_eq!(
            s.attr_str(attr::ERROR_TYPE).as_deref(),
            Some("503"),
            "{}",
            s.span.name
        );
        assert_eq!(s.attr_str(attr::ENVOY_RESPONSE_FLAGS).as_deref(), Some("-"));
        assert_eq!(s.span.name.split(' ').nth(1), Some("/orders/{id}"));
    }
    // 4xx: an error for the client only.
    let t = with_status(&c, 404, 3);
    assert_eq!(status_code(&t.a_out), StatusCode::Error);
    assert_eq!(t.a_out.attr_str(attr::ERROR_TYPE).as_deref(), Some("404"));
    for s in [&t.a_in, &t.b_in] {
        assert_eq!(status_code(s), StatusCode::Unset, "{}", s.span.name);
        assert_eq!(s.attr_str(attr::ERROR_TYPE), None, "{}", s.span.name);
        assert_eq!(s.attr_int(attr::HTTP_RESPONSE_STATUS_CODE), Some(404));
    }
    // 2xx with a body: no error anywhere.
    let t = with_status(&c, 201, 6);
    for s in [&t.a_in, &t.a_out, &t.b_in] {
        assert_eq!(status_code(s), StatusCode::Unset);
        assert_eq!(s.attr_str(attr::ERROR_TYPE), None);
    }
}

#[test]
fn upstream_connection_failure_is_reported_with_envoy_flags() {
    let c = chain(Some(free_port()));
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = http::get(
        c.envoy.port("A_IN_PORT"),
        "/x",
        &[("traceparent", &format!("00-{trace}-b7ad6b7169203331-01"))],
    );
    assert_eq!(r.status, 503);
    let t = three(&c.otlp.wait_spans(3, 10), trace);
    // b_in could not connect to app B: Envoy's own 503 with flag UF.
    assert_eq!(t.b_in.attr_int(attr::HTTP_RESPONSE_STATUS_CODE), Some(503));
    assert_eq!(
        t.b_in.attr_str(attr::ENVOY_RESPONSE_FLAGS).as_deref(),
        Some("UF")
    );
    assert_eq!(t.b_in.attr_str(attr::ERROR_TYPE).as_deref(), Some("UF"));
    assert_eq!(status_code(&t.b_in), StatusCode::Error);
    // Upstream of a_out the 503 was an answer, not a local failure.
    assert_eq!(
        t.a_out.attr_str(attr::ENVOY_RESPONSE_FLAGS).as_deref(),
        Some("-")
    );
    assert_eq!(t.a_out.attr_str(attr::ERROR_TYPE).as_deref(), Some("503"));
    assert_eq!(status_code(&t.a_out), StatusCode::Error);
}

/// Single listener + OTLP receiver, fast export settings.
fn single(otlp_port: u16, extra: &str) -> (Envoy, Server) {
    let upstream = Server::echo();
    let c = format!(
        r#"{{"role":"inbound","identity":{{"service":"solo","version":"v3","namespace":"shop","workload":"solo-v3"}},"export":{{"flush_interval_ms":50,"initial_backoff_ms":50,"max_backoff_ms":200,"timeout_ms":1000{extra}}}}}"#
    );
    let envoy = Envoy::start(stats_tags::with_stats_tags(
        EnvoyOptions::default()
            .name("spans-single")
            .template("metrics.yaml.tmpl")
            .plugin_config(c)
            .var("UPSTREAM_PORT", upstream.port())
            .var("OTLP_PORT", otlp_port),
    ));
    (envoy, upstream)
}

#[test]
fn export_request_is_otlp_http_protobuf() {
    let otlp = OtlpReceiver::start();
    let (envoy, _up) = single(otlp.port(), "");
    for i in 0..3 {
        assert_eq!(
            http::get(envoy.listen_port(), &format!("/p/{i}"), &[]).status,
            200
        );
    }
    otlp.wait_spans(3, 10);
    let reqs = otlp.server.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/traces"));
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/x-protobuf")
        );
        assert_eq!(r.header("host").as_deref(), Some("otlp-collector"));
        // The receiver decoded it already; check the envelope too: one resource, one scope.
        let req = ExportTraceServiceRequest::decode(r.body.as_slice()).expect("OTLP protobuf");
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        assert_eq!(rs.scope_spans.len(), 1);
        let scope = rs.scope_spans[0]
            .scope
            .as_ref()
            .expect("instrumentation scope");
        assert_eq!(scope.name, "meshwake");
        assert!(!scope.version.is_empty());
        assert!(!rs.scope_spans[0].spans.is_empty());
        // Our encoding round-trips byte for byte through the reference schema.
        assert_eq!(req.encode_to_vec(), r.body, "canonical protobuf encoding");
    }
    let names: BTreeSet<String> = otlp.spans().iter().map(|s| s.span.name.clone()).collect();
    assert_eq!(names, BTreeSet::from(["GET /p/{id}".to_string()]));
}

fn span_ids(otlp: &OtlpReceiver) -> Vec<String> {
    otlp.spans().iter().map(|s| s.span_id_hex()).collect()
}

#[test]
fn collector_503_then_recovers_without_duplicates() {
    let otlp = OtlpReceiver::start();
    otlp.script(&[503, 503]);
    let (envoy, _up) = single(otlp.port(), "");
    let n = 5;
    for i in 0..n {
        assert_eq!(
            http::get(envoy.listen_port(), &format!("/r/{i}"), &[]).status,
            200
        );
    }
    otlp.wait_spans(n, 15);
    // Give a duplicate time to show up.
    std::thread::sleep(Duration::from_millis(500));
    let ids = span_ids(&otlp);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (n, n),
        "every span delivered once: {ids:?}"
    );
    let stat = |name: &str| envoy.meshwake_stat(name);
    meshwake_tests::wait_for(5, "exported counter", || {
        (stat(stat::SPANS_EXPORTED) == n as u64).then_some(())
    });
    assert_eq!(stat(stat::SPANS_CREATED), n as u64);
    assert_eq!(stat(stat::EXPORT_FAILURES_STATUS_5XX), 2);
    assert_eq!(stat(stat::EXPORT_RETRIES), 2);
    assert_eq!(stat(stat::EXPORT_FAILURES_CALL_FAILED), 0);
    assert_eq!(stat(stat::SPANS_DROPPED_EXPORT_FAILED), 0);
    assert_eq!(
        otlp.server.requests().len() as u64,
        stat(stat::EXPORT_BATCHES_SENT)
    );
    // The same counters in the Prometheus exposition (wasmcustom. namespace stripped).
    let prom = envoy.prometheus();
    for line in [
        format!("meshwake_spans_exported{{}} {n}"),
        "meshwake_export_retries{} 2".to_string(),
        "meshwake_export_failures_status_5xx{} 2".to_string(),
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} not in\n{prom}");
    }
}

#[test]
fn collector_absent_counts_failures_and_traffic_flows() {
    let dead = free_port();
    let (envoy, upstream) = single(dead, r#","max_retries":1"#);
    for i in 0..4 {
        let r = http::get(envoy.listen_port(), &format!("/d/{i}"), &[]);
        assert_eq!(r.status, 200, "traffic unaffected by a dead collector");
    }
    assert_eq!(upstream.requests().len(), 4);
    let stat = |name: &str| envoy.meshwake_stat(name);
    let failures = meshwake_tests::wait_for(10, "export failures", || {
        let f = stat(stat::EXPORT_FAILURES_CALL_FAILED) + stat(stat::EXPORT_FAILURES_STATUS_5XX);
        (f >= 2 && stat(stat::SPANS_DROPPED_EXPORT_FAILED) == 4).then_some(f)
    });
    eprintln!(
        "dead collector: call_failed={} status_5xx={} retries={}",
        stat(stat::EXPORT_FAILURES_CALL_FAILED),
        stat(stat::EXPORT_FAILURES_STATUS_5XX),
        stat(stat::EXPORT_RETRIES)
    );
    assert!(failures >= 2);
    // Envoy answers a call-out to an unreachable host with its own local 503; the filter
    // recognises it, so the 5xx counter only counts what a collector answered.
    assert_eq!(stat(stat::EXPORT_FAILURES_STATUS_5XX), 0);
    assert_eq!(stat(stat::EXPORT_FAILURES_CALL_FAILED), failures);
    assert_eq!(stat(stat::SPANS_EXPORTED), 0);
    assert_eq!(stat(stat::SPANS_CREATED), 4);
    let r = http::get(envoy.listen_port(), "/after", &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn every_request_creates_one_span_and_all_are_delivered() {
    let otlp = OtlpReceiver::start();
    let (envoy, _up) = single(otlp.port(), r#","max_batch_spans":16"#);
    let n = 60;
    for i in 0..n {
        assert_eq!(
            http::get(envoy.listen_port(), &format!("/n/{i}"), &[]).status,
            200
        );
    }
    otlp.wait_spans(n, 15);
    std::thread::sleep(Duration::from_millis(300));
    let ids = span_ids(&otlp);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (n, n));
    let paths: BTreeSet<String> = otlp
        .spans()
        .iter()
        .map(|s| s.attr_str(attr::URL_PATH).unwrap())
        .collect();
    assert_eq!(paths.len(), n, "one span per request");
    // Without `spans.stream_details`, no attribute that needs a property read of its own.
    for s in otlp.spans().iter() {
        for a in [
            attr::NETWORK_PROTOCOL_VERSION,
            attr::HTTP_REQUEST_BODY_SIZE,
            attr::HTTP_RESPONSE_BODY_SIZE,
            attr::ENVOY_UPSTREAM_CLUSTER,
            attr::ENVOY_UPSTREAM_HOST,
        ] {
            assert_eq!(s.attr_str(a), None, "{a}");
            assert_eq!(s.attr_int(a), None, "{a}");
        }
        assert_eq!(s.attr_str(attr::ENVOY_RESPONSE_FLAGS).as_deref(), Some("-"));
        assert_eq!(s.attr_int(attr::HTTP_RESPONSE_STATUS_CODE), Some(200));
    }
    let stat = |name: &str| envoy.meshwake_stat(name);
    meshwake_tests::wait_for(5, "exported counter", || {
        (stat(stat::SPANS_EXPORTED) == n as u64).then_some(())
    });
    assert_eq!(stat(stat::SPANS_CREATED), n as u64);
    assert_eq!(stat(stat::SPANS_DROPPED_SAMPLED_OUT), 0);
    assert_eq!(stat(stat::SPANS_DROPPED_QUEUE_FULL), 0);
    assert_eq!(stat(stat::EXPORT_QUEUE_DEPTH), 0);
    assert!(otlp.bodies().iter().all(|b| !b.is_empty()));
}

#[test]
fn slow_collector_counts_timeouts_and_traffic_flows() {
    let slow = Server::start(|_| {
        std::thread::sleep(Duration::from_millis(1500));
        Response::new(200)
    });
    // timeout_ms 1000 (see `single`), one retry: two timed-out calls, then the batch is dropped.
    let (envoy, upstream) = single(slow.port(), r#","max_retries":1"#);
    assert_eq!(http::get(envoy.listen_port(), "/s", &[]).status, 200);
    assert_eq!(upstream.requests().len(), 1);
    let stat = |name: &str| envoy.meshwake_stat(name);
    meshwake_tests::wait_for(8, "batch dropped after timeouts", || {
        (stat(stat::SPANS_DROPPED_EXPORT_FAILED) == 1).then_some(())
    });
    assert_eq!(stat(stat::EXPORT_FAILURES_TIMEOUT), 2);
    assert_eq!(stat(stat::EXPORT_RETRIES), 1);
    assert_eq!(
        stat(stat::EXPORT_FAILURES_STATUS_5XX),
        0,
        "Envoy's local 504 is not the collector's"
    );
    assert_eq!(stat(stat::SPANS_EXPORTED), 0);
    assert_eq!(slow.requests().len(), 2);
}

/// Envoy with the plugin's export settings left at their defaults except `export_extra`.
fn default_export(otlp: &OtlpReceiver, export_extra: &str) -> (Envoy, Server) {
    let upstream = Server::echo();
    let c =
        format!(r#"{{"role":"inbound","export":{{"cluster":"otlp_collector"{export_extra}}}}}"#);
    let envoy = Envoy::start(stats_tags::with_stats_tags(
        EnvoyOptions::default()
            .name("spans-flush")
            .template("metrics.yaml.tmpl")
            .plugin_config(c)
            .var("UPSTREAM_PORT", upstream.port())
            .var("OTLP_PORT", otlp.port()),
    ));
    (envoy, upstream)
}

#[test]
fn timer_flush_waits_for_the_interval_unless_a_batch_is_full() {
    // Ordering, not stopwatch: with a one-minute flush interval, spans below a full batch stay
    // queued, and the request that fills the batch (max_batch_spans 3) sends it at the next tick.
    let otlp = OtlpReceiver::start();
    let (envoy, _up) = default_export(&otlp, r#","max_batch_spans":3,"flush_interval_ms":60000"#);
    // The first tick may flush whatever is queued before the window starts: let it pass.
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..2 {
        assert_eq!(
            http::get(envoy.listen_port(), &format!("/partial/{i}"), &[]).status,
            200
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        otlp.spans().is_empty(),
        "a partial batch was sent before its interval: {:?}",
        otlp.spans().len()
    );
    assert_eq!(
        envoy.meshwake_stat("export.queue_depth"),
        2,
        "two spans queued"
    );
    assert_eq!(
        http::get(envoy.listen_port(), "/fills-the-batch", &[]).status,
        200
    );
    otlp.wait_spans(3, 10);
    assert_eq!(otlp.bodies().len(), 1, "one request for the full batch");
}
