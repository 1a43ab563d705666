//! Edge trust helpers: at the mesh edge, entries that claim to come from this mesh
//! arrive from outside and cannot be trusted, so the edge role drops them.

use crate::baggage::Baggage;
use crate::tracestate::TraceState;

/// Removes this mesh's `tracestate` entry (`key`); returns whether one was there.
pub fn drop_own_tracestate(ts: &mut TraceState, key: &str) -> bool {
    ts.remove_keys_where(|k| k == key) > 0
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
}
