//! The module loads in a real Envoy (v8) and does its default job with safe defaults.
use meshwake_semconv::header;
use meshwake_tests::{http, Envoy, EnvoyOptions, Server};

fn start(plugin_config: &str) -> (Envoy, Server) {
    let upstream = Server::echo();
    let envoy = Envoy::start(
        EnvoyOptions::default()
            .name("foundation")
            .plugin_config(plugin_config)
            .var("UPSTREAM_PORT", upstream.port())
            .var("OTLP_PORT", meshwake_tests::free_port()),
    );
    (envoy, upstream)
}

#[test]
fn loads_in_v8_with_empty_json_config_and_serves_traffic() {
    let (mut envoy, upstream) = start("{}");
    let r = http::get(envoy.listen_port(), "/hello", &[]);
    assert_eq!(r.status, 200, "body: {}", r.body_str());
    // The debug header is off by default: the filter shows it ran by starting a trace.
    assert!(r.header(header::DEBUG).is_none());
    let seen = upstream.last();
    assert_eq!(seen.path, "/hello");
    let tp = seen
        .header("traceparent")
        .expect("no traceparent upstream: filter did not run");
    assert!(tp.starts_with("00-") && tp.len() == 55, "{tp}");
    envoy.assert_alive();
    envoy.wait_log("meshwake configuration", 5);
}

#[test]
fn loads_with_empty_configuration_string() {
    let (envoy, upstream) = start("");
    let r = http::get(envoy.listen_port(), "/", &[]);
    assert_eq!(r.status, 200);
    assert!(upstream.last().header("traceparent").is_some());
}

/// Without a configured role, the listener's `traffic_direction` decides: an INBOUND listener
/// behaves as the server side (answers with its identity), an OUTBOUND one as the client side
/// (announces its identity upstream).
#[test]
fn role_is_inferred_from_listener_direction() {
    for (direction, upstream_sees_peer, client_sees_peer) in
        [("INBOUND", false, true), ("OUTBOUND", true, false)]
    {
        let upstream = Server::echo();
        let envoy = Envoy::start(
            EnvoyOptions::default()
                .name("direction")
                .plugin_config("{}")
                .var("DIRECTION", direction)
                .var("UPSTREAM_PORT", upstream.port())
                .var("OTLP_PORT", meshwake_tests::free_port()),
        );
        let r = http::get(envoy.listen_port(), "/", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            upstream.last().header(header::PEER).is_some(),
            upstream_sees_peer,
            "{direction}: upstream"
        );
        assert_eq!(
            r.header(header::PEER).is_some(),
            client_sees_peer,
            "{direction}: client"
        );
    }
}
