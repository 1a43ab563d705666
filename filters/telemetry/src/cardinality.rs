//! Per-VM cache from metric label sets to host metric ids, with a cardinality cap.
//!
//! Every request needs the ids of its four metrics ([`MetricKind::ALL`]). Defining a metric
//! is a host call that also creates Envoy stats, so the glue looks the label set up here
//! (one hash lookup, no allocation on a hit) and calls the host's `define_metric` only on a
//! miss. Beyond `max_label_sets` distinct sets, requests are counted under the overflow set
//! (every string label `overflow`, `response_code` 0, reporter kept) and `label_overflow`
//! is incremented, so a peer sending ever-new identities cannot grow Envoy's stats
//! without bound.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::metrics::{stat_name, LabelsRef, MetricKind, MetricLabels, MetricNaming, Reporter};

/// Default cap on distinct label sets per VM.
pub const DEFAULT_MAX_LABEL_SETS: usize = 1000;
/// Value of every string label in the overflow set.
pub const OVERFLOW_VALUE: &str = "overflow";

/// The host metric ids of one label set, one per [`MetricKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricIds<Id> {
    /// Id of the `*_requests_total` counter.
    pub requests_total: Id,
    /// Id of the `*_request_duration_milliseconds` histogram.
    pub request_duration_milliseconds: Id,
    /// Id of the `*_request_bytes` histogram.
    pub request_bytes: Id,
    /// Id of the `*_response_bytes` histogram.
    pub response_bytes: Id,
}

impl<Id: Copy> MetricIds<Id> {
    /// The id for `kind`.
    pub fn get(&self, kind: MetricKind) -> Id {
        match kind {
            MetricKind::RequestsTotal => self.requests_total,
            MetricKind::RequestDurationMilliseconds => self.request_duration_milliseconds,
            MetricKind::RequestBytes => self.request_bytes,
            MetricKind::ResponseBytes => self.response_bytes,
        }
    }
}

/// [`FxHasher`] for `HashMap`s of small keys on the per-request path (std's default,
/// SipHash, costs several times more per lookup).
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;

/// Label sets whose hashes are equal (almost always one), with their ids.
type Bucket<Id> = Vec<(MetricLabels, MetricIds<Id>)>;

/// Label-set → metric-ids cache; see the module docs.
#[derive(Debug)]
pub struct LabelCache<Id> {
    naming: MetricNaming,
    max_label_sets: usize,
    /// Label sets by the hash of their borrowed view ([`label_hash`]), so a request looks
    /// its set up without building owned labels; sets whose hashes collide share a bucket.
    map: HashMap<u64, Bucket<Id>, BuildHasherDefault<FxHasher>>,
    /// Distinct label sets cached.
    sets: usize,
    /// The last set looked up and its ids: consecutive requests of one caller have the same
    /// labels, found by comparing, without hashing.
    last: Option<(MetricLabels, MetricIds<Id>)>,
    overflow_source: Option<MetricIds<Id>>,
    overflow_destination: Option<MetricIds<Id>>,
    label_overflow: u64,
}

impl<Id: Copy> LabelCache<Id> {
    /// An empty cache naming metrics with `naming`, holding at most `max_label_sets`
    /// distinct label sets (plus the two overflow sets).
    pub fn new(naming: MetricNaming, max_label_sets: usize) -> Self {
        LabelCache {
            naming,
            max_label_sets,
            map: HashMap::default(),
            sets: 0,
            last: None,
            overflow_source: None,
            overflow_destination: None,
            label_overflow: 0,
        }
    }

    /// Ids for `labels`. On a miss, calls `define(stat_name, kind)` once per metric kind
    /// (the glue's `define_metric`), caches and returns the ids. Once the cap is reached,
    /// returns the overflow set's ids (defined on first use) and counts `label_overflow`.
    /// A `define` error is returned and nothing is cached.
    pub fn get_or_insert_with<E>(
        &mut self,
        labels: &MetricLabels,
        define: impl FnMut(&str, MetricKind) -> Result<Id, E>,
    ) -> Result<MetricIds<Id>, E> {
        self.get_or_insert_ref(&labels.as_ref_labels(), define)
    }

    /// Like [`LabelCache::get_or_insert_with`], from borrowed labels: the per-request path.
    /// A hit allocates nothing; the owned set is built only when a new set is cached.
    pub fn get_or_insert_ref<E>(
        &mut self,
        labels: &LabelsRef<'_>,
        mut define: impl FnMut(&str, MetricKind) -> Result<Id, E>,
    ) -> Result<MetricIds<Id>, E> {
        if let Some((last, ids)) = &self.last {
            if last.as_ref_labels() == *labels {
                return Ok(*ids);
            }
        }
        let hash = label_hash(labels);
        let found = self.map.get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|(l, _)| l.as_ref_labels() == *labels)
                .map(|(_, ids)| *ids)
        });
        if let Some(ids) = found {
            self.remember_last(labels, ids);
            return Ok(ids);
        }
        if self.sets >= self.max_label_sets {
            self.label_overflow += 1;
            let slot = match labels.reporter {
                Reporter::Source => &mut self.overflow_source,
                Reporter::Destination => &mut self.overflow_destination,
            };
            if let Some(ids) = slot {
                return Ok(*ids);
            }
            let ids = define_all(self.naming, &overflow_labels(labels.reporter), &mut define)?;
            *slot = Some(ids);
            return Ok(ids);
        }
        let owned = labels.to_owned_labels();
        let ids = define_all(self.naming, &owned, &mut define)?;
        self.map.entry(hash).or_default().push((owned, ids));
        self.sets += 1;
        self.remember_last(labels, ids);
        Ok(ids)
    }

    /// Keep `labels` as the last set seen, reusing the strings of the previous one.
    fn remember_last(&mut self, labels: &LabelsRef<'_>, ids: MetricIds<Id>) {
        match &mut self.last {
            Some((last, last_ids)) => {
                last.reporter = labels.reporter;
                last.response_code = labels.response_code;
                let owned = [
                    &mut last.source_workload,
                    &mut last.source_workload_namespace,
                    &mut last.source_version,
                    &mut last.source_canonical_service,
                    &mut last.destination_workload,
                    &mut last.destination_workload_namespace,
                    &mut last.destination_version,
                    &mut last.destination_service,
                    &mut last.request_protocol,
                    &mut last.grpc_response_status,
                    &mut last.response_flags,
                ];
                for (dst, src) in owned.into_iter().zip(labels.strings()) {
                    dst.clear();
                    dst.push_str(src);
                }
                *last_ids = ids;
            }
            None => self.last = Some((labels.to_owned_labels(), ids)),
        }
    }

    /// Distinct label sets cached (overflow sets not included).
    pub fn len(&self) -> usize {
        self.sets
    }

    /// True when no label set is cached.
    pub fn is_empty(&self) -> bool {
        self.sets == 0
    }

    /// Lookups that fell into the overflow set.
    pub fn label_overflow(&self) -> u64 {
        self.label_overflow
    }

    /// The configured cap.
    pub fn max_label_sets(&self) -> usize {
        self.max_label_sets
    }
}

/// The label set used once the cap is reached.
pub fn overflow_labels(reporter: Reporter) -> MetricLabels {
    let o = || String::from(OVERFLOW_VALUE);
    MetricLabels {
        reporter,
        source_workload: o(),
        source_workload_namespace: o(),
        source_version: o(),
        source_canonical_service: o(),
        destination_workload: o(),
        destination_workload_namespace: o(),
        destination_version: o(),
        destination_service: o(),
        request_protocol: o(),
        response_code: 0,
        grpc_response_status: o(),
        response_flags: o(),
    }
}

/// FxHash of a label set, field by field (the same for a set and its borrowed view).
fn label_hash(labels: &LabelsRef<'_>) -> u64 {
    use std::hash::Hash;
    let mut h = FxHasher::default();
    labels.reporter.hash(&mut h);
    labels.response_code.hash(&mut h);
    for s in labels.strings() {
        s.hash(&mut h);
    }
    h.finish()
}

fn define_all<Id, E>(
    naming: MetricNaming,
    labels: &MetricLabels,
    define: &mut impl FnMut(&str, MetricKind) -> Result<Id, E>,
) -> Result<MetricIds<Id>, E> {
    let mut d = |kind| define(&stat_name(naming, kind, labels), kind);
    Ok(MetricIds {
        requests_total: d(MetricKind::RequestsTotal)?,
        request_duration_milliseconds: d(MetricKind::RequestDurationMilliseconds)?,
        request_bytes: d(MetricKind::RequestBytes)?,
        response_bytes: d(MetricKind::ResponseBytes)?,
    })
}

/// FxHash (rustc's hasher): fast, small, and deterministic. std's `RandomState` needs a
/// randomness source that wasm32 may not have; flooding with colliding label sets is
/// bounded by the cap anyway.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::labels;
    use crate::metrics::MetricPrefix;

    /// A fake host: records every defined name and hands out sequential ids.
    #[derive(Default)]
    struct Host {
        defined: Vec<(String, MetricKind)>,
        fail_after: Option<usize>,
    }

    impl Host {
        fn define(&mut self, name: &str, kind: MetricKind) -> Result<u32, &'static str> {
            if self.fail_after.is_some_and(|n| self.defined.len() >= n) {
                return Err("host refused");
            }
            self.defined.push((name.to_string(), kind));
            Ok(self.defined.len() as u32)
        }
    }

    fn with_workload(w: &str) -> MetricLabels {
        MetricLabels {
            source_workload: w.into(),
            ..labels()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn hit_defines_nothing_and_miss_defines_four() {
        let naming = MetricNaming {
            prefix: MetricPrefix::Istio,
        };
        let mut cache = LabelCache::new(naming, DEFAULT_MAX_LABEL_SETS);
        let mut host = Host::default();
        #[rustfmt::skip]
        let table: [(&str, usize, Option<[u32; 4]>); 4] = [
            ("a", 4, Some([1, 2, 3, 4])),
            ("a", 4, Some([1, 2, 3, 4])),
            ("b", 8, Some([5, 6, 7, 8])),
            ("a", 8, Some([1, 2, 3, 4])),
        ];
        for (w, defined, want) in table {
            let ids = cache
                .get_or_insert_with(&with_workload(w), |n, k| host.define(n, k))
                .unwrap();
            let got = MetricKind::ALL.map(|k| ids.get(k));
            assert_eq!(Some(got), want, "{w}");
            assert_eq!(host.defined.len(), defined, "{w}");
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.label_overflow(), 0);
        // Names are the stat names of metrics.rs, one per kind.
        for (name, kind) in &host.defined[..4] {
            assert_eq!(*name, stat_name(naming, *kind, &with_workload("a")));
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn overflow_collapses_to_one_set_per_reporter() {
        let naming = MetricNaming::default();
        let mut cache = LabelCache::new(naming, 2);
        let mut host = Host::default();
        let mut get = |cache: &mut LabelCache<u32>, l: MetricLabels| {
            cache
                .get_or_insert_with(&l, |n, k| host.define(n, k))
                .unwrap()
                .requests_total
        };
        assert_eq!(get(&mut cache, with_workload("a")), 1);
        assert_eq!(get(&mut cache, with_workload("b")), 5);
        // Cap reached: new sets share the overflow ids, defined once.
        let c = get(&mut cache, with_workload("c"));
        assert_eq!(get(&mut cache, with_workload("d")), c);
        // Known sets still resolve to their own ids.
        assert_eq!(get(&mut cache, with_workload("a")), 1);
        // The other reporter has its own overflow set.
        let src = MetricLabels {
            reporter: Reporter::Source,
            ..with_workload("e")
        };
        let s = get(&mut cache, src);
        assert_ne!(s, c);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.label_overflow(), 3);
        let overflow_name = &host.defined[8].0;
        assert_eq!(
            *overflow_name,
            stat_name(
                naming,
                MetricKind::RequestsTotal,
                &overflow_labels(Reporter::Destination)
            )
        );
        assert!(overflow_name.contains("source_workload=.=overflow;.;"));
        assert_eq!(host.defined.len(), 16);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn define_error_is_returned_and_not_cached() {
        let mut cache = LabelCache::new(MetricNaming::default(), 10);
        let mut host = Host {
            fail_after: Some(2),
            ..Host::default()
        };
        assert_eq!(
            cache.get_or_insert_with(&labels(), |n, k| host.define(n, k)),
            Err("host refused")
        );
        assert!(cache.is_empty());
        host.fail_after = None;
        assert!(cache
            .get_or_insert_with(&labels(), |n, k| host.define(n, k))
            .is_ok());
        assert_eq!(cache.len(), 1);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn fx_hasher_distinguishes_label_sets() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<FxHasher>::default();
        let h = |l: &MetricLabels| b.hash_one(l);
        assert_eq!(h(&labels()), h(&labels()));
        assert_ne!(h(&labels()), h(&with_workload("other")));
        assert_ne!(
            h(&labels()),
            h(&MetricLabels {
                response_code: 503,
                ..labels()
            })
        );
    }
}
