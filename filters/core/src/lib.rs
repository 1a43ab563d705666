//! Plugin configuration and the per-request pipeline of the meshwake filter, behind host
//! traits. No proxy-wasm dependency: the wasm crate (`filters/wasm`) is the only glue.
pub mod config;

pub use config::{Config, ConfigIssue, Role};
