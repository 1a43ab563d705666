//! Synthetic span sets: a seeded PRNG and a small mesh simulator that emits spans the way
//! the meshwake filter does (edge/inbound SERVER, outbound CLIENT), with the behaviours of a
//! real mesh the analysis must handle: identical or faulty rollouts at a given moment,
//! log-normal service times, time on the wire before the callee's span, retries (several
//! SERVER spans under one CLIENT span), fallbacks that absorb a failing callee, and crashed
//! callees that emit no span at all (the caller's proxy answers 503).
//!
//! Used by the unit tests and by [`crate::calibration`] (false-alarm rate and power).

use crate::model::{Kind, SpanRecord, ROLE_EDGE, ROLE_INBOUND, ROLE_OUTBOUND};

/// Start of synthetic time (Unix ns), so that 0 never looks like a valid timestamp.
pub const T0: u64 = 1_700_000_000_000_000_000;
const MS: f64 = 1_000_000.0;

/// splitmix64: tiny, seeded, good enough for test traffic.
pub struct Rng(u64);

impl Rng {
    /// A generator; the same seed gives the same stream.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }
    /// Uniform integer in [lo, hi] (inclusive).
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        let span = hi.saturating_sub(lo) as u64 + 1;
        lo + (self.next_u64() % span) as usize
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-300);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn hex(&mut self, bytes: usize) -> String {
        let mut s = String::new();
        while s.len() < bytes * 2 {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(bytes * 2);
        s
    }
}

/// One version of a service, with its traffic weight, lifetime and injected faults.
#[derive(Clone, Debug)]
pub struct Version {
    /// `service.version`.
    pub name: &'static str,
    /// Relative traffic weight among the versions live at a request's start.
    pub weight: f64,
    /// Probability of failing on its own (5xx), once faults are active.
    pub error_prob: f64,
    /// Extra self time (ms), once faults are active.
    pub extra_ms: f64,
    /// Self time multiplied by this, once faults are active (1 = unchanged).
    pub self_factor: f64,
    /// Extra time (ms) between the caller's CLIENT span start and this version's SERVER
    /// span (network, proxy, a fault-filter delay on its inbound listener), once active.
    pub wire_ms: f64,
    /// Probability that the callee refuses the connection: no SERVER span, the caller's
    /// proxy answers 503 (Envoy flag `UF`/`URX`), once faults are active.
    pub crash_prob: f64,
    /// Serves requests starting at or after this instant (Unix ns; 0 = from the start).
    pub from_ns: u64,
    /// Serves requests starting before this instant (`u64::MAX` = to the end).
    pub until_ns: u64,
}

impl Version {
    /// A healthy version, live the whole run.
    pub fn new(name: &'static str, weight: f64) -> Self {
        Self {
            name,
            weight,
            error_prob: 0.0,
            extra_ms: 0.0,
            self_factor: 1.0,
            wire_ms: 0.0,
            crash_prob: 0.0,
            from_ns: 0,
            until_ns: u64::MAX,
        }
    }
    /// Fails on its own with probability `p`.
    pub fn erroring(mut self, p: f64) -> Self {
        self.error_prob = p;
        self
    }
    /// `ms` more self time per request.
    pub fn slower(mut self, ms: f64) -> Self {
        self.extra_ms = ms;
        self
    }
    /// Self time × `factor`.
    pub fn times(mut self, factor: f64) -> Self {
        self.self_factor = factor;
        self
    }
    /// `ms` more time on the way into it (before its SERVER span starts).
    pub fn wire_delay(mut self, ms: f64) -> Self {
        self.wire_ms = ms;
        self
    }
    /// Refuses a share `p` of connections (no span).
    pub fn crashing(mut self, p: f64) -> Self {
        self.crash_prob = p;
        self
    }
    /// Live only in `[from_ns, until_ns)`.
    pub fn live(mut self, from_ns: u64, until_ns: u64) -> Self {
        self.from_ns = from_ns;
        self.until_ns = until_ns;
        self
    }
    fn is_live(&self, t: u64) -> bool {
        self.from_ns <= t && t < self.until_ns
    }
}

/// A service: versions, callees (indices), self time, route.
#[derive(Clone, Debug)]
pub struct Service {
    /// `service.name`.
    pub name: String,
    /// Its versions.
    pub versions: Vec<Version>,
    /// Indices of the services it calls, in order, per request.
    pub calls: Vec<usize>,
    /// Typical self time, ms (the median with [`Latency::LogNormal`]).
    pub self_ms: f64,
    /// `http.route` of its SERVER spans.
    pub route: String,
    /// False: the service emits no spans (its callers still see the calls).
    pub instrumented: bool,
}

/// Distribution of a service's self time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Uniform ±30% around `self_ms` plus a rare tail up to 3× (the original test model).
    Uniform,
    /// Log-normal with median `self_ms` and this shape (σ of the log): 0.5 gives p95 ≈ 2.3×p50.
    LogNormal(f64),
}

/// A mesh; service 0 is the edge.
#[derive(Clone, Debug)]
pub struct Mesh {
    /// The services; 0 receives the edge requests.
    pub services: Vec<Service>,
    /// Background own-error probability of every request.
    pub base_error: f64,
    /// Faults apply to requests starting at or after this instant.
    pub fault_start_ns: u64,
    /// Self-time distribution.
    pub latency: Latency,
    /// Time on the wire and in the two proxies, each way, ms.
    pub wire_ms: f64,
    /// Probability that a caller makes each of its calls to a service, by callee index
    /// (missing: always). Models fan-out that leaves deep services with little traffic.
    pub call_prob: Vec<f64>,
    /// Retries by the caller's proxy after a failed attempt (Envoy `retry_on: 5xx`).
    pub retries: u32,
    /// Services that absorb a failing callee and answer 200 (degraded) instead of failing.
    pub fallbacks: Vec<usize>,
}

/// Outcome of one call as the caller sees it.
struct CallResult {
    end: u64,
    failed: bool,
    version: &'static str,
}

impl Mesh {
    /// `s0 -> s1 -> ... -> s{depth}`, one version `v1` each, edge route `/checkout`.
    pub fn chain(depth: usize) -> Self {
        let services = (0..=depth)
            .map(|i| Service {
                name: format!("s{i}"),
                versions: vec![Version::new("v1", 1.0)],
                calls: if i < depth { vec![i + 1] } else { vec![] },
                self_ms: 10.0,
                route: if i == 0 {
                    "/checkout".into()
                } else {
                    format!("/api/s{i}")
                },
                instrumented: true,
            })
            .collect();
        Self {
            services,
            base_error: 0.005,
            fault_start_ns: 0,
            latency: Latency::Uniform,
            wire_ms: 0.2,
            call_prob: Vec::new(),
            retries: 0,
            fallbacks: Vec::new(),
        }
    }

    /// `requests` edge requests spread evenly over `duration_ms` from [`T0`].
    pub fn generate(&self, requests: usize, duration_ms: f64, seed: u64) -> Vec<SpanRecord> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for i in 0..requests {
            let start = T0 + (i as f64 * duration_ms * MS / requests as f64) as u64;
            let trace = rng.hex(16);
            self.serve(0, None, start, &trace, &mut rng, &mut out);
        }
        out
    }

    /// Picks the version serving a request at `t` (weights among live versions).
    fn pick(&self, svc: &Service, t: u64, rng: &mut Rng) -> Option<Version> {
        let live: Vec<&Version> = svc.versions.iter().filter(|v| v.is_live(t)).collect();
        let total_weight: f64 = live.iter().map(|v| v.weight).sum();
        let mut pick = rng.f64() * total_weight;
        let mut chosen = live.first().copied();
        for cand in &live {
            chosen = Some(cand);
            if pick < cand.weight {
                break;
            }
            pick -= cand.weight;
        }
        chosen.cloned()
    }

    fn self_time_ms(&self, base: f64, rng: &mut Rng) -> f64 {
        match self.latency {
            Latency::Uniform => {
                let u = rng.f64();
                base * (0.7 + 0.6 * u) + base * 3.0 * rng.f64().powi(12)
            }
            Latency::LogNormal(sigma) => base * (sigma * rng.normal()).exp(),
        }
    }

    /// Simulates one request to service `svc` arriving at `start`.
    fn serve(
        &self,
        svc: usize,
        parent: Option<String>,
        start: u64,
        trace: &str,
        rng: &mut Rng,
        out: &mut Vec<SpanRecord>,
    ) -> CallResult {
        let Some(s) = self.services.get(svc) else {
            return CallResult {
                end: start,
                failed: true,
                version: "none",
            };
        };
        let Some(v) = self.pick(s, start, rng) else {
            return CallResult {
                end: start,
                failed: true,
                version: "none",
            };
        };
        self.serve_version(svc, s, v, parent, start, trace, rng, out)
    }

    /// Simulates one request to version `v` of service `s` (index `svc`).
    #[allow(clippy::too_many_arguments)]
    fn serve_version(
        &self,
        svc: usize,
        s: &Service,
        v: Version,
        parent: Option<String>,
        start: u64,
        trace: &str,
        rng: &mut Rng,
        out: &mut Vec<SpanRecord>,
    ) -> CallResult {
        let active = start >= self.fault_start_ns;
        let mut self_ms = self.self_time_ms(s.self_ms, rng);
        if active {
            self_ms = self_ms * v.self_factor + v.extra_ms;
        }
        let own_fail = rng.chance(self.base_error) || (active && rng.chance(v.error_prob));
        let self_ns = (self_ms * MS) as u64;
        if !s.instrumented {
            return CallResult {
                end: start + self_ns,
                failed: own_fail,
                version: v.name,
            };
        }
        let span_id = rng.hex(8);
        let mut cursor = start + self_ns / 2;
        let mut callee_failed = false;
        for &callee in &s.calls {
            if let Some(&p) = self.call_prob.get(callee) {
                if p < 1.0 && !rng.chance(p) {
                    continue;
                }
            }
            let (c_end, failed) = self.call(s, &v, &span_id, callee, cursor, trace, rng, out);
            cursor = c_end;
            if failed && !self.fallbacks.contains(&svc) {
                // Callers give up on the first failed call, as most handlers do.
                callee_failed = true;
                break;
            }
        }
        let failed = own_fail || callee_failed;
        let end = cursor + self_ns - self_ns / 2;
        out.push(SpanRecord {
            trace_id: trace.to_owned(),
            span_id,
            parent_span_id: parent,
            service: s.name.clone(),
            version: v.name.to_owned(),
            kind: Kind::Server,
            role: Some(if svc == 0 { ROLE_EDGE } else { ROLE_INBOUND }.to_owned()),
            start_ns: start,
            end_ns: end,
            is_error: failed,
            http_status: Some(if failed { 500 } else { 200 }),
            route: Some(s.route.clone()),
            peer_service: None,
            peer_version: None,
        });
        CallResult {
            end,
            failed,
            version: v.name,
        }
    }

    /// One CLIENT span from `caller` to `callee` starting at `c_start`, with its attempts
    /// (the first plus up to `retries` after failures). Returns (end, failed).
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        caller: &Service,
        caller_version: &Version,
        caller_span: &str,
        callee: usize,
        c_start: u64,
        trace: &str,
        rng: &mut Rng,
        out: &mut Vec<SpanRecord>,
    ) -> (u64, bool) {
        let client_id = rng.hex(8);
        let wire = (self.wire_ms * MS) as u64;
        let mut t = c_start;
        let mut result = CallResult {
            end: c_start,
            failed: true,
            version: "unknown",
        };
        for _attempt in 0..=self.retries {
            result = self.attempt(callee, &client_id, t + wire, trace, rng, out);
            t = result.end + wire;
            if !result.failed {
                break;
            }
        }
        let callee_name = self
            .services
            .get(callee)
            .map_or_else(|| "unknown".to_owned(), |c| c.name.clone());
        out.push(SpanRecord {
            trace_id: trace.to_owned(),
            span_id: client_id,
            parent_span_id: Some(caller_span.to_owned()),
            service: caller.name.clone(),
            version: caller_version.name.to_owned(),
            kind: Kind::Client,
            role: Some(ROLE_OUTBOUND.to_owned()),
            start_ns: c_start,
            end_ns: t,
            is_error: result.failed,
            http_status: Some(if result.failed { 503 } else { 200 }),
            route: Some(format!("egress {callee_name}")),
            peer_service: Some(callee_name),
            peer_version: Some(result.version.to_owned()),
        });
        (t, result.failed)
    }

    /// One attempt at `callee`, arriving at its proxy at `arrive`.
    fn attempt(
        &self,
        callee: usize,
        client_id: &str,
        arrive: u64,
        trace: &str,
        rng: &mut Rng,
        out: &mut Vec<SpanRecord>,
    ) -> CallResult {
        let Some((s, v)) = self
            .services
            .get(callee)
            .and_then(|s| Some((s, self.pick(s, arrive, rng)?)))
        else {
            return CallResult {
                end: arrive,
                failed: true,
                version: "none",
            };
        };
        let active = arrive >= self.fault_start_ns;
        let (delay_ms, crash) = if active {
            (v.wire_ms, v.crash_prob)
        } else {
            (0.0, 0.0)
        };
        if crash > 0.0 && rng.chance(crash) {
            // Connection refused: the proxy answers 503 after a connect attempt, no span.
            return CallResult {
                end: arrive + (0.5 * MS) as u64,
                failed: true,
                version: v.name,
            };
        }
        let start = arrive + (delay_ms * MS) as u64;
        self.serve_version(
            callee,
            s,
            v,
            Some(client_id.to_owned()),
            start,
            trace,
            rng,
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_put_several_server_spans_under_one_client_span() {
        let mut mesh = Mesh::chain(1);
        mesh.base_error = 0.0;
        mesh.retries = 2;
        mesh.services[1].versions = vec![Version::new("v1", 1.0).erroring(0.5)];
        let spans = mesh.generate(200, 10_000.0, 1);
        let clients: Vec<&SpanRecord> = spans.iter().filter(|s| s.kind == Kind::Client).collect();
        assert_eq!(clients.len(), 200);
        let servers_of = |c: &SpanRecord| {
            spans
                .iter()
                .filter(|s| s.parent_span_id.as_deref() == Some(c.span_id.as_str()))
                .count()
        };
        let max = clients.iter().map(|c| servers_of(c)).max().unwrap();
        assert_eq!(max, 3, "first try plus two retries");
        // With retries the caller fails only when all three attempts fail (~1/8).
        let failed = clients.iter().filter(|c| c.is_error).count();
        assert!((10..45).contains(&failed), "{failed}");
    }

    #[test]
    fn a_crashed_callee_emits_no_span_and_the_caller_sees_503() {
        let mut mesh = Mesh::chain(1);
        mesh.base_error = 0.0;
        mesh.services[1].versions = vec![Version::new("v1", 1.0).crashing(1.0)];
        let spans = mesh.generate(50, 10_000.0, 2);
        assert!(spans.iter().all(|s| s.service == "s0"));
        let clients = spans.iter().filter(|s| s.kind == Kind::Client);
        for c in clients {
            assert_eq!(
                (c.http_status, c.peer_service.as_deref()),
                (Some(503), Some("s1"))
            );
            assert_eq!(c.peer_version.as_deref(), Some("v1"));
        }
    }

    #[test]
    fn wire_delay_opens_a_gap_before_the_callee_span() {
        let mut mesh = Mesh::chain(1);
        mesh.services[1].versions = vec![Version::new("v1", 1.0).wire_delay(30.0)];
        let spans = mesh.generate(20, 10_000.0, 3);
        for c in spans.iter().filter(|s| s.kind == Kind::Client) {
            let server = spans
                .iter()
                .find(|s| s.parent_span_id.as_deref() == Some(c.span_id.as_str()))
                .unwrap();
            let gap_ms = (server.start_ns - c.start_ns) as f64 / MS;
            assert!((30.0..31.0).contains(&gap_ms), "{gap_ms}");
        }
    }

    #[test]
    fn versions_serve_only_in_their_lifetime_and_lognormal_has_the_median() {
        let mut mesh = Mesh::chain(0);
        mesh.latency = Latency::LogNormal(0.5);
        let half = T0 + 5_000 * 1_000_000;
        mesh.services[0].versions = vec![
            Version::new("v1", 1.0).live(0, half),
            Version::new("v2", 1.0).live(half, u64::MAX),
        ];
        let spans = mesh.generate(1000, 10_000.0, 4);
        for s in &spans {
            assert_eq!(s.version, if s.start_ns < half { "v1" } else { "v2" });
        }
        let mut d: Vec<f64> = spans.iter().map(|s| s.duration_ns() as f64 / MS).collect();
        d.sort_by(f64::total_cmp);
        let median = d[d.len() / 2];
        assert!((9.0..11.0).contains(&median), "{median}");
    }
}
