//! W3C `traceparent`: never panics; whatever parses formats back to an equal context.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_trace_context::{traceparent, TraceFlags};

fuzz_target!(|data: &[u8]| {
    if let Ok(tp) = traceparent::parse(data) {
        assert!(tp.trace_id.is_valid() && tp.parent_id.is_valid());
        let out = traceparent::format(&tp.trace_id, &tp.parent_id, tp.flags);
        assert_eq!(out.len(), traceparent::TRACEPARENT_V00_LEN);
        let again = traceparent::parse(out.as_bytes()).expect("own output parses");
        assert_eq!((again.trace_id, again.parent_id), (tp.trace_id, tp.parent_id));
        assert_eq!(again.flags.0, tp.flags.0 & TraceFlags::KNOWN);
    }
});
