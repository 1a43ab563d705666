//! Safe wrappers over the ABI calls: every `unsafe` block of the glue is here, each with the
//! contract it relies on. A filter pointer is only used inside the hook Envoy passed it to.
use crate::abi::{self, AttributeId, EnvoyBuffer, EnvoyHttpHeader, HeaderType, LogLevel};
use crate::abi::{FilterEnvoyPtr, MetadataSource, ModuleBuffer};
use meshwake_core::json::Value;
use meshwake_trace_context::propagator::HeaderSource;

/// Most headers read from one map, as in the wasm build (`meshwake_core::headers`); Envoy's
/// own header-count limit applies first.
const MAX_HEADERS: usize = meshwake_core::headers::MAX_PAIRS;

/// Log one line under Envoy's `dynamic_modules` logger.
pub fn log(level: LogLevel, msg: &str) {
    // SAFETY: the buffer is valid for the call; Envoy copies the message.
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::new(msg.as_bytes())) }
}

/// `envoy --mode validate`: build the configuration, start nothing.
pub fn validation_mode() -> bool {
    // SAFETY: no pointers; called on the main thread (config creation) as required.
    unsafe { abi::envoy_dynamic_module_callback_is_validation_mode() }
}

/// One header map of the current stream, borrowed from Envoy for the current hook.
pub struct Headers<'a> {
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl Headers<'_> {
    /// Read the whole map once (one crossing); lookups are then in-module.
    pub fn read(filter: FilterEnvoyPtr, map: HeaderType) -> Headers<'static> {
        // SAFETY: `filter` is the pointer of the running hook; the result array has room for
        // `n` entries as the precondition of get_headers requires, and the buffers it points
        // to stay valid until the hook returns or a header is set (the glue reads all it
        // needs before writing).
        unsafe {
            let n = abi::envoy_dynamic_module_callback_http_get_headers_size(filter, map);
            if n == 0 {
                return Headers { pairs: Vec::new() };
            }
            let mut raw = vec![EnvoyHttpHeader::NULL; n];
            // Envoy fills all `n`; only the first MAX_HEADERS are looked at.
            if !abi::envoy_dynamic_module_callback_http_get_headers(filter, map, raw.as_mut_ptr()) {
                return Headers { pairs: Vec::new() };
            }
            let pairs = raw
                .iter()
                .take(MAX_HEADERS)
                .map(|h| {
                    let k = EnvoyBuffer {
                        ptr: h.key_ptr,
                        length: h.key_length,
                    };
                    let v = EnvoyBuffer {
                        ptr: h.value_ptr,
                        length: h.value_length,
                    };
                    (k.as_slice(), v.as_slice())
                })
                .collect();
            Headers { pairs }
        }
    }

    /// An empty map (a read the pipeline does not need).
    pub fn empty() -> Headers<'static> {
        Headers { pairs: Vec::new() }
    }
}

/// Envoy lower-cases header names; compared as the core's own header maps do.
fn same_name(k: &[u8], name: &str) -> bool {
    k.eq_ignore_ascii_case(name.as_bytes())
}

impl HeaderSource for Headers<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| same_name(k, name))
            .map(|(_, v)| *v)
    }
    /// Repeated headers are separate entries (a duplicated `traceparent` is invalid).
    fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.pairs
            .iter()
            .filter(|(k, _)| same_name(k, name))
            .map(|(_, v)| *v)
            .collect()
    }
}

/// The first value of header `name` (one `get_header` call: Envoy looks the name up in its
/// map), borrowed until the hook returns or a header is set; `None` if absent.
pub fn header(filter: FilterEnvoyPtr, map: HeaderType, name: &[u8]) -> Option<&'static [u8]> {
    let mut b = EnvoyBuffer::NULL;
    // SAFETY: `filter` is the running hook's pointer; `b` is a valid out buffer and the
    // optional count pointer may be null; the value stays valid as for `Headers::read`.
    unsafe {
        let found = abi::envoy_dynamic_module_callback_http_get_header(
            filter,
            map,
            ModuleBuffer::new(name),
            &mut b,
            0,
            std::ptr::null_mut(),
        );
        found.then(|| b.as_slice())
    }
}

/// Set (or with `None` remove) a header in the current stream's map.
pub fn set_header(filter: FilterEnvoyPtr, map: HeaderType, name: &str, value: Option<&[u8]>) {
    let v = value.map_or(ModuleBuffer::NULL, ModuleBuffer::new);
    // SAFETY: `filter` is the running hook's pointer; both buffers outlive the call and Envoy
    // copies them.
    unsafe {
        abi::envoy_dynamic_module_callback_http_set_header(
            filter,
            map,
            ModuleBuffer::new(name.as_bytes()),
            v,
        );
    }
}

/// An integer attribute (`response.code`, `xds.listener_direction`...).
pub fn attribute_int(filter: FilterEnvoyPtr, id: AttributeId) -> Option<i64> {
    let mut v: u64 = 0;
    // SAFETY: `filter` is the running hook's pointer; `v` is a valid out pointer.
    let ok = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_get_attribute_int(filter, id, &mut v)
    };
    ok.then(|| i64::try_from(v).unwrap_or(i64::MAX))
}

/// A string attribute, copied, at most `max` bytes, lossy UTF-8; `None` if absent or empty.
pub fn attribute_text(filter: FilterEnvoyPtr, id: AttributeId, max: usize) -> Option<String> {
    let mut b = EnvoyBuffer::NULL;
    // SAFETY: `filter` is the running hook's pointer; the result buffer is Envoy's, valid
    // until the hook returns; it is copied before that.
    unsafe {
        if !abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(filter, id, &mut b)
        {
            return None;
        }
        let s = meshwake_core::envoy::text(b.as_slice(), max);
        (!s.is_empty()).then_some(s)
    }
}

/// A string from the upstream host's metadata (`filter_metadata.<ns>.<key>`).
pub fn host_metadata(filter: FilterEnvoyPtr, ns: &str, key: &str, max: usize) -> Option<String> {
    let mut b = EnvoyBuffer::NULL;
    // SAFETY: as for `attribute_text`.
    unsafe {
        if !abi::envoy_dynamic_module_callback_http_get_metadata_string(
            filter,
            MetadataSource::Host,
            ModuleBuffer::new(ns.as_bytes()),
            ModuleBuffer::new(key.as_bytes()),
            &mut b,
        ) {
            return None;
        }
        let s = meshwake_core::envoy::text(b.as_slice(), max);
        (!s.is_empty()).then_some(s)
    }
}

/// Wall-clock time in nanoseconds since the Unix epoch (0 if the clock is before it).
/// Native code reads the clock directly: no host call to price.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// 32 bytes of seed for an id generator: the kernel's randomness, mixed with the clock and
/// the thread so a failed read still differs per thread.
pub fn seed() -> [u8; 32] {
    use std::io::Read;
    let mut seed = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
    if read.is_err() {
        log(
            LogLevel::Error,
            "meshwake: /dev/urandom unreadable; ids seeded from the clock",
        );
    }
    let tid = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::thread::current().id().hash(&mut h);
        h.finish()
    };
    let mix = now_ns() ^ tid.rotate_left(32);
    for (i, b) in mix.to_le_bytes().iter().enumerate() {
        if let Some(s) = seed.get_mut(i + 24) {
            *s ^= b;
        }
    }
    seed
}

/// Envoy node metadata is not reachable through the dynamic-module ABI. Inside Istio's
/// proxy, pilot-agent passes the same facts to Envoy's environment (`ISTIO_META_*`, labels
/// as `ISTIO_METAJSON_LABELS`), which a native module can read: the identity sources of the
/// wasm build, from the process environment.
pub struct EnvNodeMetadata;

impl meshwake_identity::NodeMetadata for EnvNodeMetadata {
    fn get(&self, path: &[&str]) -> Option<String> {
        let v = match path {
            [single] => std::env::var(format!("ISTIO_META_{single}")).ok()?,
            ["LABELS", label] => {
                let raw = std::env::var("ISTIO_METAJSON_LABELS").ok()?;
                match meshwake_core::json::parse(&raw).ok()? {
                    Value::Object(kv) => match kv.into_iter().find(|(k, _)| k == label)?.1 {
                        Value::String(s) => s,
                        _ => return None,
                    },
                    _ => return None,
                }
            }
            _ => return None,
        };
        (!v.is_empty() && v.chars().all(|c| !c.is_control())).then_some(v)
    }
}
