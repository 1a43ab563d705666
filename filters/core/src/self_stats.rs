//! The filter's own counters and gauges (Envoy stats `meshwake.*`), named once for every
//! glue (wasm and native) and documented in the README.
use meshwake_telemetry::ExporterStats;

/// Self-telemetry stat names.
pub mod name {
    pub const SPANS_CREATED: &str = "meshwake.spans.created";
    pub const SPANS_EXPORTED: &str = "meshwake.spans.exported";
    pub const DROPPED_QUEUE_FULL: &str = "meshwake.spans.dropped_queue_full";
    pub const DROPPED_SAMPLED_OUT: &str = "meshwake.spans.dropped_sampled_out";
    pub const DROPPED_EXPORT_FAILED: &str = "meshwake.spans.dropped_export_failed";
    pub const DROPPED_REJECTED: &str = "meshwake.spans.dropped_rejected";
    pub const EXPORT_RETRIES: &str = "meshwake.export.retries";
    pub const EXPORT_BATCHES: &str = "meshwake.export.batches_sent";
    pub const FAIL_4XX: &str = "meshwake.export.failures_status_4xx";
    pub const FAIL_5XX: &str = "meshwake.export.failures_status_5xx";
    pub const FAIL_429: &str = "meshwake.export.failures_status_429";
    pub const FAIL_OTHER: &str = "meshwake.export.failures_status_other";
    pub const FAIL_CALL: &str = "meshwake.export.failures_call_failed";
    pub const FAIL_TIMEOUT: &str = "meshwake.export.failures_timeout";
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

/// The exporter's cumulative counters, in the order of [`exporter_values`].
pub const EXPORTER_COUNTERS: [&str; 14] = [
    name::SPANS_CREATED,
    name::SPANS_EXPORTED,
    name::DROPPED_QUEUE_FULL,
    name::DROPPED_SAMPLED_OUT,
    name::DROPPED_EXPORT_FAILED,
    name::DROPPED_REJECTED,
    name::EXPORT_RETRIES,
    name::EXPORT_BATCHES,
    name::FAIL_4XX,
    name::FAIL_5XX,
    name::FAIL_429,
    name::FAIL_OTHER,
    name::FAIL_CALL,
    name::FAIL_TIMEOUT,
];

/// The values of [`EXPORTER_COUNTERS`], in order.
pub fn exporter_values(s: &ExporterStats) -> [u64; 14] {
    let f = &s.export_failures_by_cause;
    [
        s.spans_created,
        s.spans_exported,
        s.dropped_queue_full,
        s.dropped_sampled_out,
        s.dropped_export_failed,
        s.dropped_rejected,
        s.retries,
        s.batches_sent,
        f.status_4xx,
        f.status_5xx,
        f.status_429,
        f.status_other,
        f.call_failed,
        f.timeout,
    ]
}
