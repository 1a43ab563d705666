//! The request metrics' label sets of one configuration: each distinct set (bounded by the
//! core's `LabelCache`, with the same overflow sets as the wasm build) gets its sanitized
//! values once, and collects its requests' metrics in the module until they are due.
//!
//! Why: a metric update with labels costs Envoy about 10,000 instructions (it interns the 13
//! label values as stat names and looks the tagged stat up, on every call), one without
//! labels almost nothing (ADR 0009, "Cost"). So requests are counted here, per label set,
//! and added to `requests_total` in one update per set when [`FLUSH_NS`] has passed since the
//! last flush: by the stream that ends after it (a request-hook call, as before), or, when
//! the traffic stopped, by the configuration's tick on the main thread. A scrape sees a
//! request at most one tick (≤ 100 ms) late, as the exporter's counters already are.
//! Histograms take one value per update: they are recorded per request (batching them only
//! moves the same cost: measured, ADR 0009), with the set's cached values.
use meshwake_telemetry::cardinality::{overflow_labels, LabelCache};
use meshwake_telemetry::metrics::MetricLabels;
use std::sync::Arc;

/// Longest time a request's metrics stay in the module before they are handed to Envoy.
pub const FLUSH_NS: u64 = 100_000_000;

/// Sanitized label values, in `label::ALL` order.
pub type Values = Arc<[String; 13]>;

/// Requests of one label set counted since the last flush.
pub struct Due {
    pub values: Values,
    pub requests: u64,
}

struct LabelSet {
    values: Values,
    requests: u64,
}

/// See the module docs.
pub struct LabelSets {
    cache: LabelCache<usize>,
    sets: Vec<LabelSet>,
    pending_sets: usize,
    last_flush_ns: u64,
}

impl LabelSets {
    pub fn new(cache: LabelCache<usize>) -> LabelSets {
        LabelSets {
            cache,
            sets: Vec::new(),
            pending_sets: 0,
            last_flush_ns: 0,
        }
    }

    /// Count one request under `labels` (or the overflow set once the cap is reached);
    /// returns the set's values, to record the request's histograms under.
    pub fn count(&mut self, labels: &MetricLabels) -> Option<Values> {
        let i = self.index(labels)?;
        let set = self.sets.get_mut(i)?;
        if set.requests == 0 {
            self.pending_sets += 1;
        }
        set.requests += 1;
        Some(set.values.clone())
    }

    /// The set of `labels`, created on first sight with its sanitized values.
    fn index(&mut self, labels: &MetricLabels) -> Option<usize> {
        let before = self.cache.label_overflow();
        let next = self.sets.len();
        let i = self
            .cache
            .get_or_insert_with(labels, |_, _| Ok::<usize, ()>(next))
            .ok()?
            .requests_total;
        if i == next {
            let values = if self.cache.label_overflow() > before {
                overflow_labels(labels.reporter).sanitized_values()
            } else {
                labels.sanitized_values()
            };
            self.sets.push(LabelSet {
                values: Arc::new(values),
                requests: 0,
            });
        }
        Some(i)
    }

    /// What to hand to Envoy now, if anything is kept and [`FLUSH_NS`] has passed since the
    /// last flush (`force`: whatever the time); it is then no longer kept.
    pub fn take_due(&mut self, now_ns: u64, force: bool) -> Vec<Due> {
        let due = force || now_ns.saturating_sub(self.last_flush_ns) >= FLUSH_NS;
        if self.pending_sets == 0 || !due {
            return Vec::new();
        }
        self.last_flush_ns = now_ns;
        self.pending_sets = 0;
        self.sets
            .iter_mut()
            .filter(|s| s.requests > 0)
            .map(|s| Due {
                values: s.values.clone(),
                requests: std::mem::take(&mut s.requests),
            })
            .collect()
    }

    /// Lookups that fell into the overflow set.
    pub fn label_overflow(&self) -> u64 {
        self.cache.label_overflow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwake_telemetry::metrics::{MetricNaming, Reporter};

    fn labels(service: &str) -> MetricLabels {
        let mut l = overflow_labels(Reporter::Destination);
        l.destination_service = service.to_string();
        l.response_code = 200;
        l
    }

    fn has(d: &Due, value: &str) -> bool {
        d.values.iter().any(|v| v == value)
    }

    #[test]
    fn counts_per_set_and_hands_over_when_due() {
        let mut s = LabelSets::new(LabelCache::new(MetricNaming::default(), 10));
        let a = s.count(&labels("a")).unwrap_or_default();
        assert!(a.iter().any(|v| v == "a"));
        s.count(&labels("a"));
        s.count(&labels("b"));
        // The first flush is due at once; the next only FLUSH_NS later.
        let due = s.take_due(FLUSH_NS, false);
        assert_eq!(due.len(), 2);
        assert_eq!(
            due.iter().find(|d| has(d, "a")).map(|d| d.requests),
            Some(2)
        );
        s.count(&labels("a"));
        assert!(s.take_due(FLUSH_NS + 1, false).is_empty());
        assert_eq!(s.take_due(FLUSH_NS + 1, true).len(), 1);
        assert!(s.take_due(3 * FLUSH_NS, true).is_empty());
    }

    #[test]
    fn sets_past_the_cap_count_in_the_overflow_set() {
        let mut s = LabelSets::new(LabelCache::new(MetricNaming::default(), 1));
        s.count(&labels("a"));
        let o = s.count(&labels("b")).unwrap_or_default();
        s.count(&labels("c"));
        assert!(o.iter().any(|v| v == "overflow"));
        assert_eq!(s.label_overflow(), 2);
        let due = s.take_due(FLUSH_NS, false);
        assert_eq!(due.len(), 2);
        assert!(due.iter().any(|d| d.requests == 2 && has(d, "overflow")));
    }
}
