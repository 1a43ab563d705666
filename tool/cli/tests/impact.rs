//! `meshwake impact --otlp-json` on a small generated file.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;

/// One OTLP JSON line (Collector file exporter format) with a client and a server span.
fn export_line(trace: u32, version: &str, status: u16) -> String {
    let trace_id = format!("{trace:032x}");
    let start = 1_700_000_000_000_000_000u64 + u64::from(trace) * 1_000_000;
    let error = if status >= 500 {
        r#","status":{"code":2}"#
    } else {
        ""
    };
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"frontend"}}}},{{"key":"service.version","value":{{"stringValue":"v1"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{trace_id}","spanId":"{a:016x}","name":"GET /","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","attributes":[{{"key":"meshwake.role","value":{{"stringValue":"edge"}}}},{{"key":"http.response.status_code","value":{{"intValue":"{status}"}}}}]{error}}},{{"traceId":"{trace_id}","spanId":"{b:016x}","parentSpanId":"{a:016x}","name":"GET /pay","kind":3,"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","attributes":[{{"key":"meshwake.role","value":{{"stringValue":"outbound"}}}},{{"key":"peer.service","value":{{"stringValue":"payments"}}}},{{"key":"meshwake.peer.version","value":{{"stringValue":"{version}"}}}},{{"key":"http.response.status_code","value":{{"intValue":"{status}"}}}}]{error}}}]}}]}}]}}"#,
        a = u64::from(trace) * 2 + 1,
        b = u64::from(trace) * 2 + 2,
        end = start + 5_000_000,
    )
}

#[test]
fn otlp_json_file_to_json_and_html_reports() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traces.jsonl");
    let lines: Vec<String> = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                export_line(i, "v1", 200)
            } else {
                export_line(i, "v2", 503)
            }
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let html = dir.path().join("report.html");

    let out = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args([
            "impact",
            "--otlp-json",
            file.to_str().unwrap(),
            "--json",
            "--html",
            html.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["spans"], 80);
    assert_eq!(report["traces"], 40);
    assert!(report["suspects"].is_array());
    // One timeline per suspect; the rollout moment marked: the baseline split (given or
    // inferred from the spans), else the suspect's first request.
    let timeline = &report["timeline"];
    assert_eq!(
        timeline["suspects"].as_array().unwrap().len(),
        report["suspects"].as_array().unwrap().len()
    );
    if let Some(first) = report["suspects"].as_array().unwrap().first() {
        assert_eq!(timeline["suspects"][0]["deployment"], first["deployment"]);
        let label = timeline["markers"][0]["label"].as_str().unwrap();
        assert!(label == "rollout" || label.ends_with(" starts"), "{label}");
    }
    assert!(html.exists());

    // Text output (not a terminal: no colour codes).
    let out = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args(["impact", "--otlp-json", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
}

#[test]
fn baseline_from_another_file_and_baseline_end_as_wall_clock_time() {
    let dir = tempfile::tempdir().unwrap();
    // Yesterday: payments@v1 only, healthy. Today: half the calls go to a failing v2.
    let base = dir.path().join("yesterday.jsonl");
    let lines: Vec<String> = (0..40).map(|i| export_line(i, "v1", 200)).collect();
    std::fs::write(&base, lines.join("\n") + "\n").unwrap();
    let today = dir.path().join("today.jsonl");
    let lines: Vec<String> = (1000..1040)
        .map(|i| {
            export_line(
                i,
                if i % 2 == 0 { "v1" } else { "v2" },
                200 + 303 * (i % 2) as u16,
            )
        })
        .collect();
    std::fs::write(&today, lines.join("\n") + "\n").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["impact", "--json", "--otlp-json", today.to_str().unwrap()];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_meshwake"))
            .args(&args)
            .output()
            .unwrap()
    };
    let out = run(&["--baseline-otlp-json", base.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The refused calls have no callee span: payments@v2 is named by its callers' spans.
    assert_eq!(
        report["suspects"][0]["deployment"], "payments@v2",
        "{report}"
    );
    assert_eq!(report["suspects"][0]["baseline"]["kind"], "other_versions");

    // 1_700_000_001_020_000_000 ns = the 20th request of today's file.
    let out = run(&["--baseline-end", "2023-11-14T22:13:21.020Z"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["window"]["baseline_end_ns"],
        1_700_000_001_020_000_000u64
    );
    assert_eq!(report["window"]["baseline_end_inferred"], false);
    let out = run(&["--baseline-end", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "{not json\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args(["impact", "--otlp-json", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl"));
    // No source at all is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args(["impact"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A loopback HTTP server answering each request with the body chosen by `route`; returns its
/// address and the request lines it saw.
fn fake_server(
    route: fn(&str) -> String,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let body = route(&first);
            log.lock().unwrap().push(first);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

#[test]
fn jaeger_v3_source_and_envoy_stats_evidence() {
    let (addr, seen) = fake_server(|line| {
        if line.contains("/api/v3/traces") {
            // The grpc-gateway wraps each streamed chunk in {"result": ...}.
            format!("{{\"result\":{}}}", export_line(1, "v2", 503))
        } else {
            "# TYPE meshwake_requests_total counter\n\
             meshwake_requests_total{destination_version=\"v1\",response_code=\"200\"} 90\n\
             meshwake_requests_total{destination_version=\"v2\",response_code=\"503\"} 30\n"
                .to_string()
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .args([
            "impact",
            "--jaeger",
            &format!("http://{addr}"),
            "--service",
            "frontend",
        ])
        .args([
            "--prometheus",
            &format!("http://{addr}/stats/prometheus"),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["spans"], 2);
    assert_eq!(report["metrics_evidence"]["v2"]["errors_5xx"], 30.0);
    let seen = seen.lock().unwrap();
    assert!(
        seen[0].starts_with("GET /api/v3/traces?query.service_name=frontend&query.start_time_min="),
        "{seen:?}"
    );
    assert!(seen[1].starts_with("GET /stats/prometheus"), "{seen:?}");
}
