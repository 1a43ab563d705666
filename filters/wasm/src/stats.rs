//! The filter's own counters and gauges (Envoy stats `meshwake.*`, names in
//! `meshwake_semconv::stat`), defined once per VM.
//! Counters bumped per request are summed in the VM and published on the root context's
//! tick: a host call per counter per request would cost more than the counting is worth.
use crate::abi::MetricType;
use crate::host::{define_metric, increment_metric};
use meshwake_core::notes::{Note, Notes};
use meshwake_semconv::stat;
use meshwake_telemetry::cardinality::FxBuildHasher;
use meshwake_telemetry::ExporterStats;
use std::collections::HashMap;

/// The exporter's counters, shared with the native glue.
use meshwake_core::self_stats::{full_name, EXPORTER_COUNTERS};

/// Metric ids; 0 when the host refused to define one (then updates are no-ops).
#[derive(Default)]
pub struct Stats {
    /// Counter increments not yet published: metric id → amount (bounded by the number of
    /// defined counters: the filter's own plus one per metric label set).
    /// Fx-hashed: looked up once or more per request.
    pending: HashMap<u32, u64, FxBuildHasher>,
    /// Counter ids of [`Note::ALL`], and the notes counted since the last publish: by
    /// position, no hashing per request.
    notes: Vec<u32>,
    note_counts: [u64; Note::ALL.len()],
    /// Ids of [`EXPORTER_COUNTERS`], row by row.
    exporter: [u32; EXPORTER_COUNTERS.len()],
    queue_depth: u32,
    in_flight: u32,
    label_overflow: u32,
    pub config_errors: u32,
    pub config_warnings: u32,
    pub recovery_stored: u32,
    pub streams_evicted: u32,
    vm_memory: u32,
    last_vm_memory: u64,
    streams_active: u32,
    last_streams_active: u64,
    /// Values of [`EXPORTER_COUNTERS`] last published, row by row.
    last: [u64; EXPORTER_COUNTERS.len()],
    last_overflow: u64,
    /// Gauge values last written, so an unchanged gauge costs no host call.
    last_gauges: Option<(u64, u64)>,
}

/// Define `meshwake.<name>`; 0 when the host refuses.
fn define(kind: MetricType, name: &str) -> u32 {
    define_metric(kind, &full_name(name))
}

fn counter(name: &str) -> u32 {
    define(MetricType::Counter, name)
}

impl Stats {
    pub fn define() -> Stats {
        let exporter = EXPORTER_COUNTERS.map(|(stat, _)| counter(stat));
        Stats {
            notes: Note::ALL.iter().map(|n| counter(n.name())).collect(),
            exporter,
            queue_depth: define(MetricType::Gauge, stat::EXPORT_QUEUE_DEPTH),
            in_flight: define(MetricType::Gauge, stat::EXPORT_BATCHES_IN_FLIGHT),
            label_overflow: counter(stat::METRICS_LABEL_OVERFLOW),
            config_errors: counter(stat::CONFIG_ERRORS),
            config_warnings: counter(stat::CONFIG_WARNINGS),
            recovery_stored: counter(stat::CONTEXT_RECOVERY_STORED),
            streams_evicted: counter(stat::STREAMS_EVICTED),
            vm_memory: define(MetricType::Gauge, stat::VM_MEMORY_BYTES),
            streams_active: define(MetricType::Gauge, stat::STREAMS_ACTIVE),
            ..Default::default()
        }
    }

    pub fn bump(id: u32, by: u64) {
        if id != 0 && by > 0 {
            increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
        }
    }

    /// Count `by` on counter `id` at the next publish.
    pub fn add(&mut self, id: u32, by: u64) {
        if id != 0 && by > 0 {
            let v = self.pending.entry(id).or_insert(0);
            *v = v.saturating_add(by);
        }
    }

    /// Count a request's notes at the next publish.
    pub fn count_notes(&mut self, notes: Notes) {
        for i in notes.indices() {
            if let Some(count) = self.note_counts.get_mut(i) {
                *count = count.saturating_add(1);
            }
        }
    }

    /// Publish the counters summed since the last call.
    fn publish_pending(&mut self) {
        for (id, by) in self.pending.drain() {
            Stats::bump(id, by);
        }
        for (id, count) in self.notes.iter().zip(self.note_counts.iter_mut()) {
            Stats::bump(*id, std::mem::take(count));
        }
    }

    /// Publish pending counters, the exporter's cumulative counters as deltas, and gauges
    /// that changed. Runs on the root context's tick.
    pub fn sync(&mut self, s: &ExporterStats, label_overflow: u64, streams: u64) {
        self.publish_pending();
        Stats::shift(self.streams_active, self.last_streams_active, streams);
        self.last_streams_active = streams;
        let rows = self.exporter.iter().zip(self.last.iter_mut());
        for ((id, last), (_, read)) in rows.zip(EXPORTER_COUNTERS.iter()) {
            let v = read(s);
            Stats::bump(*id, v.saturating_sub(*last));
            *last = v;
        }
        Stats::bump(
            self.label_overflow,
            label_overflow.saturating_sub(self.last_overflow),
        );
        self.last_overflow = label_overflow;
        // Gauges are shared by every VM (one per worker thread): each VM adds the change of
        // its own value, so the gauge is the sum over VMs. Setting it would show whichever
        // VM wrote last (a drained worker hid another worker's full queue).
        let mem = vm_memory_bytes();
        if mem != self.last_vm_memory {
            Stats::shift(self.vm_memory, self.last_vm_memory, mem);
            self.last_vm_memory = mem;
        }
        let gauges = (s.queue_depth, s.batches_in_flight);
        let (last_queue, last_in_flight) = self.last_gauges.unwrap_or((0, 0));
        if self.last_gauges == Some(gauges) {
            return;
        }
        self.last_gauges = Some(gauges);
        Stats::shift(self.queue_depth, last_queue, s.queue_depth);
        Stats::shift(self.in_flight, last_in_flight, s.batches_in_flight);
    }

    /// Move this VM's share of a shared gauge from `old` to `new`.
    fn shift(id: u32, old: u64, new: u64) {
        if id == 0 || old == new {
            return;
        }
        let delta = i128::from(new) - i128::from(old);
        increment_metric(id, i64::try_from(delta).unwrap_or(0));
    }
}

/// Linear memory size (one instruction on wasm; 0 natively).
fn vm_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (core::arch::wasm32::memory_size(0) as u64).saturating_mul(65536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}
