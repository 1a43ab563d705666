//! The `x-meshwake-lineage` header: the deployments a request passed through.
//!
//! Format (see docs/adr/0002-identity-header.md):
//!
//! ```text
//! [+<dropped>,]<service>@<version>,<service>@<version>,...[;sig=<b64url>]
//! ```
//!
//! Oldest first, at most `cap` entries (default [`DEFAULT_LINEAGE_CAP`], at most
//! [`MAX_LINEAGE_CAP`]) and [`MAX_LINEAGE_LEN`] bytes. When older hops are dropped, the
//! leading `+N` counts them so analysis knows the list is incomplete. Entries are escaped like
//! the peer header. With a key, the list carries its own HMAC-SHA256 `sig` (a separate
//! domain from the peer header's), because the lineage travels end to end while the peer
//! header is rewritten at every hop.

use std::fmt;

use crate::escape::{self, UnescapeError};
use crate::header::MAX_FIELD_LEN;
use crate::integrity::{self, LINEAGE_DOMAIN, SIG_SUFFIX_LEN};
use crate::workload::UNKNOWN;

/// Entries kept when nothing else is configured.
pub const DEFAULT_LINEAGE_CAP: usize = 8;
/// Largest configurable number of entries.
pub const MAX_LINEAGE_CAP: usize = 32;
/// Maximum length of the header value, signature included.
pub const MAX_LINEAGE_LEN: usize = 1024;
/// Maximum escaped length of one `service@version` entry.
pub const MAX_ENTRY_LEN: usize = 2 * MAX_FIELD_LEN + 1;

/// Longest `+N,` prefix: `+`, ten digits of a u32, `,`.
const MAX_COUNTER_LEN: usize = 12;

/// Why an `x-meshwake-lineage` value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineageError {
    /// Longer than [`MAX_LINEAGE_LEN`].
    TooLong,
    /// A byte that must have been escaped (control, separator, non-ASCII).
    InvalidByte,
    /// Structure broken: empty entry, entry without `@`, misplaced `sig`.
    Malformed,
    /// The leading `+N` is not a number.
    BadCounter,
    /// An entry is longer than [`MAX_ENTRY_LEN`].
    EntryTooLong,
    /// A `%` escape is not two hex digits or decodes to invalid UTF-8.
    BadEscape,
    /// A key is configured but the value carries no `sig`.
    MissingSignature,
    /// A key is configured and `sig` does not match.
    BadSignature,
}

impl LineageError {
    /// Short stable name, usable as a metric tag.
    pub fn as_str(self) -> &'static str {
        match self {
            LineageError::TooLong => "too_long",
            LineageError::InvalidByte => "invalid_byte",
            LineageError::Malformed => "malformed",
            LineageError::BadCounter => "bad_counter",
            LineageError::EntryTooLong => "entry_too_long",
            LineageError::BadEscape => "bad_escape",
            LineageError::MissingSignature => "missing_signature",
            LineageError::BadSignature => "bad_signature",
        }
    }
}

impl fmt::Display for LineageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid x-meshwake-lineage header: {}", self.as_str())
    }
}

impl std::error::Error for LineageError {}

impl From<UnescapeError> for LineageError {
    fn from(e: UnescapeError) -> Self {
        match e {
            UnescapeError::BadEscape => LineageError::BadEscape,
            UnescapeError::InvalidByte => LineageError::InvalidByte,
        }
    }
}

/// A bounded, oldest-first list of `service@version` hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    entries: Vec<String>,
    dropped: u32,
    cap: usize,
}

impl Default for Lineage {
    fn default() -> Self {
        Lineage::new(DEFAULT_LINEAGE_CAP)
    }
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn parse_counter(digits: &[u8]) -> Result<u32, LineageError> {
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(LineageError::BadCounter);
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl Lineage {
    /// An empty lineage keeping at most `cap` entries (clamped to `1..=MAX_LINEAGE_CAP`).
    pub fn new(cap: usize) -> Self {
        Lineage {
            entries: Vec::new(),
            dropped: 0,
            cap: cap.clamp(1, MAX_LINEAGE_CAP),
        }
    }

    /// The entries, `service@version`, oldest first (the `meshwake.lineage` attribute).
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// How many older hops were dropped along the way (saturating).
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// True when older hops were dropped, i.e. `entries()` is not the whole path.
    pub fn is_truncated(&self) -> bool {
        self.dropped > 0
    }

    /// True when there are no entries and nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.dropped == 0
    }

    /// Maximum number of entries kept.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Appends `service@version` (each part cut to [`MAX_FIELD_LEN`] escaped bytes, empty
    /// parts written as [`UNKNOWN`]), dropping the oldest entries beyond the cap.
    pub fn push(&mut self, service: &str, version: &str) {
        let part = |v: &str| {
            escape::clamp(if v.is_empty() { UNKNOWN } else { v }, MAX_FIELD_LEN).to_owned()
        };
        let mut entry = part(service);
        entry.push('@');
        entry.push_str(&part(version));
        self.entries.push(entry);
        self.trim_to_cap();
    }

    fn trim_to_cap(&mut self) {
        let excess = self.entries.len().saturating_sub(self.cap);
        if excess > 0 {
            self.entries.drain(..excess);
            let excess = u32::try_from(excess).unwrap_or(u32::MAX);
            self.dropped = self.dropped.saturating_add(excess);
        }
    }

    /// Encodes the lineage, signed when `key` is given; `""` when empty (send no header).
    ///
    /// If the entries would exceed [`MAX_LINEAGE_LEN`], the oldest are left out and
    /// counted in the `+N` prefix, so the result always decodes.
    pub fn encode(&self, key: Option<&[u8]>) -> String {
        if self.is_empty() {
            return String::new();
        }
        let sig = if key.is_some() { SIG_SUFFIX_LEN } else { 0 };
        let budget = MAX_LINEAGE_LEN - sig - MAX_COUNTER_LEN;
        let wire_len = |e: &String| escape::escaped_len(e).min(MAX_ENTRY_LEN);
        let mut total: usize = self.entries.iter().map(|e| wire_len(e) + 1).sum();
        let mut skip = 0;
        for e in &self.entries {
            if total <= budget {
                break;
            }
            total -= wire_len(e) + 1;
            skip += 1;
        }
        let dropped = self
            .dropped
            .saturating_add(u32::try_from(skip).unwrap_or(u32::MAX));

        let mut out = String::with_capacity(total + MAX_COUNTER_LEN + sig);
        if dropped > 0 {
            out.push('+');
            out.push_str(&dropped.to_string());
        }
        for e in self.entries.iter().skip(skip) {
            if !out.is_empty() {
                out.push(',');
            }
            escape::escape_into(&mut out, e, MAX_ENTRY_LEN);
        }
        if let Some(key) = key {
            integrity::append_signature(&mut out, LINEAGE_DOMAIN, key);
        }
        out
    }

    /// Decodes an `x-meshwake-lineage` value, keeping the newest `cap` entries (clamped to
    /// `1..=MAX_LINEAGE_CAP`) and counting the others as dropped. With `key`, a non-empty
    /// value must carry a valid signature. An empty value is an empty lineage. Whitespace
    /// around commas is accepted (proxies join repeated headers with `", "`), though a join
    /// breaks a signature. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8], cap: usize, key: Option<&[u8]>) -> Result<Self, LineageError> {
        let mut lineage = Lineage::new(cap);
        let bytes = trim_ows(bytes);
        if bytes.is_empty() {
            return Ok(lineage);
        }
        if bytes.len() > MAX_LINEAGE_LEN {
            return Err(LineageError::TooLong);
        }
        if bytes
            .iter()
            .any(|b| !(0x21..=0x7e).contains(b) && *b != b' ' && *b != b'\t')
        {
            return Err(LineageError::InvalidByte);
        }
        let (payload, sig) = integrity::split_signature(bytes);
        if sig.is_some_and(|sig| !integrity::is_sig_syntax(sig)) {
            return Err(LineageError::Malformed);
        }
        if let Some(key) = key {
            let sig = sig.ok_or(LineageError::MissingSignature)?;
            if !integrity::verify(LINEAGE_DOMAIN, payload, key, sig) {
                return Err(LineageError::BadSignature);
            }
        }

        for (i, item) in payload.split(|b| *b == b',').map(trim_ows).enumerate() {
            // A counter never holds `@`: an entry whose service starts with `+` (sent
            // escaped, re-encoded raw since `+` needs no escape) is still an entry.
            if let (0, Some(digits)) = (i, item.strip_prefix(b"+").filter(|d| !d.contains(&b'@'))) {
                lineage.dropped = parse_counter(digits)?;
                continue;
            }
            if item.is_empty() {
                return Err(LineageError::Malformed);
            }
            if item.len() > MAX_ENTRY_LEN {
                return Err(LineageError::EntryTooLong);
            }
            let entry = escape::unescape(item)?;
            if !entry.contains('@') {
                return Err(LineageError::Malformed);
            }
            lineage.entries.push(entry);
        }
        lineage.trim_to_cap();
        Ok(lineage)
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // inline test tables read better than aliases
mod tests {
    use super::*;
    use LineageError as E;

    const KEY: &[u8] = b"lineage test key";

    fn hops(n: usize) -> Lineage {
        let mut l = Lineage::default();
        for i in 1..=n {
            l.push(&format!("svc{i}"), &format!("v{i}"));
        }
        l
    }

    fn expected(from: usize, to: usize) -> Vec<String> {
        (from..=to).map(|i| format!("svc{i}@v{i}")).collect()
    }

    #[rustfmt::skip]
    const HOPS: &[(usize, usize, u32, &str)] = &[
        // pushed, kept, dropped, wire
        (0,  0, 0,  ""),
        (1,  1, 0,  "svc1@v1"),
        (5,  5, 0,  "svc1@v1,svc2@v2,svc3@v3,svc4@v4,svc5@v5"),
        (8,  8, 0,  "svc1@v1,svc2@v2,svc3@v3,svc4@v4,svc5@v5,svc6@v6,svc7@v7,svc8@v8"),
        (9,  8, 1,  "+1,svc2@v2,svc3@v3,svc4@v4,svc5@v5,svc6@v6,svc7@v7,svc8@v8,svc9@v9"),
        (20, 8, 12, "+12,svc13@v13,svc14@v14,svc15@v15,svc16@v16,svc17@v17,svc18@v18,svc19@v19,svc20@v20"),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn push_cap_and_round_trip() {
        for (pushed, kept, dropped, wire) in HOPS {
            let l = hops(*pushed);
            assert_eq!(
                l.entries(),
                expected(pushed - kept + 1, *pushed),
                "{pushed}"
            );
            assert_eq!(l.dropped(), *dropped);
            assert_eq!(l.is_truncated(), *dropped > 0);
            assert_eq!(l.encode(None), *wire);
            assert_eq!(
                Lineage::decode(wire.as_bytes(), DEFAULT_LINEAGE_CAP, None),
                Ok(l.clone())
            );
            let signed = l.encode(Some(KEY));
            assert_eq!(
                Lineage::decode(signed.as_bytes(), DEFAULT_LINEAGE_CAP, Some(KEY)),
                Ok(l.clone())
            );
            assert_eq!(
                Lineage::decode(signed.as_bytes(), DEFAULT_LINEAGE_CAP, None),
                Ok(l)
            );
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decode_applies_local_cap() {
        let wire = hops(20).encode(None);
        let small = Lineage::decode(wire.as_bytes(), 3, None).unwrap();
        assert_eq!(small.entries(), expected(18, 20));
        assert_eq!(small.dropped(), 17);
        // A hop with a larger cap keeps everything it receives, and grows from there.
        let mut big = Lineage::decode(wire.as_bytes(), 32, None).unwrap();
        assert_eq!(big.entries().len(), 8);
        big.push("svc21", "v21");
        assert_eq!(big.entries().len(), 9);
        assert_eq!(Lineage::new(0).cap(), 1);
        assert_eq!(Lineage::new(1000).cap(), MAX_LINEAGE_CAP);
    }

    #[rustfmt::skip]
    const DECODE: &[(&[u8], Result<(&[&str], u32), E>)] = &[
        (b"a@1, b@2 ,c@3",          Ok((&["a@1", "b@2", "c@3"], 0))),
        (b"  ",                     Ok((&[], 0))),
        (b"+4",                     Ok((&[], 4))),
        (b"+99999999999,a@1",       Err(E::BadCounter)),
        (b"+4294967296,a@1",        Ok((&["a@1"], u32::MAX))),
        (b"a%2Cb@v%3B1,x@%C3%A9",  Ok((&["a,b@v;1", "x@é"], 0))),
        (b"a@1;sig=whatever",       Ok((&["a@1"], 0))), // no key: not checked
        (b"+,a@1",                  Err(E::BadCounter)),
        (b"+x,a@1",                 Err(E::BadCounter)),
        (b"a@1,+2",                 Err(E::Malformed)),
        (b"a@1,,b@2",               Err(E::Malformed)),
        (b"a@1,",                   Err(E::Malformed)),
        (b"noversion",              Err(E::Malformed)),
        (b"a@1;sig=x,b@2",          Err(E::Malformed)),
        (b"a@1;b@2",                Err(E::InvalidByte)),
        (b"a@1,b=2@3",              Err(E::InvalidByte)),
        (b"a@\xff",                 Err(E::InvalidByte)),
        (b"a@\x00",                 Err(E::InvalidByte)),
        (b"a@%g1",                  Err(E::BadEscape)),
        (b"a@%ff",                  Err(E::BadEscape)),
        // Found by fuzz/lineage: `%2B` decodes to `+`, which encodes raw.
        (b"%2Bb@v",                 Ok((&["+b@v"], 0))),
        (b"+b@v",                   Ok((&["+b@v"], 0))),
        (b"+2,+b@v",                Ok((&["+b@v"], 2))),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decode_table() {
        for (input, want) in DECODE {
            let got = Lineage::decode(input, DEFAULT_LINEAGE_CAP, None);
            let got = got.map(|l| (l.entries().to_vec(), l.dropped()));
            let want =
                want.map(|(e, d)| (e.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), d));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn service_starting_with_plus_round_trips() {
        let mut l = Lineage::default();
        l.push("+svc", "v1");
        let wire = l.encode(None);
        assert_eq!(
            Lineage::decode(wire.as_bytes(), 8, None).map(|d| d.entries().to_vec()),
            Ok(vec!["+svc@v1".to_string()])
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn bounds() {
        let at = "a".repeat(MAX_ENTRY_LEN - 2);
        let past = "a".repeat(MAX_ENTRY_LEN - 1);
        assert!(Lineage::decode(format!("{at}@1").as_bytes(), 8, None).is_ok());
        assert_eq!(
            Lineage::decode(format!("{past}@1").as_bytes(), 8, None),
            Err(E::EntryTooLong)
        );
        // Exactly MAX_LINEAGE_LEN bytes decodes, one more does not.
        let mut wire = String::from("+1");
        while wire.len() + 128 <= MAX_LINEAGE_LEN {
            wire.push_str(&format!(",{at}@1"));
        }
        let room = MAX_LINEAGE_LEN - wire.len();
        wire.push_str(&format!(",{}@1", "b".repeat(room - 3)));
        assert_eq!(wire.len(), MAX_LINEAGE_LEN);
        assert!(Lineage::decode(wire.as_bytes(), 32, None).is_ok());
        wire.push('1');
        assert_eq!(Lineage::decode(wire.as_bytes(), 32, None), Err(E::TooLong));

        // Long parts are clamped by push; a full cap of maximal entries still encodes
        // within the byte limit by dropping the oldest (and counting them).
        let long = "é;".repeat(100);
        let mut l = Lineage::new(MAX_LINEAGE_CAP);
        for _ in 0..40 {
            l.push(&long, &long);
        }
        assert_eq!(l.entries().len(), MAX_LINEAGE_CAP);
        assert_eq!(l.dropped(), 8);
        for key in [None, Some(KEY)] {
            let enc = l.encode(key);
            assert!(enc.len() <= MAX_LINEAGE_LEN, "{}", enc.len());
            let back = Lineage::decode(enc.as_bytes(), MAX_LINEAGE_CAP, key).unwrap();
            assert!(back.dropped() > 8);
            assert_eq!(
                back.entries(),
                &l.entries()[l.entries().len() - back.entries().len()..]
            );
        }
        let mut e = Lineage::default();
        e.push("", "");
        assert_eq!(e.entries(), ["unknown@unknown"]);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn signatures() {
        let l = hops(5);
        let signed = l.encode(Some(KEY));
        let unsigned = l.encode(None);
        let tampered = signed.replacen("svc1@v1", "svc1@v9", 1);
        let reordered = format!("svc2@v2,svc1@v1{}", &signed[15..]);
        // A valid peer-header signature must not verify as a lineage signature.
        let peer_sig = {
            let mut s = unsigned.clone();
            integrity::append_signature(&mut s, integrity::PEER_DOMAIN, KEY);
            s
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<&[u8]>, Result<(), E>)> = vec![
            (&signed,    Some(KEY),          Ok(())),
            (&signed,    Some(&b"other key"[..]), Err(E::BadSignature)),
            (&tampered,  Some(KEY),          Err(E::BadSignature)),
            (&reordered, Some(KEY),          Err(E::BadSignature)),
            (&peer_sig,  Some(KEY),          Err(E::BadSignature)),
            (&unsigned,  Some(KEY),          Err(E::MissingSignature)),
            ("",         Some(KEY),          Ok(())),
        ];
        for (i, (input, key, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                Lineage::decode(input.as_bytes(), 8, key).map(|_| ()),
                want,
                "case {i}"
            );
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn arbitrary_bytes_never_panic() {
        let signed = hops(3).encode(Some(KEY));
        let bytes = signed.as_bytes();
        for end in 0..=bytes.len() {
            let _ = Lineage::decode(&bytes[..end], 8, Some(KEY));
            let _ = Lineage::decode(&bytes[..end], 8, None);
        }
        for i in 0..bytes.len() {
            for b in [0u8, b';', b',', b'+', b'%', b'@', 0x80, 0xff] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = Lineage::decode(&m, 8, None);
                assert!(Lineage::decode(&m, 8, Some(KEY)).is_err() || m == bytes);
            }
        }
    }
}
