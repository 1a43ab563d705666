#![doc = r#"
W3C Trace Context, W3C Baggage and B3 propagation, sampling and id generation.

Plain Rust with no proxy-wasm dependency, no I/O, no clock and no OS randomness, so it
builds for `wasm32-unknown-unknown` and `wasm32-wasip1` and is tested natively.
Parsers take raw header bytes (`&[u8]`), never panic and report one error variant per
failure.

| module | concern |
| --- | --- |
| [`types`] | [`TraceId`], [`SpanId`], [`TraceFlags`], [`SpanContext`] |
| [`traceparent`] | W3C `traceparent` (Level 1 + Level 2 `random` flag), strict parse and format |
| [`tracestate`] | W3C `tracestate`: grammar, 32-member limit, `upsert`, 512-char truncation |
| [`baggage`] | W3C `baggage`: percent-decoding, 180 members / 8192 bytes limits |
| [`b3`] | Zipkin B3 single (`b3`) and multi (`x-b3-*`) headers |
| [`propagator`] | `OTEL_PROPAGATORS`-like config, [`HeaderSource`], [`extract`], [`inject`] |
| [`sampling`] | [`Sampler`]: parent-based, OpenTelemetry `TraceIdRatioBased` roots |
| [`ids`] | [`IdGenerator`]: ChaCha8 CSPRNG seeded by the caller, [`RandomSource`] |
| [`edge`] | edge-role helpers dropping this mesh's entries received from outside |
| [`error`] | error enums |

Typical request path:

```
use meshwake_trace_context::*;
let cfg = PropagationConfig::default();
let headers = vec![("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")];
let found = extract(&cfg, &headers);
let mut ids = IdGenerator::new([42; 32]);
let parent = found.context.as_ref().map(|c| &c.span_context);
let trace_id = parent.map(|p| p.trace_id).unwrap_or_else(|| ids.new_trace_id());
let sampled = Sampler::default().decide(&found, &trace_id);
let mut ctx = SpanContext::new(trace_id, ids.new_span_id(), TraceFlags::default().with_sampled(sampled));
if let Some(p) = parent { ctx.trace_state = p.trace_state.clone(); }
let out = inject(&ctx, &found.baggage, &cfg.inject);
assert_eq!(out.set[0].0, "traceparent");
```
"#]

pub mod b3;
pub mod baggage;
pub mod edge;
pub mod error;
mod hex;
pub mod ids;
pub mod propagator;
pub mod sampling;
pub mod traceparent;
pub mod tracestate;
pub mod types;

pub use b3::{B3Context, B3Sampling, B3};
pub use baggage::{Baggage, BaggageMember, BaggageReport};
pub use edge::{drop_own_baggage, drop_own_tracestate, mark_mesh_debug, mesh_debug};
pub use error::{B3Error, BaggageError, ExtractError, TraceStateError, TraceparentError};
pub use ids::{IdGenerator, RandomSource};
pub use propagator::{
    extract, inject, inject_each, inject_with, Edit, Extracted, HeaderSource, HeaderValue,
    InjectOptions, Injection, PropagationConfig, Propagator, RemoteContext,
};
pub use sampling::{trace_id_ratio, Sampler};
pub use traceparent::Traceparent;
pub use tracestate::TraceState;
pub use types::{SpanContext, SpanId, TraceFlags, TraceId};

/// Strips HTTP optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !is_ows(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is_ows(c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn trim_ows_table() {
        #[rustfmt::skip]
        let cases: &[(&[u8], &[u8])] = &[
            (b"",          b""),
            (b" \t ",      b""),
            (b" a b\t",    b"a b"),
            (b"a",         b"a"),
            (b"\r\na\r\n", b"\r\na\r\n"),
        ];
        for (input, expected) in cases {
            assert_eq!(super::trim_ows(input), *expected);
        }
    }
}
