//! meshwake-propagate.wasm in real Envoy: the propagation-only build, entered for a stream's
//! creation and request headers only. It forwards the caller's context unchanged (it
//! records no span, so it names none as parent), starts one when there is none, strips
//! identity headers nobody may send it, keeps nothing per stream, and turns off what it
//! cannot do (spans, metrics, identity exchange) with one log line, whatever the
//! configuration asks.
use meshwake_semconv::{header, stat};
use meshwake_tests::envoy::Build;
use meshwake_tests::{http, paths, wait_for, Envoy, EnvoyOptions, OtlpReceiver, Server};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn start(direction: &str, otlp: &OtlpReceiver, upstream: &Server) -> Envoy {
    Envoy::start(EnvoyOptions {
        wasm_path: paths::propagate_wasm(),
        // The module is wasm-only: the native build has no separate propagation artifact.
        build: Build::Wasm,
        ..EnvoyOptions::default()
            .name("propagate")
            // Asks for everything: the build must still only propagate.
            .plugin_config(r#"{"export":{"flush_interval_ms":100}}"#)
            .var("DIRECTION", direction)
            .var("UPSTREAM_PORT", upstream.port())
            .var("OTLP_PORT", otlp.port())
    })
}

#[test]
fn forwards_context_unchanged_starts_missing_ones_and_keeps_no_stream_state() {
    let (upstream, otlp) = (Server::echo(), OtlpReceiver::start());
    let mut envoy = start("INBOUND", &otlp, &upstream);
    let log = envoy.wait_log("meshwake configuration", 10);
    assert!(
        log.contains("spans=false metrics=false exchange=false"),
        "the build turns off what it cannot do: {log}"
    );

    // A caller's W3C context with vendor state, and an identity nobody may send.
    let sent = [
        ("traceparent", TP),
        ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ("baggage", "tenant=acme"),
        (header::PEER, "forged@v9"),
    ];
    let r = http::get(envoy.listen_port(), "/a", &sent);
    assert_eq!(r.status, 200);
    let seen = upstream.last();
    for (name, value) in &sent[..3] {
        assert_eq!(seen.header(name).as_deref(), Some(*value), "{name}");
    }
    assert_eq!(
        seen.header(header::PEER),
        None,
        "identity from outside is stripped"
    );

    // B3 only: kept as it came, and the W3C form carries the same ids.
    let b3 = "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-05e3ac9a4f6e3b90";
    http::get(envoy.listen_port(), "/b", &[("b3", b3)]);
    let seen = upstream.last();
    assert_eq!(seen.header("b3").as_deref(), Some(b3));
    assert_eq!(seen.header("traceparent").as_deref(), Some(TP));

    // No context: one is started.
    http::get(envoy.listen_port(), "/c", &[]);
    let tp = upstream
        .last()
        .header("traceparent")
        .expect("a started trace");
    assert!(tp.starts_with("00-") && tp.len() == 55 && tp != TP, "{tp}");

    // Notes are counted at the request; no stream state outlives it; nothing is exported.
    let continued = wait_for(10, "context counters published", || {
        let c = envoy.meshwake_stat(stat::note::CONTEXT_CONTINUED);
        (c == 2 && envoy.meshwake_stat(stat::note::CONTEXT_STARTED) == 1).then_some(c)
    });
    assert_eq!(continued, 2);
    assert_eq!(envoy.meshwake_stat(stat::STREAMS_ACTIVE), 0);
    assert_eq!(envoy.meshwake_stat(stat::STREAMS_EVICTED), 0);
    assert_eq!(envoy.meshwake_stat(stat::SPANS_CREATED), 0);
    assert!(
        otlp.bodies().is_empty(),
        "the propagation build exports no span"
    );
    envoy.assert_alive();
}

/// Many streams, each over its own connection: the table that maps a stream to its plugin
/// is emptied at each request's headers, so none is ever evicted.
#[test]
fn many_streams_leave_nothing_behind() {
    let (upstream, otlp) = (Server::echo(), OtlpReceiver::start());
    let mut envoy = start("OUTBOUND", &otlp, &upstream);
    for i in 0..200 {
        let r = http::get(
            envoy.listen_port(),
            &format!("/{i}"),
            &[("traceparent", TP)],
        );
        assert_eq!(r.status, 200);
        assert_eq!(upstream.last().header("traceparent").as_deref(), Some(TP));
    }
    wait_for(10, "200 continued contexts counted", || {
        (envoy.meshwake_stat(stat::note::CONTEXT_CONTINUED) == 200).then_some(())
    });
    assert_eq!(envoy.meshwake_stat(stat::STREAMS_ACTIVE), 0);
    assert_eq!(envoy.meshwake_stat(stat::STREAMS_EVICTED), 0);
    envoy.assert_alive();
}

/// Two plugins in one VM (an edge listener and an inbound one, the same `vm_id` and code):
/// each request runs with its own listener's plugin, which the build learns from the
/// stream's creation without keeping a table. The edge does not trust outside context and
/// starts a trace; the inbound listener passes the caller's on.
#[test]
fn each_stream_runs_with_its_own_plugin() {
    let upstream = Server::echo();
    let listener = |name: &str, config: &str| {
        format!(
            r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{{port}_PORT}}}} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: "/" }}, route: {{ cluster: upstream }} }}] }}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: meshwake
                failure_policy: FAIL_CLOSED
                configuration: {{ "@type": type.googleapis.com/google.protobuf.StringValue, value: '{config}' }}
                vm_config: {{ vm_id: meshwake, runtime: envoy.wasm.runtime.v8, code: {{ local: {{ filename: {{{{WASM_PATH}}}} }} }} }}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}"#,
            port = name.to_uppercase()
        )
    };
    let template = format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{ADMIN_PORT}}}} }} }}\n\
         static_resources:\n  listeners:{}{}\n  clusters:\n  - name: upstream\n    connect_timeout: 1s\n    \
         load_assignment:\n      cluster_name: upstream\n      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ \
         socket_address: {{ address: 127.0.0.1, port_value: {{{{UPSTREAM_PORT}}}} }} }} }} }}] }}]\n",
        listener("edge", r#"{"role":"edge"}"#),
        listener("inbound", r#"{"role":"inbound"}"#)
    );
    let envoy = Envoy::start(EnvoyOptions {
        wasm_path: paths::propagate_wasm(),
        build: Build::Wasm,
        ..EnvoyOptions::default()
            .name("propagate-roots")
            .template(template)
            .var("UPSTREAM_PORT", upstream.port())
    });
    for _ in 0..3 {
        http::get(envoy.port("EDGE_PORT"), "/", &[("traceparent", TP)]);
        let restarted = upstream.last().header("traceparent").unwrap();
        assert!(
            !restarted.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{restarted}"
        );
        http::get(envoy.port("INBOUND_PORT"), "/", &[("traceparent", TP)]);
        assert_eq!(upstream.last().header("traceparent").as_deref(), Some(TP));
    }
}
