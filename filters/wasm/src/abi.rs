//! The proxy-wasm ABI 0.2.1 as meshwake uses it: the host functions it imports and the
//! numbers they take. The module's exports are in [`crate::dispatch`]; safe wrappers that
//! never panic are in [`crate::host`].
//!
//! Why not the Rust SDK (docs/adr/0006, "own dispatcher"): its dispatcher needs
//! `proxy_on_context_create` *and* `proxy_on_delete` for every stream (a boxed context per
//! request in a SipHash map), while meshwake frees a stream's state in `proxy_on_log`, so
//! Envoy skips one VM entry per request; and its host-call wrappers panic on an
//! unexpected status, which in a module built with `panic=immediate-abort` kills the VM.
#![allow(unsafe_code)]

/// `WasmResult` of proxy-wasm-cpp-host: only `OK` is acted upon.
pub type Status = u32;
pub const OK: Status = 0;

/// Header maps (`WasmHeaderMapType`): request and response headers, call-out response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    Request = 0,
    Response = 2,
    HttpCallResponse = 6,
}

/// Buffers (`WasmBufferType`).
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum BufferType {
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

/// Metric kinds (`MetricType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// Log levels (`LogLevel`).
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// Filter status returned by header callbacks: always carry on (meshwake never pauses).
pub const CONTINUE: u32 = 0;

// Natively (clippy, `cargo test --workspace`) the crate still builds: a cdylib may leave
// these undefined, and nothing native calls them.
#[link(wasm_import_module = "env")]
extern "C" {
    pub fn proxy_log(level: LogLevel, data: *const u8, size: usize) -> Status;
    pub fn proxy_get_current_time_nanoseconds(out: *mut u64) -> Status;
    pub fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    pub fn proxy_get_buffer_bytes(
        buffer: BufferType,
        start: usize,
        max_size: usize,
        out_data: *mut *mut u8,
        out_size: *mut usize,
    ) -> Status;
    pub fn proxy_get_header_map_pairs(
        map: MapType,
        out_data: *mut *mut u8,
        out_size: *mut usize,
    ) -> Status;
    pub fn proxy_replace_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> Status;
    pub fn proxy_remove_header_map_value(map: MapType, key: *const u8, key_size: usize) -> Status;
    pub fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        out_data: *mut *mut u8,
        out_size: *mut usize,
    ) -> Status;
    pub fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        out_data: *mut *mut u8,
        out_size: *mut usize,
        out_cas: *mut u32,
    ) -> Status;
    pub fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
    pub fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        out_token: *mut u32,
    ) -> Status;
    pub fn proxy_define_metric(
        kind: MetricType,
        name: *const u8,
        name_size: usize,
        out_id: *mut u32,
    ) -> Status;
    pub fn proxy_increment_metric(id: u32, offset: i64) -> Status;
    pub fn proxy_record_metric(id: u32, value: u64) -> Status;
}

/// The ABI version this module speaks; Envoy looks for the export's name.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host allocates every buffer it hands to the module through this export; the module
/// takes each back as a `Vec<u8>` of exactly that capacity (`host::take`).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}
