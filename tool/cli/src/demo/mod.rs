//! `meshwake demo`: a local mesh of real processes (collector, demo services, Envoy sidecars
//! running the meshwake module, an edge gateway), user traffic, a canary rollout, and the
//! impact analysis run on what the collector stored. The analysis sees telemetry only, never
//! the topology file.

pub mod envoy_config;
pub mod load;
pub mod procs;
pub mod topology;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::analysis_bridge::{self, AnalysisOptions};
use crate::store::Store;
use envoy_config::{Ports, WorkloadPorts};
use load::{LoadPlan, LoadStats};
use procs::Procs;
use topology::{Topology, Workload};

/// How long the mesh may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for the last spans after traffic stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Progress refresh period.
const TICK: Duration = Duration::from_millis(250);
/// Without a terminal, a progress line is printed this often.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Options of `meshwake demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Topology file (YAML; see demo/topologies/README.md).
    #[arg(long, default_value = "demo/topologies/default.yaml")]
    pub topology: PathBuf,
    /// Run traffic this long instead of the topology's duration (rollout times scale with it).
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Requests per second instead of the topology's rate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Output directory: report.html, report.json, report.txt, spans.db, envoy/, logs/.
    #[arg(long, default_value = "target/demo")]
    pub out: PathBuf,
    /// Envoy binary (default: $MESHWAKE_ENVOY, else .venv/bin/envoy, else envoy on PATH).
    #[arg(long)]
    pub envoy: Option<PathBuf>,
    /// The meshwake Wasm module, or the native build `target/libmeshwake.so` (`make demo BUILD=native`).
    #[arg(long, default_value = "target/meshwake.wasm")]
    pub wasm: PathBuf,
    /// The demo service binary (default: meshwake-demo-service next to this binary).
    #[arg(long)]
    pub service_bin: Option<PathBuf>,
}

/// Why the demo stopped without a report.
#[derive(Debug)]
pub enum DemoError {
    /// The topology file is unusable.
    Topology(topology::TopologyError),
    /// A binary or file the demo needs is missing.
    Missing(String),
    /// Starting or setting up a process or file failed.
    Io(String, std::io::Error),
    /// A process died or never became ready.
    Process(String),
    /// The span store could not be read.
    Store(crate::store::StoreError),
    /// Ctrl-C.
    Interrupted,
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Topology(e) => write!(f, "{e}"),
            DemoError::Missing(e) => write!(f, "{e}"),
            DemoError::Io(what, e) => write!(f, "{what}: {e}"),
            DemoError::Process(e) => write!(f, "{e}"),
            DemoError::Store(e) => write!(f, "{e}"),
            DemoError::Interrupted => write!(f, "interrupted; every process was stopped"),
        }
    }
}

impl std::error::Error for DemoError {}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |e| DemoError::Io(what, e)
}

/// Binaries and files the demo runs.
struct Tools {
    envoy: PathBuf,
    wasm: PathBuf,
    service: PathBuf,
    meshwake: PathBuf,
}

fn find_tools(args: &DemoArgs) -> Result<Tools, DemoError> {
    let meshwake = std::env::current_exe().map_err(io("cannot find the meshwake binary"))?;
    let service = args.service_bin.clone().unwrap_or_else(|| {
        meshwake
            .parent()
            .unwrap_or(Path::new("."))
            .join("meshwake-demo-service")
    });
    if !service.exists() {
        return Err(DemoError::Missing(format!(
            "demo service binary {} not found: build it (cargo build --release -p meshwake-demo-service) or pass --service-bin",
            service.display()
        )));
    }
    let envoy = args
        .envoy
        .clone()
        .or_else(|| std::env::var_os("MESHWAKE_ENVOY").map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from(".venv/bin/envoy");
            p.exists().then_some(p)
        })
        .unwrap_or_else(|| PathBuf::from("envoy"));
    let wasm = std::fs::canonicalize(&args.wasm).map_err(|_| {
        DemoError::Missing(format!(
            "{} not found: run `make build` first",
            args.wasm.display()
        ))
    })?;
    Ok(Tools {
        envoy,
        wasm,
        service,
        meshwake,
    })
}

/// Applies `--duration-secs` / `--rate`, scaling rollout times with the duration.
fn apply_overrides(topo: &mut Topology, args: &DemoArgs) {
    if let Some(d) = args.duration_secs.filter(|d| *d > 0) {
        let old = topo.traffic.duration_secs.max(1);
        for step in &mut topo.rollout {
            step.at_secs = step.at_secs.saturating_mul(d) / old;
        }
        topo.traffic.duration_secs = d;
    }
    if let Some(r) = args.rate.filter(|r| *r > 0.0 && *r <= topology::MAX_RATE) {
        topo.traffic.rate_per_sec = r;
    }
}

fn allocate_ports(topo: &Topology) -> Result<Ports, DemoError> {
    let workloads = topo.workloads();
    let mut ports = procs::free_ports(3 + 4 * workloads.len())
        .map_err(io("cannot find free ports"))?
        .into_iter();
    let mut take = || ports.next().unwrap_or(0);
    Ok(Ports {
        collector: take(),
        edge_listen: take(),
        edge_admin: take(),
        workloads: workloads
            .into_iter()
            .map(|w| {
                let p = WorkloadPorts {
                    app: take(),
                    inbound: take(),
                    outbound: take(),
                    admin: take(),
                };
                (w, p)
            })
            .collect(),
    })
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn say(msg: &str) {
    // Progress and status go to stderr; the report goes to stdout.
    eprintln!("meshwake demo: {msg}");
}

fn envoy_command(tools: &Tools, config: &Path) -> Command {
    let mut cmd = Command::new(&tools.envoy);
    cmd.arg("-c").arg(config).args([
        "--concurrency",
        "1",
        "--use-dynamic-base-id",
        "-l",
        "warning",
    ]);
    if envoy_config::is_native(&tools.wasm) {
        // `dynamic_module_config: {name: meshwake}` → lib meshwake.so in this directory.
        if let Some(dir) = tools.wasm.parent() {
            cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir);
        }
    }
    cmd
}

/// Starts the collector, the apps and the Envoys; returns once all are ready.
fn start_mesh(
    topo: &Topology,
    tools: &Tools,
    ports: &Ports,
    out: &Path,
    procs: &mut Procs,
    stop: &AtomicBool,
) -> Result<(), DemoError> {
    let logs = out.join("logs");
    let envoy_dir = out.join("envoy");
    let db = out.join("spans.db");
    let mut collect = Command::new(&tools.meshwake);
    collect
        .arg("collect")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", ports.collector))
        .arg("--db")
        .arg(&db);
    procs
        .spawn("collector", collect, &logs.join("collector.log"))
        .map_err(io("cannot start the collector"))?;

    for (w, p) in &ports.workloads {
        let Some(svc) = topo.services.get(&w.service) else {
            continue;
        };
        let Some(v) = svc.versions.get(&w.version) else {
            continue;
        };
        let mut app = Command::new(&tools.service);
        app.arg("--listen")
            .arg(format!("127.0.0.1:{}", p.app))
            .args(["--service", &w.service, "--version", &w.version])
            .arg(format!("--latency-ms-p50={}", v.latency_ms_p50))
            .arg(format!("--latency-jitter-ms={}", v.latency_jitter_ms))
            .arg(format!("--error-rate={}", v.error_rate))
            .arg(format!("--timeout-rate={}", v.timeout_rate))
            .arg(format!("--hang-ms={}", v.hang_ms))
            .arg(format!("--outbound=127.0.0.1:{}", p.outbound));
        for c in &svc.calls {
            app.arg(format!("--call=http://{}{}", c.service(), c.path()));
        }
        if svc.parallel {
            app.arg("--parallel");
        }
        procs
            .spawn(
                &format!("app {w}"),
                app,
                &logs.join(format!("app-{}.log", w.cluster())),
            )
            .map_err(io(format!("cannot start {}", tools.service.display())))?;

        let Some(bootstrap) = envoy_config::sidecar(topo, w, ports, &tools.wasm) else {
            continue;
        };
        let cfg = envoy_dir.join(format!("{}.json", w.cluster()));
        write_json(&cfg, &bootstrap)?;
        procs
            .spawn(
                &format!("envoy {w}"),
                envoy_command(tools, &cfg),
                &logs.join(format!("envoy-{}.log", w.cluster())),
            )
            .map_err(io(format!("cannot start {}", tools.envoy.display())))?;
    }
    let cfg = envoy_dir.join("edge.json");
    write_json(&cfg, &envoy_config::edge(topo, ports, &tools.wasm))?;
    procs
        .spawn(
            "envoy edge",
            envoy_command(tools, &cfg),
            &logs.join("envoy-edge.log"),
        )
        .map_err(io(format!("cannot start {}", tools.envoy.display())))?;

    let agent = admin_agent();
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut waits: Vec<(String, Box<dyn Fn() -> bool + '_>)> = vec![(
        "collector".into(),
        Box::new(|| procs::accepting(ports.collector)),
    )];
    waits.push((
        "edge Envoy".into(),
        Box::new(|| procs::envoy_ready(&agent, ports.edge_admin)),
    ));
    for (w, p) in &ports.workloads {
        let (app, admin) = (p.app, p.admin);
        waits.push((format!("app {w}"), Box::new(move || procs::accepting(app))));
        let agent = &agent;
        waits.push((
            format!("Envoy of {w}"),
            Box::new(move || procs::envoy_ready(agent, admin)),
        ));
    }
    for (what, ready) in waits {
        let mut died = None;
        let ok = procs::wait_until(
            deadline,
            || {
                died = procs.first_dead();
                died.is_some() || stop.load(Ordering::Relaxed)
            },
            ready,
        );
        if stop.load(Ordering::Relaxed) {
            return Err(DemoError::Interrupted);
        }
        if let Some(d) = died {
            return Err(DemoError::Process(format!(
                "{} exited ({}) during start-up; see {}",
                d.name,
                d.status,
                d.log.display()
            )));
        }
        if !ok {
            return Err(DemoError::Process(format!(
                "{what} not ready after {} s; logs in {}",
                STARTUP_TIMEOUT.as_secs(),
                logs.display()
            )));
        }
    }
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), DemoError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| DemoError::Io(path.display().to_string(), std::io::Error::other(e)))?;
    std::fs::write(path, text).map_err(io(format!("cannot write {}", path.display())))
}

fn admin_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into()
}

/// Changes the split of `service` on every Envoy routing to it, through `/runtime_modify`.
fn apply_rollout(
    topo: &Topology,
    ports: &Ports,
    step: &topology::RolloutStep,
) -> Result<(), DemoError> {
    let Some(svc) = topo.services.get(&step.service) else {
        return Ok(());
    };
    let query: Vec<String> = svc
        .versions
        .keys()
        .map(|v| {
            let w = step.weights.get(v).copied().unwrap_or(0);
            let cluster = Workload {
                service: step.service.clone(),
                version: v.clone(),
            }
            .cluster();
            format!("{}={w}", envoy_config::runtime_key(&step.service, &cluster))
        })
        .collect();
    let agent = admin_agent();
    for admin in envoy_config::routers_of(topo, &step.service, ports) {
        let url = format!(
            "http://127.0.0.1:{admin}/runtime_modify?{}",
            query.join("&")
        );
        let ok = agent
            .post(&url)
            .send_empty()
            .is_ok_and(|r| r.status().as_u16() == 200);
        if !ok {
            return Err(DemoError::Process(format!(
                "Envoy admin {admin} refused the rollout ({url})"
            )));
        }
    }
    Ok(())
}

fn phase_text(step: Option<&topology::RolloutStep>) -> String {
    match step {
        None => "baseline (stable versions only)".into(),
        Some(s) => {
            let w: Vec<String> = s.weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
            format!("rollout {} {}", s.service, w.join(" "))
        }
    }
}

/// Number of spans stored so far.
fn span_count(db: &Path) -> Option<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))
        .ok()
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let mut topo = Topology::load(&args.topology).map_err(DemoError::Topology)?;
    apply_overrides(&mut topo, args);
    let tools = find_tools(args)?;
    let out = args.out.clone();
    let logs = out.join("logs");
    let _ = std::fs::remove_dir_all(&logs);
    let _ = std::fs::remove_dir_all(out.join("envoy"));
    for f in ["spans.db", "spans.db-wal", "spans.db-shm"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    std::fs::create_dir_all(&logs).map_err(io(format!("cannot create {}", logs.display())))?;
    std::fs::create_dir_all(out.join("envoy")).map_err(io("cannot create the envoy directory"))?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Errors only if a handler is already set (tests calling run twice): the first one works.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }

    let ports = allocate_ports(&topo)?;
    let workloads = topo.workloads();
    say(&format!(
        "topology {:?}: {} services, {} deployments, depth {}, {} edge routes; {} req/s for {} s",
        topo.name,
        topo.services.len(),
        workloads.len(),
        topo.depth(),
        topo.edge.routes.len(),
        topo.traffic.rate_per_sec,
        topo.traffic.duration_secs
    ));
    for step in &topo.rollout {
        say(&format!(
            "  at {:>3} s: {}",
            step.at_secs,
            phase_text(Some(step))
        ));
    }
    let t0 = Instant::now();
    let mut procs = Procs::default();
    start_mesh(&topo, &tools, &ports, &out, &mut procs, &stop)?;
    say(&format!(
        "mesh up in {:.1} s: {} processes (collector, {} apps, {} Envoy sidecars, 1 edge Envoy), one Envoy per deployment",
        t0.elapsed().as_secs_f64(),
        procs.len(),
        workloads.len(),
        workloads.len()
    ));
    say(&format!(
        "edge: http://127.0.0.1:{}  collector: http://127.0.0.1:{}  logs: {}",
        ports.edge_listen,
        ports.collector,
        logs.display()
    ));

    let routes: Vec<(String, u32)> = topo
        .edge
        .routes
        .iter()
        .map(|r| (r.path.clone(), r.weight))
        .collect();
    let plan = LoadPlan {
        base_url: format!("http://127.0.0.1:{}", ports.edge_listen),
        paths: load::interleave(&routes),
        rate: topo.traffic.rate_per_sec,
        concurrency: topo.traffic.concurrency,
        duration: Duration::from_secs(topo.traffic.duration_secs),
    };
    let stats = Arc::new(LoadStats::default());
    let traffic_start = Instant::now();
    let threads = load::start(plan.clone(), stop.clone(), stats.clone());
    let baseline_end_ns = drive(
        &topo,
        &ports,
        &mut procs,
        &stop,
        &stats,
        traffic_start,
        plan.duration,
    );
    for t in threads {
        let _ = t.join();
    }
    let baseline_end_ns = baseline_end_ns?;
    if stop.load(Ordering::Relaxed) {
        return Err(DemoError::Interrupted);
    }
    let done = stats.done.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    say(&format!(
        "traffic done: {done} requests, {errors} errors ({:.1}%); waiting for the last spans",
        100.0 * errors as f64 / done.max(1) as f64
    ));

    // Spans are exported every FLUSH_INTERVAL_MS: wait until the count stops moving.
    let db = out.join("spans.db");
    let drain_end = Instant::now() + DRAIN_TIMEOUT;
    let mut last = -1;
    let mut stable = 0;
    while Instant::now() < drain_end && stable < 3 && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let n = span_count(&db).unwrap_or(0);
        stable = if n == last { stable + 1 } else { 0 };
        last = n;
    }
    procs.kill_all();
    if stop.load(Ordering::Relaxed) {
        return Err(DemoError::Interrupted);
    }

    let spans = Store::open(&db)
        .and_then(|s| s.load_records())
        .map_err(DemoError::Store)?;
    say(&format!(
        "analysing {} spans (telemetry only; baseline ends at the first rollout)",
        spans.len()
    ));
    let options = AnalysisOptions {
        baseline_end_ns,
        ..AnalysisOptions::default()
    };
    let report = analysis_bridge::analyze(&spans, &options);
    let text = analysis_bridge::render_text(&report, std::io::stdout().is_terminal());
    let html_path = out.join("report.html");
    std::fs::write(&html_path, analysis_bridge::render_html(&report, &spans))
        .map_err(io(format!("cannot write {}", html_path.display())))?;
    let json = analysis_bridge::report_value(&report)
        .map_err(|e| DemoError::Io("report".into(), std::io::Error::other(e)))?;
    write_json(&out.join("report.json"), &json)?;
    std::fs::write(
        out.join("report.txt"),
        analysis_bridge::render_text(&report, false),
    )
    .map_err(io("cannot write report.txt"))?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = writeln!(stdout);
    let _ = stdout.flush();
    say(&format!("HTML report: {}", html_path.display()));
    say(&format!(
        "JSON report: {}  spans: {}  logs: {}",
        out.join("report.json").display(),
        db.display(),
        logs.display()
    ));
    Ok(())
}

/// The traffic phase: applies rollout steps on time, shows progress, watches the children.
/// Returns the Unix time (ns) of the first rollout step.
#[allow(clippy::too_many_arguments)]
fn drive(
    topo: &Topology,
    ports: &Ports,
    procs: &mut Procs,
    stop: &AtomicBool,
    stats: &LoadStats,
    start: Instant,
    duration: Duration,
) -> Result<Option<u64>, DemoError> {
    let tty = std::io::stderr().is_terminal();
    let mut next_step = 0;
    let mut current: Option<&topology::RolloutStep> = None;
    let mut first_rollout_ns = None;
    let mut last_plain = Instant::now();
    loop {
        let elapsed = start.elapsed();
        while let Some(step) = topo.rollout.get(next_step) {
            if elapsed < Duration::from_secs(step.at_secs) {
                break;
            }
            let now = unix_ns();
            apply_rollout(topo, ports, step)?;
            first_rollout_ns.get_or_insert(now);
            current = Some(step);
            next_step += 1;
            if tty {
                eprintln!();
            }
            say(&format!(
                "t={:.0}s {} (runtime_modify on the callers' Envoys)",
                elapsed.as_secs_f64(),
                phase_text(current)
            ));
        }
        let done = stats.done.load(Ordering::Relaxed);
        let errors = stats.errors.load(Ordering::Relaxed);
        let line = format!(
            "[{:>4.0}s/{}s] requests {done:>6} ({:>5.1}/s)  errors {errors:>5} ({:>4.1}%)  phase: {}",
            elapsed.as_secs_f64(),
            duration.as_secs(),
            done as f64 / elapsed.as_secs_f64().max(0.001),
            100.0 * errors as f64 / done.max(1) as f64,
            phase_text(current)
        );
        if tty {
            eprint!("\r\x1b[2K{line}");
        } else if last_plain.elapsed() >= PLAIN_PROGRESS_EVERY {
            eprintln!("{line}");
            last_plain = Instant::now();
        }
        if let Some(d) = procs.first_dead().filter(|_| !stop.load(Ordering::Relaxed)) {
            if tty {
                eprintln!();
            }
            return Err(DemoError::Process(format!(
                "{} exited ({}) during the run; see {}",
                d.name,
                d.status,
                d.log.display()
            )));
        }
        if elapsed >= duration || stop.load(Ordering::Relaxed) {
            if tty {
                eprintln!();
            }
            return Ok(first_rollout_ns);
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_scale_the_rollout() {
        let mut topo = Topology::parse(
            "
traffic: { rate_per_sec: 10, duration_secs: 100 }
edge: { routes: [{ path: /, service: a }] }
services: { a: { versions: { v1: {}, v2: { weight: 0 } } } }
rollout: [{ at_secs: 40, service: a, weights: { v2: 1 } }]
",
        )
        .unwrap();
        let args = DemoArgs {
            topology: PathBuf::new(),
            duration_secs: Some(20),
            rate: Some(5.0),
            out: PathBuf::new(),
            envoy: None,
            wasm: PathBuf::new(),
            service_bin: None,
        };
        apply_overrides(&mut topo, &args);
        assert_eq!(topo.traffic.duration_secs, 20);
        assert_eq!(topo.rollout[0].at_secs, 8);
        assert_eq!(topo.traffic.rate_per_sec, 5.0);
        assert_eq!(phase_text(topo.rollout.first()), "rollout a v2=1");
    }
}
