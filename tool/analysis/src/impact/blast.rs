//! A suspect's blast radius: its bad requests walked up each trace to the callers and the
//! edge routes they hurt.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::facts::{Facts, Req};
use super::report::{BlastRadius, EdgeRouteImpact, UpstreamImpact};
use crate::options::AnalysisOptions;
use crate::stats::percentile;
use crate::traces::MAX_DEPTH;

/// Route label when a span has neither `http.route` nor a name.
const UNKNOWN_ROUTE: &str = "(unknown)";

pub(super) fn blast_radius(
    facts: &Facts<'_>,
    suspect: usize,
    bad: &[usize],
    opts: &AnalysisOptions,
) -> BlastRadius {
    // deployment -> (min hops, affected request spans)
    let mut up: BTreeMap<usize, (u32, BTreeSet<usize>)> = BTreeMap::new();
    let mut edges: BTreeSet<usize> = BTreeSet::new();
    for &span in bad {
        if facts.is_edge(span) {
            edges.insert(span);
        }
        let (mut cur, mut prev_dep, mut hops) = (span, suspect, 0u32);
        for _ in 0..MAX_DEPTH {
            let Some(a) = facts.idx.server_ancestor(cur) else {
                break;
            };
            let Some(req) = facts.req_of_span.get(&a).and_then(|&r| facts.req(r)) else {
                break;
            };
            if req.dep != prev_dep {
                hops += 1;
                prev_dep = req.dep;
            }
            // Counted among the current window's requests only, as the totals are: a
            // caller that started before the split is not one of them (`403/399`).
            if req.dep != suspect && hops > 0 && req.current {
                let e = up.entry(req.dep).or_insert((hops, BTreeSet::new()));
                e.0 = e.0.min(hops);
                e.1.insert(a);
            }
            if facts.is_edge(a) && req.current {
                edges.insert(a);
            }
            cur = a;
        }
    }
    let slow_count = |dep: usize, affected: &BTreeSet<usize>| -> (u64, u64, u64) {
        let all = facts.current_of(dep);
        // Reference: the requests the suspect did not touch, baseline window included.
        let mut normal: Vec<f64> = facts
            .by_dep
            .get(dep)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|&r| facts.req(r))
            .filter(|r| !affected.contains(&r.span))
            .map(|r| r.dur_ms)
            .collect();
        normal.sort_by(f64::total_cmp);
        let limit = percentile(&normal, opts.slow_percentile).unwrap_or(f64::INFINITY);
        let hit: Vec<&Req> = affected
            .iter()
            .filter_map(|s| facts.req_of_span.get(s).and_then(|&r| facts.req(r)))
            .collect();
        (
            all.len() as u64,
            hit.iter().filter(|r| r.failed).count() as u64,
            hit.iter().filter(|r| r.dur_ms > limit).count() as u64,
        )
    };
    let mut upstream: Vec<UpstreamImpact> = up
        .iter()
        .filter_map(|(&dep, (hops, spans))| {
            let (total, failed, slowed) = slow_count(dep, spans);
            Some(UpstreamImpact {
                deployment: facts.deps.get(dep)?.clone(),
                hops: *hops,
                affected: spans.len() as u64,
                total,
                share: share(spans.len() as u64, total),
                failed,
                slowed,
            })
        })
        .collect();
    upstream.sort_by(|a, b| {
        a.hops
            .cmp(&b.hops)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });

    // Edge routes are keyed by service, not version: users hit a route, whatever answers it.
    let route_key = |span: usize| -> Option<(String, String)> {
        let s = facts.idx.span(span)?;
        Some((
            s.service.clone(),
            s.route.clone().unwrap_or_else(|| UNKNOWN_ROUTE.to_owned()),
        ))
    };
    // Edge requests per route, baseline window included (the reference for "slow").
    let mut totals: BTreeMap<(String, String), Vec<&Req>> = BTreeMap::new();
    for r in facts.reqs.iter().filter(|r| facts.is_edge(r.span)) {
        if let Some(k) = route_key(r.span) {
            totals.entry(k).or_default().push(r);
        }
    }
    let mut hit: BTreeMap<(String, String), Vec<&Req>> = BTreeMap::new();
    for &e in &edges {
        if let (Some(k), Some(r)) = (
            route_key(e),
            facts.req_of_span.get(&e).and_then(|&r| facts.req(r)),
        ) {
            hit.entry(k).or_default().push(r);
        }
    }
    let mut edge_routes: Vec<EdgeRouteImpact> = hit
        .into_iter()
        .map(|((service, route), reqs)| {
            let all = totals.get(&(service.clone(), route.clone()));
            let hit_spans: HashSet<usize> = reqs.iter().map(|r| r.span).collect();
            let mut normal: Vec<f64> = all
                .map(|a| {
                    a.iter()
                        .filter(|r| !hit_spans.contains(&r.span))
                        .map(|r| r.dur_ms)
                        .collect()
                })
                .unwrap_or_default();
            normal.sort_by(f64::total_cmp);
            let limit = percentile(&normal, opts.slow_percentile).unwrap_or(f64::INFINITY);
            let total = all.map_or(0, |a| a.iter().filter(|r| r.current).count() as u64);
            EdgeRouteImpact {
                service,
                route,
                affected: reqs.len() as u64,
                total,
                share: share(reqs.len() as u64, total),
                failed: reqs.iter().filter(|r| r.failed).count() as u64,
                slowed: reqs.iter().filter(|r| r.dur_ms > limit).count() as u64,
            }
        })
        .collect();
    edge_routes.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.route.cmp(&b.route))
    });
    BlastRadius {
        bad_requests: bad.len() as u64,
        upstream,
        edge_routes,
    }
}

fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (part as f64 / total as f64).min(1.0)
    }
}
