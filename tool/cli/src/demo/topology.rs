//! The demo topology file: services, their versions and behaviour, who calls whom, the edge
//! routes, the traffic and the rollout timeline. YAML, documented in `demo/topologies/README.md`.
//!
//! Parsed once and validated as a whole (unknown keys, unknown services, call cycles, weights),
//! so that the orchestrator never meets an inconsistent topology.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// Largest number of deployments (service versions) a topology may start.
pub const MAX_DEPLOYMENTS: usize = 64;
/// Highest request rate the load generator accepts, per second.
pub const MAX_RATE: f64 = 500.0;

/// A whole topology file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Name shown in the output.
    #[serde(default = "default_name")]
    pub name: String,
    /// `service.namespace` of every workload.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Traffic sent at the edge.
    pub traffic: Traffic,
    /// The ingress gateway.
    pub edge: Edge,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// Weight changes over time, in order.
    #[serde(default)]
    pub rollout: Vec<RolloutStep>,
}

/// Load at the edge.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Requests per second (bounded: the generator never exceeds it).
    pub rate_per_sec: f64,
    /// How long traffic runs, in seconds (`--duration-secs` overrides it).
    pub duration_secs: u64,
    /// Requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

/// The ingress gateway: one Envoy with role `edge`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// Its `service.name` in spans.
    #[serde(default = "default_edge_name")]
    pub name: String,
    /// Path prefix → service.
    pub routes: Vec<EdgeRoute>,
}

/// One edge route.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeRoute {
    /// Path (also a prefix match in Envoy); the generator requests exactly this path.
    pub path: String,
    /// Service serving it.
    pub service: String,
    /// Share of the generated traffic (relative to the other routes).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// One service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Downstream calls made for every request, in order.
    #[serde(default)]
    pub calls: Vec<Call>,
    /// Make the calls in parallel (fan-out) instead of one after another.
    #[serde(default)]
    pub parallel: bool,
    /// Versions by name (`v1`, `v2`...).
    pub versions: BTreeMap<String, Version>,
}

/// A downstream call: `ratings`, or `{service: ratings, path: /ratings/1, timeout_ms: 300,
/// retries: {...}, fallback: true}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Call {
    /// Just the service: path `/<service>`.
    Service(String),
    /// Service, path and how the caller's Envoy and app treat the call.
    Full(CallSpec),
}

/// A call with its options: the timeout and retries become the caller's Envoy route, the
/// fallback is the caller app's behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// Callee.
    pub service: String,
    /// Path requested (default `/<service>`).
    #[serde(default)]
    pub path: Option<String>,
    /// Envoy route timeout, ms (default [`super::envoy_config::ROUTE_TIMEOUT`]): Envoy answers
    /// 504 (flag `UT`) when the callee is slower.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Envoy route `retry_policy`.
    #[serde(default)]
    pub retries: Option<Retries>,
    /// The caller absorbs a failure of this call: it answers 200 with a degraded marker
    /// (`"degraded"` in the body, header `x-demo-degraded`) instead of failing.
    #[serde(default)]
    pub fallback: bool,
}

/// Envoy `retry_policy` of one call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Envoy `retry_on` conditions (default `5xx,reset,connect-failure`).
    #[serde(default = "default_retry_on")]
    pub retry_on: String,
    /// Retries after the first try (default 2).
    #[serde(default = "default_num_retries")]
    pub num_retries: u32,
    /// Timeout of each try, ms (default: none, only the route timeout).
    #[serde(default)]
    pub per_try_timeout_ms: Option<u64>,
}

impl Call {
    /// The callee.
    pub fn service(&self) -> &str {
        match self {
            Call::Service(s) => s,
            Call::Full(c) => &c.service,
        }
    }

    /// The path requested.
    pub fn path(&self) -> String {
        match self {
            Call::Full(CallSpec {
                path: Some(path), ..
            }) => path.clone(),
            _ => format!("/{}", self.service()),
        }
    }

    /// The options, when given.
    pub fn spec(&self) -> Option<&CallSpec> {
        match self {
            Call::Service(_) => None,
            Call::Full(c) => Some(c),
        }
    }

    /// The caller absorbs a failure of this call.
    pub fn fallback(&self) -> bool {
        self.spec().is_some_and(|c| c.fallback)
    }
}

/// Behaviour and initial traffic weight of one version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Initial share of the service's traffic (relative to its other versions); 0 for a
    /// canary that the rollout turns on later.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Median own latency, ms.
    #[serde(default = "default_latency")]
    pub latency_ms_p50: f64,
    /// Spread of the own latency, ms.
    #[serde(default = "default_jitter")]
    pub latency_jitter_ms: f64,
    /// Probability of answering 500 by itself.
    #[serde(default)]
    pub error_rate: f64,
    /// Probability of hanging `hang_ms` then answering 504.
    #[serde(default)]
    pub timeout_rate: f64,
    /// How long a timeout hangs, ms.
    #[serde(default = "default_hang_ms")]
    pub hang_ms: u64,
    /// Probability of closing the connection without an answer (the app crashed mid-request):
    /// its sidecar answers 503 (flag `UC`).
    #[serde(default)]
    pub reset_rate: f64,
    /// Share of connections that find this version not listening (a crashed replica: no app,
    /// no sidecar): the caller's Envoy answers 503 (`UF`, `URX` after retries) and this
    /// version emits no span for them. 1 = the version is down.
    #[serde(default)]
    pub unreachable_rate: f64,
    /// Delay added in front of this version (network, proxies, queues before the app): an
    /// Envoy fault filter placed before the meshwake filter on its inbound listener, so the
    /// callers' CLIENT spans include it and this version's SERVER spans do not. ms.
    #[serde(default)]
    pub inbound_delay_ms: u64,
}

/// One step of the rollout: at `at_secs`, the caller-side split of `service` becomes `weights`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutStep {
    /// Seconds after traffic starts.
    pub at_secs: u64,
    /// Service whose split changes.
    pub service: String,
    /// New weight per version (versions not listed get 0).
    pub weights: BTreeMap<String, u32>,
}

fn default_name() -> String {
    "demo".into()
}
fn default_namespace() -> String {
    "demo".into()
}
fn default_edge_name() -> String {
    "edge".into()
}
fn default_concurrency() -> usize {
    32
}
fn default_weight() -> u32 {
    100
}
fn default_latency() -> f64 {
    5.0
}
fn default_jitter() -> f64 {
    2.0
}
fn default_hang_ms() -> u64 {
    2000
}
fn default_retry_on() -> String {
    "5xx,reset,connect-failure".into()
}
fn default_num_retries() -> u32 {
    2
}

/// Why a topology file was rejected.
#[derive(Debug)]
pub enum TopologyError {
    /// The file could not be read.
    Read(String, std::io::Error),
    /// Not YAML of the expected shape.
    Parse(String),
    /// Parsed, but inconsistent.
    Invalid(String),
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::Read(p, e) => write!(f, "cannot read topology {p}: {e}"),
            TopologyError::Parse(e) => write!(f, "invalid topology: {e}"),
            TopologyError::Invalid(e) => write!(f, "invalid topology: {e}"),
        }
    }
}

impl std::error::Error for TopologyError {}

fn invalid(msg: String) -> TopologyError {
    TopologyError::Invalid(msg)
}

/// One version of one service, as started.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Workload {
    /// Service.
    pub service: String,
    /// Version.
    pub version: String,
}

impl Workload {
    /// `service-version`: the Envoy cluster name (a pattern the filter knows).
    pub fn cluster(&self) -> String {
        format!("{}-{}", self.service, self.version)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.service, self.version)
    }
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TopologyError::Read(path.display().to_string(), e))?;
        Topology::parse(&text)
    }

    /// Parses and validates topology YAML.
    pub fn parse(text: &str) -> Result<Topology, TopologyError> {
        let topo: Topology =
            serde_norway::from_str(text).map_err(|e| TopologyError::Parse(e.to_string()))?;
        topo.validate()?;
        Ok(topo)
    }

    /// Every workload (service version), sorted.
    pub fn workloads(&self) -> Vec<Workload> {
        self.services
            .iter()
            .flat_map(|(s, svc)| {
                svc.versions.keys().map(move |v| Workload {
                    service: s.clone(),
                    version: v.clone(),
                })
            })
            .collect()
    }

    /// Longest chain of services from the edge (1 = the routed services only).
    pub fn depth(&self) -> usize {
        fn walk(t: &Topology, s: &str, seen: &mut Vec<String>) -> usize {
            if seen.iter().any(|x| x == s) {
                return 0;
            }
            seen.push(s.to_string());
            let below = t
                .services
                .get(s)
                .map(|svc| {
                    svc.calls
                        .iter()
                        .map(|c| walk(t, c.service(), seen))
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            seen.pop();
            1 + below
        }
        self.edge
            .routes
            .iter()
            .map(|r| walk(self, &r.service, &mut Vec::new()))
            .max()
            .unwrap_or(0)
    }

    fn validate(&self) -> Result<(), TopologyError> {
        let t = &self.traffic;
        if !(t.rate_per_sec > 0.0 && t.rate_per_sec <= MAX_RATE) {
            return Err(invalid(format!(
                "traffic.rate_per_sec must be in (0, {MAX_RATE}], got {}",
                t.rate_per_sec
            )));
        }
        if t.duration_secs == 0 {
            return Err(invalid("traffic.duration_secs must be positive".into()));
        }
        if t.concurrency == 0 || t.concurrency > 1024 {
            return Err(invalid("traffic.concurrency must be in 1..=1024".into()));
        }
        if self.services.is_empty() {
            return Err(invalid("no services".into()));
        }
        if self.services.contains_key(&self.edge.name) {
            return Err(invalid(format!(
                "edge name {:?} is also a service",
                self.edge.name
            )));
        }
        if self.edge.routes.is_empty() || self.edge.routes.iter().all(|r| r.weight == 0) {
            return Err(invalid(
                "edge.routes needs at least one route with weight > 0".into(),
            ));
        }
        let n = self.workloads().len();
        if n > MAX_DEPLOYMENTS {
            return Err(invalid(format!(
                "{n} deployments, at most {MAX_DEPLOYMENTS}"
            )));
        }
        for r in &self.edge.routes {
            if !r.path.starts_with('/') {
                return Err(invalid(format!(
                    "edge route {:?} must start with /",
                    r.path
                )));
            }
            self.known(&r.service, &format!("edge route {}", r.path))?;
        }
        for (name, svc) in &self.services {
            check_name(name)?;
            if svc.versions.is_empty() {
                return Err(invalid(format!("service {name} has no versions")));
            }
            if svc.versions.values().all(|v| v.weight == 0) {
                return Err(invalid(format!(
                    "service {name}: every version has weight 0"
                )));
            }
            for (vname, v) in &svc.versions {
                check_name(vname)?;
                let what = format!("{name}@{vname}");
                for (key, p) in [
                    ("error_rate", v.error_rate),
                    ("timeout_rate", v.timeout_rate),
                    ("reset_rate", v.reset_rate),
                    ("unreachable_rate", v.unreachable_rate),
                ] {
                    if !(0.0..=1.0).contains(&p) {
                        return Err(invalid(format!("{what}: {key} must be in [0, 1]")));
                    }
                }
                if !(v.latency_ms_p50 >= 0.0 && v.latency_jitter_ms >= 0.0) {
                    return Err(invalid(format!("{what}: latencies must be >= 0")));
                }
            }
            for c in &svc.calls {
                self.known(c.service(), &format!("service {name} calls"))?;
                if !c.path().starts_with('/') {
                    return Err(invalid(format!(
                        "service {name}: call path {:?} must start with /",
                        c.path()
                    )));
                }
                check_call_spec(name, c)?;
            }
        }
        self.check_acyclic()?;
        let mut last = 0;
        for step in &self.rollout {
            let svc = self.known(&step.service, "rollout")?;
            if step.at_secs < last {
                return Err(invalid("rollout steps must be in time order".into()));
            }
            last = step.at_secs;
            if step.weights.values().all(|w| *w == 0) {
                return Err(invalid(format!(
                    "rollout of {} at {} s: every weight is 0",
                    step.service, step.at_secs
                )));
            }
            for v in step.weights.keys() {
                if !svc.versions.contains_key(v) {
                    return Err(invalid(format!(
                        "rollout of {}: unknown version {v}",
                        step.service
                    )));
                }
            }
        }
        Ok(())
    }

    fn known(&self, service: &str, context: &str) -> Result<&Service, TopologyError> {
        self.services
            .get(service)
            .ok_or_else(|| invalid(format!("{context}: unknown service {service:?}")))
    }

    /// Calls must form a DAG: a cycle would make every request loop until it times out.
    fn check_acyclic(&self) -> Result<(), TopologyError> {
        // Kahn's algorithm on the call graph.
        let mut indegree: BTreeMap<&str, usize> =
            self.services.keys().map(|k| (k.as_str(), 0)).collect();
        for svc in self.services.values() {
            for c in &svc.calls {
                if let Some(d) = indegree.get_mut(c.service()) {
                    *d += 1;
                }
            }
        }
        let mut ready: Vec<&str> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(k, _)| *k)
            .collect();
        let mut done = 0;
        while let Some(s) = ready.pop() {
            done += 1;
            for c in self
                .services
                .get(s)
                .map(|x| x.calls.as_slice())
                .unwrap_or(&[])
            {
                if let Some(d) = indegree.get_mut(c.service()) {
                    *d = d.saturating_sub(1);
                    if *d == 0 {
                        ready.push(c.service());
                    }
                }
            }
        }
        if done == self.services.len() {
            Ok(())
        } else {
            Err(invalid("service calls form a cycle".into()))
        }
    }
}

/// Envoy rejects a zero timeout as "none" and retry storms hurt the demo machine: bounded.
fn check_call_spec(caller: &str, call: &Call) -> Result<(), TopologyError> {
    let Some(spec) = call.spec() else {
        return Ok(());
    };
    let what = format!("service {caller}: call to {}", spec.service);
    if spec.timeout_ms == Some(0) {
        return Err(invalid(format!("{what}: timeout_ms must be positive")));
    }
    if let Some(r) = &spec.retries {
        if r.num_retries > MAX_RETRIES || r.per_try_timeout_ms == Some(0) {
            return Err(invalid(format!(
                "{what}: retries.num_retries must be at most {MAX_RETRIES}, per_try_timeout_ms positive"
            )));
        }
        let known = r.retry_on.split(',').all(|c| RETRY_ON.contains(&c.trim()));
        if !known {
            return Err(invalid(format!(
                "{what}: retry_on {:?}: use among {}",
                r.retry_on,
                RETRY_ON.join(",")
            )));
        }
    }
    Ok(())
}

/// Envoy's HTTP `retry_on` conditions that make sense for the demo.
const RETRY_ON: [&str; 7] = [
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
];
/// Most retries per call.
const MAX_RETRIES: u32 = 5;

/// Names end up in Envoy cluster names, runtime keys, Host headers and file names.
fn check_name(name: &str) -> Result<(), TopologyError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "name {name:?}: use 1-40 characters among a-z 0-9 - _"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "
traffic: { rate_per_sec: 10, duration_secs: 5 }
edge:
  routes: [{ path: /shop, service: web }]
services:
  web:
    calls: [api, { service: db, path: /q }]
    parallel: true
    versions: { v1: {} }
  api:
    calls: [db]
    versions:
      v1: {}
      v2: { weight: 0, error_rate: 0.3 }
  db:
    versions: { v1: { latency_ms_p50: 2 } }
rollout:
  - { at_secs: 2, service: api, weights: { v1: 50, v2: 50 } }
";

    #[test]
    fn parses_with_defaults() {
        let t = Topology::parse(SMALL).unwrap();
        assert_eq!(t.namespace, "demo");
        assert_eq!(t.edge.name, "edge");
        assert_eq!(t.traffic.concurrency, 32);
        let web = &t.services["web"];
        assert_eq!(web.calls[0].path(), "/api");
        assert_eq!(web.calls[1].path(), "/q");
        assert_eq!(t.services["api"].versions["v2"].weight, 0);
        assert_eq!(t.services["db"].versions["v1"].latency_ms_p50, 2.0);
        assert_eq!(t.workloads().len(), 4);
        assert_eq!(t.depth(), 3);
    }

    #[test]
    fn call_options_and_faults() {
        let t = Topology::parse(&SMALL.replace(
            "calls: [db]",
            "calls: [{ service: db, timeout_ms: 100, retries: { retry_on: 'gateway-error,reset' }, fallback: true }]",
        ))
        .unwrap();
        let call = &t.services["api"].calls[0];
        assert_eq!(call.path(), "/db");
        assert!(call.fallback());
        let spec = call.spec().unwrap();
        assert_eq!(spec.timeout_ms, Some(100));
        let r = spec.retries.as_ref().unwrap();
        assert_eq!((r.num_retries, r.per_try_timeout_ms), (2, None));
        for (bad, want) in [
            ("{ service: db, timeout_ms: 0 }", "timeout_ms"),
            (
                "{ service: db, retries: { num_retries: 50 } }",
                "num_retries",
            ),
            (
                "{ service: db, retries: { retry_on: 'sometimes' } }",
                "retry_on",
            ),
        ] {
            let err = Topology::parse(&SMALL.replace("calls: [db]", &format!("calls: [{bad}]")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
        let err = Topology::parse(&SMALL.replace("error_rate: 0.3", "unreachable_rate: 2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unreachable_rate"), "{err}");
    }

    #[rustfmt::skip]
    #[test]
    fn rejects_inconsistent_topologies() {
        let cases: [(&str, &str, &str); 9] = [
            ("service: web }]", "service: nope }]", "unknown service \"nope\""),
            ("calls: [db]", "calls: [web]", "cycle"),
            ("v2: { weight: 0, error_rate: 0.3 }", "v2: { error_rate: 1.3 }", "error_rate"),
            ("weights: { v1: 50, v2: 50 }", "weights: { v9: 50 }", "unknown version v9"),
            ("weights: { v1: 50, v2: 50 }", "weights: { v1: 0 }", "every weight is 0"),
            ("rate_per_sec: 10", "rate_per_sec: 0", "rate_per_sec"),
            ("  db:\n", "  Db:\n", "name \"Db\""),
            ("parallel: true", "paralel: true", "unknown field"),
            ("versions: { v1: {} }\n  api", "versions: {}\n  api", "no versions"),
        ];
        for (from, to, want) in cases {
            assert!(SMALL.contains(from), "{from}");
            let err = Topology::parse(&SMALL.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(err.contains(want), "{to}: {err}");
        }
    }

    #[test]
    fn shipped_topologies_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/topologies");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let t = Topology::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(!t.rollout.is_empty(), "{}", p.display());
                n += 1;
            }
        }
        assert!(n >= 3);
        let d = Topology::load(&dir.join("default.yaml")).unwrap();
        assert!(
            d.services.len() >= 8 && d.depth() >= 5,
            "{} {}",
            d.services.len(),
            d.depth()
        );
        let l = Topology::load(&dir.join("large.yaml")).unwrap();
        assert!(l.services.len() >= 30);
    }
}
