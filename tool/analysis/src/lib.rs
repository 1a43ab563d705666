//! Cross-service impact analysis: suspect deployments and their blast radius, from spans alone.
//!
//! Pipeline: [`ingest`] (OTLP JSON / protobuf → [`SpanRecord`]) → [`analyze`] (→ [`Report`])
//! → [`render`] (terminal text or a self-contained HTML page with a [`ServiceGraph`]).

pub mod calibration;
pub mod external_baseline;
pub mod graph;
pub mod health;
pub mod impact;
pub mod ingest;
pub mod model;
pub mod options;
pub mod render;
pub mod rollout;
pub mod stats;
pub mod synth;
pub mod timeline;
mod traces;
pub mod wallclock;

pub use external_baseline::analyze_with_baseline;
pub use graph::ServiceGraph;
pub use impact::{analyze, Report};
pub use ingest::{
    decode_otlp_json, decode_otlp_proto, from_otlp_json, from_otlp_proto, DecodedSpan, IngestError,
};
pub use model::{Deployment, Kind, SpanRecord};
pub use options::AnalysisOptions;
pub use render::{render_html, render_text};
pub use timeline::{Marker, Timeline};
