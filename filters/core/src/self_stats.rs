//! The filter's own counters and gauges (Envoy stats `meshwake.*`), shared by both glues
//! (wasm and native). Names come from the naming contract (`meshwake_semconv::stat`); each
//! glue defines them as [`stat::PREFIX`] + name.
use meshwake_semconv::stat;
use meshwake_telemetry::ExporterStats;

/// Native build only: entry points that caught a panic and let the request proceed.
pub const NATIVE_PANICS: &str = "native.panics";

/// Where one counter's cumulative value is in the exporter's stats.
pub type ReadCounter = fn(&ExporterStats) -> u64;

/// The exporter's cumulative counters, published as deltas: stat name (without the prefix)
/// and where its value is in [`ExporterStats`], one row each (a new counter cannot be
/// misaligned).
#[rustfmt::skip]
pub const EXPORTER_COUNTERS: [(&str, ReadCounter); 14] = [
    (stat::SPANS_CREATED,                |s| s.spans_created),
    (stat::SPANS_EXPORTED,               |s| s.spans_exported),
    (stat::SPANS_DROPPED_QUEUE_FULL,     |s| s.dropped_queue_full),
    (stat::SPANS_DROPPED_SAMPLED_OUT,    |s| s.dropped_sampled_out),
    (stat::SPANS_DROPPED_EXPORT_FAILED,  |s| s.dropped_export_failed),
    (stat::SPANS_DROPPED_REJECTED,       |s| s.dropped_rejected),
    (stat::EXPORT_RETRIES,               |s| s.retries),
    (stat::EXPORT_BATCHES_SENT,          |s| s.batches_sent),
    (stat::EXPORT_FAILURES_STATUS_4XX,   |s| s.export_failures_by_cause.status_4xx),
    (stat::EXPORT_FAILURES_STATUS_5XX,   |s| s.export_failures_by_cause.status_5xx),
    (stat::EXPORT_FAILURES_STATUS_429,   |s| s.export_failures_by_cause.status_429),
    (stat::EXPORT_FAILURES_STATUS_OTHER, |s| s.export_failures_by_cause.status_other),
    (stat::EXPORT_FAILURES_CALL_FAILED,  |s| s.export_failures_by_cause.call_failed),
    (stat::EXPORT_FAILURES_TIMEOUT,      |s| s.export_failures_by_cause.timeout),
];

/// The Envoy stat name of a self-stat: [`stat::PREFIX`] + its short name.
pub fn full_name(short: &str) -> String {
    format!("{}{short}", stat::PREFIX)
}
