//! Edge trust helpers: at the mesh edge, entries that claim to come from this mesh
//! arrive from outside and cannot be trusted, so the edge role drops them.

use crate::baggage::Baggage;
use crate::tracestate::TraceState;

/// Removes this mesh's `tracestate` entry (`key`); returns whether one was there.
pub fn drop_own_tracestate(ts: &mut TraceState, key: &str) -> bool {
    ts.remove_keys_where(|k| k == key) > 0
}

/// Value of this mesh's `tracestate` entry that carries B3 debug (`X-B3-Flags: 1`, `b3: …-d`)
/// across hops where only W3C context travels: `traceparent` has no debug flag, so without it
/// debug would become plain sampled after the first W3C hop.
pub const MESH_DEBUG_VALUE: &str = "d";

/// Whether this mesh's entry (`key`) in `ts` says B3 debug.
pub fn mesh_debug(ts: &TraceState, key: &str) -> bool {
    ts.get(key) == Some(MESH_DEBUG_VALUE)
}

/// Marks B3 debug in this mesh's entry (`key`), moved to the front as a vendor that changed
/// the `traceparent` must. An invalid key (a bad configuration) leaves `ts` unchanged.
pub fn mark_mesh_debug(ts: &mut TraceState, key: &str) {
    let _ = ts.upsert(key, MESH_DEBUG_VALUE);
}

/// Removes baggage members whose key starts with `prefix` (e.g. `meshwake.`);
/// returns how many. An empty prefix removes nothing rather than everything.
pub fn drop_own_baggage(bag: &mut Baggage, prefix: &str) -> usize {
    if prefix.is_empty() {
        return 0;
    }
    bag.remove_keys_with_prefix(prefix)
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn edge_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, &str, bool, usize, &str, &str)] = &[
            // tracestate in, key, baggage in, prefix -> removed?, removed count, tracestate out, baggage out
            ("mw=abc,rojo=1", "mw", "meshwake.v=1,user=2,meshwake.peer=x", "meshwake.", true, 2, "rojo=1", "user=2"),
            ("rojo=1",        "mw", "user=2",                              "meshwake.", false, 0, "rojo=1", "user=2"),
            ("mwx=1,mw=2",    "mw", "a=1",                                 "",          true, 0, "mwx=1",  "a=1"),
        ];
        for (ts_in, key, bag_in, prefix, removed, count, ts_out, bag_out) in cases {
            let mut ts = TraceState::parse(ts_in.as_bytes()).unwrap();
            let (mut bag, _) = Baggage::parse(bag_in.as_bytes());
            assert_eq!(drop_own_tracestate(&mut ts, key), *removed);
            assert_eq!(drop_own_baggage(&mut bag, prefix), *count);
            assert_eq!(ts.to_header(), *ts_out);
            assert_eq!(bag.to_header(), *bag_out);
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn mesh_debug_entry() {
        let mut ts = TraceState::parse(b"rojo=1,mw=x").unwrap();
        assert!(!mesh_debug(&ts, "mw"));
        mark_mesh_debug(&mut ts, "mw");
        assert_eq!(ts.to_header(), "mw=d,rojo=1");
        assert!(mesh_debug(&ts, "mw") && !mesh_debug(&ts, "rojo"));
        mark_mesh_debug(&mut ts, "Bad Key");
        assert_eq!(ts.to_header(), "mw=d,rojo=1");
        assert!(drop_own_tracestate(&mut ts, "mw") && !mesh_debug(&ts, "mw"));
    }
}
