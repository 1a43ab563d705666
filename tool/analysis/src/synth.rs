//! Synthetic span sets for tests: a seeded PRNG and a tiny mesh simulator that emits
//! spans the way the meshwake filter does (edge/inbound SERVER, outbound CLIENT).

use crate::model::{Kind, SpanRecord, ROLE_EDGE, ROLE_INBOUND, ROLE_OUTBOUND};

/// Start of synthetic time (Unix ns), so that 0 never looks like a valid timestamp.
pub const T0: u64 = 1_700_000_000_000_000_000;
const MS: f64 = 1_000_000.0;

/// splitmix64: tiny, seeded, good enough for test traffic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
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
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
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

/// One version of a service, with its traffic weight and injected faults.
#[derive(Clone)]
pub struct Version {
    pub name: &'static str,
    pub weight: f64,
    /// Probability of failing on its own (5xx), once faults are active.
    pub error_prob: f64,
    /// Extra self time (ms), once faults are active.
    pub extra_ms: f64,
}

impl Version {
    pub fn new(name: &'static str, weight: f64) -> Self {
        Self {
            name,
            weight,
            error_prob: 0.0,
            extra_ms: 0.0,
        }
    }
    pub fn erroring(mut self, p: f64) -> Self {
        self.error_prob = p;
        self
    }
    pub fn slower(mut self, ms: f64) -> Self {
        self.extra_ms = ms;
        self
    }
}

/// A service: versions, callees (indices), self time, route.
#[derive(Clone)]
pub struct Service {
    pub name: String,
    pub versions: Vec<Version>,
    pub calls: Vec<usize>,
    pub self_ms: f64,
    pub route: String,
    /// False: the service emits no spans (its callers still see the calls).
    pub instrumented: bool,
}

/// A mesh; service 0 is the edge.
#[derive(Clone)]
pub struct Mesh {
    pub services: Vec<Service>,
    /// Background own-error probability of every request.
    pub base_error: f64,
    /// Faults apply to requests starting at or after this instant.
    pub fault_start_ns: u64,
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
        }
    }

    /// `requests` edge requests spread over `duration_ms` from [`T0`].
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

    /// Simulates one request to `svc`; returns (end time, failed, version chosen).
    fn serve(
        &self,
        svc: usize,
        parent: Option<String>,
        start: u64,
        trace: &str,
        rng: &mut Rng,
        out: &mut Vec<SpanRecord>,
    ) -> (u64, bool, &'static str) {
        let s = &self.services[svc];
        let total_weight: f64 = s.versions.iter().map(|v| v.weight).sum();
        let mut pick = rng.f64() * total_weight;
        let mut v = &s.versions[0];
        for cand in &s.versions {
            v = cand;
            if pick < cand.weight {
                break;
            }
            pick -= cand.weight;
        }
        let active = start >= self.fault_start_ns;
        let u = rng.f64();
        let mut self_ms = s.self_ms * (0.7 + 0.6 * u) + s.self_ms * 3.0 * rng.f64().powi(12);
        if active {
            self_ms += v.extra_ms;
        }
        let own_fail = rng.chance(self.base_error) || (active && rng.chance(v.error_prob));
        let self_ns = (self_ms * MS) as u64;
        if !s.instrumented {
            return (start + self_ns, own_fail, v.name);
        }
        let span_id = rng.hex(8);
        let mut cursor = start + self_ns / 2;
        let mut callee_failed = false;
        for &callee in &s.calls {
            let client_id = rng.hex(8);
            let c_start = cursor;
            let (end, failed, peer_version) = self.serve(
                callee,
                Some(client_id.clone()),
                c_start + 200_000,
                trace,
                rng,
                out,
            );
            let c_end = end + 200_000;
            out.push(SpanRecord {
                trace_id: trace.to_owned(),
                span_id: client_id,
                parent_span_id: Some(span_id.clone()),
                service: s.name.clone(),
                version: v.name.to_owned(),
                kind: Kind::Client,
                role: Some(ROLE_OUTBOUND.to_owned()),
                start_ns: c_start,
                end_ns: c_end,
                is_error: failed,
                http_status: Some(if failed { 503 } else { 200 }),
                route: Some(format!("egress {}", self.services[callee].name)),
                peer_service: Some(self.services[callee].name.clone()),
                peer_version: Some(peer_version.to_owned()),
            });
            cursor = c_end;
            if failed {
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
        (end, failed, v.name)
    }
}
