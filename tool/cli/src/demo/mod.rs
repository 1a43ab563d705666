//! `meshwake demo`: a local mesh of real processes (collector, demo services, Envoy sidecars
//! running the meshwake module, an edge gateway), user traffic, a canary rollout, and the
//! impact analysis run on what the collector stored. The analysis sees telemetry only, never
//! the topology file.

pub mod envoy_config;
pub mod load;
mod mesh;
mod output;
pub mod procs;
mod rollout;
mod tools;
pub mod topology;
mod traffic;
mod usage;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use procs::Procs;
use topology::Topology;

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
    /// The meshwake filter: the Wasm module, or the native build `libmeshwake.so` (an Envoy
    /// dynamic module; `make demo BUILD=native`).
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

fn say(msg: &str) {
    // Progress and status go to stderr; the report goes to stdout.
    eprintln!("meshwake demo: {msg}");
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let mut topo = Topology::load(&args.topology).map_err(DemoError::Topology)?;
    apply_overrides(&mut topo, args);
    let tools = tools::find_tools(args)?;
    let out = args.out.clone();
    let logs = out.join("logs");
    output::prepare(&out)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Errors only if a handler is already set (tests calling run twice): the first one works.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }

    let ports = mesh::allocate_ports(&topo)?;
    let _refusing = mesh::hold_refusing_port(ports.dead)?;
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
            traffic::phase_text(Some(step))
        ));
    }
    let t0 = Instant::now();
    let mut procs = Procs::default();
    mesh::start_mesh(&topo, &tools, &ports, &out, &mut procs, &stop)?;
    say(&format!(
        "mesh up in {:.1} s: {} processes (collector, {} apps, {} Envoy sidecars, 1 edge Envoy), one Envoy per deployment, filter {} ({})",
        t0.elapsed().as_secs_f64(),
        procs.len(),
        workloads.len(),
        workloads.len(),
        shown_path(&tools.wasm).display(),
        if envoy_config::is_native(&tools.wasm) { "native: Envoy dynamic module" } else { "wasm: Envoy's V8" }
    ));
    say(&format!(
        "edge: http://127.0.0.1:{}  collector: http://127.0.0.1:{}  logs: {}",
        ports.edge_listen,
        ports.collector,
        logs.display()
    ));

    let mut gate = rollout::start(&tools.meshwake, &out.join("spans.db"), &logs, &mut procs)?;
    say(&format!(
        "rollout controller: asks meshwake gate at {} before each step and every {} s while a canary takes traffic",
        gate.url(),
        rollout::ASK_EVERY.as_secs()
    ));

    let (baseline_end_ns, cost) =
        traffic::run_traffic(&topo, &ports, &mut procs, &stop, &mut gate)?;
    output::wait_for_last_spans(&out.join("spans.db"), &stop);
    procs.kill_all();
    if stop.load(Ordering::Relaxed) {
        return Err(DemoError::Interrupted);
    }
    output::write_json(&out.join("run.json"), &cost.to_json())?;
    output::write_reports(&out, baseline_end_ns, &gate)?;
    warn_if_saturated(&cost);
    Ok(())
}

/// Last words of a run that saturated the machine: its verdict rests on a mesh that was
/// failing for want of CPU, not only because of the rollout.
fn warn_if_saturated(cost: &usage::Usage) {
    let why = cost.saturation();
    if why.is_empty() {
        return;
    }
    let advice = if cost.busy_with_others().is_some() {
        "other processes kept the machine busy: run it again when the machine is quieter, or \
         with --rate"
            .to_owned()
    } else {
        "try --rate".to_owned()
    };
    say(&format!(
        "WARNING: this run saturated the machine: {}. Errors and latency in the baseline come \
         partly from that, so trust the verdict less; {advice} {}.",
        why.join("; "),
        cost.suggested_rate()
    ));
}

/// `path` relative to the working directory when it lies below it (`target/meshwake.wasm`):
/// the output is read by people and pasted into docs.
fn shown_path(path: &std::path::Path) -> &std::path::Path {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::traffic::phase_text;
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
