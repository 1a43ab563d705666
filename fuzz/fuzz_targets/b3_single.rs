//! Zipkin B3 single header: never panics; a parsed context formats and parses back equal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_trace_context::b3::{self, B3};

fuzz_target!(|data: &[u8]| {
    if let Ok(B3::Context(ctx)) = b3::parse_single(data) {
        let out = b3::format_single(&ctx);
        match b3::parse_single(out.as_bytes()) {
            Ok(B3::Context(again)) => {
                assert_eq!((again.trace_id, again.span_id), (ctx.trace_id, ctx.span_id));
            }
            other => panic!("own output {out:?} parsed as {other:?}"),
        }
        let _ = b3::format_multi(&ctx);
        let _ = ctx.to_span_context();
    }
});
