//! The request metrics' label sets of one configuration: each distinct set (bounded by the
//! core's `LabelCache`, with the same overflow sets as the wasm build) gets its sanitized
//! values once, and collects its requests' metrics in the module until they are due.
//!
//! Why: a metric update with labels costs Envoy about 15 µs the first time in a stream
//! (Envoy interns the 13 label values in a stat-name pool of the stream's own and looks the
//! tagged stat up) and about 1.2 µs for each further one in the same stream; without labels
//! it costs nothing measurable (ADR 0009, "Cost"). So requests are counted, and histogram
//! values kept, here, and handed to Envoy when [`FLUSH_NS`] has passed since the last flush:
//! by the stream that ends after it (request-hook calls, one stream paying the first-call
//! cost for all), or, when the traffic stopped, by the configuration's tick on the main
//! thread. A scrape sees a request at most one tick (≤ 100 ms) late, as the exporter's
//! counters already are.
use meshwake_telemetry::cardinality::{overflow_labels, LabelCache};
use meshwake_telemetry::metrics::{MetricKind, MetricLabels};
use std::sync::Arc;

/// Longest time a request's metrics stay in the module before they are handed to Envoy.
pub const FLUSH_NS: u64 = 100_000_000;

/// Most histogram values kept per label set; one more makes the flush due at once.
pub const MAX_PENDING_VALUES: usize = 4096;

/// Sanitized label values, in `label::ALL` order.
pub type Values = Arc<[String; 13]>;

/// What one label set collected since the last flush.
pub struct Due {
    pub values: Values,
    /// Requests to add to `requests_total`.
    pub requests: u64,
    /// Histogram observations, in arrival order.
    pub samples: Vec<(MetricKind, u64)>,
}

struct LabelSet {
    values: Values,
    requests: u64,
    samples: Vec<(MetricKind, u64)>,
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

    /// Keep one request's metrics under `labels` (or the overflow set once the cap is
    /// reached): one more request and its histogram `samples`. True when a set is full and
    /// the caller should flush now.
    pub fn record(&mut self, labels: &MetricLabels, samples: &[(MetricKind, u64)]) -> bool {
        let Some(i) = self.index(labels) else {
            return false;
        };
        let Some(set) = self.sets.get_mut(i) else {
            return false;
        };
        if set.requests == 0 && set.samples.is_empty() {
            self.pending_sets += 1;
        }
        set.requests += 1;
        set.samples.extend_from_slice(samples);
        set.samples.len() >= MAX_PENDING_VALUES
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
                samples: Vec::new(),
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
            .filter(|s| s.requests > 0 || !s.samples.is_empty())
            .map(|s| Due {
                values: s.values.clone(),
                requests: std::mem::take(&mut s.requests),
                samples: std::mem::take(&mut s.samples),
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

    const MS: MetricKind = MetricKind::RequestDurationMilliseconds;

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
    fn keeps_per_set_and_hands_over_when_due() {
        let mut s = LabelSets::new(LabelCache::new(MetricNaming::default(), 10));
        s.record(&labels("a"), &[(MS, 1)]);
        s.record(&labels("a"), &[(MS, 2)]);
        s.record(&labels("b"), &[(MS, 3)]);
        // The first flush is due at once; the next only FLUSH_NS later.
        let due = s.take_due(FLUSH_NS, false);
        let a = due.iter().find(|d| has(d, "a"));
        assert_eq!(a.map(|d| (d.requests, d.samples.clone())), Some((2, vec![(MS, 1), (MS, 2)])));
        assert_eq!(due.len(), 2);
        s.record(&labels("a"), &[]);
        assert!(s.take_due(FLUSH_NS + 1, false).is_empty());
        assert_eq!(s.take_due(FLUSH_NS + 1, true).len(), 1);
        assert!(s.take_due(3 * FLUSH_NS, true).is_empty());
    }

    #[test]
    fn a_full_set_asks_for_a_flush() {
        let mut s = LabelSets::new(LabelCache::new(MetricNaming::default(), 10));
        let full = (0..MAX_PENDING_VALUES).map(|_| s.record(&labels("a"), &[(MS, 1)]));
        assert_eq!(full.filter(|f| *f).count(), 1);
    }

    #[test]
    fn sets_past_the_cap_are_kept_in_the_overflow_set() {
        let mut s = LabelSets::new(LabelCache::new(MetricNaming::default(), 1));
        s.record(&labels("a"), &[]);
        s.record(&labels("b"), &[]);
        s.record(&labels("c"), &[]);
        assert_eq!(s.label_overflow(), 2);
        let due = s.take_due(FLUSH_NS, false);
        assert_eq!(due.len(), 2);
        assert!(due.iter().any(|d| d.requests == 2 && has(d, "overflow")));
    }
}
