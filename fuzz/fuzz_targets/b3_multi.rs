//! Zipkin B3 multi headers (`x-b3-*`): never panics; a parsed context formats and parses
//! back to the same ids. Input: `name: value` lines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_trace_context::b3::{self, B3MultiValues, B3};

fn values<'a>(h: &'a [(String, Vec<u8>)]) -> B3MultiValues<'a> {
    let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_slice());
    B3MultiValues {
        trace_id: get("x-b3-traceid"),
        span_id: get("x-b3-spanid"),
        parent_span_id: get("x-b3-parentspanid"),
        sampled: get("x-b3-sampled"),
        flags: get("x-b3-flags"),
    }
}

fuzz_target!(|data: &[u8]| {
    let h = meshwake_fuzz::header_lines(data);
    if let Ok(Some(B3::Context(ctx))) = b3::parse_multi(&values(&h)) {
        let out: Vec<(String, Vec<u8>)> = b3::format_multi(&ctx)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_bytes()))
            .collect();
        match b3::parse_multi(&values(&out)) {
            Ok(Some(B3::Context(c))) => assert_eq!((c.trace_id, c.span_id), (ctx.trace_id, ctx.span_id)),
            other => panic!("own output {out:?} parsed as {other:?}"),
        }
    }
});
