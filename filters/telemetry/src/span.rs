//! Span model: the subset of the OpenTelemetry trace data model that meshwake emits.
//!
//! Mirrors `opentelemetry/proto/trace/v1/trace.proto` closely enough that [`crate::otlp`]
//! encodes it field for field; keys and static values are `Cow<'static, str>` so the common
//! case (a constant key from [`attr`]) costs no allocation.

use std::borrow::Cow;

/// 16-byte W3C trace id.
pub type TraceId = [u8; 16];
/// 8-byte W3C span id.
pub type SpanId = [u8; 8];

/// Bits of [`Span::flags`] / [`Link::flags`] (OTLP `SpanFlags`, trace.proto).
pub mod flags {
    /// Low 8 bits: the W3C trace flags (bit 0 = sampled).
    pub const TRACE_FLAGS_MASK: u32 = 0x0000_00ff;
    /// The W3C `sampled` trace flag.
    pub const SAMPLED: u32 = 0x0000_0001;
    /// Set when [`CONTEXT_IS_REMOTE`] is meaningful.
    pub const CONTEXT_HAS_IS_REMOTE: u32 = 0x0000_0100;
    /// The parent (for a span) or the linked context (for a link) came from another process.
    pub const CONTEXT_IS_REMOTE: u32 = 0x0000_0200;
}

/// OTLP `Span.SpanKind`; discriminants are the protobuf enum values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// Not specified (0).
    #[default]
    Unspecified = 0,
    /// Internal operation (1).
    Internal = 1,
    /// Server side of a request: `inbound` and `edge` hops (2).
    Server = 2,
    /// Client side of a request: `outbound` hops (3).
    Client = 3,
    /// Producer of an async message (4).
    Producer = 4,
    /// Consumer of an async message (5).
    Consumer = 5,
}

/// OTLP `Status.StatusCode`; discriminants are the protobuf enum values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    /// Default: the operation was not marked (0).
    #[default]
    Unset = 0,
    /// Explicitly successful (1).
    Ok = 1,
    /// Failed (2).
    Error = 2,
}

/// Span status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Status code.
    pub code: StatusCode,
    /// Developer-facing message, usually empty.
    pub message: Cow<'static, str>,
}

impl Status {
    /// Status for an HTTP response per docs/CONVENTIONS.md: ERROR on 5xx for SERVER spans,
    /// on 4xx and 5xx for CLIENT spans, otherwise UNSET.
    pub fn from_http(kind: SpanKind, http_status: u16) -> Self {
        let error = match kind {
            SpanKind::Client => http_status >= 400,
            _ => http_status >= 500,
        };
        Status {
            code: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            message: Cow::Borrowed(""),
        }
    }
}

/// OTLP `AnyValue` (common.proto), minus `kvlist_value` and `bytes_value` which meshwake never emits.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    /// UTF-8 string.
    String(Cow<'static, str>),
    /// Boolean.
    Bool(bool),
    /// Signed 64-bit integer.
    Int(i64),
    /// IEEE 754 double.
    Double(f64),
    /// Homogeneous-by-convention array, e.g. `meshwake.lineage`.
    Array(Vec<AnyValue>),
}

impl From<&'static str> for AnyValue {
    fn from(v: &'static str) -> Self {
        AnyValue::String(Cow::Borrowed(v))
    }
}
impl From<String> for AnyValue {
    fn from(v: String) -> Self {
        AnyValue::String(Cow::Owned(v))
    }
}
impl From<Cow<'static, str>> for AnyValue {
    fn from(v: Cow<'static, str>) -> Self {
        AnyValue::String(v)
    }
}
impl From<bool> for AnyValue {
    fn from(v: bool) -> Self {
        AnyValue::Bool(v)
    }
}
impl From<i64> for AnyValue {
    fn from(v: i64) -> Self {
        AnyValue::Int(v)
    }
}
impl From<u16> for AnyValue {
    fn from(v: u16) -> Self {
        AnyValue::Int(i64::from(v))
    }
}
impl From<u32> for AnyValue {
    fn from(v: u32) -> Self {
        AnyValue::Int(i64::from(v))
    }
}
impl From<f64> for AnyValue {
    fn from(v: f64) -> Self {
        AnyValue::Double(v)
    }
}
impl From<Vec<AnyValue>> for AnyValue {
    fn from(v: Vec<AnyValue>) -> Self {
        AnyValue::Array(v)
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// Attribute key, normally a constant from [`attr`].
    pub key: Cow<'static, str>,
    /// Attribute value.
    pub value: AnyValue,
}

impl KeyValue {
    /// Builds an attribute from anything convertible.
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<AnyValue>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A timestamped event on a span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Event time, Unix epoch nanoseconds.
    pub time_unix_nano: u64,
    /// Event name.
    pub name: Cow<'static, str>,
    /// Event attributes.
    pub attributes: Vec<KeyValue>,
}

/// A link to a span of possibly another trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Link {
    /// Linked trace id.
    pub trace_id: TraceId,
    /// Linked span id.
    pub span_id: SpanId,
    /// W3C `tracestate` of the linked context.
    pub trace_state: String,
    /// Link attributes.
    pub attributes: Vec<KeyValue>,
    /// See [`flags`].
    pub flags: u32,
}

/// A finished span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Span {
    /// Trace id.
    pub trace_id: TraceId,
    /// This span's id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// W3C `tracestate` header value, verbatim.
    pub trace_state: String,
    /// See [`flags`].
    pub flags: u32,
    /// Span name, e.g. `GET /api/{id}`.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, Unix epoch nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, Unix epoch nanoseconds.
    pub end_time_unix_nano: u64,
    /// Span attributes (keys from [`attr`]).
    pub attributes: Vec<KeyValue>,
    /// Span events.
    pub events: Vec<Event>,
    /// Span links.
    pub links: Vec<Link>,
    /// Span status.
    pub status: Status,
}

/// The entity producing spans (OTLP `Resource`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    /// Resource attributes (keys from [`attr`]).
    pub attributes: Vec<KeyValue>,
}

/// The instrumentation scope (OTLP `InstrumentationScope`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    /// Scope name, e.g. `meshwake`.
    pub name: Cow<'static, str>,
    /// Scope version, e.g. the filter's version.
    pub version: Cow<'static, str>,
}

/// Attribute keys and fixed values: the shared naming contract, [`meshwake_semconv::attr`].
pub use meshwake_semconv::attr;

/// Most attributes a [`SpanView`] holds; more are dropped and counted in
/// [`SpanView::dropped_attributes`] (the pipeline writes at most 23: the stream end's
/// `push_*_attributes`). Every slot is initialised and the view is moved per span, so no
/// more than needed.
pub const MAX_VIEW_ATTRIBUTES: usize = 24;

/// An attribute value borrowed from the request: what the pipeline emits (no floats, no
/// booleans, arrays only of strings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// UTF-8 string.
    Str(&'a str),
    /// Signed 64-bit integer.
    Int(i64),
    /// Array of strings, e.g. `meshwake.lineage`.
    StrList(&'a [String]),
}

/// One attribute of a [`SpanView`]: a constant key and a borrowed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttrRef<'a> {
    /// Attribute key (from [`attr`]).
    pub key: &'static str,
    /// Attribute value.
    pub value: ValueRef<'a>,
}

/// Attributes of a [`SpanView`], inline: no allocation per attribute or per span.
#[derive(Debug, Clone, Copy)]
pub struct AttrList<'a> {
    items: [AttrRef<'a>; MAX_VIEW_ATTRIBUTES],
    len: usize,
    dropped: usize,
}

impl Default for AttrList<'_> {
    fn default() -> Self {
        AttrList {
            items: [AttrRef {
                key: "",
                value: ValueRef::Int(0),
            }; MAX_VIEW_ATTRIBUTES],
            len: 0,
            dropped: 0,
        }
    }
}

impl<'a> AttrList<'a> {
    /// Append an attribute; beyond [`MAX_VIEW_ATTRIBUTES`] it is counted, not kept.
    pub fn push(&mut self, key: &'static str, value: ValueRef<'a>) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = AttrRef { key, value };
                self.len += 1;
            }
            None => self.dropped += 1,
        }
    }
    /// Append a string attribute.
    pub fn str(&mut self, key: &'static str, value: &'a str) {
        self.push(key, ValueRef::Str(value));
    }
    /// Append an integer attribute.
    pub fn int(&mut self, key: &'static str, value: i64) {
        self.push(key, ValueRef::Int(value));
    }
    /// The attributes kept, in order.
    pub fn as_slice(&self) -> &[AttrRef<'a>] {
        self.items.get(..self.len).unwrap_or_default()
    }
}

/// A finished span borrowed from the request state: what the filter encodes straight into
/// the export queue ([`crate::otlp::write_span_view`]), without building a [`Span`] of owned
/// strings. [`SpanView::to_span`] gives the owned span, encoded to the same bytes.
#[derive(Debug, Clone)]
pub struct SpanView<'a> {
    /// Trace id.
    pub trace_id: TraceId,
    /// This span's id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// W3C `tracestate` header value (owned only when the request had one).
    pub trace_state: Cow<'a, str>,
    /// See [`flags`].
    pub flags: u32,
    /// The name in pieces, concatenated on the wire: `METHOD`, ` `, route.
    pub name: [&'a str; 3],
    /// Span kind.
    pub kind: SpanKind,
    /// Start, Unix epoch nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, Unix epoch nanoseconds.
    pub end_time_unix_nano: u64,
    /// Span attributes.
    pub attributes: AttrList<'a>,
    /// One event without attributes, `(time, name)`: the only kind the pipeline records.
    pub event: Option<(u64, &'static str)>,
    /// Links (rare: an untrusting edge's outside context).
    pub links: Vec<Link>,
    /// Status code (the message is always empty).
    pub status: StatusCode,
}

impl SpanView<'_> {
    /// The span name's length in bytes.
    pub fn name_len(&self) -> usize {
        self.name.iter().map(|p| p.len()).sum()
    }

    /// Attributes beyond [`MAX_VIEW_ATTRIBUTES`], not encoded.
    pub fn dropped_attributes(&self) -> usize {
        self.attributes.dropped
    }

    /// The owned [`Span`] with the same content (tests, and hosts that keep spans).
    pub fn to_span(&self) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            trace_state: self.trace_state.to_string(),
            flags: self.flags,
            name: self.name.concat(),
            kind: self.kind,
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: self
                .attributes
                .as_slice()
                .iter()
                .map(|a| KeyValue::new(a.key, a.value.to_any()))
                .collect(),
            events: self
                .event
                .map(|(t, name)| Event {
                    time_unix_nano: t,
                    name: Cow::Borrowed(name),
                    attributes: Vec::new(),
                })
                .into_iter()
                .collect(),
            links: self.links.clone(),
            status: Status {
                code: self.status,
                message: Cow::Borrowed(""),
            },
        }
    }
}

impl ValueRef<'_> {
    /// The owned value.
    pub fn to_any(self) -> AnyValue {
        match self {
            ValueRef::Str(s) => AnyValue::String(Cow::Owned(s.to_string())),
            ValueRef::Int(i) => AnyValue::Int(i),
            ValueRef::StrList(l) => {
                AnyValue::Array(l.iter().map(|s| AnyValue::from(s.clone())).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn status_from_http_follows_conventions() {
        #[rustfmt::skip]
        let table = [
            (SpanKind::Server, 200, StatusCode::Unset),
            (SpanKind::Server, 404, StatusCode::Unset),
            (SpanKind::Server, 499, StatusCode::Unset),
            (SpanKind::Server, 500, StatusCode::Error),
            (SpanKind::Server, 503, StatusCode::Error),
            (SpanKind::Client, 200, StatusCode::Unset),
            (SpanKind::Client, 399, StatusCode::Unset),
            (SpanKind::Client, 400, StatusCode::Error),
            (SpanKind::Client, 404, StatusCode::Error),
            (SpanKind::Client, 503, StatusCode::Error),
        ];
        for (kind, code, want) in table {
            assert_eq!(Status::from_http(kind, code).code, want, "{kind:?} {code}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn key_value_conversions() {
        #[rustfmt::skip]
        let table = [
            (KeyValue::new(attr::URL_PATH, "/a"), AnyValue::String(Cow::Borrowed("/a"))),
            (KeyValue::new(attr::URL_PATH, String::from("/b")), AnyValue::String(Cow::Owned("/b".into()))),
            (KeyValue::new(attr::SERVER_PORT, 8080u16), AnyValue::Int(8080)),
            (KeyValue::new(attr::HTTP_REQUEST_BODY_SIZE, 7i64), AnyValue::Int(7)),
            (KeyValue::new("x", true), AnyValue::Bool(true)),
            (KeyValue::new("x", 1.5f64), AnyValue::Double(1.5)),
            (KeyValue::new(attr::MESHWAKE_LINEAGE, vec![AnyValue::from("a@v1")]), AnyValue::Array(vec![AnyValue::from("a@v1")])),
        ];
        for (kv, want) in table {
            assert_eq!(kv.value, want);
        }
    }
}
