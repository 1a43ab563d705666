//! `meshwake demo --topology FILE`: the YAML topology parser and its validation (included
//! from tool/cli). Never panics; a valid topology lists its workloads.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../tool/cli/src/demo/topology.rs"]
mod topology;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = topology::Topology::parse(text) {
            let _ = t.workloads();
        }
    }
});
