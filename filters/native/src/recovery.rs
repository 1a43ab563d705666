//! Context-recovery slots, process-wide: the native stand-in for proxy-wasm shared data, so
//! the inbound and outbound listeners of one sidecar (two filter configurations, any worker
//! thread) see the same entries. Keys are `meshwake_core::recovery::slot_key` values, so
//! the table holds at most `slots` entries per kind; [`MAX_ENTRIES`] bounds it whatever the
//! configurations say.
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Two kinds (`t`, `r`) of the largest slot count a configuration may ask for.
pub const MAX_ENTRIES: usize = 2 * meshwake_core::config::limits::MAX_RECOVERY_SLOTS as usize;

fn table() -> &'static Mutex<HashMap<String, Vec<u8>>> {
    static TABLE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The entry in slot `key`, copied.
pub fn get(key: &str) -> Option<Vec<u8>> {
    table().lock().ok()?.get(key).cloned()
}

/// Store `value` in slot `key` (overwriting: a collision replaces the older entry). False
/// when the table is full and `key` is new, or the lock is poisoned.
pub fn put(key: String, value: Vec<u8>) -> bool {
    let Ok(mut t) = table().lock() else {
        return false;
    };
    if t.len() >= MAX_ENTRIES && !t.contains_key(&key) {
        return false;
    }
    t.insert(key, value);
    true
}
