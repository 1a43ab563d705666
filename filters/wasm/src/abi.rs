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
use std::cell::Cell;

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
    pub fn proxy_get_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
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
    pub fn proxy_set_effective_context(context_id: u32) -> Status;
    pub fn proxy_increment_metric(id: u32, offset: i64) -> Status;
    pub fn proxy_record_metric(id: u32, value: u64) -> Status;
}

/// The ABI version this module speaks; Envoy looks for the export's name.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Largest buffer kept for reuse (a request's header map is far smaller).
pub const MAX_RECYCLED: usize = 64 * 1024;

thread_local! {
    /// A buffer the module is done with, kept for the host's next allocation: the request
    /// header map is allocated and freed on every request, and the allocator's two trips
    /// cost more than the rest of a propagation hop's bookkeeping.
    static RECYCLED: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
    /// The recycled buffer while the host holds it: its pointer and true capacity.
    static LENT: Cell<(*mut u8, usize)> = const { Cell::new((std::ptr::null_mut(), 0)) };
}

/// The host allocates every buffer it hands to the module through this export; the module
/// takes each back as a `Vec<u8>` (`host::take`, with [`lent_capacity`]): a recycled one
/// when it is large enough, else a new one of exactly `size`.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buf = match RECYCLED.take() {
        Some(mut buf) if buf.capacity() >= size => {
            LENT.set((buf.as_mut_ptr(), buf.capacity()));
            buf
        }
        _ => Vec::with_capacity(size),
    };
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

/// The capacity of the recycled buffer at `ptr`, once, if that is what the host was
/// lent (any other buffer has exactly the size it was allocated with).
pub fn lent_capacity(ptr: *mut u8) -> Option<usize> {
    let (lent, capacity) = LENT.get();
    (!ptr.is_null() && ptr == lent).then(|| {
        LENT.set((std::ptr::null_mut(), 0));
        capacity
    })
}

/// Keep `buf` (cleared) for the host's next allocation, unless it is too large to hold on
/// to or the buffer already kept is at least as large: a small or empty buffer handed back
/// after the header map's (an inbound response's unread map, say) must not push it out, or
/// the next request's map is a new allocation and the old one a free.
pub fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() > MAX_RECYCLED {
        return;
    }
    let keep = match RECYCLED.take() {
        Some(kept) if kept.capacity() >= buf.capacity() => kept,
        _ => {
            buf.clear();
            buf
        }
    };
    RECYCLED.set(Some(keep));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_buffer_is_lent_once_with_its_true_capacity() {
        let mut big = Vec::with_capacity(4096);
        big.extend_from_slice(b"old");
        let big_ptr = big.as_mut_ptr();
        recycle(big);
        // Large enough: the same memory, its capacity known once.
        let p = proxy_on_memory_allocate(300);
        assert_eq!(p, big_ptr);
        assert_eq!(lent_capacity(p), Some(4096));
        assert_eq!(lent_capacity(p), None);
        // SAFETY: `p` is the recycled Vec's buffer, of capacity 4096 (as `host::take` does).
        let back = unsafe { Vec::from_raw_parts(p, 300, 4096) };
        // Too small for the next request: a new buffer of exactly that size, nothing lent.
        recycle(back);
        let q = proxy_on_memory_allocate(8192);
        assert_ne!(q, big_ptr);
        assert_eq!(lent_capacity(q), None);
        // SAFETY: a fresh Vec of capacity 8192 from `proxy_on_memory_allocate`.
        drop(unsafe { Vec::from_raw_parts(q, 0, 8192) });
        // Too large to hold on to: not kept.
        recycle(Vec::with_capacity(MAX_RECYCLED + 1));
        let r = proxy_on_memory_allocate(16);
        assert_eq!(lent_capacity(r), None);
        // SAFETY: as above, capacity 16.
        drop(unsafe { Vec::from_raw_parts(r, 0, 16) });
    }

    #[test]
    fn a_smaller_buffer_does_not_push_out_a_larger_one() {
        let big = Vec::<u8>::with_capacity(2048);
        let big_ptr = big.as_ptr() as *mut u8;
        recycle(big);
        // An inbound response hands back its unread (empty) map after the `:status` value.
        recycle(Vec::new());
        recycle(Vec::with_capacity(8));
        let p = proxy_on_memory_allocate(1024);
        assert_eq!(p, big_ptr);
        assert_eq!(lent_capacity(p), Some(2048));
        // SAFETY: the recycled Vec's buffer, capacity 2048.
        drop(unsafe { Vec::from_raw_parts(p, 0, 2048) });
        // A larger one replaces a smaller one.
        recycle(Vec::with_capacity(8));
        let larger = Vec::<u8>::with_capacity(4096);
        let larger_ptr = larger.as_ptr() as *mut u8;
        recycle(larger);
        let q = proxy_on_memory_allocate(3000);
        assert_eq!(q, larger_ptr);
        assert_eq!(lent_capacity(q), Some(4096));
        // SAFETY: as above, capacity 4096.
        drop(unsafe { Vec::from_raw_parts(q, 0, 4096) });
    }
}
