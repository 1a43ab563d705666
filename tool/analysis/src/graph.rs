//! The service graph seen in the spans: deployments and who calls whom.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::model::{Deployment, Kind, SpanRecord};
use crate::traces::TraceIndex;

/// Deployments (nodes) and caller → callee call counts (edges), from CLIENT → SERVER
/// parent links (or a CLIENT span's peer attributes when the callee sent no spans).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceGraph {
    /// One node per deployment, sorted by depth then name.
    pub nodes: Vec<GraphNode>,
    /// One edge per (caller, callee) pair.
    pub edges: Vec<GraphEdge>,
}

/// A deployment in the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    /// `service@version`.
    pub deployment: Deployment,
    /// Requests served (SERVER spans).
    pub requests: u64,
    /// Failed requests served.
    pub errors: u64,
    /// Hops from the nearest entry point (deployments nobody calls are 0).
    pub depth: u32,
}

/// Calls from one deployment to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphEdge {
    /// Caller.
    pub from: Deployment,
    /// Callee.
    pub to: Deployment,
    /// CLIENT spans.
    pub calls: u64,
    /// Failed CLIENT spans.
    pub errors: u64,
}

impl ServiceGraph {
    /// Builds the graph from spans.
    pub fn from_spans(spans: &[SpanRecord]) -> Self {
        let idx = TraceIndex::new(spans);
        let mut nodes: BTreeMap<Deployment, (u64, u64)> = BTreeMap::new();
        let mut edges: BTreeMap<(Deployment, Deployment), (u64, u64)> = BTreeMap::new();
        for (i, s) in idx.spans.iter().enumerate() {
            match s.kind {
                Kind::Server => {
                    let n = nodes.entry(s.deployment()).or_default();
                    n.0 += 1;
                    let failed = s.is_error || s.http_status.is_some_and(|c| c >= 500);
                    n.1 += u64::from(failed);
                    // A gateway that emits only its SERVER span (the meshwake edge listener)
                    // calls the routed deployment with no CLIENT span in between.
                    if let Some(p) = idx.parent(i).and_then(|p| idx.span(p)) {
                        if p.kind == Kind::Server && p.deployment() != s.deployment() {
                            let e = edges.entry((p.deployment(), s.deployment())).or_default();
                            e.0 += 1;
                            e.1 += u64::from(failed);
                        }
                    }
                }
                Kind::Client => {
                    let callee = idx
                        .callees_of(i)
                        .first()
                        .and_then(|&c| idx.span(c))
                        .map(SpanRecord::deployment)
                        .or_else(|| s.peer_deployment());
                    let Some(callee) = callee else { continue };
                    nodes.entry(s.deployment()).or_default();
                    nodes.entry(callee.clone()).or_default();
                    let e = edges.entry((s.deployment(), callee)).or_default();
                    e.0 += 1;
                    e.1 += u64::from(s.is_error);
                }
                Kind::Other => {}
            }
        }
        // Depth: breadth-first from deployments with no caller (or every node, in a cycle).
        let mut depth: BTreeMap<&Deployment, u32> = BTreeMap::new();
        let mut queue: VecDeque<&Deployment> = VecDeque::new();
        for d in nodes.keys() {
            if !edges.keys().any(|(from, to)| to == d && from != d) {
                depth.insert(d, 0);
                queue.push_back(d);
            }
        }
        loop {
            while let Some(d) = queue.pop_front() {
                let next = depth.get(d).copied().unwrap_or(0) + 1;
                for (_, to) in edges.keys().filter(|(from, _)| from == d) {
                    if !depth.contains_key(to) {
                        depth.insert(to, next);
                        queue.push_back(to);
                    }
                }
            }
            // Nodes only reachable through a cycle: start again from the first unplaced one.
            match nodes.keys().find(|d| !depth.contains_key(d)) {
                Some(d) => {
                    depth.insert(d, 0);
                    queue.push_back(d);
                }
                None => break,
            }
        }
        // Longest-path layering: push every callee right of its deepest caller, so arrows run
        // left to right (BFS depth alone puts a callee beside a caller that is one hop deeper).
        // Bounded by the node count, so a cycle cannot loop forever.
        for _ in 0..nodes.len() {
            let mut changed = false;
            for (from, to) in edges.keys() {
                let want = depth.get(from).copied().unwrap_or(0) + 1;
                if from != to && depth.get(to).copied().unwrap_or(0) < want {
                    depth.insert(to, want);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut nodes: Vec<GraphNode> = nodes
            .iter()
            .map(|(d, &(requests, errors))| GraphNode {
                deployment: d.clone(),
                requests,
                errors,
                depth: depth.get(d).copied().unwrap_or(0),
            })
            .collect();
        nodes.sort_by(|a, b| {
            a.depth
                .cmp(&b.depth)
                .then_with(|| a.deployment.cmp(&b.deployment))
        });
        let edges = edges
            .into_iter()
            .map(|((from, to), (calls, errors))| GraphEdge {
                from,
                to,
                calls,
                errors,
            })
            .collect();
        Self { nodes, edges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, service: &str, kind: Kind) -> SpanRecord {
        SpanRecord {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            service: service.into(),
            version: "v1".into(),
            kind,
            role: None,
            start_ns: 0,
            end_ns: 1,
            is_error: false,
            http_status: Some(200),
            route: None,
            peer_service: None,
            peer_version: None,
        }
    }

    #[test]
    fn edge_server_to_server_link_is_an_edge() {
        let spans = [
            span("e", None, "edge", Kind::Server),
            span("w", Some("e"), "web", Kind::Server),
            span("wc", Some("w"), "web", Kind::Client),
            span("d", Some("wc"), "db", Kind::Server),
        ];
        let g = ServiceGraph::from_spans(&spans);
        let pairs: Vec<(String, String, u32)> = g
            .edges
            .iter()
            .map(|e| {
                (
                    e.from.to_string(),
                    e.to.to_string(),
                    u32::try_from(e.calls).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("edge@v1".into(), "web@v1".into(), 1),
                ("web@v1".into(), "db@v1".into(), 1)
            ]
        );
        let depths: Vec<u32> = g.nodes.iter().map(|n| n.depth).collect();
        assert_eq!(depths, [0, 1, 2]);
    }
}
