//! The meshwake proxy-wasm module. Thin glue: Envoy callbacks in, `meshwake-core` out.
//!
//! - [`abi`]: the proxy-wasm ABI 0.2.1 host functions and numbers.
//! - [`dispatch`]: the exported callbacks, the plugins (root contexts) and streams of the VM.
//! - [`root`]: per plugin: configuration, identity, span export, metric ids, the timer.
//! - [`http`]: per stream: reads headers, applies the core's edits, records at stream end.
//! - [`host`]: host access that cannot panic (header maps, properties, shared data, time).
//! - [`stats`]: the filter's own counters, declared once.
//! - `value_reads` (feature `value-reads`, an A/B variant): headers read one by one.
//!
//! With the `propagation-only` feature the response and stream-end callbacks are not
//! compiled: a stream is done once its request headers are.
// That build leaves the stream table, the stream end and their stats unused.
#![cfg_attr(feature = "propagation-only", allow(dead_code))]
mod abi;
mod dispatch;
mod host;
mod http;
mod root;
mod stats;
#[cfg(feature = "value-reads")]
mod value_reads;

/// Version of this module, which is also the deployment version of the filter itself.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The propagation-only build (`meshwake-propagate.wasm`, feature `propagation-only`):
/// Envoy enters it for a stream's creation and request headers only, so it forwards trace
/// context and keeps nothing per stream (docs/adr/0006, decision 10).
pub const PROPAGATION_ONLY: bool = cfg!(feature = "propagation-only");

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// The WASI reactor's entry point, called once before any callback.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    // SAFETY: the reactor's constructors, run once here as the WASI ABI requires.
    unsafe {
        __wasm_call_ctors();
    }
    host::init_logging(log::LevelFilter::Info);
    // A panic kills the VM; say why in Envoy's log before it does. Not run in the shipped
    // module, built with -Cpanic=immediate-abort (docs/adr/0001-no-panics.md).
    std::panic::set_hook(Box::new(|info| {
        host::log(abi::LogLevel::Critical, &format!("meshwake panic: {info}"));
    }));
}
