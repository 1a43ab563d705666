//! The traffic phase: user load through the edge, rollout steps applied on time through the
//! Envoy admin API, progress, and a watch on the children.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::envoy_config::{self, Ports};
use super::load::{self, LoadPlan, LoadStats};
use super::mesh::admin_agent;
use super::procs::Procs;
use super::rollout::{Controller, Decision};
use super::topology::{self, Topology, Workload};
use super::usage::{self, Usage};
use super::{say, DemoError};

/// Progress refresh period.
const TICK: Duration = Duration::from_millis(250);
/// Without a terminal, a progress line is printed this often.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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

pub(super) fn phase_text(step: Option<&topology::RolloutStep>) -> String {
    match step {
        None => "baseline (stable versions only)".into(),
        Some(s) => {
            let w: Vec<String> = s.weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
            format!("rollout {} {}", s.service, w.join(" "))
        }
    }
}

/// Runs the load for the topology's duration while [`drive`] applies the rollout; returns the
/// Unix time (ns) of the first rollout step, the end of the baseline, and what the traffic
/// phase cost (CPU per process, the generator's lag).
pub(super) fn run_traffic(
    topo: &Topology,
    ports: &Ports,
    procs: &mut Procs,
    stop: &Arc<AtomicBool>,
    gate: &mut Controller,
) -> Result<(Option<u64>, Usage), DemoError> {
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
    let cpu_before = usage::sample(&procs.pids());
    let traffic_start = Instant::now();
    let threads = load::start(plan.clone(), stop.clone(), stats.clone());
    let baseline_end_ns = drive(
        topo,
        ports,
        procs,
        stop,
        gate,
        &stats,
        traffic_start,
        plan.duration,
    );
    for t in threads {
        let _ = t.join();
    }
    let cost = usage::measure(
        &cpu_before,
        &usage::sample(&procs.pids()),
        &stats,
        plan.rate,
    );
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
    for line in cost.lines() {
        say(&line);
    }
    Ok((baseline_end_ns, cost))
}

/// The traffic phase: asks the gate about each rollout step and applies it on time, rolls a
/// failed canary back, shows progress, watches the children. Returns the Unix time (ns) of
/// the first rollout step.
#[allow(clippy::too_many_arguments)]
fn drive(
    topo: &Topology,
    ports: &Ports,
    procs: &mut Procs,
    stop: &AtomicBool,
    gate: &mut Controller,
    stats: &LoadStats,
    start: Instant,
    duration: Duration,
) -> Result<Option<u64>, DemoError> {
    let tty = std::io::stderr().is_terminal();
    let mut next_step = 0;
    let mut current: Option<topology::RolloutStep> = None;
    let mut first_rollout_ns = None;
    let mut last_plain = Instant::now();
    loop {
        let elapsed = start.elapsed();
        while let Some(step) = topo.rollout.get(next_step) {
            if elapsed < Duration::from_secs(step.at_secs) {
                break;
            }
            next_step += 1;
            if tty {
                eprintln!();
            }
            let applied = match gate.before_step(topo, step, elapsed) {
                Decision::Apply => step.clone(),
                Decision::Rollback(back) => back,
                Decision::Skip => continue,
            };
            let now = unix_ns();
            apply_rollout(topo, ports, &applied)?;
            first_rollout_ns.get_or_insert(now);
            say(&format!(
                "t={:.0}s {} (runtime_modify on the callers' Envoys)",
                elapsed.as_secs_f64(),
                phase_text(Some(&applied))
            ));
            current = Some(applied);
        }
        if let Some(back) = gate.poll(elapsed) {
            apply_rollout(topo, ports, &back)?;
            if tty {
                eprintln!();
            }
            say(&format!(
                "t={:.0}s {} (rolled back: runtime_modify on the callers' Envoys)",
                elapsed.as_secs_f64(),
                phase_text(Some(&back))
            ));
            current = Some(back);
        }
        let done = stats.done.load(Ordering::Relaxed);
        let errors = stats.errors.load(Ordering::Relaxed);
        let line = format!(
            "[{:>4.0}s/{}s] requests {done:>6} ({:>5.1}/s)  errors {errors:>5} ({:>4.1}%)  phase: {}",
            elapsed.as_secs_f64(),
            duration.as_secs(),
            done as f64 / elapsed.as_secs_f64().max(0.001),
            100.0 * errors as f64 / done.max(1) as f64,
            phase_text(current.as_ref())
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
