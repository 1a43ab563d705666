//! What `meshwake collect` does with an OTLP/JSON `POST /v1/traces` body: the analysis ingest
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
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = meshwake_analysis::from_otlp_json(text);
    }
    let _ = otlp::rows_from_json(data);
});
