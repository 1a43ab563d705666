//! The filter's own counters and gauges (Envoy stats `meshwake.*`), named once for both glues
//! (wasm and native) and documented in the README.
use meshwake_telemetry::ExporterStats;

/// Self-telemetry stat names (also documented in the README); the exporter's counters are
/// in [`EXPORTER_COUNTERS`].
pub mod name {
    pub const QUEUE_DEPTH: &str = "meshwake.export.queue_depth";
    pub const IN_FLIGHT: &str = "meshwake.export.batches_in_flight";
    pub const LABEL_OVERFLOW: &str = "meshwake.metrics.label_overflow";
    pub const CONFIG_ERRORS: &str = "meshwake.config.errors";
    pub const CONFIG_WARNINGS: &str = "meshwake.config.warnings";
    pub const RECOVERY_STORED: &str = "meshwake.context_recovery_stored";
    /// The VM's linear memory in bytes (it only grows), for memory budgets (wasm only).
    pub const VM_MEMORY: &str = "meshwake.vm.memory_bytes";
    /// Native build: entry points that caught a panic and let the request proceed.
    pub const PANICS: &str = "meshwake.native.panics";
}

/// Where one counter's cumulative value is in the exporter's stats.
pub type ReadCounter = fn(&ExporterStats) -> u64;

/// The exporter's cumulative counters, published as deltas: Envoy stat name and where its
/// value is in [`ExporterStats`], one row each (a new counter cannot be misaligned).
#[rustfmt::skip]
pub const EXPORTER_COUNTERS: [(&str, ReadCounter); 14] = [
    ("meshwake.spans.created",                    |s| s.spans_created),
    ("meshwake.spans.exported",                   |s| s.spans_exported),
    ("meshwake.spans.dropped_queue_full",         |s| s.dropped_queue_full),
    ("meshwake.spans.dropped_sampled_out",        |s| s.dropped_sampled_out),
    ("meshwake.spans.dropped_export_failed",      |s| s.dropped_export_failed),
    ("meshwake.spans.dropped_rejected",           |s| s.dropped_rejected),
    ("meshwake.export.retries",                   |s| s.retries),
    ("meshwake.export.batches_sent",              |s| s.batches_sent),
    ("meshwake.export.failures_status_4xx",       |s| s.export_failures_by_cause.status_4xx),
    ("meshwake.export.failures_status_5xx",       |s| s.export_failures_by_cause.status_5xx),
    ("meshwake.export.failures_status_429",       |s| s.export_failures_by_cause.status_429),
    ("meshwake.export.failures_status_other",     |s| s.export_failures_by_cause.status_other),
    ("meshwake.export.failures_call_failed",      |s| s.export_failures_by_cause.call_failed),
    ("meshwake.export.failures_timeout",          |s| s.export_failures_by_cause.timeout),
];
