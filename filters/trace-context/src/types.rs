//! Core identifiers: [`TraceId`], [`SpanId`], [`TraceFlags`] and [`SpanContext`].
//!
//! See <https://www.w3.org/TR/trace-context-2/#trace-id>,
//! <https://www.w3.org/TR/trace-context-2/#parent-id> and
//! <https://www.w3.org/TR/trace-context-2/#trace-flags>.

use core::fmt;

use crate::hex;
use crate::tracestate::TraceState;

/// A 16-byte trace id. All zeros is invalid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id. All zeros is invalid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// The invalid all-zero trace id.
    pub const INVALID: Self = Self([0; 16]);
    /// Length of the hex form.
    pub const HEX_LEN: usize = 32;

    /// Parses exactly 32 lower-case hex characters (zero ids parse; check [`Self::is_valid`]).
    pub fn from_hex(s: &str) -> Option<Self> {
        Self::from_hex_bytes(s.as_bytes())
    }

    /// Like [`Self::from_hex`] on raw header bytes.
    pub fn from_hex_bytes(s: &[u8]) -> Option<Self> {
        hex::decode::<16>(s).map(Self)
    }

    /// A 64-bit id (B3 allows them) left-padded with zeros to 128 bits.
    pub fn from_u64(low: u64) -> Self {
        let mut b = [0u8; 16];
        for (dst, src) in b.iter_mut().skip(8).zip(low.to_be_bytes()) {
            *dst = src;
        }
        Self(b)
    }

    /// The raw bytes.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The low 8 bytes, big-endian (what the ratio sampler looks at).
    pub fn low_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        for (dst, src) in b.iter_mut().zip(self.0.iter().skip(8)) {
            *dst = *src;
        }
        u64::from_be_bytes(b)
    }

    /// False for the all-zero id.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }

    /// Lower-case hex, 32 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(Self::HEX_LEN);
        hex::encode_into(&self.0, &mut s);
        s
    }

    /// Appends the hex form to `out` (a buffer reused per request).
    pub fn write_hex(&self, out: &mut String) {
        hex::encode_into(&self.0, out);
    }

    /// The hex form as bytes, on the stack: for keys used as bytes, with no string (and no
    /// UTF-8 check) made.
    pub fn hex_bytes(&self) -> [u8; Self::HEX_LEN] {
        let mut out = [0u8; Self::HEX_LEN];
        hex::write(&self.0, Some(&mut out));
        out
    }
}

impl SpanId {
    /// The invalid all-zero span id.
    pub const INVALID: Self = Self([0; 8]);
    /// Length of the hex form.
    pub const HEX_LEN: usize = 16;

    /// Parses exactly 16 lower-case hex characters (zero ids parse; check [`Self::is_valid`]).
    pub fn from_hex(s: &str) -> Option<Self> {
        Self::from_hex_bytes(s.as_bytes())
    }

    /// Like [`Self::from_hex`] on raw header bytes.
    pub fn from_hex_bytes(s: &[u8]) -> Option<Self> {
        hex::decode::<8>(s).map(Self)
    }

    /// The raw bytes.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// False for the all-zero id.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }

    /// Lower-case hex, 16 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(Self::HEX_LEN);
        hex::encode_into(&self.0, &mut s);
        s
    }
}

macro_rules! hex_fmt {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.to_hex())
            }
        }
    };
}
hex_fmt!(TraceId);
hex_fmt!(SpanId);

/// The `trace-flags` byte of `traceparent`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(pub u8);

impl TraceFlags {
    /// Bit 0: the caller may have recorded the trace.
    /// <https://www.w3.org/TR/trace-context-2/#sampled-flag>
    pub const SAMPLED: u8 = 0x01;
    /// Bit 1 (Level 2): the right-most 7 bytes of the trace id are random.
    /// <https://www.w3.org/TR/trace-context-2/#random-trace-id-flag>
    pub const RANDOM: u8 = 0x02;
    /// The bits this implementation understands and forwards; others are zeroed on send.
    pub const KNOWN: u8 = Self::SAMPLED | Self::RANDOM;

    /// Whether the sampled bit is set.
    pub fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED != 0
    }

    /// Whether the Level 2 random bit is set.
    pub fn is_random(self) -> bool {
        self.0 & Self::RANDOM != 0
    }

    /// A copy with the sampled bit set or cleared.
    #[must_use]
    pub fn with_sampled(self, sampled: bool) -> Self {
        Self(if sampled {
            self.0 | Self::SAMPLED
        } else {
            self.0 & !Self::SAMPLED
        })
    }

    /// A copy with the random bit set or cleared.
    #[must_use]
    pub fn with_random(self, random: bool) -> Self {
        Self(if random {
            self.0 | Self::RANDOM
        } else {
            self.0 & !Self::RANDOM
        })
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

/// What is propagated for one span: ids, flags and the vendor `tracestate`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SpanContext {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// The span id (in an extracted context: the caller's span, our parent).
    pub span_id: SpanId,
    /// Sampled / random flags.
    pub flags: TraceFlags,
    /// Vendor entries carried alongside (empty unless W3C `tracestate` was received or set).
    pub trace_state: TraceState,
}

impl SpanContext {
    /// A context with an empty `tracestate`.
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        Self {
            trace_id,
            span_id,
            flags,
            trace_state: TraceState::default(),
        }
    }

    /// Both ids non-zero.
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// Shorthand for `flags.is_sampled()`.
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn trace_id_hex_table() {
        #[rustfmt::skip]
        let cases: &[(&str, bool, bool)] = &[
            // input, parses, valid
            ("4bf92f3577b34da6a3ce929d0e0e4736", true,  true),
            ("00000000000000000000000000000000", true,  false),
            ("4BF92F3577B34DA6A3CE929D0E0E4736", false, false),
            ("4bf92f3577b34da6a3ce929d0e0e473",  false, false),
            ("4bf92f3577b34da6a3ce929d0e0e47360", false, false),
            ("4bf92f3577b34da6a3ce929d0e0e473z", false, false),
        ];
        for (input, parses, valid) in cases {
            let id = TraceId::from_hex(input);
            assert_eq!(id.is_some(), *parses, "{input}");
            if let Some(id) = id {
                assert_eq!(id.is_valid(), *valid, "{input}");
                assert_eq!(id.to_string(), *input);
            }
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn span_id_and_flags() {
        let id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(id.to_hex(), "00f067aa0ba902b7");
        assert_eq!(format!("{id:?}"), "SpanId(00f067aa0ba902b7)");
        assert!(!SpanId::INVALID.is_valid());
        assert!(SpanId::from_hex("00F067AA0BA902B7").is_none());
        let f = TraceFlags::default().with_sampled(true).with_random(true);
        assert_eq!(f.0, 0x03);
        assert!(f.is_sampled() && f.is_random());
        assert_eq!(f.with_sampled(false).0, 0x02);
        assert_eq!(
            TraceId::from_u64(0x1234).to_hex(),
            "00000000000000000000000000001234"
        );
        let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(&id.hex_bytes(), id.to_hex().as_bytes());
        assert_eq!(
            TraceId::from_hex("0000000000000000ffffffffffffffff")
                .unwrap()
                .low_u64(),
            u64::MAX
        );
    }
}
