//! The module loads in a real Envoy (v8) and does its default job with safe defaults.
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
    let ran = r
        .header("x-meshwake")
        .expect("x-meshwake response header missing: filter did not run");
    assert!(ran.starts_with("meshwake/"), "{ran}");
    assert_eq!(upstream.last().path, "/hello");
    envoy.assert_alive();
    envoy.wait_log("meshwake configuration", 5);
}

#[test]
fn loads_with_empty_configuration_string() {
    let (envoy, _upstream) = start("");
    let r = http::get(envoy.listen_port(), "/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("x-meshwake").is_some());
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
            upstream.last().header("x-meshwake-peer").is_some(),
            upstream_sees_peer,
            "{direction}: upstream"
        );
        assert_eq!(
            r.header("x-meshwake-peer").is_some(),
            client_sees_peer,
            "{direction}: client"
        );
    }
}
