//! Per-trace span trees: parent/child links and the walks the analysis needs
//! (a request's outgoing calls, a call's callee, a request's callers).

use std::collections::{HashMap, HashSet};

use crate::model::{Kind, SpanRecord};

/// Longest parent chain followed; guards against malformed (cyclic) parent links.
pub(crate) const MAX_DEPTH: usize = 512;

/// Spans of all traces with their links, by index into `spans`.
pub(crate) struct TraceIndex<'a> {
    /// Deduplicated spans (first occurrence of a `(trace_id, span_id)` wins).
    pub spans: Vec<&'a SpanRecord>,
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

impl<'a> TraceIndex<'a> {
    pub fn new(input: &'a [SpanRecord]) -> Self {
        let mut by_id: HashMap<(&str, &str), usize> = HashMap::with_capacity(input.len());
        let mut spans = Vec::with_capacity(input.len());
        for s in input {
            let key = (s.trace_id.as_str(), s.span_id.as_str());
            if let std::collections::hash_map::Entry::Vacant(slot) = by_id.entry(key) {
                slot.insert(spans.len());
                spans.push(s);
            }
        }
        let mut parent = vec![None; spans.len()];
        let mut children = vec![Vec::new(); spans.len()];
        for (i, s) in spans.iter().enumerate() {
            let Some(pid) = s.parent_span_id.as_deref() else {
                continue;
            };
            if let Some(&p) = by_id.get(&(s.trace_id.as_str(), pid)) {
                if p != i {
                    if let (Some(slot), Some(kids)) = (parent.get_mut(i), children.get_mut(p)) {
                        *slot = Some(p);
                        kids.push(i);
                    }
                }
            }
        }
        Self {
            spans,
            parent,
            children,
        }
    }

    pub fn span(&self, i: usize) -> Option<&'a SpanRecord> {
        self.spans.get(i).copied()
    }

    pub fn parent(&self, i: usize) -> Option<usize> {
        self.parent.get(i).copied().flatten()
    }

    fn kids(&self, i: usize) -> &[usize] {
        self.children.get(i).map_or(&[], Vec::as_slice)
    }

    /// CLIENT spans opened while serving request `server`: descendants reached through
    /// internal spans (and nested server spans of the same deployment), not beyond a call.
    /// A SERVER span of another deployment met first is a call too: a gateway such as the
    /// meshwake edge listener emits only its SERVER span, whose direct children are the
    /// routed services' SERVER spans (no CLIENT span in between).
    pub fn calls_of(&self, server: usize) -> Vec<usize> {
        let Some(root) = self.span(server) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack: Vec<(usize, usize)> = self.kids(server).iter().map(|&k| (k, 1)).collect();
        let mut seen = HashSet::new();
        while let Some((i, depth)) = stack.pop() {
            if depth > MAX_DEPTH || !seen.insert(i) {
                continue;
            }
            let Some(s) = self.span(i) else { continue };
            let descend = match s.kind {
                Kind::Client => {
                    out.push(i);
                    false
                }
                Kind::Server if s.service == root.service && s.version == root.version => true,
                Kind::Server => {
                    out.push(i);
                    false
                }
                Kind::Other => true,
            };
            if descend {
                stack.extend(self.kids(i).iter().map(|&k| (k, depth + 1)));
            }
        }
        out.sort_unstable();
        out
    }

    /// SERVER spans answering call `client` (normally one; retries by a proxy may add more).
    /// A SERVER span given as the call (see [`Self::calls_of`]) answers itself.
    pub fn callees_of(&self, client: usize) -> Vec<usize> {
        if self.span(client).is_some_and(|s| s.kind == Kind::Server) {
            return vec![client];
        }
        let mut out = Vec::new();
        let mut stack: Vec<(usize, usize)> = self.kids(client).iter().map(|&k| (k, 1)).collect();
        while let Some((i, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                continue;
            }
            match self.span(i).map(|s| s.kind) {
                Some(Kind::Server) => out.push(i),
                Some(Kind::Other) => stack.extend(self.kids(i).iter().map(|&k| (k, depth + 1))),
                _ => {}
            }
        }
        out.sort_unstable();
        out
    }

    /// Time spent on the way into and back from the deployment answering CLIENT span
    /// `client` (network, both proxies, queues before the app): the call's duration minus
    /// its callee's SERVER span, with that span. `None` unless exactly one SERVER span
    /// answers it: a retried call's gaps include back-off, and a refused one has no callee.
    pub fn wire_gap_ns(&self, client: usize) -> Option<(usize, u64)> {
        let c = self.span(client).filter(|c| c.kind == Kind::Client)?;
        let [callee] = self.callees_of(client)[..] else {
            return None;
        };
        let s = self.span(callee)?;
        let before = s.start_ns.saturating_sub(c.start_ns);
        let after = c.end_ns.saturating_sub(s.end_ns);
        Some((callee, before + after))
    }

    /// The nearest SERVER ancestor of span `i` (the request on whose behalf it ran).
    pub fn server_ancestor(&self, i: usize) -> Option<usize> {
        let mut cur = self.parent(i);
        for _ in 0..MAX_DEPTH {
            let p = cur?;
            if self.span(p)?.kind == Kind::Server {
                return Some(p);
            }
            cur = self.parent(p);
        }
        None
    }
}

/// Length of the union of `intervals`, each clipped to `[lo, hi]`.
pub(crate) fn covered_ns(lo: u64, hi: u64, intervals: &mut [(u64, u64)]) -> u64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(u64, u64)> = None;
    for &(s, e) in intervals.iter() {
        let (s, e) = (s.clamp(lo, hi), e.clamp(lo, hi));
        if e <= s {
            continue;
        }
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = cur {
        total += ce - cs;
    }
    total
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
            http_status: None,
            route: None,
            peer_service: None,
            peer_version: None,
        }
    }

    #[test]
    fn edge_without_client_span_calls_the_routed_server() {
        // What the meshwake edge listener emits: edge SERVER → web SERVER → web CLIENT → db SERVER.
        let spans = [
            span("e", None, "edge", Kind::Server),
            span("w", Some("e"), "web", Kind::Server),
            span("wc", Some("w"), "web", Kind::Client),
            span("d", Some("wc"), "db", Kind::Server),
        ];
        let idx = TraceIndex::new(&spans);
        assert_eq!(
            idx.calls_of(0),
            [1],
            "edge calls web through its SERVER span"
        );
        assert_eq!(idx.callees_of(1), [1]);
        assert_eq!(idx.calls_of(1), [2], "web's call is its CLIENT span");
        assert_eq!(idx.callees_of(2), [3]);
        assert_eq!(idx.server_ancestor(1), Some(0));
    }

    #[test]
    fn wire_gap_is_the_call_minus_its_single_callee() {
        let mut spans = vec![
            span("w", None, "web", Kind::Server),
            span("wc", Some("w"), "web", Kind::Client),
            span("d", Some("wc"), "db", Kind::Server),
            span("wc2", Some("w"), "web", Kind::Client),
            span("d2", Some("wc2"), "db", Kind::Server),
            span("d3", Some("wc2"), "db", Kind::Server),
            span("wc3", Some("w"), "web", Kind::Client),
        ];
        (spans[1].start_ns, spans[1].end_ns) = (100, 200);
        (spans[2].start_ns, spans[2].end_ns) = (130, 190);
        let idx = TraceIndex::new(&spans);
        assert_eq!(idx.wire_gap_ns(1), Some((2, 40)));
        assert_eq!(idx.wire_gap_ns(3), None, "retried: two SERVER spans");
        assert_eq!(idx.wire_gap_ns(6), None, "refused: no SERVER span");
        assert_eq!(idx.wire_gap_ns(0), None, "not a CLIENT span");
    }

    #[rustfmt::skip]
    #[test]
    fn covered_is_union_of_clipped_intervals() {
        type Case = (u64, u64, Vec<(u64, u64)>, u64);
        let cases: [Case; 6] = [
            (0, 100, vec![], 0),
            (0, 100, vec![(10, 20)], 10),
            (0, 100, vec![(10, 30), (20, 40)], 30),          // overlapping (parallel calls)
            (0, 100, vec![(50, 60), (10, 20)], 20),          // unsorted
            (0, 100, vec![(90, 150), (0, 0)], 10),           // clipped to the parent
            (0, 100, vec![(10, 5)], 0),                      // backwards interval
        ];
        for (lo, hi, mut iv, want) in cases {
            assert_eq!(covered_ns(lo, hi, &mut iv), want, "{iv:?}");
        }
    }
}
