//! Facts about every request (SERVER span) that the tests and the blast radius read:
//! failed or not, own error or explained by a callee, duration and self time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::report::Baseline;
use crate::model::{Deployment, Kind, SpanRecord};
use crate::options::AnalysisOptions;
use crate::traces::{covered_ns, TraceIndex, MAX_DEPTH};

/// Facts about one request (SERVER span).
pub(super) struct Req {
    pub(super) span: usize,
    pub(super) dep: usize,
    pub(super) current: bool,
    pub(super) failed: bool,
    pub(super) own_error: bool,
    pub(super) dur_ms: f64,
    pub(super) self_ms: f64,
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
}

impl<'a> Facts<'a> {
    pub(super) fn new(spans: &'a [SpanRecord], opts: &AnalysisOptions) -> Self {
        let idx = TraceIndex::new(spans);
        let mut dep_ids: BTreeMap<Deployment, usize> = BTreeMap::new();
        for s in &idx.spans {
            if s.kind == Kind::Server {
                dep_ids.entry(s.deployment()).or_insert(0);
            }
        }
        for (i, v) in dep_ids.values_mut().enumerate() {
            *v = i;
        }
        let deps: Vec<Deployment> = dep_ids.keys().cloned().collect();
        let split = opts.baseline_end_ns.unwrap_or(0);
        let mut reqs = Vec::new();
        let mut req_of_span = HashMap::new();
        let mut by_dep = vec![Vec::new(); deps.len()];
        for (i, s) in idx.spans.iter().enumerate() {
            if s.kind != Kind::Server {
                continue;
            }
            let Some(&dep) = dep_ids.get(&s.deployment()) else {
                continue;
            };
            let calls = idx.calls_of(i);
            let failed = span_failed(s);
            let explained = failed && calls.iter().any(|&c| call_propagates(&idx, c));
            let mut intervals: Vec<(u64, u64)> = calls
                .iter()
                .filter_map(|&c| idx.span(c).map(|c| (c.start_ns, c.end_ns)))
                .collect();
            let busy = covered_ns(s.start_ns, s.end_ns.max(s.start_ns), &mut intervals);
            req_of_span.insert(i, reqs.len());
            if let Some(list) = by_dep.get_mut(dep) {
                list.push(reqs.len());
            }
            reqs.push(Req {
                span: i,
                dep,
                current: s.start_ns >= split,
                failed,
                own_error: failed && !explained,
                dur_ms: s.duration_ns() as f64 / NS_PER_MS,
                self_ms: s.duration_ns().saturating_sub(busy) as f64 / NS_PER_MS,
            });
        }
        Self {
            idx,
            deps,
            reqs,
            req_of_span,
            by_dep,
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
        let others: Vec<&Req> = self
            .reqs
            .iter()
            .filter(|r| r.current && r.dep != dep)
            .filter(same_service)
            .collect();
        if others.len() as u64 >= opts.min_samples {
            return Some((
                Baseline::OtherVersions {
                    deployments: self.deps_of(&others),
                },
                others,
            ));
        }
        opts.baseline_end_ns?;
        let before: Vec<&Req> = self
            .reqs
            .iter()
            .filter(|r| !r.current)
            .filter(same_service)
            .collect();
        (before.len() as u64 >= opts.min_samples).then(|| {
            (
                Baseline::BaselineWindow {
                    deployments: self.deps_of(&before),
                },
                before,
            )
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

/// A failed call explains its caller's failure when the callee failed, or when the call
/// failed without a 4xx (a 4xx means the caller asked for something wrong).
fn call_propagates(idx: &TraceIndex<'_>, call: usize) -> bool {
    if idx
        .callees_of(call)
        .into_iter()
        .any(|x| idx.span(x).is_some_and(span_failed))
    {
        return true;
    }
    idx.span(call).is_some_and(|c| {
        (c.is_error || c.http_status.is_some_and(|s| s >= 500))
            && !c.http_status.is_some_and(|s| (400..500).contains(&s))
    })
}
