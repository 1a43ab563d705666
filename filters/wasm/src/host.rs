//! Host access that cannot panic: every wrapper turns a failed host call into "nothing"
//! (an empty map, `None`, 0, `false`) for the caller to handle. Header maps come back in
//! the host's serialized layout, decoded by `meshwake_core::headers` without a copy.
#![allow(unsafe_code)]
use crate::abi::{self, BufferType, LogLevel, MapType, MetricType, OK};
use std::ptr::null_mut;

/// Take ownership of a buffer the host wrote through `proxy_on_memory_allocate`.
///
/// # Safety
/// `ptr`/`size` must come from a host call that returned `OK` and allocated through
/// `abi::proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`, or the recycled one
/// whose capacity `abi::lent_capacity` knows), taken only once.
unsafe fn take(ptr: *mut u8, size: usize) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    let capacity = abi::lent_capacity(ptr).unwrap_or(size);
    Some(Vec::from_raw_parts(ptr, size, capacity))
}

/// A buffer from the host the module is done with: reused for the host's next one.
pub fn give_back(buf: Vec<u8>) {
    abi::recycle(buf);
}

/// A header map in the host's serialized layout; empty on error.
pub fn header_map_bytes(map: MapType) -> Vec<u8> {
    let (mut ptr, mut size) = (null_mut(), 0);
    // SAFETY: on OK the host wrote a buffer of ours (see `take`).
    unsafe {
        if abi::proxy_get_header_map_pairs(map, &mut ptr, &mut size) != OK {
            return Vec::new();
        }
        take(ptr, size).unwrap_or_default()
    }
}

/// The first value of one header.
pub fn header_value(map: MapType, name: &str) -> Option<Vec<u8>> {
    let (mut ptr, mut size) = (null_mut(), 0);
    // SAFETY: as in `header_map_bytes`.
    unsafe {
        if abi::proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut ptr, &mut size)
            != OK
        {
            return None;
        }
        take(ptr, size)
    }
}

/// All pairs of a header map (call-out response headers).
pub fn header_pairs(map: MapType) -> Vec<(String, Vec<u8>)> {
    meshwake_core::headers::decode_map(&header_map_bytes(map))
}

/// Replace (or add) one header.
pub fn set_header(map: MapType, name: &str, value: &[u8]) {
    // SAFETY: both slices outlive the call; the host copies them.
    unsafe {
        abi::proxy_replace_header_map_value(
            map,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        );
    }
}

/// Remove every value of one header.
pub fn remove_header(map: MapType, name: &str) {
    // SAFETY: as in `set_header`.
    unsafe {
        abi::proxy_remove_header_map_value(map, name.as_ptr(), name.len());
    }
}

/// A property's raw bytes. The path is serialized on the stack (parts joined by NUL):
/// one read, no allocation but the value the host writes.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    let mut buf = [0u8; MAX_PROPERTY_PATH];
    let mut len = 0;
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(len)? = 0;
            len += 1;
        }
        let end = len.checked_add(part.len())?;
        buf.get_mut(len..end)?.copy_from_slice(part.as_bytes());
        len = end;
    }
    let path = buf.get(..len)?;
    let (mut ptr, mut size) = (null_mut(), 0);
    // SAFETY: as in `header_map_bytes`.
    unsafe {
        if abi::proxy_get_property(path.as_ptr(), path.len(), &mut ptr, &mut size) != OK {
            return None;
        }
        take(ptr, size)
    }
}

/// Longest property path serialized (Envoy's are under 64 bytes).
const MAX_PROPERTY_PATH: usize = 256;

/// Host time in nanoseconds since the Unix epoch (0 if the host cannot say).
pub fn now_ns() -> u64 {
    let mut t = 0u64;
    // SAFETY: the host writes one u64.
    if unsafe { abi::proxy_get_current_time_nanoseconds(&mut t) } != OK {
        return 0;
    }
    t
}

/// Up to `max` bytes of a buffer from `start`.
pub fn buffer(kind: BufferType, start: usize, max: usize) -> Option<Vec<u8>> {
    let (mut ptr, mut size) = (null_mut(), 0);
    // SAFETY: as in `header_map_bytes`.
    unsafe {
        if abi::proxy_get_buffer_bytes(kind, start, max, &mut ptr, &mut size) != OK {
            return None;
        }
        take(ptr, size)
    }
}

/// A shared-data value (shared by the VMs of this plugin on every worker).
pub fn shared_data(key: &str) -> Option<Vec<u8>> {
    let (mut ptr, mut size, mut cas) = (null_mut(), 0, 0);
    // SAFETY: as in `header_map_bytes`.
    unsafe {
        if abi::proxy_get_shared_data(key.as_ptr(), key.len(), &mut ptr, &mut size, &mut cas) != OK
        {
            return None;
        }
        take(ptr, size)
    }
}

/// Store a shared-data value; `true` when stored.
pub fn set_shared_data(key: &str, value: &[u8]) -> bool {
    // SAFETY: both slices outlive the call; the host copies them. cas 0: unconditional.
    unsafe {
        abi::proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), 0) == OK
    }
}

/// Define a metric; 0 when the host refuses (updates of id 0 are skipped by callers).
pub fn define_metric(kind: MetricType, name: &str) -> u32 {
    let mut id = 0;
    // SAFETY: the name outlives the call; the host writes one u32.
    if unsafe { abi::proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) } != OK {
        return 0;
    }
    id
}

pub fn increment_metric(id: u32, by: i64) {
    // SAFETY: plain values.
    unsafe {
        abi::proxy_increment_metric(id, by);
    }
}

pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain values.
    unsafe {
        abi::proxy_record_metric(id, value);
    }
}

/// Call the host every `ms` milliseconds on `proxy_on_tick` (of the root context this
/// runs for).
pub fn set_tick_period(ms: u64) {
    // SAFETY: a plain value.
    unsafe {
        abi::proxy_set_tick_period_milliseconds(u32::try_from(ms).unwrap_or(u32::MAX));
    }
}

/// Make the rest of this callback's host calls as context `id` (a root context: its export
/// calls are then answered to it, not to the stream that made them). False if the host has
/// no such context.
pub fn act_as(id: u32) -> bool {
    // SAFETY: a plain value.
    unsafe { abi::proxy_set_effective_context(id) == OK }
}

/// Send an HTTP request to an Envoy cluster; the token of the call, `None` if refused.
pub fn http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Option<u32> {
    let headers = meshwake_core::headers::encode_map(headers);
    let mut token = 0;
    // SAFETY: all slices outlive the call; the host copies them and writes one u32.
    let status = unsafe {
        abi::proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            [].as_ptr(),
            0,
            u32::try_from(timeout_ms).unwrap_or(u32::MAX),
            &mut token,
        )
    };
    (status == OK).then_some(token)
}

/// One line in Envoy's log.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the message outlives the call; the host copies it.
    unsafe {
        abi::proxy_log(level, message.as_ptr(), message.len());
    }
}

/// The `log` crate's records go to Envoy's log (the module's `log::info!` and friends).
struct EnvoyLogger;

impl log::Log for EnvoyLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

static LOGGER: EnvoyLogger = EnvoyLogger;

/// Route `log` records at `level` and above to Envoy (once per VM).
pub fn init_logging(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Envoy node metadata, for identity resolution.
pub struct NodeMetadata;

impl meshwake_identity::NodeMetadata for NodeMetadata {
    fn get(&self, path: &[&str]) -> Option<String> {
        let mut full = meshwake_core::envoy::property::NODE_METADATA.to_vec();
        full.extend_from_slice(path);
        let b = property(&full)?;
        // Strings are raw bytes; anything else (maps, numbers) is not an identity value.
        let s = String::from_utf8(b).ok()?;
        (!s.is_empty() && s.chars().all(|c| !c.is_control())).then_some(s)
    }
}

/// 32 bytes of seed for the id generator: WASI `random_get` (Envoy implements it with its
/// own random generator), mixed with the clock so a broken source still differs per VM.
pub fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    #[cfg(target_os = "wasi")]
    {
        if getrandom::fill(&mut seed).is_err() {
            log(
                LogLevel::Error,
                "meshwake: random_get failed; ids seeded from the clock",
            );
        }
    }
    for (i, b) in now_ns().to_le_bytes().iter().enumerate() {
        if let Some(s) = seed.get_mut(i + 24) {
            *s ^= b;
        }
    }
    seed
}
