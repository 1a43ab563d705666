//! What `meshwake collect` does with a protobuf `POST /v1/traces` body: the analysis ingest
//! and the collector's row decoder (included from tool/cli). Never panics on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../tool/cli/src/analysis_bridge.rs"]
mod analysis_bridge;
#[allow(dead_code, unused_imports)]
#[path = "../../tool/cli/src/otlp.rs"]
mod otlp;

fuzz_target!(|data: &[u8]| {
    let a = meshwake_analysis::from_otlp_proto(data);
    let b = otlp::rows_from_protobuf(data);
    assert_eq!(a.is_ok(), b.is_ok());
});
