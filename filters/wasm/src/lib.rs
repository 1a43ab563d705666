//! The meshwake proxy-wasm module. Thin glue: Envoy callbacks in, `meshwake-core` out.
//!
//! - [`root`]: per-VM state: configuration, identity, span export, metric ids, the timer.
//! - [`http`]: per-request context: reads headers, applies the core's edits, records at stream end.
//! - [`host`]: host access that cannot panic (header maps, properties, shared data, time).
//! - [`stats`]: the filter's own counters, declared once.
mod host;
mod http;
mod root;
mod stats;

use proxy_wasm::types::LogLevel;

/// Version of this module, which is also the deployment version of the filter itself.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // A panic kills the VM; say why in Envoy's log before it does. Not run in the shipped
    // module, built with -Cpanic=immediate-abort (docs/adr/0001-no-panics.md).
    std::panic::set_hook(Box::new(|info| {
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("meshwake panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> { Box::new(root::Root::default()) });
}}
