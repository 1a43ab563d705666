//! `meshwake demo` end to end: demo/topologies/small.yaml through real Envoy sidecars running
//! target/meshwake.wasm, a live canary rollout, and the impact analysis on the collected spans.
//! Needs Envoy (`scripts/setup.sh test`, or $MESHWAKE_ENVOY) and `make build`.

// Helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Traffic seconds: the topology's rollout (at 10 of 30 s) scales to 8 of 24 s.
const DURATION_SECS: &str = "24";
/// The whole run, start-up and analysis included, must end within this.
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn envoy() -> PathBuf {
    let p = std::env::var_os("MESHWAKE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/envoy"));
    assert!(
        p.exists(),
        "Envoy not found at {}: run scripts/setup.sh test (or set MESHWAKE_ENVOY)",
        p.display()
    );
    p
}

/// The demo service binary of this profile, built if missing.
fn service_bin() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_meshwake"));
    let p = exe.with_file_name("meshwake-demo-service");
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "-q", "-p", "meshwake-demo-service"]);
        if exe
            .parent()
            .and_then(|d| d.file_name())
            .is_some_and(|n| n == "release")
        {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building meshwake-demo-service failed"
        );
    }
    p
}

struct Run {
    out: PathBuf,
    stdout: String,
    stderr: String,
    report: Value,
}

/// Runs the demo once; both tests read its output.
fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let wasm = root().join("target/meshwake.wasm");
        assert!(
            wasm.exists(),
            "{} missing: run `make build` first",
            wasm.display()
        );
        let out = root().join(format!("target/test-runs/demo-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshwake"))
            .current_dir(root())
            .args([
                "demo",
                "--topology",
                "demo/topologies/small.yaml",
                "--duration-secs",
                DURATION_SECS,
            ])
            .arg("--out")
            .arg(&out)
            .arg("--envoy")
            .arg(envoy())
            .arg("--wasm")
            .arg(&wasm)
            .arg("--service-bin")
            .arg(service_bin())
            .stdout(Stdio::from(
                std::fs::File::create(out.join("stdout.txt")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(out.join("stderr.txt")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "meshwake demo still running after {RUN_TIMEOUT:?}; output in {}",
                    out.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let stdout = std::fs::read_to_string(out.join("stdout.txt")).unwrap();
        let stderr = std::fs::read_to_string(out.join("stderr.txt")).unwrap();
        assert!(
            status.success(),
            "meshwake demo failed ({status}):\n{stderr}\n{stdout}"
        );
        let report =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        Run {
            out,
            stdout,
            stderr,
            report,
        }
    })
}

fn names(list: &Value, key: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn canary_is_ranked_first_with_its_blast_radius() {
    let run = run();
    let suspects = run.report["suspects"].as_array().unwrap();
    assert!(!suspects.is_empty(), "no suspect:\n{}", run.stdout);
    let first = &suspects[0];
    assert_eq!(
        first["deployment"], "payments@v2",
        "wrong culprit:\n{}",
        run.stdout
    );
    assert_eq!(
        first["baseline"]["kind"], "other_versions",
        "canary compared with stable:\n{}",
        run.stdout
    );
    // Upstream callers up to the edge, and only them.
    let radius = &first["blast_radius"];
    let upstream = names(&radius["upstream"], "deployment");
    let want: BTreeSet<String> = ["orders@v1", "web@v1", "edge@v1"].map(String::from).into();
    assert_eq!(upstream, want, "blast radius:\n{}", run.stdout);
    let hops: Vec<(String, u64)> = radius["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["deployment"].as_str().unwrap().to_string(),
                u["hops"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        hops.contains(&("orders@v1".into(), 1)) && hops.contains(&("web@v1".into(), 2)),
        "{hops:?}"
    );
    let routes = names(&radius["edge_routes"], "route");
    assert!(
        routes.iter().any(|r| r.contains("/shop")),
        "edge routes {routes:?}"
    );
    assert!(
        !routes.iter().any(|r| r.contains("/catalog")),
        "edge routes {routes:?}"
    );
    // No stable deployment is blamed; the callers are affected, not suspects.
    for s in suspects {
        assert!(
            ![
                "orders@v1",
                "web@v1",
                "edge@v1",
                "catalog@v1",
                "ledger@v1",
                "payments@v1"
            ]
            .contains(&s["deployment"].as_str().unwrap()),
            "blamed {}:\n{}",
            s["deployment"],
            run.stdout
        );
    }
    let affected = names(&run.report["affected"], "deployment");
    assert!(
        affected.contains("orders@v1") && affected.contains("web@v1"),
        "affected {affected:?}"
    );
    // The run said what it did, and where the results are.
    assert!(run.stdout.contains("#1 payments@v2"), "{}", run.stdout);
    for needle in [
        "one Envoy per deployment",
        "rollout payments v1=50 v2=50",
        "report.html",
        "logs",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle:?} missing from:\n{}",
            run.stderr
        );
    }
}

#[test]
fn every_process_is_stopped() {
    let run = run();
    let out = run.out.canonicalize().unwrap();
    let needle = out.to_string_lossy().to_string();
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle) && !c.contains("demo_e2e"))
        .collect();
    assert!(leftovers.is_empty(), "still running: {leftovers:?}");
}

/// The HTML report renders in a real browser and its graph has one node per deployment.
#[test]
fn html_report_renders_in_headless_chromium() {
    let run = run();
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    else {
        eprintln!("SKIPPED html_report_renders_in_headless_chromium: no chromium on PATH (apt-get install -y chromium)");
        return;
    };
    let html = run.out.join("report.html").canonicalize().unwrap();
    let dom = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(dom.status.success());
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Deployments that served requests: edge, web, catalog, orders, payments v1 and v2, ledger.
    assert_eq!(
        dom.matches("class=\"node\"").count(),
        7,
        "graph nodes in:\n{dom}"
    );
    for d in ["payments@v2", "payments@v1", "edge@v1", "ledger@v1"] {
        assert!(
            dom.contains(&format!("data-deployment=\"{d}\"")),
            "{d} missing"
        );
    }
    assert!(
        dom.contains("data-deployment=\"payments@v2\" data-verdict=\"suspect\""),
        "canary not marked suspect"
    );
}

/// Ctrl-C (SIGINT) while traffic runs: the demo stops every process it started and says so.
#[test]
fn ctrl_c_stops_everything() {
    // After the main run, so the two meshes do not compete for the CPU.
    let _ = run();
    let out = root().join(format!(
        "target/test-runs/demo-ctrlc-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshwake"))
        .current_dir(root())
        .args([
            "demo",
            "--topology",
            "demo/topologies/small.yaml",
            "--duration-secs",
            "60",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--envoy")
        .arg(envoy())
        .arg("--service-bin")
        .arg(service_bin())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(out.join("stderr.txt")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !std::fs::read_to_string(out.join("stderr.txt"))
        .unwrap()
        .contains("mesh up")
    {
        assert!(child.try_wait().unwrap().is_none(), "demo exited early");
        assert!(Instant::now() < deadline, "mesh not up in 90 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let stopped_by = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < stopped_by,
            "demo did not stop within 15 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(out.join("stderr.txt")).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("interrupted; every process was stopped"),
        "{stderr}"
    );
    let needle = out.canonicalize().unwrap().to_string_lossy().to_string();
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle) && !c.contains("demo_e2e"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "still running after Ctrl-C: {leftovers:?}"
    );
}
