//! Every counter of the collector, declared in one place, and their Prometheus text rendering.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counter: export requests received on `/v1/traces`.
pub const REQUESTS_TOTAL: &str = "meshwake_collector_requests_total";
/// Counter: spans written to the store (duplicates excluded).
pub const SPANS_STORED_TOTAL: &str = "meshwake_collector_spans_stored_total";
/// Counter: bodies that could not be decoded, by `reason`.
pub const BAD_BODIES_TOTAL: &str = "meshwake_collector_bad_bodies_total";
/// Counter: requests rejected with 413.
pub const TOO_LARGE_TOTAL: &str = "meshwake_collector_rejected_too_large_total";
/// Counter: requests rejected with 415.
pub const UNSUPPORTED_MEDIA_TOTAL: &str =
    "meshwake_collector_rejected_unsupported_media_type_total";
/// Counter: requests rejected with 503 because the write queue was full.
pub const BUSY_TOTAL: &str = "meshwake_collector_rejected_busy_total";
/// Counter: batches the store failed to write.
pub const STORE_ERRORS_TOTAL: &str = "meshwake_collector_store_errors_total";
/// Counter: requests answered 408 because their body did not arrive in time.
pub const BODY_TIMEOUTS_TOTAL: &str = "meshwake_collector_rejected_body_timeout_total";
/// Counter: connections closed on accept because `--max-connections` were open.
pub const CONNECTIONS_REJECTED_TOTAL: &str = "meshwake_collector_rejected_connections_total";

/// Why a body was rejected as bad (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadBody {
    /// The body could not be read from the connection.
    Read,
    /// `Content-Encoding: gzip` but not valid gzip.
    Gzip,
    /// Not a protobuf `ExportTraceServiceRequest`.
    Protobuf,
    /// Not an OTLP/JSON `ExportTraceServiceRequest`.
    Json,
}

impl BadBody {
    const ALL: [BadBody; 4] = [
        BadBody::Read,
        BadBody::Gzip,
        BadBody::Protobuf,
        BadBody::Json,
    ];

    fn label(self) -> &'static str {
        match self {
            BadBody::Read => "read",
            BadBody::Gzip => "gzip",
            BadBody::Protobuf => "protobuf",
            BadBody::Json => "json",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The collector's counters, shared by all handlers.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub spans_stored: AtomicU64,
    bad_bodies: [AtomicU64; 4],
    pub too_large: AtomicU64,
    pub unsupported_media: AtomicU64,
    pub busy: AtomicU64,
    pub store_errors: AtomicU64,
    pub body_timeouts: AtomicU64,
    pub connections_rejected: AtomicU64,
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Counts one bad body.
    pub fn bad_body(&self, reason: BadBody) {
        if let Some(c) = self.bad_bodies.get(reason.index()) {
            inc(c);
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let simple = [
            (
                REQUESTS_TOTAL,
                "OTLP export requests received.",
                &self.requests,
            ),
            (
                SPANS_STORED_TOTAL,
                "Spans written to the store.",
                &self.spans_stored,
            ),
            (
                TOO_LARGE_TOTAL,
                "Requests rejected because the body was too large.",
                &self.too_large,
            ),
            (
                UNSUPPORTED_MEDIA_TOTAL,
                "Requests rejected for their content type or encoding.",
                &self.unsupported_media,
            ),
            (
                BUSY_TOTAL,
                "Requests rejected because the write queue was full.",
                &self.busy,
            ),
            (
                STORE_ERRORS_TOTAL,
                "Batches the span store failed to write.",
                &self.store_errors,
            ),
            (
                BODY_TIMEOUTS_TOTAL,
                "Requests answered 408: the body did not arrive in time.",
                &self.body_timeouts,
            ),
            (
                CONNECTIONS_REJECTED_TOTAL,
                "Connections closed on accept: the connection cap was reached.",
                &self.connections_rejected,
            ),
        ];
        for (name, help, c) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP {BAD_BODIES_TOTAL} Request bodies that could not be decoded.\n# TYPE {BAD_BODIES_TOTAL} counter"
        );
        for reason in BadBody::ALL {
            let n = self.bad_bodies.get(reason.index()).map_or(0, get);
            let _ = writeln!(
                out,
                "{BAD_BODIES_TOTAL}{{reason=\"{}\"}} {n}",
                reason.label()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let s = Stats::default();
        inc(&s.requests);
        s.bad_body(BadBody::Gzip);
        s.bad_body(BadBody::Gzip);
        let text = s.render();
        assert!(text.contains("meshwake_collector_requests_total 1\n"));
        assert!(text.contains("meshwake_collector_bad_bodies_total{reason=\"gzip\"} 2\n"));
        assert!(text.contains("meshwake_collector_bad_bodies_total{reason=\"json\"} 0\n"));
        assert!(text.contains("# TYPE meshwake_collector_store_errors_total counter\n"));
    }
}
