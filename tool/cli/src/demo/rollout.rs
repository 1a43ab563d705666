//! The demo's rollout controller: it runs `meshwake gate` on the collector's span store and,
//! like Flagger or Argo Rollouts would, asks it before every rollout step and every
//! [`ASK_EVERY`] while a canary takes traffic. A `fail` rolls the canary back at once
//! (weights to the stable version, on the callers' Envoys) and the later steps of that
//! service are skipped; the output says when and why.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::mesh::admin_agent;
use super::procs::{self, Procs};
use super::topology::{RolloutStep, Topology};
use super::{io, say, DemoError};
use crate::analysis_bridge::Marker;
use crate::window::unix_now_ns;

/// How often a canary taking traffic is checked (a controller's analysis interval).
pub const ASK_EVERY: Duration = Duration::from_secs(1);
/// The gate's sliding window and re-evaluation period, as passed to `meshwake gate`.
pub const GATE_WINDOW: &str = "30s";
pub const GATE_INTERVAL: &str = "1s";
/// How long the gate may take to listen.
const GATE_STARTUP: Duration = Duration::from_secs(20);

/// One decision of the controller, for the output and `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since traffic started.
    pub t_s: f64,
    /// When, Unix ns.
    pub at_ns: u64,
    /// `step`, `skip`, `rollback` or `promote`.
    pub action: &'static str,
    /// The canary concerned.
    pub deployment: String,
    /// The gate's verdict.
    pub verdict: String,
    /// The gate's reason.
    pub reason: String,
    /// For a rollback: seconds between the canary taking traffic and the rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_traffic_s: Option<f64>,
}

/// A canary taking traffic.
struct Canary {
    service: String,
    version: String,
    stable: String,
    since: Instant,
}

impl Canary {
    fn name(&self) -> String {
        format!("{}@{}", self.service, self.version)
    }
}

/// The controller.
pub struct Controller {
    base: String,
    agent: ureq::Agent,
    live: Vec<Canary>,
    halted: BTreeSet<String>,
    last_ask: Instant,
    /// Everything it decided, in order.
    pub events: Vec<Event>,
}

/// What to do with a rollout step.
pub enum Decision {
    /// Apply it.
    Apply,
    /// Skip it: its service was rolled back.
    Skip,
    /// Apply this rollback instead: the gate failed the canary.
    Rollback(RolloutStep),
}

/// The gate's answer about one deployment.
struct Answer {
    verdict: String,
    reason: String,
}

/// Starts `meshwake gate` on `db` and returns a controller talking to it.
pub fn start(
    meshwake: &Path,
    db: &Path,
    logs: &Path,
    procs: &mut Procs,
) -> Result<Controller, DemoError> {
    let port = procs::free_ports(1)
        .map_err(io("cannot find a free port for the gate"))?
        .first()
        .copied()
        .unwrap_or(0);
    let mut gate = Command::new(meshwake);
    gate.arg("gate")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(db)
        .args(["--window", GATE_WINDOW, "--interval", GATE_INTERVAL]);
    procs
        .spawn("gate", gate, &logs.join("gate.log"))
        .map_err(io("cannot start meshwake gate"))?;
    let deadline = Instant::now() + GATE_STARTUP;
    if !procs::wait_until(deadline, || false, || procs::accepting(port)) {
        return Err(DemoError::Process(format!(
            "meshwake gate not listening after {} s; see {}",
            GATE_STARTUP.as_secs(),
            logs.join("gate.log").display()
        )));
    }
    Ok(Controller {
        base: format!("http://127.0.0.1:{port}"),
        agent: admin_agent(),
        live: Vec::new(),
        halted: BTreeSet::new(),
        last_ask: Instant::now(),
        events: Vec::new(),
    })
}

/// The version of `service` serving by default (highest weight in the topology).
fn stable_of(topo: &Topology, service: &str) -> Option<String> {
    let svc = topo.services.get(service)?;
    svc.versions
        .iter()
        .max_by_key(|(_, v)| v.weight)
        .map(|(name, _)| name.clone())
}

impl Controller {
    /// Where the gate listens.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn ask(&self, deployment: &str) -> Answer {
        let url = format!("{}/v1/verdict?deployment={deployment}", self.base);
        let body = self
            .agent
            .get(&url)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string());
        let value: serde_json::Value = match body.map(|b| serde_json::from_str(&b)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return unanswered(&format!("unreadable answer: {e}")),
            Err(e) => return unanswered(&format!("gate unreachable: {e}")),
        };
        let field = |k: &str| {
            value
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        Answer {
            verdict: field("verdict"),
            reason: field("reason"),
        }
    }

    /// Keeps a decision and says it.
    fn record(
        &mut self,
        t: Duration,
        action: &'static str,
        deployment: String,
        a: &Answer,
        after_traffic_s: Option<f64>,
    ) {
        let event = Event {
            t_s: t.as_secs_f64(),
            at_ns: unix_now_ns(),
            action,
            deployment,
            verdict: a.verdict.clone(),
            reason: a.reason.clone(),
            after_traffic_s,
        };
        say(&describe(&event));
        self.events.push(event);
    }

    /// Asks the gate about the canaries of `step`'s service before applying it, as a
    /// controller does before each traffic increase.
    pub fn before_step(&mut self, topo: &Topology, step: &RolloutStep, t: Duration) -> Decision {
        if self.halted.contains(&step.service) {
            let note = Answer {
                verdict: "fail".into(),
                reason: format!(
                    "{} was rolled back; its later steps are skipped",
                    step.service
                ),
            };
            self.record(t, "skip", step.service.clone(), &note, None);
            return Decision::Skip;
        }
        let Some(stable) = stable_of(topo, &step.service) else {
            return Decision::Apply;
        };
        let promotes = step.weights.get(&stable).copied().unwrap_or(0) == 0;
        for (version, weight) in &step.weights {
            if *version == stable || *weight == 0 {
                continue;
            }
            let canary = Canary {
                service: step.service.clone(),
                version: version.clone(),
                stable: stable.clone(),
                since: Instant::now(),
            };
            let a = self.ask(&canary.name());
            if a.verdict == "fail" {
                let live = self.live.iter().position(|c| c.name() == canary.name());
                let canary = live.map_or(canary, |i| self.live.remove(i));
                return Decision::Rollback(self.roll_back(canary, &a, t));
            }
            let action = if promotes { "promote" } else { "step" };
            self.record(t, action, canary.name(), &a, None);
            if !self.live.iter().any(|c| c.name() == canary.name()) {
                self.live.push(canary);
            }
        }
        Decision::Apply
    }

    /// Checks the live canaries every [`ASK_EVERY`]; returns the rollback step of the first one
    /// the gate fails.
    pub fn poll(&mut self, t: Duration) -> Option<RolloutStep> {
        if self.live.is_empty() || self.last_ask.elapsed() < ASK_EVERY {
            return None;
        }
        self.last_ask = Instant::now();
        let (i, a) = self
            .live
            .iter()
            .map(|c| self.ask(&c.name()))
            .enumerate()
            .find(|(_, a)| a.verdict == "fail")?;
        let canary = self.live.remove(i);
        Some(self.roll_back(canary, &a, t))
    }

    fn roll_back(&mut self, canary: Canary, a: &Answer, t: Duration) -> RolloutStep {
        let after = canary.since.elapsed().as_secs_f64();
        self.halted.insert(canary.service.clone());
        self.live.retain(|c| c.service != canary.service);
        self.record(t, "rollback", canary.name(), a, Some(after));
        RolloutStep {
            at_secs: t.as_secs(),
            service: canary.service.clone(),
            weights: [(canary.stable, 100), (canary.version, 0)].into(),
        }
    }

    /// The rollbacks, to mark on the report's timelines.
    pub fn markers(&self) -> Vec<Marker> {
        self.events
            .iter()
            .filter(|e| e.action == "rollback")
            .map(|e| Marker {
                at_ns: e.at_ns,
                label: format!("rollback {}", e.deployment),
            })
            .collect()
    }

    /// The decisions as text, for the end of the report.
    pub fn summary(&self) -> String {
        let mut out = format!("Rollout, asked through meshwake gate ({}):\n", self.base);
        if self.events.is_empty() {
            out.push_str("  no rollout step\n");
        }
        for e in &self.events {
            out.push_str(&format!("  {}\n", describe(e)));
        }
        out
    }
}

fn unanswered(reason: &str) -> Answer {
    Answer {
        verdict: "inconclusive".into(),
        reason: reason.into(),
    }
}

/// One line per decision: when, what, the verdict and why.
pub fn describe(e: &Event) -> String {
    match e.action {
        "rollback" => format!(
            "t={:.0}s ROLLBACK {} {:.1} s after it took traffic: gate says {}: {}",
            e.t_s,
            e.deployment,
            e.after_traffic_s.unwrap_or(0.0),
            e.verdict,
            e.reason
        ),
        "skip" => format!(
            "t={:.0}s skipped step of {}: {}",
            e.t_s, e.deployment, e.reason
        ),
        action => format!(
            "t={:.0}s {action} {}: gate says {}: {}",
            e.t_s, e.deployment, e.verdict, e.reason
        ),
    }
}
