//! Zipkin B3 propagation, single (`b3`) and multi (`x-b3-*`) header forms.
//!
//! <https://github.com/openzipkin/b3-propagation>

use crate::error::B3Error;
use crate::hex;
use crate::types::{SpanContext, SpanId, TraceFlags, TraceId};

/// Single-header name.
pub const B3_HEADER: &str = "b3";
/// Multi-header trace id (16 or 32 lower-hex).
pub const X_B3_TRACE_ID: &str = "x-b3-traceid";
/// Multi-header span id (16 lower-hex).
pub const X_B3_SPAN_ID: &str = "x-b3-spanid";
/// Multi-header parent span id (16 lower-hex), absent on root spans.
pub const X_B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
/// Multi-header sampling decision: `1`/`0` (`true`/`false` accepted from old tracers).
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// Multi-header debug flag: `1` means debug (which implies accept).
pub const X_B3_FLAGS: &str = "x-b3-flags";
/// Every multi-header name.
pub const B3_MULTI_HEADERS: [&str; 5] = [
    X_B3_TRACE_ID,
    X_B3_SPAN_ID,
    X_B3_PARENT_SPAN_ID,
    X_B3_SAMPLED,
    X_B3_FLAGS,
];

/// Hex digits of a 64-bit trace id.
pub const TRACE_ID_64_HEX_LEN: usize = 16;
/// Hex digits of a 128-bit trace id.
pub const TRACE_ID_128_HEX_LEN: usize = 32;
/// Most `-`-separated fields in the single header.
pub const MAX_SINGLE_FIELDS: usize = 4;

/// B3 sampling state.
/// <https://github.com/openzipkin/b3-propagation#sampling-state>
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Sampling {
    /// `0`: do not record.
    Deny,
    /// `1`: record.
    Accept,
    /// `d`: debug, record and never drop downstream.
    Debug,
}

impl B3Sampling {
    /// Accept or debug.
    pub fn is_sampled(self) -> bool {
        !matches!(self, Self::Deny)
    }

    fn single_char(self) -> char {
        match self {
            Self::Deny => '0',
            Self::Accept => '1',
            Self::Debug => 'd',
        }
    }
}

/// B3 ids and sampling state. `sampling: None` means the decision is deferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B3Context {
    /// Trace id; 64-bit ids are left-padded with zeros.
    pub trace_id: TraceId,
    /// The caller's span id.
    pub span_id: SpanId,
    /// The caller's parent span id, if sent.
    pub parent_span_id: Option<SpanId>,
    /// Sampling state, `None` = deferred.
    pub sampling: Option<B3Sampling>,
}

/// What a B3 header carries: ids, or only a sampling decision (`b3: 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3 {
    /// A full context.
    Context(B3Context),
    /// Only a sampling decision, no ids.
    SamplingOnly(B3Sampling),
}

impl B3Context {
    /// The span context (sampled flag set for accept and debug; empty `tracestate`).
    pub fn to_span_context(&self) -> SpanContext {
        let sampled = self.sampling.is_some_and(B3Sampling::is_sampled);
        SpanContext::new(
            self.trace_id,
            self.span_id,
            TraceFlags::default().with_sampled(sampled),
        )
    }

    /// B3 form of `ctx`; `debug` upgrades a sampled context to `d`.
    pub fn from_span_context(
        ctx: &SpanContext,
        parent_span_id: Option<SpanId>,
        debug: bool,
    ) -> Self {
        let sampling = match (ctx.is_sampled(), debug) {
            (_, true) => B3Sampling::Debug,
            (true, false) => B3Sampling::Accept,
            (false, false) => B3Sampling::Deny,
        };
        Self {
            trace_id: ctx.trace_id,
            span_id: ctx.span_id,
            parent_span_id,
            sampling: Some(sampling),
        }
    }
}

fn parse_trace_id(s: &[u8]) -> Result<TraceId, B3Error> {
    let id = match s.len() {
        TRACE_ID_128_HEX_LEN => hex::decode::<16>(s).map(TraceId),
        TRACE_ID_64_HEX_LEN => {
            hex::decode::<8>(s).map(|b| TraceId::from_u64(u64::from_be_bytes(b)))
        }
        _ => None,
    }
    .ok_or(B3Error::InvalidTraceId)?;
    if id.is_valid() {
        Ok(id)
    } else {
        Err(B3Error::ZeroTraceId)
    }
}

fn parse_span_id(s: &[u8]) -> Result<SpanId, B3Error> {
    let id = SpanId::from_hex_bytes(s).ok_or(B3Error::InvalidSpanId)?;
    if id.is_valid() {
        Ok(id)
    } else {
        Err(B3Error::ZeroSpanId)
    }
}

fn parse_parent(s: &[u8]) -> Result<SpanId, B3Error> {
    SpanId::from_hex_bytes(s)
        .filter(SpanId::is_valid)
        .ok_or(B3Error::InvalidParentSpanId)
}

fn parse_single_sampling(s: &[u8]) -> Result<B3Sampling, B3Error> {
    match s {
        b"0" => Ok(B3Sampling::Deny),
        b"1" => Ok(B3Sampling::Accept),
        b"d" => Ok(B3Sampling::Debug),
        _ => Err(B3Error::InvalidSampling),
    }
}

/// Parses the single `b3` header: `{traceid}-{spanid}[-{sampling}[-{parentspanid}]]`
/// or just `{sampling}`.
/// <https://github.com/openzipkin/b3-propagation#single-header>
pub fn parse_single(value: &[u8]) -> Result<B3, B3Error> {
    let value = crate::trim_ows(value);
    if value.len() == 1 {
        return parse_single_sampling(value).map(B3::SamplingOnly);
    }
    let mut fields = value.split(|&c| c == b'-');
    let trace_id = parse_trace_id(fields.next().unwrap_or_default())?;
    let span_id = parse_span_id(fields.next().ok_or(B3Error::InvalidSpanId)?)?;
    let sampling = fields.next().map(parse_single_sampling).transpose()?;
    let parent_span_id = fields.next().map(parse_parent).transpose()?;
    if fields.next().is_some() {
        return Err(B3Error::TooManyFields);
    }
    Ok(B3::Context(B3Context {
        trace_id,
        span_id,
        parent_span_id,
        sampling,
    }))
}

/// Raw values of the `x-b3-*` headers, as received.
#[derive(Clone, Copy, Debug, Default)]
pub struct B3MultiValues<'a> {
    /// `x-b3-traceid`
    pub trace_id: Option<&'a [u8]>,
    /// `x-b3-spanid`
    pub span_id: Option<&'a [u8]>,
    /// `x-b3-parentspanid`
    pub parent_span_id: Option<&'a [u8]>,
    /// `x-b3-sampled`
    pub sampled: Option<&'a [u8]>,
    /// `x-b3-flags`
    pub flags: Option<&'a [u8]>,
}

/// Parses the `x-b3-*` headers; `Ok(None)` when none of them is present.
/// <https://github.com/openzipkin/b3-propagation#multiple-headers>
pub fn parse_multi(v: &B3MultiValues<'_>) -> Result<Option<B3>, B3Error> {
    fn trim(o: Option<&[u8]>) -> Option<&[u8]> {
        o.map(crate::trim_ows)
    }
    let sampled = match trim(v.sampled) {
        None => None,
        Some(b"1") | Some(b"true") => Some(B3Sampling::Accept),
        Some(b"0") | Some(b"false") => Some(B3Sampling::Deny),
        Some(_) => return Err(B3Error::InvalidSampling),
    };
    let debug = match trim(v.flags) {
        None | Some(b"0") => false,
        Some(b"1") => true,
        Some(_) => return Err(B3Error::InvalidFlags),
    };
    // Debug implies accept and wins over X-B3-Sampled.
    let sampling = if debug {
        Some(B3Sampling::Debug)
    } else {
        sampled
    };
    match (trim(v.trace_id), trim(v.span_id)) {
        (None, None) => Ok(sampling.map(B3::SamplingOnly)),
        (Some(t), Some(s)) => Ok(Some(B3::Context(B3Context {
            trace_id: parse_trace_id(t)?,
            span_id: parse_span_id(s)?,
            parent_span_id: trim(v.parent_span_id).map(parse_parent).transpose()?,
            sampling,
        }))),
        _ => Err(B3Error::MissingId),
    }
}

/// Formats the single header (128-bit trace id). The parent is only written
/// with a sampling state, as the grammar requires.
pub fn format_single(ctx: &B3Context) -> String {
    let mut s = String::with_capacity(TRACE_ID_128_HEX_LEN + 1 + 16 + 2 + 17);
    hex::encode_into(&ctx.trace_id.0, &mut s);
    s.push('-');
    hex::encode_into(&ctx.span_id.0, &mut s);
    if let Some(sampling) = ctx.sampling {
        s.push('-');
        s.push(sampling.single_char());
        if let Some(parent) = ctx.parent_span_id {
            s.push('-');
            hex::encode_into(&parent.0, &mut s);
        }
    }
    s
}

/// Formats the multi headers. Debug is sent as `x-b3-flags: 1` without `x-b3-sampled`.
pub fn format_multi(ctx: &B3Context) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (X_B3_TRACE_ID, ctx.trace_id.to_hex()),
        (X_B3_SPAN_ID, ctx.span_id.to_hex()),
    ];
    if let Some(parent) = ctx.parent_span_id {
        out.push((X_B3_PARENT_SPAN_ID, parent.to_hex()));
    }
    match ctx.sampling {
        Some(B3Sampling::Debug) => out.push((X_B3_FLAGS, "1".into())),
        Some(B3Sampling::Accept) => out.push((X_B3_SAMPLED, "1".into())),
        Some(B3Sampling::Deny) => out.push((X_B3_SAMPLED, "0".into())),
        None => {}
    }
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;
    use B3Error as E;
    use B3Sampling::{Accept, Debug, Deny};

    const T128: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const T64: &str = "0000000000000000463ac35c9f6413ad";
    const SID: &str = "e457b5a2e4d86bd1";
    const PID: &str = "05e3ac9a4f6e3b90";

    fn ctx(t: &str, s: &str, p: Option<&str>, sampling: Option<B3Sampling>) -> B3 {
        B3::Context(B3Context {
            trace_id: TraceId::from_hex(t).unwrap(),
            span_id: SpanId::from_hex(s).unwrap(),
            parent_span_id: p.map(|p| SpanId::from_hex(p).unwrap()),
            sampling,
        })
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn single_table() {
        #[rustfmt::skip]
        let cases: Vec<(&str, Result<B3, E>)> = vec![
            // openzipkin/b3-propagation README examples
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", Ok(ctx(T128, SID, Some(PID), Some(Accept)))),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1", Ok(ctx(T128, SID, None, Some(Accept)))),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d", Ok(ctx(T128, SID, None, Some(Debug)))),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0", Ok(ctx(T128, SID, None, Some(Deny)))),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", Ok(ctx(T128, SID, None, None))),
            ("463ac35c9f6413ad-e457b5a2e4d86bd1-1", Ok(ctx(T64, SID, None, Some(Accept)))),
            ("0", Ok(B3::SamplingOnly(Deny))),
            ("1", Ok(B3::SamplingOnly(Accept))),
            ("d", Ok(B3::SamplingOnly(Debug))),
            (" 1 ", Ok(B3::SamplingOnly(Accept))),
            // errors
            ("2", Err(E::InvalidSampling)),
            ("", Err(E::InvalidTraceId)),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-true", Err(E::InvalidSampling)),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2", Err(E::InvalidSampling)),
            ("80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1-1", Err(E::InvalidTraceId)),
            ("80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1-1", Err(E::InvalidTraceId)),
            ("463ac35c9f6413a-e457b5a2e4d86bd1-1", Err(E::InvalidTraceId)),
            ("00000000000000000000000000000000-e457b5a2e4d86bd1-1", Err(E::ZeroTraceId)),
            ("0000000000000000-e457b5a2e4d86bd1-1", Err(E::ZeroTraceId)),
            ("80f198ee56343ba864fe8b2a57d3eff7", Err(E::InvalidSpanId)),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd", Err(E::InvalidSpanId)),
            ("80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1", Err(E::ZeroSpanId)),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-0000000000000000", Err(E::InvalidParentSpanId)),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9", Err(E::InvalidParentSpanId)),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x", Err(E::TooManyFields)),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-", Err(E::InvalidParentSpanId)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_single(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(parse_single(b"\xff\xfe-\x00"), Err(E::InvalidTraceId));
        assert_eq!(parse_single(&vec![b'-'; 1 << 20]), Err(E::InvalidTraceId));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn multi_table() {
        type Row<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Result<Option<B3>, E>,
        );
        #[rustfmt::skip]
        let cases: Vec<Row> = vec![
            // trace, span, parent, sampled, flags -> result
            (Some(T128), Some(SID), Some(PID), Some("1"), None, Ok(Some(ctx(T128, SID, Some(PID), Some(Accept))))),
            (Some("463ac35c9f6413ad"), Some(SID), None, Some("0"), None, Ok(Some(ctx(T64, SID, None, Some(Deny))))),
            (Some(T128), Some(SID), None, Some("true"), None, Ok(Some(ctx(T128, SID, None, Some(Accept))))),
            (Some(T128), Some(SID), None, Some("false"), None, Ok(Some(ctx(T128, SID, None, Some(Deny))))),
            (Some(T128), Some(SID), None, Some("0"), Some("1"), Ok(Some(ctx(T128, SID, None, Some(Debug))))),
            (Some(T128), Some(SID), None, None, Some("0"), Ok(Some(ctx(T128, SID, None, None)))),
            (Some(T128), Some(SID), None, None, None, Ok(Some(ctx(T128, SID, None, None)))),
            (None, None, None, Some("0"), None, Ok(Some(B3::SamplingOnly(Deny)))),
            (None, None, None, None, Some("1"), Ok(Some(B3::SamplingOnly(Debug)))),
            (None, None, None, None, None, Ok(None)),
            (Some(T128), None, None, Some("1"), None, Err(E::MissingId)),
            (None, Some(SID), None, Some("1"), None, Err(E::MissingId)),
            (Some(T128), Some(SID), None, Some("yes"), None, Err(E::InvalidSampling)),
            (Some(T128), Some(SID), None, Some("d"), None, Err(E::InvalidSampling)),
            (Some(T128), Some(SID), None, None, Some("2"), Err(E::InvalidFlags)),
            (Some(T128), Some(SID), Some("zz"), Some("1"), None, Err(E::InvalidParentSpanId)),
            (Some("x"), Some(SID), None, None, None, Err(E::InvalidTraceId)),
        ];
        for (t, s, p, sampled, flags, expected) in cases {
            let b = |o: Option<&'static str>| o.map(str::as_bytes);
            let v = B3MultiValues {
                trace_id: b(t),
                span_id: b(s),
                parent_span_id: b(p),
                sampled: b(sampled),
                flags: b(flags),
            };
            assert_eq!(parse_multi(&v), expected, "{v:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn format_table() {
        let unwrap = |b: B3| match b {
            B3::Context(c) => c,
            B3::SamplingOnly(_) => unreachable!(),
        };
        #[rustfmt::skip]
        let cases: Vec<(B3, &str, Vec<(&str, &str)>)> = vec![
            (ctx(T128, SID, Some(PID), Some(Accept)),
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
                vec![(X_B3_TRACE_ID, T128), (X_B3_SPAN_ID, SID), (X_B3_PARENT_SPAN_ID, PID), (X_B3_SAMPLED, "1")]),
            (ctx(T64, SID, None, Some(Debug)),
                "0000000000000000463ac35c9f6413ad-e457b5a2e4d86bd1-d",
                vec![(X_B3_TRACE_ID, T64), (X_B3_SPAN_ID, SID), (X_B3_FLAGS, "1")]),
            (ctx(T128, SID, None, Some(Deny)),
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0",
                vec![(X_B3_TRACE_ID, T128), (X_B3_SPAN_ID, SID), (X_B3_SAMPLED, "0")]),
            (ctx(T128, SID, Some(PID), None),
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1",
                vec![(X_B3_TRACE_ID, T128), (X_B3_SPAN_ID, SID), (X_B3_PARENT_SPAN_ID, PID)]),
        ];
        for (b3, single, multi) in cases {
            let c = unwrap(b3);
            assert_eq!(format_single(&c), single);
            let got = format_multi(&c);
            let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(got, multi);
            if c.parent_span_id.is_none() || c.sampling.is_some() {
                assert_eq!(parse_single(single.as_bytes()), Ok(B3::Context(c)));
            }
        }
        let sc = unwrap(ctx(T128, SID, None, Some(Accept))).to_span_context();
        assert!(sc.is_sampled());
        assert_eq!(
            B3Context::from_span_context(&sc, None, true).sampling,
            Some(Debug)
        );
        assert_eq!(
            B3Context::from_span_context(&sc.clone(), None, false).sampling,
            Some(Accept)
        );
    }
}
