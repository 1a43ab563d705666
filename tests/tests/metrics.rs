//! Request metrics as Envoy stats, scraped from a real Envoy's `/stats/prometheus`: counts
//! per label set after a known mix of requests, histogram units, real Prometheus labels via
//! `stats_tags`, `promtool check metrics`, Istio naming, and the cardinality guard.
//!
//! The mix test also writes `docs/sample-scrape.txt` and `tests/expected/metric-names.txt`
//! (the metric and label names a real scrape shows, for the Grafana dashboard check).
use meshwake_semconv::header;
use meshwake_tests::{
    http, paths, stats_tags, Envoy, EnvoyOptions, OtlpReceiver, Response, Server,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One sample line of the Prometheus text format.
#[derive(Clone, Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parse `name{k="v",...} value` lines (label values may contain commas; `\"`, `\\` and `\n`
/// escapes are decoded). Panics on anything malformed: the scrape must be well-formed.
fn parse(scrape: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in scrape.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => {
                let (n, v) = line.split_once(' ').unwrap();
                out.push(Sample {
                    name: n.into(),
                    labels: BTreeMap::new(),
                    value: v.trim().parse().unwrap(),
                });
                continue;
            }
        };
        let mut labels = BTreeMap::new();
        let b = rest.as_bytes();
        let mut i = 1;
        while b[i] != b'}' {
            let eq = rest[i..].find("=\"").unwrap() + i;
            let key = rest[i..eq].to_string();
            let mut j = eq + 2;
            let mut val = String::new();
            while b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                    val.push(match b[j] {
                        b'n' => '\n',
                        c => c as char,
                    });
                } else {
                    val.push(b[j] as char);
                }
                j += 1;
            }
            labels.insert(key, val);
            i = j + 1;
            if b[i] == b',' {
                i += 1;
            }
        }
        let value = rest[i + 1..]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        out.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    out
}

/// The value of the only sample named `name` whose labels include all of `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{name} {want:?}: {hits:#?}");
    hits[0].value
}

/// Upstream: status from `x-status` (200), `x-delay-ms` before answering, `x-body-bytes` (100)
/// bytes of body, and optionally its own identity header as a meshwake sidecar would add.
fn upstream(peer: Option<&'static str>) -> Server {
    Server::start(move |req| {
        let h = |n: &str| req.header(n).and_then(|v| v.parse::<u64>().ok());
        if let Some(ms) = h("x-delay-ms") {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let mut r = Response::new(h("x-status").unwrap_or(200) as u16).with_body(vec![
            b'r';
            h("x-body-bytes").unwrap_or(100)
                as usize
        ]);
        if let Some(p) = peer {
            r = r.with_header(header::PEER, p);
        }
        r
    })
}

const FRONTEND_PEER: &str = "1;s=frontend;v=v1;n=shop;w=frontend-v1";
const BACKEND_PEER: &str = "1;s=backend;v=v2;n=shop;w=backend-v2";

/// `metrics.yaml.tmpl` with `role` and the backend identity, plus `extra` top-level keys.
fn start(role: &str, extra: &str, up: &Server) -> (Envoy, OtlpReceiver) {
    let (service, version) = if role == "inbound" {
        ("backend", "v2")
    } else {
        ("frontend", "v1")
    };
    let otlp = OtlpReceiver::start();
    let c = format!(
        r#"{{"role":"{role}","identity":{{"service":"{service}","version":"{version}","namespace":"shop","workload":"{service}-{version}"}},"export":{{"flush_interval_ms":50}}{extra}}}"#
    );
    let envoy = Envoy::start(stats_tags::with_stats_tags(
        EnvoyOptions::default()
            .name("metrics")
            .template("metrics.yaml.tmpl")
            .plugin_config(c)
            .var("UPSTREAM_PORT", up.port())
            .var("OTLP_PORT", otlp.port()),
    ));
    (envoy, otlp)
}

fn post(envoy: &Envoy, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    let h: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    http::request(envoy.listen_port(), "POST", path, &h, body)
        .unwrap()
        .status
}

/// Wait until the scrape shows `n` requests in `family` (`*_requests_total`) and in its
/// duration histogram. Counters are updated at stream end, after the client has its answer;
/// histograms reach the admin endpoint when a scrape's stats flush (`stats_flush_on_admin`)
/// has merged the workers' values, i.e. on a later scrape.
fn scrape_when(envoy: &Envoy, family: &str, n: f64) -> (String, Vec<Sample>) {
    let histogram = format!(
        "{}_request_duration_milliseconds_count",
        family.trim_end_matches("_requests_total")
    );
    meshwake_tests::wait_for(
        5,
        &format!("{n} requests in {family} and {histogram}"),
        || {
            let text = envoy.prometheus();
            let samples = parse(&text);
            let total = |f: &str| -> f64 {
                samples
                    .iter()
                    .filter(|s| s.name == f)
                    .map(|s| s.value)
                    .sum()
            };
            (total(family) >= n && total(&histogram) >= n).then_some((text, samples))
        },
    )
}

/// `promtool check metrics` on `scrape`: must parse (exit 1 is a format error), and its lint
/// findings on our metrics may only be the ones Envoy's exposition always has: no HELP lines,
/// and counters without `_total` for the self-telemetry counters, named like Envoy's own.
fn promtool_check(scrape: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool missing: apt-get install prometheus");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "promtool failed ({:?}):\n{report}",
        out.status
    );
    for line in report.lines() {
        let metric = line.split(' ').next().unwrap_or("");
        if !metric.starts_with("meshwake_") && !metric.starts_with("istio_") {
            continue; // Envoy's own stats: not ours to fix (e.g. `*_total_match_count`)
        }
        let request_metric = [
            "_requests_total",
            "_request_duration_milliseconds",
            "_request_bytes",
            "_response_bytes",
        ]
        .iter()
        .any(|m| metric.ends_with(m));
        // Istio's name carries its unit; meshwake keeps the same unit so dashboards port.
        let ms_unit = metric.ends_with("_request_duration_milliseconds")
            && line.ends_with("use base unit \"seconds\" instead of \"milliseconds\"");
        let ok = ms_unit
            || line.ends_with(" no help text")
            || (!request_metric && line.ends_with("counter metrics should have \"_total\" suffix"));
        assert!(ok, "promtool finding on our metric: {line}");
    }
}

const DEST_LABELS: [(&str, &str); 12] = [
    ("reporter", "destination"),
    ("source_workload", "frontend-v1"),
    ("source_workload_namespace", "shop"),
    ("source_version", "v1"),
    ("source_canonical_service", "frontend"),
    ("destination_workload", "backend-v2"),
    ("destination_workload_namespace", "shop"),
    ("destination_version", "v2"),
    ("destination_service", "backend"),
    ("request_protocol", "http"),
    ("grpc_response_status", "unknown"),
    ("response_flags", "-"),
];

fn with_code(code: &str) -> Vec<(&str, &str)> {
    let mut v = DEST_LABELS.to_vec();
    v.push(("response_code", code));
    v
}

#[test]
fn request_mix_gives_counts_histograms_and_real_labels() {
    let up = upstream(None);
    let (envoy, _otlp) = start("inbound", r#","metrics":{"size_histograms":true}"#, &up);
    let peer = [(header::PEER, FRONTEND_PEER)];
    for i in 0..7 {
        assert_eq!(
            post(&envoy, &format!("/api/items/{i}"), &peer, &[b'q'; 50]),
            200
        );
    }
    for i in 0..3 {
        let h = [
            peer[0],
            ("x-status", "503"),
            ("x-delay-ms", "120"),
            ("x-body-bytes", "10"),
        ];
        assert_eq!(
            post(&envoy, &format!("/api/items/{i}"), &h, &[b'q'; 50]),
            503
        );
    }
    let (text, s) = scrape_when(&envoy, "meshwake_requests_total", 10.0);

    // Counter per response code, every label a real Prometheus label.
    assert_eq!(value(&s, "meshwake_requests_total", &with_code("200")), 7.0);
    assert_eq!(value(&s, "meshwake_requests_total", &with_code("503")), 3.0);
    let tags: BTreeSet<String> = stats_tags::tags().into_iter().map(|(n, _)| n).collect();
    assert_eq!(tags.len(), 13);
    for x in s.iter().filter(|x| {
        x.name.starts_with("meshwake_request") || x.name.starts_with("meshwake_response")
    }) {
        let keys: BTreeSet<String> = x.labels.keys().filter(|k| *k != "le").cloned().collect();
        assert_eq!(keys, tags, "every stats_tags label on {x:?}");
    }
    assert!(
        !text.contains("=.=") && !text.contains(";.;"),
        "label encoding leaked into the scrape"
    );

    // Histograms: one observation per request, durations in milliseconds, sizes in bytes.
    let dur = "meshwake_request_duration_milliseconds";
    assert_eq!(value(&s, &format!("{dur}_count"), &with_code("200")), 7.0);
    assert_eq!(value(&s, &format!("{dur}_count"), &with_code("503")), 3.0);
    let slow_sum = value(&s, &format!("{dur}_sum"), &with_code("503"));
    assert!(
        (360.0..6000.0).contains(&slow_sum),
        "3 requests of >= 120 ms: sum {slow_sum} ms"
    );
    let mut le100 = with_code("503");
    le100.push(("le", "100"));
    assert_eq!(
        value(&s, &format!("{dur}_bucket"), &le100),
        0.0,
        "120 ms requests are not under 100 ms"
    );
    let mut inf = with_code("503");
    inf.push(("le", "+Inf"));
    assert_eq!(value(&s, &format!("{dur}_bucket"), &inf), 3.0);
    assert_eq!(
        value(&s, "meshwake_request_bytes_count", &with_code("200")),
        7.0
    );
    // Envoy's histogram sums are approximate (log-linear buckets): within 5 %.
    let near = |got: f64, want: f64| assert!((got - want).abs() <= want * 0.05, "{got} vs {want}");
    near(
        value(&s, "meshwake_request_bytes_sum", &with_code("200")),
        350.0,
    );
    near(
        value(&s, "meshwake_response_bytes_sum", &with_code("200")),
        700.0,
    );
    near(
        value(&s, "meshwake_response_bytes_sum", &with_code("503")),
        30.0,
    );

    // The same counter under its real Envoy stat name: wasm encodes the labels in the name
    // (wasmcustom. namespace, tag regexes); the native build's labels are Envoy tags.
    if envoy.build == meshwake_tests::Build::Wasm {
        let stat_name = format!(
            "wasmcustom.{}response_code=.=200;.;grpc_response_status=.=unknown;.;response_flags=.=-;.;meshwake_requests_total",
            DEST_LABELS[..10].iter().map(|(k, v)| format!("{k}=.={v};.;")).collect::<String>()
        );
        assert_eq!(envoy.stat(&stat_name), 7, "{stat_name} in /stats");
    }

    // Self-telemetry in the same scrape.
    assert_eq!(value(&s, "meshwake_metrics_label_overflow", &[]), 0.0);
    promtool_check(&text);

    // Every metric and label the Grafana dashboard queries exists in this real scrape.
    let series: BTreeSet<&str> = s.iter().map(|x| x.name.as_str()).collect();
    let labels: BTreeSet<&str> = s
        .iter()
        .flat_map(|x| x.labels.keys().map(String::as_str))
        .collect();
    let used = paths::root().join("deploy/compose/grafana/metrics-used.txt");
    if let Ok(used) = std::fs::read_to_string(&used) {
        for line in used
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            match line.split_once(' ') {
                Some(("metric", m)) => {
                    assert!(series.contains(m), "dashboard metric {m} not in the scrape")
                }
                Some(("label", l)) => {
                    assert!(labels.contains(l), "dashboard label {l} not in the scrape")
                }
                _ => panic!("metrics-used.txt: bad line {line:?}"),
            }
        }
    }
    // The documented scrape is the default (wasm) build's; the native build's series differ
    // only in `meshwake_vm_memory_bytes` (no VM) and `meshwake_native_panics`.
    if envoy.build == meshwake_tests::Build::Wasm {
        write_artifacts(&text, &s);
    }
}

/// `docs/sample-scrape.txt`: the meshwake lines of this real scrape (buckets trimmed to a few);
/// `tests/expected/metric-names.txt`: every meshwake series name and label name seen.
fn write_artifacts(text: &str, samples: &[Sample]) {
    let keep_le = ["1", "5", "25", "100", "250", "1000", "+Inf"];
    let mut sample = String::from(
        "# A real /stats/prometheus scrape of an inbound meshwake sidecar (backend v2, called by\n\
         # frontend v1) after 7 requests answered 200 and 3 answered 503 after 120 ms.\n\
         # Written by tests/tests/metrics.rs; histogram buckets trimmed to a few for reading.\n",
    );
    let mut in_family = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            in_family = rest.starts_with("meshwake_");
        }
        if !in_family {
            continue;
        }
        if line.contains("_bucket{")
            && !keep_le
                .iter()
                .any(|le| line.contains(&format!("le=\"{le}\"")))
        {
            continue;
        }
        sample.push_str(line);
        sample.push('\n');
    }
    // Durations differ on every run: rewrite only when the series themselves changed.
    let path = paths::root().join("docs/sample-scrape.txt");
    let shape = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| {
                l.rsplit_once(' ')
                    .map_or(l, |(series, _)| series)
                    .to_string()
            })
            .collect()
    };
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if shape(&old) != shape(&sample) {
        std::fs::write(&path, sample).unwrap();
    }

    let mine: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name.starts_with("meshwake_"))
        .collect();
    let mut families: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &mine {
        families
            .entry(s.name.as_str())
            .or_default()
            .extend(s.labels.keys().map(String::as_str));
    }
    let labels: BTreeSet<&str> = mine
        .iter()
        .flat_map(|s| s.labels.keys().map(String::as_str))
        .collect();
    let mut names = String::from(
        "# Metric series and label names in a real /stats/prometheus scrape of the filter\n\
         # (metrics.naming \"meshwake\"; \"istio\" gives the same with istio_ request metrics).\n\
         # Written by tests/tests/metrics.rs. `metric NAME LABELS` lines, then `label NAME` lines.\n",
    );
    for (name, ls) in &families {
        let ls: Vec<&str> = ls.iter().copied().collect();
        names.push_str(&format!(
            "metric {name} {}\n",
            if ls.is_empty() {
                "-".to_string()
            } else {
                ls.join(",")
            }
        ));
    }
    for l in labels {
        names.push_str(&format!("label {l}\n"));
    }
    std::fs::write(paths::root().join("tests/expected/metric-names.txt"), names).unwrap();
}

#[test]
fn istio_naming_gives_istio_metric_names() {
    // Outbound: the answering sidecar identifies itself in its response header.
    let up = upstream(Some(BACKEND_PEER));
    let (envoy, _otlp) = start(
        "outbound",
        r#","metrics":{"naming":"istio","size_histograms":true}"#,
        &up,
    );
    for _ in 0..4 {
        assert_eq!(http::get(envoy.listen_port(), "/x", &[]).status, 200);
    }
    let (text, s) = scrape_when(&envoy, "istio_requests_total", 4.0);
    let want = [
        ("reporter", "source"),
        ("source_workload", "frontend-v1"),
        ("source_canonical_service", "frontend"),
        ("source_version", "v1"),
        ("destination_workload", "backend-v2"),
        ("destination_service", "backend"),
        ("destination_version", "v2"),
        ("response_code", "200"),
    ];
    assert_eq!(value(&s, "istio_requests_total", &want), 4.0);
    assert_eq!(
        value(&s, "istio_request_duration_milliseconds_count", &want),
        4.0
    );
    assert_eq!(value(&s, "istio_request_bytes_count", &want), 4.0);
    assert_eq!(value(&s, "istio_response_bytes_count", &want), 4.0);
    assert!(
        !s.iter().any(|x| x.name.starts_with("meshwake_request")),
        "no meshwake_ request metrics with istio naming"
    );
    promtool_check(&text);
}

#[test]
fn label_sets_beyond_the_cap_fall_into_overflow() {
    let up = upstream(None);
    // Metrics only: the overflow counter must not depend on the span exporter's timer.
    let (envoy, _otlp) = start(
        "inbound",
        r#","metrics":{"max_label_sets":2},"spans":{"enabled":false}"#,
        &up,
    );
    let peer = (header::PEER, FRONTEND_PEER);
    let codes = [("200", 3), ("404", 2), ("503", 4), ("502", 1)];
    for (code, n) in codes {
        for _ in 0..n {
            assert_eq!(
                post(&envoy, "/c", &[peer, ("x-status", code)], b""),
                code.parse::<u16>().unwrap()
            );
        }
    }
    let (text, s) = scrape_when(&envoy, "meshwake_requests_total", 10.0);
    // Size histograms are off unless asked for (two property reads per request).
    assert!(!text.contains("meshwake_request_bytes"), "{text}");
    assert_eq!(value(&s, "meshwake_requests_total", &with_code("200")), 3.0);
    assert_eq!(value(&s, "meshwake_requests_total", &with_code("404")), 2.0);
    let overflow = [
        ("reporter", "destination"),
        ("source_workload", "overflow"),
        ("destination_service", "overflow"),
        ("response_code", "0"),
        ("response_flags", "overflow"),
    ];
    assert_eq!(value(&s, "meshwake_requests_total", &overflow), 5.0);
    let families: Vec<&Sample> = s
        .iter()
        .filter(|x| x.name == "meshwake_requests_total")
        .collect();
    assert_eq!(
        families.len(),
        3,
        "two label sets plus overflow: {families:#?}"
    );
    let overflowed = meshwake_tests::wait_for(5, "label_overflow counter", || {
        let v = envoy.meshwake_stat("metrics.label_overflow");
        (v == 5).then_some(v)
    });
    assert_eq!(overflowed, 5);
    assert!(text.contains("meshwake_metrics_label_overflow"));
    assert_eq!(
        value(
            &parse(&envoy.prometheus()),
            "meshwake_metrics_label_overflow",
            &[]
        ),
        5.0
    );
}
