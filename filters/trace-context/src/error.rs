//! Error types, one enum per operation and one variant per failure.

use core::fmt;

/// Why a `traceparent` header was rejected.
/// <https://www.w3.org/TR/trace-context-2/#traceparent-header-field-values>
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceparentError {
    /// Version `00` but not exactly 55 characters.
    WrongLength(usize),
    /// A later version shorter than the 55 characters of version `00`.
    TooShort(usize),
    /// Version is not two lower-case hex digits followed by `-`.
    InvalidVersion,
    /// Version `ff` is forbidden.
    ForbiddenVersion,
    /// `trace-id` is not 32 lower-case hex digits followed by `-`.
    InvalidTraceId,
    /// `trace-id` is all zeros.
    ZeroTraceId,
    /// `parent-id` is not 16 lower-case hex digits followed by `-`.
    InvalidParentId,
    /// `parent-id` is all zeros.
    ZeroParentId,
    /// `trace-flags` is not two lower-case hex digits.
    InvalidFlags,
    /// A later version has something other than `-` right after `trace-flags`.
    InvalidTrailer,
}

/// Why a `tracestate` header was dropped as a whole.
/// <https://www.w3.org/TR/trace-context-2/#tracestate-header-field-values>
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    /// More than 32 list-members.
    TooManyMembers,
    /// A list-member without `=`.
    MissingEquals,
    /// A key not matching the key grammar.
    InvalidKey,
    /// A value not matching the value grammar (length 1..=256, printable ASCII, no `,` or `=`).
    InvalidValue,
}

/// Why one baggage list-member was dropped.
/// <https://www.w3.org/TR/baggage/#definition>
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaggageError {
    /// A list-member without `=`.
    MissingEquals,
    /// The key is empty or not an RFC 7230 token.
    InvalidKey,
    /// The value has a character outside `baggage-octet` / `%`.
    InvalidValue,
    /// A `%` not followed by two hex digits.
    InvalidPercentEncoding,
    /// The percent-decoded value is not UTF-8.
    NotUtf8,
    /// A property is not `key` or `key=value`.
    InvalidProperty,
    /// Adding the member would pass the count or byte limit.
    OverLimit,
}

/// Why a B3 header (single or multi) was rejected.
/// <https://github.com/openzipkin/b3-propagation>
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Error {
    /// Trace id not 16 or 32 lower-case hex digits.
    InvalidTraceId,
    /// Trace id all zeros.
    ZeroTraceId,
    /// Span id missing or not 16 lower-case hex digits.
    InvalidSpanId,
    /// Span id all zeros.
    ZeroSpanId,
    /// Sampling state not one of `0`, `1`, `d` (or `true`/`false` in `X-B3-Sampled`).
    InvalidSampling,
    /// Parent span id not 16 lower-case hex digits, or all zeros.
    InvalidParentSpanId,
    /// More than four `-`-separated fields.
    TooManyFields,
    /// `X-B3-Flags` other than `0`/`1`.
    InvalidFlags,
    /// A trace id without a span id or the reverse (multi-header).
    MissingId,
}

/// A problem met while extracting; extraction goes on with the next format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtractError {
    /// `traceparent` invalid.
    Traceparent(TraceparentError),
    /// More than one `traceparent` header: ignored, as the W3C test suite expects.
    DuplicateTraceparent,
    /// `tracestate` dropped (the `traceparent` was kept).
    TraceState(TraceStateError),
    /// `b3` single header invalid.
    B3Single(B3Error),
    /// `x-b3-*` headers invalid.
    B3Multi(B3Error),
    /// Baggage members dropped: `invalid` malformed ones, `over_limit` past the size limits.
    Baggage {
        /// Malformed list-members dropped.
        invalid: usize,
        /// List-members dropped past the count/byte limits.
        over_limit: usize,
    },
}

macro_rules! display_debug {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    )*};
}
// Debug output is already precise (variant + data); a second wording would only cost code size.
display_debug!(
    TraceparentError,
    TraceStateError,
    BaggageError,
    B3Error,
    ExtractError
);
