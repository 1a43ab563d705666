//! Span model, OTLP/protobuf encoding, export queue with batching and backoff, and metric
//! label sets. No proxy-wasm dependency: plain Rust that builds for wasm32 and is tested
//! natively. No clock, I/O or threads: time comes in as Unix nanoseconds.
//!
//! * [`span`]: span model and the attribute keys of docs/CONVENTIONS.md ([`span::attr`]).
//! * [`otlp`]: `ExportTraceServiceRequest` protobuf encoder.
//! * [`export`]: bounded queue, batching, in-flight limit, retries ([`export::Exporter`]).
//! * [`metrics`]: Istio-compatible request metrics: names, labels encoded in stat names, `stats_tags`.
//! * [`cardinality`]: per-VM cache of label sets to metric ids with an overflow cap.

pub mod cardinality;
pub mod export;
pub mod metrics;
pub mod otlp;
pub mod span;

pub use export::{ExportConfig, ExportOutcome, Exporter, ExporterStats, OutgoingBatch};
pub use span::{AnyValue, KeyValue, Resource, Scope, Span, SpanKind, Status, StatusCode};
