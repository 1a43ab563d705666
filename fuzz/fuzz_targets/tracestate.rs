//! W3C `tracestate` (one or several header values): never panics; whatever parses is
//! within the limits, serializes to what `header_len` says and parses back equal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_trace_context::TraceState;

fuzz_target!(|data: &[u8]| {
    // A NUL byte separates header values (a request may carry several `tracestate` lines).
    let values: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    if let Ok(mut ts) = TraceState::parse_values(&values) {
        assert!(ts.len() <= 32);
        let h = ts.to_header();
        assert_eq!(h.len(), ts.header_len());
        assert_eq!(TraceState::parse(h.as_bytes()).as_ref(), Ok(&ts));
        let _ = ts.upsert("meshwake", "x");
        assert!(ts.len() <= 32);
        ts.truncate(512);
        assert!(ts.header_len() <= 512, "{}", ts.header_len());
        assert_eq!(ts.to_header().len(), ts.header_len());
    }
});
