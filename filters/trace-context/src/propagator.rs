//! Choosing, extracting and injecting propagation formats, like `OTEL_PROPAGATORS`.
//!
//! <https://opentelemetry.io/docs/specs/otel/context/api-propagators/>

use serde::{Deserialize, Serialize};

use crate::b3::{self, B3MultiValues, B3Sampling, B3};
use crate::baggage::{Baggage, BAGGAGE_HEADER};
use crate::error::ExtractError;
use crate::traceparent::{self, TRACEPARENT_HEADER};
use crate::tracestate::{self, TraceState, TRACESTATE_HEADER};
use crate::types::{SpanContext, SpanId, TraceFlags};

/// One propagation format; names as in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Propagator {
    /// W3C `traceparent` + `tracestate`.
    #[serde(rename = "tracecontext")]
    TraceContext,
    /// W3C `baggage`.
    #[serde(rename = "baggage")]
    Baggage,
    /// Zipkin single header `b3`.
    #[serde(rename = "b3")]
    B3Single,
    /// Zipkin multi headers `x-b3-*`.
    #[serde(rename = "b3multi")]
    B3Multi,
}

/// Which formats to read (in priority order) and which to write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PropagationConfig {
    /// Tried in order; the first valid trace context wins.
    pub extract: Vec<Propagator>,
    /// Written on outgoing requests.
    pub inject: Vec<Propagator>,
}

impl Default for PropagationConfig {
    /// Read everything (W3C first), write W3C only.
    fn default() -> Self {
        use Propagator::*;
        Self {
            extract: vec![TraceContext, B3Multi, B3Single, Baggage],
            inject: vec![TraceContext, Baggage],
        }
    }
}

/// Read access to request headers. Names are asked in lower case.
pub trait HeaderSource {
    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&[u8]>;
    /// Every value of `name`, in order.
    fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.get(name).into_iter().collect()
    }
    /// How many values `name` has (without collecting them).
    fn count(&self, name: &str) -> usize {
        self.get_all(name).len()
    }
    /// Whether any of `names` is present: one question for a family of headers that is
    /// usually absent (B3 in a W3C mesh), instead of one call per name.
    fn has_any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.get(n).is_some())
    }
}

/// The trace headers [`inject_each`] may remove besides `traceparent`: the W3C state and
/// baggage when empty, and B3 in the formats it does not write.
pub const REMOVABLE_BESIDES_TRACEPARENT: [&str; 8] = [
    TRACESTATE_HEADER,
    BAGGAGE_HEADER,
    b3::B3_HEADER,
    b3::X_B3_TRACE_ID,
    b3::X_B3_SPAN_ID,
    b3::X_B3_PARENT_SPAN_ID,
    b3::X_B3_SAMPLED,
    b3::X_B3_FLAGS,
];

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderSource for [(K, V)] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
    fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.iter()
            .filter(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
            .collect()
    }
    fn count(&self, name: &str) -> usize {
        self.iter()
            .filter(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .count()
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> HeaderSource for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HeaderSource::get(self.as_slice(), name)
    }
    fn get_all(&self, name: &str) -> Vec<&[u8]> {
        HeaderSource::get_all(self.as_slice(), name)
    }
    fn count(&self, name: &str) -> usize {
        HeaderSource::count(self.as_slice(), name)
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> HeaderSource for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HeaderSource::get(self.as_slice(), name)
    }
    fn get_all(&self, name: &str) -> Vec<&[u8]> {
        HeaderSource::get_all(self.as_slice(), name)
    }
    fn count(&self, name: &str) -> usize {
        HeaderSource::count(self.as_slice(), name)
    }
}

/// A trace context found in the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteContext {
    /// Ids and flags; `span_id` is the caller's span (our parent). `trace_state`
    /// is filled only for [`Propagator::TraceContext`].
    pub span_context: SpanContext,
    /// The format it came from.
    pub format: Propagator,
    /// The caller's own parent (B3 `ParentSpanId`), if sent.
    pub parent_span_id: Option<SpanId>,
    /// B3 debug (`d` / `x-b3-flags: 1`): always sample.
    pub debug: bool,
    /// B3 without a sampling state: the decision is left to us.
    pub deferred: bool,
    /// It came as the request's one `traceparent`, byte for byte as [`traceparent::format`]
    /// writes this context: a hop that passes it on unchanged need not write it again.
    pub verbatim: bool,
}

/// Result of [`extract`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The first valid trace context, in configured priority order.
    pub context: Option<RemoteContext>,
    /// A B3 sampling-only decision (`b3: 0`, `x-b3-sampled` without ids), first one found.
    pub sampling_hint: Option<B3Sampling>,
    /// Baggage (empty unless [`Propagator::Baggage`] is extracted).
    pub baggage: Baggage,
    /// Everything rejected on the way (extraction never fails as a whole).
    pub errors: Vec<ExtractError>,
}

impl Extracted {
    fn set_b3(&mut self, b3: B3, format: Propagator) {
        match b3 {
            B3::Context(c) => {
                self.context = Some(RemoteContext {
                    span_context: c.to_span_context(),
                    format,
                    parent_span_id: c.parent_span_id,
                    debug: c.sampling == Some(B3Sampling::Debug),
                    deferred: c.sampling.is_none(),
                    verbatim: false,
                });
            }
            B3::SamplingOnly(s) => {
                self.sampling_hint.get_or_insert(s);
            }
        }
    }
}

fn extract_trace_context<H: HeaderSource + ?Sized>(headers: &H, out: &mut Extracted) {
    // Counted first: one value is the common case, and needs no list of values.
    let value = match headers.count(TRACEPARENT_HEADER) {
        0 => return,
        1 => match headers.get(TRACEPARENT_HEADER) {
            Some(v) => v,
            None => return,
        },
        _ => return out.errors.push(ExtractError::DuplicateTraceparent),
    };
    let tp = match traceparent::parse(value) {
        Ok(tp) => tp,
        Err(e) => return out.errors.push(ExtractError::Traceparent(e)),
    };
    let mut span_context = tp.to_span_context();
    // tracestate only counts next to a valid traceparent.
    match TraceState::parse_values(&headers.get_all(TRACESTATE_HEADER)) {
        Ok(ts) => span_context.trace_state = ts,
        Err(e) => out.errors.push(ExtractError::TraceState(e)),
    }
    // Parsing accepts only lower-case hex, so a version-00 value of exactly 55 bytes (no
    // whitespace around it) with no flag unknown to the formatter is what it would write.
    let verbatim = tp.version == traceparent::VERSION_00
        && value.len() == traceparent::TRACEPARENT_V00_LEN
        && tp.flags.0 & !TraceFlags::KNOWN == 0;
    out.context = Some(RemoteContext {
        span_context,
        format: Propagator::TraceContext,
        parent_span_id: None,
        debug: false,
        deferred: false,
        verbatim,
    });
}

/// Reads the configured formats in priority order: the first valid trace context
/// wins and later trace formats are not looked at; baggage is read independently.
pub fn extract<H: HeaderSource + ?Sized>(cfg: &PropagationConfig, headers: &H) -> Extracted {
    let mut out = Extracted::default();
    let mut baggage_done = false;
    for p in &cfg.extract {
        match p {
            Propagator::Baggage if !baggage_done => {
                baggage_done = true;
                let (bag, report) = Baggage::parse_values(&headers.get_all(BAGGAGE_HEADER));
                out.baggage = bag;
                if !report.is_clean() {
                    out.errors.push(ExtractError::Baggage {
                        invalid: report.invalid,
                        over_limit: report.over_limit,
                    });
                }
            }
            Propagator::Baggage => {}
            _ if out.context.is_some() => {}
            Propagator::TraceContext => extract_trace_context(headers, &mut out),
            Propagator::B3Single => match headers.get(b3::B3_HEADER).map(b3::parse_single) {
                None => {}
                Some(Ok(b)) => out.set_b3(b, Propagator::B3Single),
                Some(Err(e)) => out.errors.push(ExtractError::B3Single(e)),
            },
            Propagator::B3Multi if !headers.has_any(&b3::B3_MULTI_HEADERS) => {}
            Propagator::B3Multi => {
                let v = B3MultiValues {
                    trace_id: headers.get(b3::X_B3_TRACE_ID),
                    span_id: headers.get(b3::X_B3_SPAN_ID),
                    parent_span_id: headers.get(b3::X_B3_PARENT_SPAN_ID),
                    sampled: headers.get(b3::X_B3_SAMPLED),
                    flags: headers.get(b3::X_B3_FLAGS),
                };
                match b3::parse_multi(&v) {
                    Ok(None) => {}
                    Ok(Some(b)) => out.set_b3(b, Propagator::B3Multi),
                    Err(e) => out.errors.push(ExtractError::B3Multi(e)),
                }
            }
        }
    }
    out
}

/// Extra B3 details for [`inject_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectOptions {
    /// Written as B3 `ParentSpanId` (the parent of the span being propagated).
    pub parent_span_id: Option<SpanId>,
    /// Written as B3 debug when the context is sampled or not.
    pub debug: bool,
    /// The request's one `traceparent` already says exactly this context (a hop passing
    /// its caller's on): it is not formatted or set again.
    pub keep_traceparent: bool,
    /// The caller wants no removals (none of their headers is in the request, or it keeps
    /// them): none is listed, and nothing is done for them.
    pub skip_removals: bool,
}

/// Headers to write on the outgoing request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injection {
    /// Set (replace) these headers.
    pub set: Vec<(&'static str, String)>,
    /// Remove these headers: trace formats we do not inject (a stale copy would
    /// name another parent span), and our own formats' headers left empty.
    pub remove: Vec<&'static str>,
}

/// [`inject_with`] without B3 extras.
pub fn inject(ctx: &SpanContext, baggage: &Baggage, formats: &[Propagator]) -> Injection {
    inject_with(ctx, &InjectOptions::default(), baggage, formats)
}

/// The headers that carry `ctx` and `baggage` in `formats`. Ids and the sampled bit
/// are kept across formats; `tracestate` is truncated to 512 characters. Baggage
/// headers are left alone when [`Propagator::Baggage`] is not injected: they are
/// application data, not a trace position.
pub fn inject_with(
    ctx: &SpanContext,
    opts: &InjectOptions,
    baggage: &Baggage,
    formats: &[Propagator],
) -> Injection {
    let mut inj = Injection {
        set: Vec::with_capacity(4),
        remove: Vec::with_capacity(8),
    };
    inject_each(ctx, opts, baggage, formats, &mut |edit| match edit {
        Edit::Set(name, value) => inj.set.push((name, value.into_string())),
        Edit::Remove(name) => inj.remove.push(name),
    });
    inj
}

/// A header value to write: lent by its owner, built, or a `traceparent` held inline (the
/// one value every request writes: no allocation for it).
#[derive(Clone, Debug)]
pub enum HeaderValue<'a> {
    Lent(&'a str),
    Owned(String),
    Traceparent(traceparent::Text),
}

impl HeaderValue<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderValue::Lent(s) => s.as_bytes(),
            HeaderValue::Owned(s) => s.as_bytes(),
            HeaderValue::Traceparent(t) => t.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            HeaderValue::Lent(s) => s,
            HeaderValue::Owned(s) => s,
            HeaderValue::Traceparent(t) => t.as_str(),
        }
    }

    pub fn into_string(self) -> String {
        match self {
            HeaderValue::Owned(s) => s,
            other => other.as_str().to_owned(),
        }
    }
}

/// Equal when the bytes are: how a value is held does not matter.
impl PartialEq for HeaderValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for HeaderValue<'_> {}

impl<'a> From<&'a str> for HeaderValue<'a> {
    fn from(s: &'a str) -> Self {
        HeaderValue::Lent(s)
    }
}

impl From<String> for HeaderValue<'_> {
    fn from(s: String) -> Self {
        HeaderValue::Owned(s)
    }
}

/// One header edit of [`inject_each`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Set (replace) this header.
    Set(&'static str, HeaderValue<'static>),
    /// Remove this header.
    Remove(&'static str),
}

/// [`inject_with`], handing each edit, in the same order, to `edit`: no lists built.
pub fn inject_each(
    ctx: &SpanContext,
    opts: &InjectOptions,
    baggage: &Baggage,
    formats: &[Propagator],
    edit: &mut dyn FnMut(Edit),
) {
    let on = |p: Propagator| formats.contains(&p);
    // Sets come before removals in `Injection`; the order within each kind is kept. At
    // most 9 removals (traceparent, tracestate, b3, 5 multi-header B3, baggage).
    let mut removals: [Option<&'static str>; 12] = [None; 12];
    let mut removed = 0;
    let listed = !opts.skip_removals;
    let mut remove = |name: &'static str| {
        if let Some(slot) = removals.get_mut(removed).filter(|_| listed) {
            *slot = Some(name);
            removed += 1;
        }
    };
    if on(Propagator::TraceContext) {
        if !opts.keep_traceparent {
            edit(Edit::Set(
                TRACEPARENT_HEADER,
                HeaderValue::Traceparent(traceparent::format_text(
                    &ctx.trace_id,
                    &ctx.span_id,
                    ctx.flags,
                )),
            ));
        }
        if ctx.trace_state.is_empty() {
            remove(TRACESTATE_HEADER);
        } else {
            let mut ts = ctx.trace_state.clone();
            ts.truncate(tracestate::MAX_HEADER_LEN);
            if ts.is_empty() {
                remove(TRACESTATE_HEADER);
            } else {
                edit(Edit::Set(TRACESTATE_HEADER, ts.to_header().into()));
            }
        }
    } else {
        remove(TRACEPARENT_HEADER);
        remove(TRACESTATE_HEADER);
    }
    let b3ctx = || b3::B3Context::from_span_context(ctx, opts.parent_span_id, opts.debug);
    if on(Propagator::B3Single) {
        edit(Edit::Set(b3::B3_HEADER, b3::format_single(&b3ctx()).into()));
    } else {
        remove(b3::B3_HEADER);
    }
    if on(Propagator::B3Multi) {
        let multi = b3::format_multi(&b3ctx());
        for h in b3::B3_MULTI_HEADERS {
            if !multi.iter().any(|(n, _)| *n == h) {
                remove(h);
            }
        }
        for (name, value) in multi {
            edit(Edit::Set(name, value.into()));
        }
    } else {
        for h in b3::B3_MULTI_HEADERS {
            remove(h);
        }
    }
    if on(Propagator::Baggage) {
        if baggage.is_empty() {
            remove(BAGGAGE_HEADER);
        } else {
            edit(Edit::Set(BAGGAGE_HEADER, baggage.to_header().into()));
        }
    }
    for name in removals.get(..removed).unwrap_or_default().iter().flatten() {
        edit(Edit::Remove(name));
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;
    use crate::error::{B3Error, TraceStateError, TraceparentError};
    use crate::types::{TraceFlags, TraceId};
    use Propagator::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const B3S: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90";

    fn cfg(extract: &[Propagator]) -> PropagationConfig {
        PropagationConfig {
            extract: extract.to_vec(),
            inject: vec![],
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn config_serde() {
        let c: PropagationConfig = serde_json::from_str(
            r#"{"extract":["b3","tracecontext","b3multi"],"inject":["baggage"]}"#,
        )
        .unwrap();
        assert_eq!(c.extract, vec![B3Single, TraceContext, B3Multi]);
        assert_eq!(c.inject, vec![Baggage]);
        let d: PropagationConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d, PropagationConfig::default());
        assert!(serde_json::from_str::<PropagationConfig>(r#"{"extract":["jaeger"]}"#).is_err());
        assert!(serde_json::from_str::<PropagationConfig>(r#"{"other":[]}"#).is_err());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn extract_table() {
        #[rustfmt::skip]
        let cases: Vec<(Vec<Propagator>, Vec<(&str, &str)>, Option<(Propagator, &str, bool)>, Vec<ExtractError>)> = vec![
            // order, headers -> (format, trace id, sampled), errors
            (vec![TraceContext, B3Single], vec![("traceparent", TP), ("b3", B3S)], Some((TraceContext, TID, true)), vec![]),
            (vec![B3Single, TraceContext], vec![("traceparent", TP), ("b3", B3S)], Some((B3Single, "80f198ee56343ba864fe8b2a57d3eff7", true)), vec![]),
            (vec![TraceContext, B3Single], vec![("TraceParent", "00-zz"), ("b3", B3S)], Some((B3Single, "80f198ee56343ba864fe8b2a57d3eff7", true)),
                vec![ExtractError::Traceparent(TraceparentError::WrongLength(5))]),
            (vec![TraceContext], vec![("traceparent", TP), ("traceparent", TP)], None, vec![ExtractError::DuplicateTraceparent]),
            (vec![TraceContext], vec![("traceparent", TP), ("tracestate", "a=1,a=2")], Some((TraceContext, TID, true)), vec![]),
            (vec![TraceContext], vec![("traceparent", TP), ("tracestate", "@a=1")], Some((TraceContext, TID, true)),
                vec![ExtractError::TraceState(TraceStateError::InvalidKey)]),
            (vec![B3Multi], vec![("X-B3-TraceId", "463ac35c9f6413ad"), ("X-B3-SpanId", "e457b5a2e4d86bd1"), ("X-B3-Sampled", "0")],
                Some((B3Multi, "0000000000000000463ac35c9f6413ad", false)), vec![]),
            (vec![B3Multi, B3Single], vec![("x-b3-traceid", "463ac35c9f6413ad"), ("b3", B3S)],
                Some((B3Single, "80f198ee56343ba864fe8b2a57d3eff7", true)), vec![ExtractError::B3Multi(B3Error::MissingId)]),
            (vec![TraceContext, B3Multi, B3Single], vec![], None, vec![]),
            // a format not configured is not read
            (vec![B3Multi], vec![("traceparent", TP)], None, vec![]),
            (vec![], vec![("traceparent", TP)], None, vec![]),
        ];
        for (order, headers, expected, errors) in cases {
            let got = extract(&cfg(&order), &headers);
            let ctx = got.context.as_ref().map(|c| {
                (
                    c.format,
                    c.span_context.trace_id.to_hex(),
                    c.span_context.is_sampled(),
                )
            });
            assert_eq!(
                ctx,
                expected.map(|(f, t, s)| (f, t.to_string(), s)),
                "{order:?} {headers:?}"
            );
            assert_eq!(got.errors, errors, "{order:?} {headers:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn extract_details() {
        let h = vec![
            ("traceparent", TP),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "a=1,bad key=2"),
            ("baggage", "b=%20"),
        ];
        let got = extract(&PropagationConfig::default(), &h);
        let c = got.context.unwrap();
        assert_eq!(
            c.span_context.trace_state.to_header(),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        );
        assert_eq!(c.span_context.span_id.to_hex(), "00f067aa0ba902b7");
        assert_eq!(got.baggage.to_header(), "a=1,b=%20");
        assert_eq!(
            got.errors,
            vec![ExtractError::Baggage {
                invalid: 1,
                over_limit: 0
            }]
        );

        let got = extract(&cfg(&[B3Single]), &[("b3", B3S)]);
        let c = got.context.unwrap();
        assert!(c.debug && !c.deferred);
        assert_eq!(
            c.parent_span_id.map(|p| p.to_hex()).as_deref(),
            Some("05e3ac9a4f6e3b90")
        );

        let got = extract(
            &cfg(&[B3Single]),
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")],
        );
        assert!(got.context.unwrap().deferred);

        // sampling-only b3 is a hint; a later full context still wins
        let got = extract(
            &cfg(&[B3Single, TraceContext]),
            &[("b3", "0"), ("traceparent", TP)],
        );
        assert_eq!(got.sampling_hint, Some(B3Sampling::Deny));
        assert_eq!(got.context.unwrap().format, TraceContext);
        let got = extract(&cfg(&[B3Multi]), &[("x-b3-flags", "1")]);
        assert_eq!(
            (got.context, got.sampling_hint),
            (None, Some(B3Sampling::Debug))
        );
    }

    fn ctx() -> SpanContext {
        let mut c = SpanContext::new(
            TraceId::from_hex(TID).unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags(TraceFlags::SAMPLED),
        );
        c.trace_state = TraceState::parse(b"mw=1,rojo=2").unwrap();
        c
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn inject_table() {
        let (bag, _) = crate::baggage::Baggage::parse(b"k=v%20w");
        let all_b3 = [
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-flags",
        ];
        #[rustfmt::skip]
        let cases: Vec<(Vec<Propagator>, Vec<(&str, &str)>, Vec<&str>)> = vec![
            (vec![TraceContext, Baggage],
                vec![("traceparent", TP), ("tracestate", "mw=1,rojo=2"), ("baggage", "k=v%20w")],
                [&["b3"][..], &all_b3].concat()),
            (vec![B3Single],
                vec![("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")],
                [&["traceparent", "tracestate"][..], &all_b3].concat()),
            (vec![B3Multi],
                vec![("x-b3-traceid", TID), ("x-b3-spanid", "00f067aa0ba902b7"), ("x-b3-sampled", "1")],
                vec!["traceparent", "tracestate", "b3", "x-b3-parentspanid", "x-b3-flags"]),
            (vec![], vec![], [&["traceparent", "tracestate", "b3"][..], &all_b3].concat()),
        ];
        for (formats, set, remove) in cases {
            let inj = inject(&ctx(), &bag, &formats);
            let got: Vec<(&str, &str)> = inj.set.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(got, set, "{formats:?}");
            assert_eq!(inj.remove, remove, "{formats:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn inject_details_and_round_trip() {
        let opts = InjectOptions {
            parent_span_id: SpanId::from_hex("05e3ac9a4f6e3b90"),
            debug: true,
            keep_traceparent: false,
            skip_removals: false,
        };
        let mut c = ctx();
        c.trace_state = TraceState::default();
        c.flags = TraceFlags(0);
        let inj = inject_with(
            &c,
            &opts,
            &crate::baggage::Baggage::default(),
            &[TraceContext, B3Single, B3Multi, Baggage],
        );
        let get = |n: &str| {
            inj.set
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        );
        assert_eq!(
            get("b3"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d-05e3ac9a4f6e3b90")
        );
        assert_eq!(get("x-b3-flags"), Some("1"));
        assert_eq!(get("x-b3-sampled"), None);
        assert_eq!(inj.remove, vec!["tracestate", "x-b3-sampled", "baggage"]);
        // Removals not wanted: the same sets, no removal.
        let skip = InjectOptions {
            skip_removals: true,
            ..opts
        };
        let formats = [TraceContext, B3Single, B3Multi, Baggage];
        let lean = inject_with(&c, &skip, &crate::baggage::Baggage::default(), &formats);
        assert_eq!((&lean.set, lean.remove.is_empty()), (&inj.set, true));

        // Conversion keeps trace id, span id and sampling across every format.
        for from in [TraceContext, B3Single, B3Multi] {
            let inj = inject(&ctx(), &crate::baggage::Baggage::default(), &[from]);
            for to in [TraceContext, B3Single, B3Multi] {
                let headers: Vec<(&str, String)> = inj.set.clone();
                let got = extract(&cfg(&[from]), &headers).context.unwrap();
                assert_eq!(got.span_context.trace_id, ctx().trace_id, "{from:?}");
                assert_eq!(got.span_context.span_id, ctx().span_id, "{from:?}");
                assert!(got.span_context.is_sampled(), "{from:?}");
                let back = inject(
                    &got.span_context,
                    &crate::baggage::Baggage::default(),
                    &[to],
                );
                let again = extract(&cfg(&[to]), &back.set).context.unwrap();
                assert_eq!(
                    (again.span_context.trace_id, again.span_context.span_id),
                    (ctx().trace_id, ctx().span_id)
                );
                assert!(again.span_context.is_sampled());
            }
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn traceparent_is_handed_over_inline_and_equals_its_text() {
        let mut sets = Vec::new();
        inject_each(
            &ctx(),
            &InjectOptions::default(),
            &crate::baggage::Baggage::default(),
            &[TraceContext],
            &mut |e| {
                if let Edit::Set(name, value) = e {
                    sets.push((name, value));
                }
            },
        );
        let (name, value) = &sets[0];
        assert_eq!(*name, TRACEPARENT_HEADER);
        assert!(matches!(value, HeaderValue::Traceparent(_)), "{value:?}");
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(value.as_bytes(), tp.as_bytes());
        assert_eq!(value.as_str(), tp);
        // Equal by bytes, however held.
        assert_eq!(*value, HeaderValue::from(tp));
        assert_eq!(*value, HeaderValue::from(tp.to_string()));
        assert_ne!(*value, HeaderValue::from("00-other"));
        assert_eq!(value.clone().into_string(), tp);
    }
}
