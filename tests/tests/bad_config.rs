//! Bad plugin configuration in a real Envoy (FAIL_CLOSED): invalid JSON, not an object, unknown
//! keys, wrong types, out-of-range numbers, bad patterns, an empty string, an export cluster
//! Envoy does not have. In every case the filter starts ("fail open" on configuration: never
//! refuse to load), logs one clear line per problem naming the key, counts it in
//! `meshwake.config.errors`/`.warnings`, and traffic flows with the safe defaults: context
//! propagated, identity header sent, spans exported.
use meshwake_semconv::{header, stat};
use meshwake_tests::{http, Envoy, EnvoyOptions, OtlpReceiver, Response, Server};

const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

struct Case {
    name: &'static str,
    config: &'static str,
    /// Log lines that must appear (each naming the problem), at warning level or above.
    logs: &'static [&'static str],
    /// Issues counted as errors (a key replaced by its default) and as warnings.
    errors: u64,
    warnings: u64,
    /// Spans reach the default collector cluster (false when the config names another).
    exports: bool,
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        Case { name: "invalid JSON", config: r#"{"role": "inbound", "export": {"#,
               logs: &["configuration is not valid JSON"], errors: 1, warnings: 0, exports: true },
        Case { name: "not an object", config: r#"["inbound"]"#,
               logs: &["configuration must be a JSON object"], errors: 1, warnings: 0, exports: true },
        Case { name: "unknown keys", config: r#"{"rol": "inbound", "export": {"clusterr": "x"}, "spans": {"enable": false}}"#,
               logs: &["unknown configuration key `rol` ignored", "unknown configuration key `export.clusterr` ignored",
                       "unknown configuration key `spans.enable` ignored"], errors: 0, warnings: 3, exports: true },
        Case { name: "wrong types", config: r#"{"role": 5, "export": {"max_queue_spans": "lots", "cluster": 7}, "metrics": {"enabled": "yes"}, "propagation": {"extract": "b3"}}"#,
               logs: &["configuration key `role` is invalid", "configuration key `export.max_queue_spans` is invalid",
                       "configuration key `export.cluster` is invalid", "configuration key `metrics.enabled` is invalid",
                       "configuration key `propagation.extract` is invalid"], errors: 5, warnings: 0, exports: true },
        Case { name: "out-of-range numbers", config: r#"{"export": {"max_queue_spans": 2000000, "max_batch_spans": 99999, "flush_interval_ms": 1}, "sampling": {"ratio": 7}, "identity": {"lineage_max": 99}}"#,
               logs: &["`export.max_queue_spans` = 2000000 is out of range", "`export.max_batch_spans` = 99999 is out of range",
                       "`export.flush_interval_ms` = 1 is out of range", "`sampling.ratio` = 7 is out of range",
                       "`identity.lineage_max` = 99 is out of range"], errors: 5, warnings: 0, exports: true },
        Case { name: "bad values", config: r#"{"role": "sideways", "propagation": {"extract": ["jaeger"]}, "metrics": {"naming": "prometheus"}}"#,
               logs: &["configuration key `role` is invalid", "configuration key `propagation.extract` is invalid",
                       "configuration key `metrics.naming` is invalid"], errors: 3, warnings: 0, exports: true },
        Case { name: "bad patterns and routes", config: r#"{"spans": {"routes": ["users/{id}"]}, "identity": {"cluster_patterns": ["{service"]}}"#,
               logs: &["spans.routes: `users/{id}` ignored", "identity.cluster_patterns: `{service` ignored"], errors: 0, warnings: 2, exports: true },
        Case { name: "empty string", config: "", logs: &[], errors: 0, warnings: 0, exports: true },
        Case { name: "export cluster Envoy does not have", config: r#"{"export": {"cluster": "no_such_cluster"}}"#,
               logs: &["cannot send spans to Envoy cluster `no_such_cluster`"], errors: 0, warnings: 0, exports: false },
    ]
}

/// Log lines of the meshwake VMs (or of the native module, logged without a source location
/// under `dynamic_modules`) at warning level or above.
fn problem_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            (l.contains("wasm log") || l.contains("][dynamic_modules] [:] "))
                && (l.contains("][warning][")
                    || l.contains("][error][")
                    || l.contains("][critical]["))
        })
        .collect()
}

fn run(c: &Case) -> Result<String, String> {
    let otlp = OtlpReceiver::start();
    let upstream = Server::start(|_| Response::new(200).with_body("ok"));
    let envoy = Envoy::start(
        EnvoyOptions::default()
            .name("bad-config")
            .plugin_config(c.config)
            .var("UPSTREAM_PORT", upstream.port())
            .var("OTLP_PORT", otlp.port()),
    );
    // The VM started and serves traffic with the defaults: context continued (tracecontext
    // extraction), the filter visibly ran, a span per request exported to the default cluster.
    let tp = format!("00-{TID}-00f067aa0ba902b7-01");
    for i in 0..3 {
        let r = http::get(
            envoy.listen_port(),
            &format!("/c/{i}"),
            &[("traceparent", &tp)],
        );
        if r.status != 200 {
            return Err(format!("status {} {:?}", r.status, r.body_str()));
        }
        let seen = upstream.last();
        let got = seen.header("traceparent").unwrap_or_default();
        if !got.starts_with(&format!("00-{TID}-")) {
            return Err(format!(
                "context not continued: upstream got traceparent {got:?}"
            ));
        }
        if seen.header(header::PEER).is_none() {
            return Err("no x-meshwake-peer upstream: the filter did not run".into());
        }
    }
    if c.exports {
        otlp.wait_spans(3, 10);
    }
    // One clear line per problem, naming it, once per VM (not per request).
    envoy.wait_log("meshwake configuration", 5);
    for needle in c.logs {
        envoy.wait_log(needle, 5);
    }
    let log = envoy.log();
    let problems = problem_lines(&log);
    for needle in c.logs {
        if !problems.iter().any(|l| l.contains(needle)) {
            return Err(format!(
                "no warning/error line with {needle:?}; problem lines: {problems:#?}"
            ));
        }
    }
    // Every VM logs the same lines once; none beyond the expected ones.
    let vms = log.matches("meshwake configuration:").count().max(1);
    let unexpected: Vec<&&str> = problems
        .iter()
        .filter(|l| {
            !c.logs.iter().any(|n| l.contains(n))
                && !l.contains("not configured and not in node metadata")
        })
        .collect();
    if !unexpected.is_empty() {
        return Err(format!("unexpected problem lines: {unexpected:#?}"));
    }
    for needle in c.logs {
        let n = problems.iter().filter(|l| l.contains(needle)).count();
        if n > vms {
            return Err(format!("{needle:?} logged {n} times for {vms} VMs"));
        }
    }
    // Counted: per VM that parsed the configuration (the stat is shared).
    let k = envoy.meshwake_counters();
    let (errors, warnings) = (
        k.get(stat::CONFIG_ERRORS).copied().unwrap_or(0),
        k.get(stat::CONFIG_WARNINGS).copied().unwrap_or(0),
    );
    let per_vm = |total: u64, want: u64| {
        if want == 0 {
            total == 0
        } else {
            total >= want && total % want == 0
        }
    };
    if !per_vm(errors, c.errors) || !per_vm(warnings, c.warnings) {
        return Err(format!(
            "config.errors {errors} / warnings {warnings}, want multiples of {} / {}",
            c.errors, c.warnings
        ));
    }
    if !c.exports {
        let f = k
            .get(stat::EXPORT_FAILURES_CALL_FAILED)
            .copied()
            .unwrap_or(0);
        if f == 0 {
            return Err(format!(
                "failed exports to a missing cluster not counted: {k:?}"
            ));
        }
    }
    Ok(format!("errors {errors}, warnings {warnings}, {vms} VMs"))
}

#[test]
fn bad_configuration_logs_the_problem_and_traffic_flows_with_defaults() {
    let mut failures = Vec::new();
    for c in cases() {
        match run(&c) {
            Ok(summary) => eprintln!("{}: ok ({summary})", c.name),
            Err(e) => failures.push(format!("{}: {e}", c.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
