//! Plugin configuration and the per-request pipeline of the meshwake filter, behind plain
//! inputs and outputs. No proxy-wasm dependency: the glues (`filters/wasm`, a native Envoy
//! module) call [`setup()`] and apply what the engine returns, so all of this is tested
//! natively and in wasm.
//!
//! - [`setup`]: raw plugin configuration + host facts → engine, exporter, naming, issues:
//!   the one call every glue makes at configuration time.
//! - [`config`]: the plugin configuration, parsed once, never failing.
//! - [`json`]: the small JSON reader [`config`] uses (no serde_json in the module).
//! - [`pipeline`]: request headers → context, identity, header edits; stream end → span, labels.
//! - [`recovery`]: context recovery slots for apps that forget trace headers.
//! - [`route`]: bounded-cardinality span names.
//! - [`envoy`]: Envoy property paths and decoding.
//! - [`notes`]: per-request events counted as stats.
//! - [`self_stats`]: the names of the filter's own stats, shared by both glues.
pub mod config;
pub mod envoy;
pub mod json;
pub mod notes;
pub mod pipeline;
#[cfg(test)]
mod pipeline_tests;
pub mod recovery;
pub mod route;
pub mod self_stats;
pub mod setup;

pub use config::{Config, ConfigIssue, Role};
pub use pipeline::{
    needs_response_flags, Completion, Engine, HeaderEdits, RememberBuf, RequestState, Spare,
    StreamEndReads, StreamEndText,
};
pub use setup::{setup, HostFacts, Setup, SetupIssue, Severity};
pub mod headers;
