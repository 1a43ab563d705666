//! A real Prometheus (Debian's `prometheus`) scraping the real Envoys of a mesh: the
//! `meshwake impact --prometheus` evidence against its query API (with meshwake and
//! Istio-compatible metric names side by side), and every Grafana dashboard query of
//! deploy/compose run against it: each must be valid PromQL with a non-empty, finite answer.
use std::path::PathBuf;
use std::process::Command;

use meshwake_tests::mesh::{Mesh, MeshSpec, WorkloadSpec};
use meshwake_tests::prometheus::Prometheus;
use meshwake_tests::{paths, Response, Server};
use serde_json::{json, Value};

/// Requests per burst; two bursts, so `rate()` sees counters grow between scrapes.
const BURST: usize = 20;

/// The `meshwake` binary of this checkout, built (or brought up to date) by cargo.
fn meshwake_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .current_dir(paths::root())
        .args(["build", "-q", "-p", "meshwake"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "cargo build -p meshwake failed");
    paths::root().join("target/debug/meshwake")
}

/// edge → frontend@f1 → checkout@{v1,v2} (weighted 50/50); checkout v2's own dependency
/// answers 503, so v2 (and frontend, when it hits v2) answer 502. Checkout reports with
/// Istio's metric names, frontend with meshwake's.
fn shop(broken: &Server) -> Mesh {
    let istio = json!({"metrics": {"naming": "istio"}});
    let workloads = vec![
        WorkloadSpec::new("frontend", "f1").calls("checkout"),
        WorkloadSpec::new("checkout", "v1").config(istio.clone()),
        WorkloadSpec::new("checkout", "v2")
            .calls_external("broken", broken.port())
            .config(istio),
    ];
    Mesh::start(MeshSpec::new("prom-shop", workloads).edge("frontend", json!({})))
}

fn burst(m: &Mesh) {
    for i in 0..BURST {
        let r = m.get(&format!("/cart/{i}"), &[]);
        assert!(r.status == 200 || r.status == 502, "{}", r.status);
    }
}

/// Waits until Prometheus has scraped `want` requests at every Envoy that reports them:
/// the frontend's and checkout's inbound, the edge's and the frontend's outbound. Each
/// Envoy is scraped at its own offset: a series first scraped only after both bursts
/// would show no growth, and a dashboard's ratio of two zero rates is NaN.
fn wait_scraped(prom: &Prometheus, want: usize) {
    let queries = [
        "sum(meshwake_requests_total{reporter=\"destination\"})",
        "sum(istio_requests_total{reporter=\"destination\"})",
        "sum(meshwake_requests_total{reporter=\"source\", source_workload=\"edge-v1\"})",
        "sum(meshwake_requests_total{reporter=\"source\", source_workload=\"frontend-f1\"})",
    ];
    meshwake_tests::wait_for(60, &format!("{want} requests in Prometheus"), || {
        queries
            .iter()
            .all(|q| prom.values_by(q, "").first().map(|(_, v)| *v) == Some(want as f64))
            .then_some(())
    });
}

#[test]
fn impact_evidence_and_grafana_queries_against_a_real_prometheus() {
    let broken = Server::start(|_| Response::new(503));
    let m = shop(&broken);
    let mut admin: Vec<u16> = m.workloads.iter().map(|w| w.envoy.admin_port()).collect();
    admin.push(m.edge.as_ref().unwrap().admin_port());
    let prom = Prometheus::start("prom-shop", &admin);
    burst(&m);
    wait_scraped(&prom, BURST);
    burst(&m);
    wait_scraped(&prom, 2 * BURST);
    let served = |v: &str| m.workload("checkout", v).app.requests().len() as f64;
    let (n1, n2) = (served("v1"), served("v2"));
    assert_eq!(n1 + n2, (2 * BURST) as f64);
    assert!(
        n1 > 0.0 && n2 > 0.0,
        "the split sent everything to one version"
    );

    // Istio-compatible names, straight from Prometheus.
    let by_version = prom.values_by(
        "sum by (destination_version) (istio_requests_total{reporter=\"destination\", destination_service=\"checkout\"})",
        "destination_version",
    );
    assert_eq!(by_version.len(), 2, "{by_version:?}");
    for (v, n) in &by_version {
        assert_eq!(*n, served(v), "istio_requests_total for {v}");
    }

    // meshwake impact: its default PromQL against the server, both metric names summed.
    let spans = paths::scratch_dir("prom-impact").join("none.json");
    std::fs::write(&spans, "{\"resourceSpans\":[]}\n").unwrap();
    let out = Command::new(meshwake_bin())
        .args(["impact", "--otlp-json", spans.to_str().unwrap()])
        .args(["--prometheus", &prom.url(), "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("warning"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = json!({
        "f1": {"requests": 2.0 * BURST as f64, "errors_5xx": n2},
        "v1": {"requests": n1, "errors_5xx": 0.0},
        "v2": {"requests": n2, "errors_5xx": n2},
    });
    assert_eq!(report["metrics_evidence"], want, "{stderr}");

    // Every Grafana dashboard query: valid, non-empty, finite.
    let failures = grafana_failures(&prom);
    assert!(
        failures.is_empty(),
        "dashboard queries failed:\n{}",
        failures.join("\n")
    );
}

/// Runs each panel target of deploy/compose/grafana/dashboards/meshwake.json.
fn grafana_failures(prom: &Prometheus) -> Vec<String> {
    let path = paths::root().join("deploy/compose/grafana/dashboards/meshwake.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            ran += 1;
            let title = panel["title"].as_str().unwrap_or("?");
            match prom.query(expr) {
                Err(e) => failures.push(format!("{title}: invalid: {e}\n  {expr}")),
                Ok(series) if series.is_empty() => {
                    failures.push(format!("{title}: empty\n  {expr}"))
                }
                Ok(series) => {
                    let bad: Vec<&Value> = series
                        .iter()
                        .filter(|s| {
                            !s["value"][1]
                                .as_str()
                                .and_then(|v| v.parse::<f64>().ok())
                                .is_some_and(f64::is_finite)
                        })
                        .collect();
                    if !bad.is_empty() {
                        failures.push(format!("{title}: not finite: {bad:?}\n  {expr}"));
                    }
                }
            }
        }
    }
    assert!(ran >= 5, "only {ran} dashboard queries found");
    failures
}
