//! Host access that cannot panic: the SDK's map getters unwrap on non-UTF-8 names, so header
//! maps are fetched through the raw ABI call and decoded by `meshwake_core::headers`.
use meshwake_core::headers::decode_map;
use proxy_wasm::types::{MapType, Status};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
}

/// All pairs of a header map (request/response headers, call-out response headers).
pub fn header_pairs(map: MapType) -> Vec<(String, Vec<u8>)> {
    decode_map(&header_map_bytes(map))
}

/// A header map in the host's serialized layout, to decode with
/// `meshwake_core::headers::decode_map_borrowed` (no copy per header); empty on error.
pub fn header_map_bytes(map: MapType) -> Vec<u8> {
    let mut ptr: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a buffer it allocated through our `proxy_on_memory_allocate`
    // (the SDK's Vec allocator), which we take ownership of exactly once.
    unsafe {
        if proxy_get_header_map_pairs(map, &mut ptr, &mut size) != Status::Ok
            || ptr.is_null()
            || size == 0
        {
            return Vec::new();
        }
        Vec::from_raw_parts(ptr, size, size)
    }
}

/// A property's raw bytes. The path is serialized on the stack (parts joined by NUL, as
/// the SDK's `get_property` does in a new `Vec` per call): one read, no allocation but the
/// value the host writes.
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
    let mut ptr: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `header_map_bytes`: on success the host hands over a buffer it
    // allocated through our `proxy_on_memory_allocate`, owned here exactly once.
    unsafe {
        if proxy_get_property(path.as_ptr(), path.len(), &mut ptr, &mut size) != Status::Ok
            || ptr.is_null()
        {
            return None;
        }
        Some(Vec::from_raw_parts(ptr, size, size))
    }
}

/// Longest property path serialized (Envoy's are under 64 bytes).
const MAX_PROPERTY_PATH: usize = 256;

/// Host time in nanoseconds since the Unix epoch (0 if the host cannot say).
pub fn now_ns() -> u64 {
    proxy_wasm::hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Envoy node metadata, for identity resolution.
pub struct NodeMetadata;

impl meshwake_identity::NodeMetadata for NodeMetadata {
    fn get(&self, path: &[&str]) -> Option<String> {
        let mut full = meshwake_core::envoy::property::NODE_METADATA.to_vec();
        full.extend_from_slice(path);
        let b = proxy_wasm::hostcalls::get_property(full).ok().flatten()?;
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
            proxy_wasm::hostcalls::log(
                proxy_wasm::types::LogLevel::Error,
                "meshwake: random_get failed; ids seeded from the clock",
            )
            .ok();
        }
    }
    for (i, b) in now_ns().to_le_bytes().iter().enumerate() {
        if let Some(s) = seed.get_mut(i + 24) {
            *s ^= b;
        }
    }
    seed
}
