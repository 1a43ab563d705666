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
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::demo::{demo_command, fresh_out_dir};

/// Traffic seconds: the topology's rollout (at 10 of 30 s) scales to 8 of 24 s.
const DURATION_SECS: &str = "24";
/// The whole run, start-up and analysis included, must end within this.
const RUN_TIMEOUT: Duration = Duration::from_secs(150);

struct Run {
    out: PathBuf,
    stdout: String,
    stderr: String,
    report: Value,
}

/// Runs the bad-canary demo once; the tests read its output.
fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| run_demo("demo/topologies/small.yaml", "demo-e2e"))
}

/// Runs the good-canary demo once, after the bad one (the meshes do not compete for the CPU).
fn run_good() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let _ = run();
        run_demo("demo/topologies/small-good.yaml", "demo-e2e-good")
    })
}

fn run_demo(topology: &str, tag: &str) -> Run {
    let extra = ["--duration-secs".to_owned(), DURATION_SECS.to_owned()];
    let run = common::demo::run_demo(topology, tag, &extra, RUN_TIMEOUT);
    Run {
        report: run.json("report.json"),
        out: run.out,
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

/// The rollout decisions the demo took through the gate.
fn events(run: &Run) -> &Vec<Value> {
    run.report["rollout"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no rollout events in report.json:\n{}", run.stderr))
}

/// SERVER spans of `deployment` (service, version) that started in [from_ns, to_ns).
fn served(run: &Run, (service, version): (&str, &str), from_ns: u64, to_ns: u64) -> i64 {
    let db = rusqlite::Connection::open(run.out.join("spans.db")).unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM spans WHERE service = ?1 AND version = ?2 AND kind = 'server'
         AND start_ns >= ?3 AND start_ns < ?4",
        rusqlite::params![
            service,
            version,
            from_ns as i64,
            to_ns.min(i64::MAX as u64) as i64
        ],
        |r| r.get(0),
    )
    .unwrap()
}

/// In-flight requests may still reach the canary this long after the weights change.
const SETTLE_NS: u64 = 2_000_000_000;

#[test]
fn bad_canary_is_rolled_back_by_the_gate_within_60_s() {
    let run = run();
    let events = events(run);
    let rollback = events
        .iter()
        .find(|e| e["action"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback:\n{}", run.stderr));
    assert_eq!(rollback["deployment"], "payments@v2", "{rollback:#}");
    assert_eq!(rollback["verdict"], "fail", "{rollback:#}");
    assert!(
        rollback["reason"].as_str().unwrap().contains("suspect"),
        "{rollback:#}"
    );
    let after = rollback["after_traffic_s"].as_f64().unwrap();
    assert!(after < 60.0, "rolled back {after} s after taking traffic");
    assert!(
        run.stderr.contains("ROLLBACK payments@v2"),
        "the output says when and why:\n{}",
        run.stderr
    );
    // The rollback took effect on the callers' Envoys: no new request reached v2, v1 took them.
    let at = rollback["at_ns"].as_u64().unwrap();
    assert!(served(run, ("payments", "v2"), 0, at) > 0);
    assert_eq!(served(run, ("payments", "v2"), at + SETTLE_NS, u64::MAX), 0);
    assert!(served(run, ("payments", "v1"), at + SETTLE_NS, u64::MAX) > 20);
    // The step was asked before it was applied, as a controller does.
    assert_eq!(events[0]["action"], "step", "{events:#?}");
    assert!(
        run.stdout.contains("ROLLBACK payments@v2"),
        "{}",
        run.stdout
    );
}

#[test]
fn good_canary_in_another_topology_is_promoted() {
    let run = run_good();
    let events = events(run);
    assert!(
        !events.iter().any(|e| e["action"] == "rollback"),
        "{events:#?}"
    );
    let promote = events
        .iter()
        .find(|e| e["action"] == "promote")
        .unwrap_or_else(|| panic!("no promotion:\n{}", run.stderr));
    assert_eq!(promote["deployment"], "payments@v2");
    assert_eq!(promote["verdict"], "pass", "{promote:#}");
    let at = promote["at_ns"].as_u64().unwrap();
    assert_eq!(served(run, ("payments", "v1"), at + SETTLE_NS, u64::MAX), 0);
    assert!(served(run, ("payments", "v2"), at + SETTLE_NS, u64::MAX) > 20);
    let suspects = names(&run.report["suspects"], "deployment");
    assert!(!suspects.contains("payments@v2"), "{}", run.stdout);
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

/// A headless browser on PATH (Debian `chromium`, installed by `scripts/setup.sh test`).
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The timeline of the suspect renders in a real browser: both charts, both series, the
/// rollout and the rollback marked; and a screenshot of the page is taken.
#[test]
fn timeline_renders_in_headless_chromium() {
    let run = run();
    let chromium = chromium().expect("chromium not on PATH: scripts/setup.sh test installs it");
    let html = run.out.join("report.html").canonicalize().unwrap();
    let url = format!("file://{}", html.display());
    let dom = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &url,
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(dom.status.success());
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("class=\"timeline\" data-suspect=\"payments@v2\""),
        "no timeline for the canary"
    );
    for metric in ["error_rate", "self_p95_ms"] {
        assert!(
            dom.contains(&format!("data-metric=\"{metric}\"")),
            "{metric} chart missing"
        );
    }
    // Both series have points (the canary's are few: it was rolled back within seconds);
    // the rollout and the rollback are marked.
    for (series, least) in [("suspect", 2), ("baseline", 10)] {
        let at = dom
            .find(&format!("data-series=\"{series}\""))
            .expect(series);
        let points = dom[at..]
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(points.split(' ').count() >= least, "{series}: {points}");
    }
    assert!(dom.contains(">rollout</text>"), "rollout not marked");
    assert!(
        dom.contains(">rollback payments@v2</text>"),
        "rollback not marked"
    );
    // The timeline series are in report.json too.
    let series = &run.report["timeline"]["suspects"][0];
    assert_eq!(series["deployment"], "payments@v2");
    // A screenshot of the timeline alone: its pixels show both series in their colours.
    let start = dom.find("<div class=\"timeline\"").unwrap();
    let end = start + dom[start..].find("</div>").unwrap() + "</div>".len();
    let page = run.out.join("timeline.html");
    std::fs::write(
        &page,
        format!(
            "<!doctype html><body style=\"margin:0;background:#fff\">{}</body>",
            &dom[start..end]
        ),
    )
    .unwrap();
    let png = run.out.join("timeline.png");
    let shot = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg("--window-size=800,200")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(shot.status.success());
    // Pixels of the plot areas only (above y = 140: the legend, in the same colours, is below).
    let (width, pixels) = png_rgb(&std::fs::read(&png).unwrap());
    let count = |rgb: [u8; 3]| {
        pixels
            .iter()
            .enumerate()
            .filter(|(i, p)| i / width < 140 && **p == rgb)
            .count()
    };
    // The canary's line is short (rolled back within seconds), the baseline's spans the run.
    let (red, grey) = (count([0xd6, 0x27, 0x28]), count([0x88, 0x88, 0x88]));
    assert!(
        red >= 10 && grey >= 100,
        "suspect pixels {red}, baseline pixels {grey} in {}",
        png.display()
    );
}

/// The width and the RGB pixels (row by row) of an 8-bit, non-interlaced RGB or RGBA PNG (what
/// Chromium writes).
fn png_rgb(png: &[u8]) -> (usize, Vec<[u8; 3]>) {
    use std::io::Read;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let (mut pos, mut idat, mut header) = (8, Vec::new(), (0usize, 0usize, 0u8));
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let (kind, data) = (&png[pos + 4..pos + 8], &png[pos + 8..pos + 8 + len]);
        match kind {
            b"IHDR" => {
                assert_eq!((data[8], data[12]), (8, 0), "bit depth 8, no interlace");
                let be = |i: usize| u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
                header = (be(0), be(4), data[9]);
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let (w, h, color) = header;
    let bpp = match color {
        2 => 3,
        6 => 4,
        c => panic!("PNG colour type {c}"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = w * bpp;
    let (mut prev, mut out) = (vec![0u8; stride], Vec::with_capacity(w * h));
    for row in raw.chunks(stride + 1).take(h) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= bpp { cur[i - bpp] } else { 0 };
            let (b, c) = (prev[i], if i >= bpp { prev[i - bpp] } else { 0 });
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                _ => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
            };
            cur[i] = line[i].wrapping_add(pred);
        }
        out.extend(cur.chunks(bpp).map(|p| [p[0], p[1], p[2]]));
        prev = cur;
    }
    (w, out)
}

/// The HTML report renders in a real browser and its graph has one node per deployment.
#[test]
fn html_report_renders_in_headless_chromium() {
    let run = run();
    let Some(chromium) = chromium() else {
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
    let out = fresh_out_dir("demo-ctrlc");
    let extra = ["--duration-secs".to_owned(), "60".to_owned()];
    let mut child = demo_command("demo/topologies/small.yaml", &out, &extra)
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
