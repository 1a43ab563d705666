//! Bringing the mesh up: ports for every process, then the collector, the apps and their
//! Envoy sidecars, the edge Envoy; returns once every one of them answers.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::envoy_config::{self, Ports, WorkloadPorts};
use super::output::write_json;
use super::procs::{self, Procs};
use super::tools::{envoy_command, Tools};
use super::topology::Topology;
use super::{io, DemoError};

/// How long the mesh may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// One free port per listener: the collector, the edge (listener, admin), and four per workload.
pub(super) fn allocate_ports(topo: &Topology) -> Result<Ports, DemoError> {
    let workloads = topo.workloads();
    let mut ports = procs::free_ports(4 + 4 * workloads.len())
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
        // Bound by nobody: connections to it are refused, like a crashed replica's.
        dead: take(),
    })
}

/// Holds `port` bound but not listening for as long as the result lives: connections to it
/// are refused (RST, Envoy's `UF`), like a crashed replica's, and no later free-port search
/// can hand it out (the gate's did, and the "crashed" replica answered 404 from the gate).
pub(super) fn hold_refusing_port(port: u16) -> Result<socket2::Socket, DemoError> {
    use socket2::{Domain, Socket, Type};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)
        .and_then(|s| s.bind(&addr.into()).map(|()| s))
        .map_err(io("cannot reserve the crashed replicas' port"))?;
    Ok(socket)
}

/// Starts the collector, the apps and the Envoys; returns once all are ready.
pub(super) fn start_mesh(
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
        if v.reset_rate > 0.0 {
            app.arg(format!("--reset-rate={}", v.reset_rate));
        }
        for c in &svc.calls {
            let url = format!("http://{}{}", c.service(), c.path());
            if c.fallback() {
                app.arg(format!("--fallback={url}"));
            }
            app.arg(format!("--call={url}"));
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

        let Some(bootstrap) = envoy_config::sidecar(topo, w, ports, &tools.wasm)
            .map_err(|e| DemoError::Process(e.to_string()))?
        else {
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

/// The client for Envoy admin requests: statuses are answers, not errors; two-second timeout.
pub(super) fn admin_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into()
}
