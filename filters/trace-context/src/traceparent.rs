//! W3C Trace Context `traceparent` header, Level 1 plus the Level 2 `random` flag.
//!
//! <https://www.w3.org/TR/trace-context-2/#traceparent-header>

use crate::error::TraceparentError;
use crate::hex;
use crate::types::{SpanContext, SpanId, TraceFlags, TraceId};

/// Header name.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The only version this implementation emits.
pub const VERSION_00: u8 = 0x00;
/// Version `ff` is invalid.
/// <https://www.w3.org/TR/trace-context-2/#version>
pub const FORBIDDEN_VERSION: u8 = 0xff;
/// Exact length of a version `00` header, and the minimum for later versions.
/// <https://www.w3.org/TR/trace-context-2/#versioning-of-traceparent>
pub const TRACEPARENT_V00_LEN: usize = 55;
/// Hex digits in `version`.
pub const VERSION_HEX_LEN: usize = 2;
/// Hex digits in `trace-id`.
pub const TRACE_ID_HEX_LEN: usize = 32;
/// Hex digits in `parent-id`.
pub const PARENT_ID_HEX_LEN: usize = 16;
/// Hex digits in `trace-flags`.
pub const FLAGS_HEX_LEN: usize = 2;

const TRACE_ID_START: usize = VERSION_HEX_LEN + 1;
const TRACE_ID_END: usize = TRACE_ID_START + TRACE_ID_HEX_LEN;
const PARENT_ID_START: usize = TRACE_ID_END + 1;
const PARENT_ID_END: usize = PARENT_ID_START + PARENT_ID_HEX_LEN;
const FLAGS_START: usize = PARENT_ID_END + 1;
const FLAGS_END: usize = FLAGS_START + FLAGS_HEX_LEN;
const _: () = assert!(FLAGS_END == TRACEPARENT_V00_LEN);

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traceparent {
    /// The version received (we always send `00`).
    pub version: u8,
    /// `trace-id`.
    pub trace_id: TraceId,
    /// `parent-id`: the caller's span.
    pub parent_id: SpanId,
    /// `trace-flags` as received.
    pub flags: TraceFlags,
}

impl Traceparent {
    /// The context this header describes, with an empty `tracestate`.
    pub fn to_span_context(&self) -> SpanContext {
        SpanContext::new(self.trace_id, self.parent_id, self.flags)
    }
}

fn field<const N: usize>(s: &[u8], start: usize, end: usize) -> Option<[u8; N]> {
    s.get(start..end).and_then(hex::decode::<N>)
}

fn dash_at(s: &[u8], pos: usize) -> bool {
    s.get(pos) == Some(&b'-')
}

/// Strictly parses one `traceparent` value (surrounding spaces/tabs are ignored).
///
/// Version `00` must be exactly 55 characters. A later version is parsed by the
/// version `00` prefix and may carry more fields after a `-`, as
/// <https://www.w3.org/TR/trace-context-2/#versioning-of-traceparent> asks.
pub fn parse(input: &[u8]) -> Result<Traceparent, TraceparentError> {
    let s = crate::trim_ows(input);
    let [version] = field::<1>(s, 0, VERSION_HEX_LEN).ok_or(TraceparentError::InvalidVersion)?;
    if !dash_at(s, VERSION_HEX_LEN) {
        return Err(TraceparentError::InvalidVersion);
    }
    if version == FORBIDDEN_VERSION {
        return Err(TraceparentError::ForbiddenVersion);
    }
    if version == VERSION_00 && s.len() != TRACEPARENT_V00_LEN {
        return Err(TraceparentError::WrongLength(s.len()));
    }
    if s.len() < TRACEPARENT_V00_LEN {
        return Err(TraceparentError::TooShort(s.len()));
    }
    let trace_id = field::<16>(s, TRACE_ID_START, TRACE_ID_END)
        .filter(|_| dash_at(s, TRACE_ID_END))
        .map(TraceId)
        .ok_or(TraceparentError::InvalidTraceId)?;
    if !trace_id.is_valid() {
        return Err(TraceparentError::ZeroTraceId);
    }
    let parent_id = field::<8>(s, PARENT_ID_START, PARENT_ID_END)
        .filter(|_| dash_at(s, PARENT_ID_END))
        .map(SpanId)
        .ok_or(TraceparentError::InvalidParentId)?;
    if !parent_id.is_valid() {
        return Err(TraceparentError::ZeroParentId);
    }
    let [flags] = field::<1>(s, FLAGS_START, FLAGS_END).ok_or(TraceparentError::InvalidFlags)?;
    // Only reachable for later versions: what follows the flags must start a new field.
    if s.len() > TRACEPARENT_V00_LEN && !dash_at(s, FLAGS_END) {
        return Err(TraceparentError::InvalidTrailer);
    }
    Ok(Traceparent {
        version,
        trace_id,
        parent_id,
        flags: TraceFlags(flags),
    })
}

/// A version-00 `traceparent` as written: 55 ASCII bytes, held by value, so writing one
/// per request allocates nothing (docs/adr/0006, decision 15).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text([u8; TRACEPARENT_V00_LEN]);

impl Text {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Always the whole value: it is built from hex digits and dashes only.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Formats a version `00` header. Flags we do not understand are zeroed, as
/// <https://www.w3.org/TR/trace-context-2/#other-flags> asks.
pub fn format_text(trace_id: &TraceId, span_id: &SpanId, flags: TraceFlags) -> Text {
    // Laid out in place, the dashes already there: three appends through `encode_into`
    // cost more in the module.
    let mut out = [b'-'; TRACEPARENT_V00_LEN];
    hex::write(&[VERSION_00], out.get_mut(..TRACE_ID_START - 1));
    hex::write(&trace_id.0, out.get_mut(TRACE_ID_START..TRACE_ID_END));
    hex::write(&span_id.0, out.get_mut(PARENT_ID_START..PARENT_ID_END));
    hex::write(
        &[flags.0 & TraceFlags::KNOWN],
        out.get_mut(FLAGS_START..FLAGS_END),
    );
    Text(out)
}

/// [`format_text`] as a `String`.
pub fn format(trace_id: &TraceId, span_id: &SpanId, flags: TraceFlags) -> String {
    format_text(trace_id, span_id, flags).as_str().to_owned()
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;
    use TraceparentError as E;

    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SID: &str = "00f067aa0ba902b7";

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn parse_table() {
        #[rustfmt::skip]
        let cases: &[(&str, Result<(u8, &str, &str, u8), E>)] = &[
            // W3C spec examples
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Ok((0, TID, SID, 0x01))),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", Ok((0, TID, SID, 0x00))),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", Ok((0, TID, SID, 0x03))),
            // unknown flags are kept on parse (zeroed on format)
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", Ok((0, TID, SID, 0xff))),
            // OWS around the value (W3C test_traceparent_ows_handling)
            (" \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t ", Ok((0, TID, SID, 0x01))),
            // future versions: parse by prefix, extra fields after '-'
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Ok((1, TID, SID, 0x01))),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra-fields", Ok((1, TID, SID, 0x01))),
            ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like", Ok((0xcc, TID, SID, 0x01))),
            ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-be-like", Err(E::InvalidTrailer)),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", Err(E::TooShort(54))),
            // version errors
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::ForbiddenVersion)),
            (".0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::InvalidVersion)),
            ("0.-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::InvalidVersion)),
            ("000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::InvalidVersion)),
            ("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::InvalidVersion)),
            ("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::InvalidVersion)),
            ("", Err(E::InvalidVersion)),
            ("00", Err(E::InvalidVersion)),
            // version 00 length
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.", Err(E::WrongLength(56))),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like", Err(E::WrongLength(84))),
            ("00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01", Err(E::WrongLength(56))),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", Err(E::WrongLength(54))),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001", Err(E::WrongLength(56))),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", Err(E::WrongLength(54))),
            // upper-case hex is invalid
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", Err(E::InvalidTraceId)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", Err(E::InvalidParentId)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", Err(E::InvalidFlags)),
            // illegal characters / misplaced dashes
            ("00-.bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::InvalidTraceId)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b.-01", Err(E::InvalidParentId)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-.0", Err(E::InvalidFlags)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01", Err(E::InvalidTraceId)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7x01", Err(E::InvalidParentId)),
            ("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Err(E::InvalidVersion)),
            // all-zero ids
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", Err(E::ZeroTraceId)),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", Err(E::ZeroParentId)),
        ];
        for (input, expected) in cases {
            let got = parse(input.as_bytes()).map(|t| {
                (
                    t.version,
                    t.trace_id.to_hex(),
                    t.parent_id.to_hex(),
                    t.flags.0,
                )
            });
            let want = expected.map(|(v, t, p, f)| (v, t.to_string(), p.to_string(), f));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn non_utf8_and_huge_inputs() {
        let mut bad = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec();
        bad[10] = 0xff;
        assert_eq!(parse(&bad), Err(E::InvalidTraceId));
        let mut huge = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-".to_vec();
        huge.resize(1 << 20, b'x');
        assert!(parse(&huge).is_ok());
        huge[1] = b'0';
        assert_eq!(parse(&huge), Err(E::WrongLength(1 << 20)));
        assert_eq!(parse(&[0xff; 55]), Err(E::InvalidVersion));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn format_roundtrip() {
        let tp = parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-x").unwrap();
        let out = format(&tp.trace_id, &tp.parent_id, tp.flags);
        assert_eq!(
            out,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
        );
        assert_eq!(
            parse(out.as_bytes()).unwrap().to_span_context().trace_id,
            tp.trace_id
        );
    }
}
