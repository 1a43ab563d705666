//! Envoy stats through the module metrics API: the filter's own counters (`meshwake.*`,
//! names shared with the wasm build) and the four request metrics with their Istio labels.
//!
//! The wasm build encodes labels in stat names for Envoy's tag regexes; here Envoy takes
//! label names at definition and values per record, so `/stats/prometheus` shows the same
//! series without `stats_tags` in the bootstrap. Metrics are defined once per filter
//! configuration on the main thread; a counter increment is a direct call (no batching).
use crate::abi::{self, FilterConfigEnvoyPtr, FilterEnvoyPtr, MetricsResult, ModuleBuffer};
use crate::labels::{Due, Values};
use meshwake_core::notes::Note;
use meshwake_core::self_stats::{full_name, EXPORTER_COUNTERS, NATIVE_PANICS};
use meshwake_semconv::stat;
use meshwake_telemetry::metrics::{label, MetricKind, MetricNaming};
use meshwake_telemetry::ExporterStats;

/// An Envoy metric id; `None` when Envoy refused the definition (updates are then skipped).
pub type Id = Option<usize>;

/// Metric ids of one filter configuration.
pub struct StatIds {
    notes: Vec<Id>,
    exporter: [Id; 14],
    queue_depth: Id,
    in_flight: Id,
    label_overflow: Id,
    pub config_errors: Id,
    pub config_warnings: Id,
    pub recovery_stored: Id,
    panics: Id,
    requests: [Id; 4],
}

pub type Define = unsafe extern "C" fn(
    FilterConfigEnvoyPtr,
    ModuleBuffer,
    *mut ModuleBuffer,
    usize,
    *mut usize,
) -> MetricsResult;

pub fn define(cfg: FilterConfigEnvoyPtr, f: Define, name: &str, labels: &[&str]) -> Id {
    let mut names: Vec<ModuleBuffer> = labels
        .iter()
        .map(|l| ModuleBuffer::new(l.as_bytes()))
        .collect();
    let mut id = 0usize;
    // SAFETY: `cfg` is the configuration pointer of the running config_new hook; the name and
    // label buffers outlive the call (Envoy copies them into stat names).
    let r = unsafe {
        f(
            cfg,
            ModuleBuffer::new(name.as_bytes()),
            names.as_mut_ptr(),
            names.len(),
            &mut id,
        )
    };
    (r == MetricsResult::Success).then_some(id)
}

/// Define the self-stat `meshwake.<name>`.
fn counter(cfg: FilterConfigEnvoyPtr, name: &str) -> Id {
    define(
        cfg,
        abi::envoy_dynamic_module_callback_http_filter_config_define_counter,
        &full_name(name),
        &[],
    )
}

/// Define the self-stat `meshwake.<name>`.
fn gauge(cfg: FilterConfigEnvoyPtr, name: &str) -> Id {
    define(
        cfg,
        abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
        &full_name(name),
        &[],
    )
}

impl StatIds {
    /// Define every metric for the configuration `cfg` (main thread, config creation).
    pub fn define(cfg: FilterConfigEnvoyPtr, naming: MetricNaming) -> StatIds {
        let requests = MetricKind::ALL.map(|k| {
            let f: Define = match k {
                MetricKind::RequestsTotal => {
                    abi::envoy_dynamic_module_callback_http_filter_config_define_counter
                }
                _ => abi::envoy_dynamic_module_callback_http_filter_config_define_histogram,
            };
            define(cfg, f, k.name(naming), &label::ALL)
        });
        StatIds {
            notes: Note::ALL.iter().map(|n| counter(cfg, n.name())).collect(),
            exporter: EXPORTER_COUNTERS.map(|(n, _)| counter(cfg, n)),
            queue_depth: gauge(cfg, stat::EXPORT_QUEUE_DEPTH),
            in_flight: gauge(cfg, stat::EXPORT_BATCHES_IN_FLIGHT),
            label_overflow: counter(cfg, stat::METRICS_LABEL_OVERFLOW),
            config_errors: counter(cfg, stat::CONFIG_ERRORS),
            config_warnings: counter(cfg, stat::CONFIG_WARNINGS),
            recovery_stored: counter(cfg, stat::CONTEXT_RECOVERY_STORED),
            panics: counter(cfg, NATIVE_PANICS),
            requests,
        }
    }

    pub fn note_id(&self, n: Note) -> Id {
        self.notes.get(n as usize).copied().flatten()
    }

    pub fn request_metric(&self, k: MetricKind) -> Id {
        let i = MetricKind::ALL.iter().position(|x| *x == k);
        i.and_then(|i| self.requests.get(i).copied().flatten())
    }
}

/// Add `by` to counter `id` from a request hook.
pub fn count(filter: FilterEnvoyPtr, id: Id, by: u64) {
    if let (Some(id), true) = (id, by > 0) {
        // SAFETY: `filter` is the running hook's pointer; no labels.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                filter,
                id,
                std::ptr::null_mut(),
                0,
                by,
            );
        }
    }
}

/// Add `by` to counter `id` from the configuration (main thread).
pub fn count_config(cfg: FilterConfigEnvoyPtr, id: Id, by: u64) {
    if let (Some(id), true) = (id, by > 0) {
        // SAFETY: `cfg` is the live configuration pointer; called on the main thread.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                cfg,
                id,
                std::ptr::null_mut(),
                0,
                by,
            );
        }
    }
}

/// Add `v` to counter `id` (`counter`) or record `v` in histogram `id`, under `labels` (the
/// values of the labels it was defined with, in order).
pub fn record(filter: FilterEnvoyPtr, id: Id, counter: bool, labels: &mut [ModuleBuffer], v: u64) {
    let Some(id) = id else { return };
    let (ptr, len) = if labels.is_empty() {
        (std::ptr::null_mut(), 0)
    } else {
        (labels.as_mut_ptr(), labels.len())
    };
    // SAFETY: `filter` is the running hook's pointer; the label values outlive the call.
    unsafe {
        if counter {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                filter, id, ptr, len, v,
            );
        } else {
            abi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                filter, id, ptr, len, v,
            );
        }
    }
}

/// Label values as Envoy takes them (borrowing `values`).
fn label_buffers(values: &[String; 13]) -> [ModuleBuffer; 13] {
    values.each_ref().map(|v| ModuleBuffer::new(v.as_bytes()))
}

/// Record one request's histograms under its label set's values (`requests_total` is
/// counted in the module: `crate::labels`).
pub fn record_histograms(
    filter: FilterEnvoyPtr,
    ids: &StatIds,
    values: &Values,
    duration_ms: u64,
    sizes: Option<(Option<i64>, Option<i64>)>,
) {
    let mut bufs = label_buffers(values);
    let mut put =
        |k: MetricKind, v: u64| record(filter, ids.request_metric(k), false, &mut bufs, v);
    put(MetricKind::RequestDurationMilliseconds, duration_ms);
    if let Some((req, resp)) = sizes {
        if let Some(b) = req {
            put(MetricKind::RequestBytes, b.max(0) as u64);
        }
        if let Some(b) = resp {
            put(MetricKind::ResponseBytes, b.max(0) as u64);
        }
    }
}

/// Add the requests counted per label set (`LabelSets::take_due`) to `requests_total`, from
/// a request hook.
pub fn count_requests(filter: FilterEnvoyPtr, ids: &StatIds, due: Vec<Due>) {
    let id = ids.request_metric(MetricKind::RequestsTotal);
    for d in due {
        record(filter, id, true, &mut label_buffers(&d.values), d.requests);
    }
}

/// As [`count_requests`], from the configuration (main thread: the traffic stopped).
pub fn count_requests_config(cfg: FilterConfigEnvoyPtr, ids: &StatIds, due: Vec<Due>) {
    let Some(id) = ids.request_metric(MetricKind::RequestsTotal) else {
        return;
    };
    for d in due {
        let mut bufs = label_buffers(&d.values);
        // SAFETY: `cfg` is the live configuration pointer; called on the main thread; 13
        // label values as the counter was defined with, outliving the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                cfg,
                id,
                bufs.as_mut_ptr(),
                bufs.len(),
                d.requests,
            );
        }
    }
}

/// What was last published from the exporter, to publish deltas (main thread only).
#[derive(Default)]
pub struct Published {
    exporter: [u64; 14],
    label_overflow: u64,
    panics: u64,
    gauges: (u64, u64),
}

impl Published {
    /// Publish the exporter's cumulative counters, label overflow and panics as deltas, and
    /// move the gauges to their current values.
    pub fn sync(
        &mut self,
        cfg: FilterConfigEnvoyPtr,
        ids: &StatIds,
        s: &ExporterStats,
        label_overflow: u64,
        panics: u64,
    ) {
        let rows = ids.exporter.iter().zip(self.exporter.iter_mut());
        for ((id, last), (_, read)) in rows.zip(EXPORTER_COUNTERS.iter()) {
            let v = read(s);
            count_config(cfg, *id, v.saturating_sub(*last));
            *last = v;
        }
        count_config(
            cfg,
            ids.label_overflow,
            label_overflow.saturating_sub(self.label_overflow),
        );
        self.label_overflow = label_overflow;
        count_config(cfg, ids.panics, panics.saturating_sub(self.panics));
        self.panics = panics;
        let (q, f) = self.gauges;
        shift(cfg, ids.queue_depth, q, s.queue_depth);
        shift(cfg, ids.in_flight, f, s.batches_in_flight);
        self.gauges = (s.queue_depth, s.batches_in_flight);
    }
}

/// Move this configuration's share of a gauge from `old` to `new` (several configurations,
/// e.g. inbound and outbound listeners, add up in one gauge, as the wasm VMs do).
fn shift(cfg: FilterConfigEnvoyPtr, id: Id, old: u64, new: u64) {
    let Some(id) = id else { return };
    // SAFETY: `cfg` is the live configuration pointer; called on the main thread.
    unsafe {
        if new > old {
            abi::envoy_dynamic_module_callback_http_filter_config_increment_gauge(
                cfg,
                id,
                std::ptr::null_mut(),
                0,
                new - old,
            );
        } else if old > new {
            abi::envoy_dynamic_module_callback_http_filter_config_decrement_gauge(
                cfg,
                id,
                std::ptr::null_mut(),
                0,
                old - new,
            );
        }
    }
}
