//! The meshwake filter as an Envoy dynamic module (`libmeshwake.so`): the same core as the
//! wasm build, called natively, without a sandbox crossing per host call.
//!
//! - [`abi`]: hand-written bindings to the dynamic-module C ABI (only what is used).
//! - [`host`]: safe wrappers over those calls.
//! - [`config`]: one filter configuration: engine, exporter, metrics, the main-thread tick.
//! - [`filter`]: one HTTP stream.
//! - [`stats`]: Envoy stats through the module metrics API.
//! - [`recovery`]: process-wide context-recovery slots.
//!
//! Every event hook below catches unwinding: native code has no sandbox, so a panic must not
//! cross into Envoy. A caught panic fails open (the request proceeds untouched by this
//! filter), is counted in `meshwake.native.panics` and logged once.
//! `filter_name: noop` selects a do-nothing filter, the baseline for benchmarks;
//! `filter_name: probe` a filter that prices one host callback ([`probe`]).
mod abi;
mod config;
mod filter;
mod host;
mod labels;
mod probe;
mod recovery;
mod stats;

use abi::{EnvoyBuffer, EnvoyHttpHeader, FilterConfigEnvoyPtr, FilterEnvoyPtr, LogLevel};
use config::{FilterConfig, Module, PANICS};
use filter::Filter;
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// Version of this module, which is also the deployment version of the filter itself.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Envoy release this binary is built and tested for (`scripts/lib.sh` ENVOY_VERSION).
pub const ENVOY_VERSION: &str = "1.40";

/// Run a hook body; on a panic, count it, log the first one, and return `fallback`.
fn guarded<R>(fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            PANICS.fetch_add(1, Ordering::Relaxed);
            static LOGGED: AtomicBool = AtomicBool::new(false);
            if !LOGGED.swap(true, Ordering::Relaxed) {
                host::log(
                    LogLevel::Critical,
                    "meshwake: a panic was caught in the native filter; the request proceeds without it (counted in meshwake.native.panics; only the first is logged)",
                );
            }
            fallback
        }
    }
}

/// The per-stream object behind Envoy's opaque filter pointer (boxed once per stream, so
/// the size difference between the variants costs nothing).
#[allow(clippy::large_enum_variant)]
enum Stream {
    Noop,
    Meshwake(Filter),
    Probe(std::sync::Arc<probe::Plan>),
}

/// # Safety
/// `p` is a pointer returned by `envoy_dynamic_module_on_http_filter_new` and not yet
/// destroyed; Envoy calls a stream's hooks on one thread, one at a time.
unsafe fn stream<'a>(p: *const c_void) -> Option<&'a mut Stream> {
    // SAFETY: per the function contract.
    unsafe { (p as *mut Stream).as_mut() }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guarded(std::ptr::null(), || {
        // Keep the panic message out of Envoy's stderr flood: the hook logs it once, through
        // Envoy's logger, with where it happened.
        std::panic::set_hook(Box::new(|info| {
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                host::log(LogLevel::Critical, &format!("meshwake panic: {info}"));
            }
        }));
        abi::ABI_VERSION.as_ptr().cast()
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: FilterConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded(std::ptr::null(), || {
        // SAFETY: Envoy's buffers are valid for this hook; they are copied before it returns.
        let (name, raw) = unsafe { (name.as_slice(), config.as_slice()) };
        let c = FilterConfig::new(config_envoy, name, raw);
        Box::into_raw(Box::new(c)) as *const c_void
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    guarded((), || {
        if !config.is_null() {
            // SAFETY: created by Box::into_raw in config_new; Envoy destroys it once.
            drop(unsafe { Box::from_raw(config as *mut FilterConfig) });
        }
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: FilterEnvoyPtr,
) -> *const c_void {
    guarded(std::ptr::null(), || {
        // SAFETY: the configuration outlives its filters (Envoy holds it for them).
        let Some(c) = (unsafe { (config as *const FilterConfig).as_ref() }) else {
            return std::ptr::null();
        };
        let s = match &c.module {
            Module::Noop => Stream::Noop,
            Module::Meshwake(shared) => Stream::Meshwake(Filter::new(shared.clone())),
            Module::Probe(plan) => Stream::Probe(plan.clone()),
        };
        Box::into_raw(Box::new(s)) as *const c_void
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    guarded((), || {
        if !filter.is_null() {
            // SAFETY: created by Box::into_raw in filter_new; Envoy destroys it once.
            drop(unsafe { Box::from_raw(filter as *mut Stream) });
        }
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guarded(abi::CONTINUE, || {
        // SAFETY: see `stream`.
        match unsafe { stream(filter) } {
            Some(Stream::Meshwake(f)) => f.on_request_headers(envoy),
            Some(Stream::Probe(p)) => p.on_request_headers(envoy),
            _ => {}
        }
        abi::CONTINUE
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guarded(abi::CONTINUE, || {
        // SAFETY: see `stream`.
        match unsafe { stream(filter) } {
            Some(Stream::Meshwake(f)) => f.on_response_headers(envoy),
            Some(Stream::Probe(p)) => p.on_response_headers(envoy),
            _ => {}
        }
        abi::CONTINUE
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy: FilterEnvoyPtr,
    filter: *const c_void,
) {
    guarded((), || {
        // SAFETY: see `stream`.
        match unsafe { stream(filter) } {
            Some(Stream::Meshwake(f)) => f.on_stream_complete(envoy),
            Some(Stream::Probe(p)) => p.on_stream_complete(envoy),
            _ => {}
        }
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: FilterConfigEnvoyPtr,
    config: *const c_void,
    _event_id: u64,
) {
    guarded((), || {
        // SAFETY: the configuration is alive while Envoy delivers its events.
        if let Some(c) = unsafe { (config as *const FilterConfig).as_ref() } {
            c.on_tick();
        }
    })
}

/// The response of a span export.
#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: FilterConfigEnvoyPtr,
    config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    guarded((), || {
        // SAFETY: the configuration is alive while Envoy delivers its events; headers and
        // body chunks are Envoy's arrays of the given sizes, valid for this hook.
        let (c, headers, chunks) = unsafe {
            (
                (config as *const FilterConfig).as_ref(),
                slice(headers, headers_size),
                slice(body_chunks, body_chunks_size),
            )
        };
        let Some(c) = c else { return };
        let header = |name: &[u8]| {
            headers.iter().find_map(|h| {
                // SAFETY: Envoy's header buffers, valid for this hook.
                let (k, v) = unsafe {
                    let k = EnvoyBuffer {
                        ptr: h.key_ptr,
                        length: h.key_length,
                    };
                    let v = EnvoyBuffer {
                        ptr: h.value_ptr,
                        length: h.value_length,
                    };
                    (k.as_slice(), v.as_slice())
                };
                (k == name).then_some(v)
            })
        };
        let status = if result == abi::CalloutResult::Success as u32 {
            header(b":status").and_then(|v| std::str::from_utf8(v).ok()?.parse::<u16>().ok())
        } else {
            None
        };
        // Envoy's own failures to reach the collector come back as local 502/503/504
        // replies: the start of the body tells them apart.
        // SAFETY: Envoy's body buffers, valid for this hook.
        let first = chunks
            .first()
            .map(|b| unsafe { b.as_slice() })
            .unwrap_or_default();
        let probe = first
            .get(
                ..first
                    .len()
                    .min(meshwake_telemetry::export::LOCAL_REPLY_PROBE_LEN),
            )
            .unwrap_or_default();
        c.on_callout_done(
            callout_id,
            config::Response {
                status,
                retry_after: header(b"retry-after").map(<[u8]>::to_vec),
                probe: probe.to_vec(),
            },
        );
    })
}

/// # Safety
/// `p` is null or points at `n` valid `T` for the returned lifetime.
unsafe fn slice<'a, T>(p: *const T, n: usize) -> &'a [T] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: per the function contract.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

// The hooks are not `pub`: nothing in Rust calls them; `#[no_mangle]` exports them from the
// cdylib all the same (tests/tests/native_abi.rs checks the export table).

// Hooks Envoy resolves but this filter does not use: they continue (body and trailers are
// never buffered or read; no per-stream callouts, streams or scheduled events are started).

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
    _event_id: u64,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
) {
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _e: FilterEnvoyPtr,
    _f: *const c_void,
) {
}
