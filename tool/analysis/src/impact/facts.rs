//! Facts about every request (SERVER span) that the tests and the blast radius read:
//! failed or not, own error or explained by a callee, duration and self time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::report::Baseline;
use crate::model::{Deployment, Kind, SpanRecord};
use crate::options::AnalysisOptions;
use crate::traces::{covered_ns, TraceIndex, MAX_DEPTH};

/// Facts about one request: a SERVER span, or a call that reached no span of its callee
/// (refused connection, crashed or uninstrumented callee), counted for the callee its
/// CLIENT span names.
pub(super) struct Req {
    /// The SERVER span, or the CLIENT span of a call without a callee span.
    pub(super) span: usize,
    pub(super) dep: usize,
    pub(super) current: bool,
    pub(super) failed: bool,
    pub(super) own_error: bool,
    pub(super) dur_ms: f64,
    pub(super) self_ms: f64,
    /// False for a call without a callee span: its duration is the caller's view only.
    pub(super) timed: bool,
    /// Time into this request from its caller (CLIENT span minus this SERVER span), ms;
    /// `None` for entry requests, retried calls and calls without a CLIENT span.
    pub(super) wire_ms: Option<f64>,
    /// Start of the SERVER span (or of the CLIENT span of a call without one), Unix ns.
    pub(super) start_ns: u64,
}

const NS_PER_MS: f64 = 1_000_000.0;

fn span_failed(s: &SpanRecord) -> bool {
    s.is_error || s.http_status.is_some_and(|c| c >= 500)
}

/// Everything the analysis derives from the spans before testing.
pub(super) struct Facts<'a> {
    pub(super) idx: TraceIndex<'a>,
    pub(super) deps: Vec<Deployment>,
    pub(super) reqs: Vec<Req>,
    pub(super) req_of_span: HashMap<usize, usize>,
    /// Request indices per deployment.
    pub(super) by_dep: Vec<Vec<usize>>,
    /// A baseline window exists (a split was given or inferred).
    pub(super) has_split: bool,
}

impl<'a> Facts<'a> {
    /// Facts of `spans`; requests starting at or after `split` (Unix ns) are current.
    pub(super) fn new(spans: &'a [SpanRecord], split: Option<u64>) -> Self {
        let idx = TraceIndex::new(spans);
        let orphan_calls = orphan_calls(&idx);
        let mut dep_ids: BTreeMap<Deployment, usize> = BTreeMap::new();
        for s in &idx.spans {
            if s.kind == Kind::Server {
                dep_ids.entry(s.deployment()).or_insert(0);
            }
        }
        for (_, d) in &orphan_calls {
            dep_ids.entry(d.clone()).or_insert(0);
        }
        for (i, v) in dep_ids.values_mut().enumerate() {
            *v = i;
        }
        let deps: Vec<Deployment> = dep_ids.keys().cloned().collect();
        let split = split.unwrap_or(0);
        let mut facts = Self {
            idx,
            deps,
            reqs: Vec::new(),
            req_of_span: HashMap::new(),
            by_dep: vec![Vec::new(); dep_ids.len()],
            has_split: split > 0,
        };
        for i in 0..facts.idx.spans.len() {
            let Some(s) = facts.idx.span(i).filter(|s| s.kind == Kind::Server) else {
                continue;
            };
            let Some(&dep) = dep_ids.get(&s.deployment()) else {
                continue;
            };
            let req = facts.server_request(i, s, dep, split);
            facts.push(req);
        }
        for (call, d) in orphan_calls {
            let (Some(c), Some(&dep)) = (facts.idx.span(call), dep_ids.get(&d)) else {
                continue;
            };
            let failed = span_failed(c) && !is_client_error(c);
            let dur_ms = c.duration_ns() as f64 / NS_PER_MS;
            facts.push(Req {
                span: call,
                dep,
                current: c.start_ns >= split,
                failed,
                own_error: failed,
                dur_ms,
                self_ms: dur_ms,
                timed: false,
                wire_ms: None,
                start_ns: c.start_ns,
            });
        }
        facts.attach_wire_times();
        facts
    }

    fn push(&mut self, req: Req) {
        self.req_of_span.insert(req.span, self.reqs.len());
        if let Some(list) = self.by_dep.get_mut(req.dep) {
            list.push(self.reqs.len());
        }
        self.reqs.push(req);
    }

    fn server_request(&self, i: usize, s: &SpanRecord, dep: usize, split: u64) -> Req {
        let calls = self.idx.calls_of(i);
        let failed = span_failed(s);
        let explained = failed && calls.iter().any(|&c| call_propagates(&self.idx, c));
        let mut intervals: Vec<(u64, u64)> = calls
            .iter()
            .filter_map(|&c| self.idx.span(c).map(|c| (c.start_ns, c.end_ns)))
            .collect();
        let busy = covered_ns(s.start_ns, s.end_ns.max(s.start_ns), &mut intervals);
        Req {
            span: i,
            dep,
            current: s.start_ns >= split,
            failed,
            own_error: failed && !explained,
            dur_ms: s.duration_ns() as f64 / NS_PER_MS,
            self_ms: s.duration_ns().saturating_sub(busy) as f64 / NS_PER_MS,
            timed: true,
            wire_ms: None,
            start_ns: s.start_ns,
        }
    }

    /// Time into each request answering a single-attempt call.
    fn attach_wire_times(&mut self) {
        for c in 0..self.idx.spans.len() {
            let Some((callee, gap)) = self.idx.wire_gap_ns(c) else {
                continue;
            };
            if let Some(r) = self
                .req_of_span
                .get(&callee)
                .copied()
                .and_then(|r| self.reqs.get_mut(r))
            {
                r.wire_ms = Some(gap as f64 / NS_PER_MS);
            }
        }
    }

    pub(super) fn req(&self, r: usize) -> Option<&Req> {
        self.reqs.get(r)
    }

    pub(super) fn current_of(&self, dep: usize) -> Vec<&Req> {
        self.by_dep.get(dep).map_or_else(Vec::new, |l| {
            l.iter()
                .filter_map(|&r| self.req(r))
                .filter(|r| r.current)
                .collect()
        })
    }

    /// The population `dep` is compared with, if it is large enough.
    ///
    /// With a baseline window: a deployment that served in it is compared with its own
    /// baseline window only (never with a newcomer); a newcomer with the versions it
    /// replaced, i.e. those that served in the baseline window: in the current window
    /// while they still serve (same load), else in the baseline window (full rollout).
    /// Without one: with the other versions of the service in the same window.
    pub(super) fn baseline_of(
        &self,
        dep: usize,
        opts: &AnalysisOptions,
    ) -> Option<(Baseline, Vec<&Req>)> {
        let me = self.deps.get(dep)?;
        let same_service = |r: &&Req| {
            self.deps
                .get(r.dep)
                .is_some_and(|d| d.service == me.service)
        };
        let enough = |v: &[&Req]| v.len() as u64 >= opts.min_samples.max(1);
        if !self.has_split {
            let others: Vec<&Req> = self
                .reqs
                .iter()
                .filter(|r| r.current && r.dep != dep)
                .filter(same_service)
                .collect();
            return enough(&others).then(|| {
                let deployments = self.deps_of(&others);
                (Baseline::OtherVersions { deployments }, others)
            });
        }
        let before: Vec<&Req> = self
            .reqs
            .iter()
            .filter(|r| !r.current)
            .filter(same_service)
            .collect();
        let own_before: Vec<&Req> = before.iter().copied().filter(|r| r.dep == dep).collect();
        if enough(&own_before) {
            let deployments = vec![me.clone()];
            return Some((Baseline::BaselineWindow { deployments }, own_before));
        }
        // A newcomer (or one that barely served before: a few refused calls ahead of its
        // first span, requests straddling a hand-set split).
        let before: Vec<&Req> = before.into_iter().filter(|r| r.dep != dep).collect();
        let replaced: BTreeSet<usize> = before.iter().map(|r| r.dep).collect();
        let replaced_now: Vec<&Req> = self
            .reqs
            .iter()
            .filter(|r| r.current && replaced.contains(&r.dep))
            .collect();
        // A full rollout leaves the replaced versions a few straggling requests at most:
        // then their baseline window is the better reference.
        if enough(&replaced_now) && replaced_now.len() >= before.len().min(20) {
            let deployments = self.deps_of(&replaced_now);
            return Some((Baseline::OtherVersions { deployments }, replaced_now));
        }
        enough(&before).then(|| {
            let deployments = self.deps_of(&before);
            (Baseline::BaselineWindow { deployments }, before)
        })
    }

    fn deps_of(&self, reqs: &[&Req]) -> Vec<Deployment> {
        let set: BTreeSet<usize> = reqs.iter().map(|r| r.dep).collect();
        set.iter()
            .filter_map(|&d| self.deps.get(d).cloned())
            .collect()
    }

    pub(super) fn is_edge(&self, span: usize) -> bool {
        self.idx.span(span).is_some_and(|s| s.is_edge()) || self.idx.server_ancestor(span).is_none()
    }

    /// Deepest failing deployments under a failed request, counted once each.
    pub(super) fn origins(&self, span: usize, depth: usize, out: &mut BTreeSet<Deployment>) {
        if depth > MAX_DEPTH {
            return;
        }
        for c in self.idx.calls_of(span) {
            if !call_propagates(&self.idx, c) {
                continue;
            }
            let failing: Vec<usize> = self
                .idx
                .callees_of(c)
                .into_iter()
                .filter(|&x| self.idx.span(x).is_some_and(span_failed))
                .collect();
            if failing.is_empty() {
                if let Some(call) = self.idx.span(c) {
                    out.insert(call.peer_deployment().unwrap_or_else(|| {
                        Deployment::new("unknown", crate::model::UNKNOWN_VERSION)
                    }));
                }
            }
            for x in failing {
                match self.req_of_span.get(&x).and_then(|&r| self.req(r)) {
                    Some(r) if r.own_error => {
                        if let Some(d) = self.deps.get(r.dep) {
                            out.insert(d.clone());
                        }
                    }
                    _ => self.origins(x, depth + 1, out),
                }
            }
        }
    }
}

/// A failed call explains its caller's failure. A CLIENT span speaks for the call: failed
/// (5xx, error status) without a 4xx (a 4xx means the caller asked for something wrong);
/// when it says the call succeeded, a failed attempt under it was masked by a retry and
/// explains nothing. Without a status on the CLIENT span, or for a gateway's direct SERVER
/// child, the callee's own failure decides.
fn call_propagates(idx: &TraceIndex<'_>, call: usize) -> bool {
    let Some(c) = idx.span(call) else {
        return false;
    };
    if c.kind == Kind::Client && (c.is_error || c.http_status.is_some()) {
        return span_failed(c) && !is_client_error(c);
    }
    idx.callees_of(call)
        .into_iter()
        .any(|x| idx.span(x).is_some_and(span_failed))
}

fn is_client_error(s: &SpanRecord) -> bool {
    s.http_status.is_some_and(|c| (400..500).contains(&c))
}

/// CLIENT spans that no SERVER span answers, with the callee deployment they name (peer
/// identity); they become requests of that deployment (a refused or crashed callee
/// sends no span, yet its callers saw it fail).
fn orphan_calls(idx: &TraceIndex<'_>) -> Vec<(usize, Deployment)> {
    (0..idx.spans.len())
        .filter_map(|i| {
            let s = idx.span(i).filter(|s| s.kind == Kind::Client)?;
            let callee = s.peer_deployment()?;
            idx.callees_of(i).is_empty().then_some((i, callee))
        })
        .collect()
}

/// Of `base` (other versions' current requests), those that started while `cand` was
/// being served, when there are at least `min`: a canary that took traffic for the last few
/// seconds of the window has its latency compared with its peers' over those seconds, not
/// over the whole window, so a moment the machine stalled (cold connections, a neighbour's
/// benchmark) weighs on both sides alike. The demo's good canary was rolled back on exactly
/// that (3 s of v2 in a CPU stall vs 30 s of v1: self-time p95 175 ms vs 44 ms). Errors keep
/// the whole window: they do not come from a stall, and a short canary needs the power.
pub(super) fn while_serving<'r>(cand: &[&Req], base: &[&'r Req], min: u64) -> Vec<&'r Req> {
    let from = cand.iter().map(|r| r.start_ns).min();
    let to = cand.iter().map(|r| r.start_ns).max();
    let (Some(from), Some(to)) = (from, to) else {
        return base.to_vec();
    };
    let matched: Vec<&Req> = base
        .iter()
        .copied()
        .filter(|r| (from..=to).contains(&r.start_ns))
        .collect();
    if matched.len() as u64 >= min.max(1) {
        matched
    } else {
        base.to_vec()
    }
}
