//! The `x-meshwake-peer` header: compact, versioned, bounded, optionally signed.
//!
//! Format (see docs/adr/0002-identity-header.md):
//!
//! ```text
//! 1;s=<service>;v=<version>;n=<namespace>;w=<workload>[;x.<key>=<value>]...[;sig=<b64url>]
//! ```
//!
//! Keys and values are percent-escaped (`;` `=` `,` `%`, space, controls and non-ASCII).
//! Every field's escaped value is at most [`MAX_FIELD_LEN`] bytes and the whole header at
//! most [`MAX_HEADER_LEN`] bytes. `sig` is HMAC-SHA256 (RFC 2104, RFC 4231) over the bytes
//! before `;sig=`, present when a key is configured. Unknown keys are ignored so later
//! version-1 writers may add fields; anything incompatible bumps the leading version.

use std::fmt;

use crate::escape::{self, UnescapeError};
use crate::integrity::{self, PEER_DOMAIN, SIG_SUFFIX_LEN};
use crate::workload::{WorkloadIdentity, UNKNOWN};

/// Format version written as the first element.
pub const HEADER_VERSION: &str = "1";
/// Maximum length of the whole header value, signature included.
pub const MAX_HEADER_LEN: usize = 512;
/// Maximum escaped length of any single key or value (a DNS label is 63 bytes).
pub const MAX_FIELD_LEN: usize = 63;
/// Maximum number of `x.` extra attributes.
pub const MAX_EXTRA: usize = 8;

const EXTRA_PREFIX: &[u8] = b"x.";

/// A peer's identity as read from `x-meshwake-peer` or inferred by [`crate::fallback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Service name (`peer.service`).
    pub service: String,
    /// Deployment version (`meshwake.peer.version`).
    pub version: String,
    /// Namespace (`meshwake.peer.namespace`).
    pub namespace: String,
    /// Workload name.
    pub workload: String,
    /// Extra attributes, at most [`MAX_EXTRA`], in wire order.
    pub extra: Vec<(String, String)>,
}

impl PeerIdentity {
    /// A peer about which nothing is known: every field [`UNKNOWN`].
    pub fn unknown() -> Self {
        PeerIdentity {
            service: UNKNOWN.to_owned(),
            version: UNKNOWN.to_owned(),
            namespace: UNKNOWN.to_owned(),
            workload: UNKNOWN.to_owned(),
            extra: Vec::new(),
        }
    }
}

impl From<&WorkloadIdentity> for PeerIdentity {
    fn from(w: &WorkloadIdentity) -> Self {
        PeerIdentity {
            service: w.service.clone(),
            version: w.version.clone(),
            namespace: w.namespace.clone(),
            workload: w.workload.clone(),
            extra: w.extra.clone(),
        }
    }
}

/// Why an `x-meshwake-peer` value was rejected. The glue counts these per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerHeaderError {
    /// The value is empty (or only whitespace).
    Empty,
    /// Longer than [`MAX_HEADER_LEN`].
    TooLong,
    /// The leading version is a number other than [`HEADER_VERSION`].
    UnsupportedVersion,
    /// A byte that must have been escaped: space, control, separator or non-ASCII.
    InvalidByte,
    /// Structure broken: empty element, element without `=`, misplaced `sig`.
    Malformed,
    /// A `%` escape is not two hex digits or decodes to invalid UTF-8.
    BadEscape,
    /// A key or value is longer than [`MAX_FIELD_LEN`].
    FieldTooLong,
    /// The same key appears twice.
    DuplicateField,
    /// More than [`MAX_EXTRA`] `x.` attributes.
    TooManyExtras,
    /// No (or an empty) `s=` service.
    MissingService,
    /// No (or an empty) `v=` version.
    MissingVersion,
    /// A key is configured but the value carries no `sig`.
    MissingSignature,
    /// A key is configured and `sig` does not match (tampered, or another key).
    BadSignature,
}

impl PeerHeaderError {
    /// Short stable name, usable as a metric tag.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerHeaderError::Empty => "empty",
            PeerHeaderError::TooLong => "too_long",
            PeerHeaderError::UnsupportedVersion => "unsupported_version",
            PeerHeaderError::InvalidByte => "invalid_byte",
            PeerHeaderError::Malformed => "malformed",
            PeerHeaderError::BadEscape => "bad_escape",
            PeerHeaderError::FieldTooLong => "field_too_long",
            PeerHeaderError::DuplicateField => "duplicate_field",
            PeerHeaderError::TooManyExtras => "too_many_extras",
            PeerHeaderError::MissingService => "missing_service",
            PeerHeaderError::MissingVersion => "missing_version",
            PeerHeaderError::MissingSignature => "missing_signature",
            PeerHeaderError::BadSignature => "bad_signature",
        }
    }
}

impl fmt::Display for PeerHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid x-meshwake-peer header: {}", self.as_str())
    }
}

impl std::error::Error for PeerHeaderError {}

impl From<UnescapeError> for PeerHeaderError {
    fn from(e: UnescapeError) -> Self {
        match e {
            UnescapeError::BadEscape => PeerHeaderError::BadEscape,
            UnescapeError::InvalidByte => PeerHeaderError::InvalidByte,
        }
    }
}

fn push_field(out: &mut String, key: &str, value: &str) {
    out.push(';');
    out.push_str(key);
    out.push('=');
    escape::escape_into(
        out,
        if value.is_empty() { UNKNOWN } else { value },
        MAX_FIELD_LEN,
    );
}

/// Encodes `id` as an `x-meshwake-peer` value, signed when `key` is given.
///
/// Never fails: over-long values are cut to [`MAX_FIELD_LEN`] escaped bytes, empty ones
/// become [`UNKNOWN`], and extras that would push the header past [`MAX_HEADER_LEN`] (or
/// repeat a key, or have an empty key) are left out, so the result always decodes. The
/// identity is fixed per configuration: encode once at configure time and reuse the string.
pub fn encode(id: &WorkloadIdentity, key: Option<&[u8]>) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(HEADER_VERSION);
    push_field(&mut out, "s", &id.service);
    push_field(&mut out, "v", &id.version);
    push_field(&mut out, "n", &id.namespace);
    push_field(&mut out, "w", &id.workload);

    let budget = MAX_HEADER_LEN - if key.is_some() { SIG_SUFFIX_LEN } else { 0 };
    let mut emitted: Vec<&str> = Vec::new();
    for (k, v) in &id.extra {
        if emitted.len() == MAX_EXTRA {
            break;
        }
        let (k, v) = (
            escape::clamp(k, MAX_FIELD_LEN),
            escape::clamp(v, MAX_FIELD_LEN),
        );
        if k.is_empty() || emitted.contains(&k) {
            continue;
        }
        // ";x." + key + "=" + value
        let piece = 4 + escape::escaped_len(k) + escape::escaped_len(v);
        if out.len() + piece > budget {
            continue;
        }
        out.push_str(";x.");
        escape::escape_into(&mut out, k, MAX_FIELD_LEN);
        out.push('=');
        escape::escape_into(&mut out, v, MAX_FIELD_LEN);
        emitted.push(k);
    }
    if let Some(key) = key {
        integrity::append_signature(&mut out, PEER_DOMAIN, key);
    }
    out
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

fn set_once(slot: &mut Option<String>, wire: &[u8]) -> Result<(), PeerHeaderError> {
    if slot.is_some() {
        return Err(PeerHeaderError::DuplicateField);
    }
    *slot = Some(escape::unescape(wire)?);
    Ok(())
}

/// Decodes an `x-meshwake-peer` value. With `key`, the value must carry a valid signature.
///
/// Strict: every failure has its own [`PeerHeaderError`]; any byte sequence (including
/// non-UTF-8) yields an error, never a panic. Missing `n`/`w` read as [`UNKNOWN`].
pub fn decode(bytes: &[u8], key: Option<&[u8]>) -> Result<PeerIdentity, PeerHeaderError> {
    let bytes = trim_ows(bytes);
    if bytes.is_empty() {
        return Err(PeerHeaderError::Empty);
    }
    if bytes.len() > MAX_HEADER_LEN {
        return Err(PeerHeaderError::TooLong);
    }
    let version = bytes.split(|b| *b == b';').next().unwrap_or_default();
    if version != HEADER_VERSION.as_bytes() {
        return Err(
            if !version.is_empty() && version.iter().all(u8::is_ascii_digit) {
                PeerHeaderError::UnsupportedVersion
            } else {
                PeerHeaderError::Malformed
            },
        );
    }
    if bytes.iter().any(|b| !(0x21..=0x7e).contains(b)) {
        return Err(PeerHeaderError::InvalidByte);
    }

    let (payload, sig) = integrity::split_signature(bytes);
    if sig.is_some_and(|sig| !integrity::is_sig_syntax(sig)) {
        return Err(PeerHeaderError::Malformed); // `sig` must be the last element
    }
    if let Some(key) = key {
        let sig = sig.ok_or(PeerHeaderError::MissingSignature)?;
        if !integrity::verify(PEER_DOMAIN, payload, key, sig) {
            return Err(PeerHeaderError::BadSignature);
        }
    }

    let (mut s, mut v, mut n, mut w) = (None, None, None, None);
    let mut extra: Vec<(String, String)> = Vec::new();
    // Elements after the version; `payload` is "1" or "1;...".
    let body = payload.get(HEADER_VERSION.len() + 1..).unwrap_or_default();
    if payload.len() > HEADER_VERSION.len() && body.is_empty() {
        return Err(PeerHeaderError::Malformed); // trailing ';'
    }
    for elem in body.split(|b| *b == b';').filter(|_| !body.is_empty()) {
        let eq = elem
            .iter()
            .position(|b| *b == b'=')
            .ok_or(PeerHeaderError::Malformed)?;
        let (k, val) = (
            elem.get(..eq).unwrap_or_default(),
            elem.get(eq + 1..).unwrap_or_default(),
        );
        if k.is_empty() {
            return Err(PeerHeaderError::Malformed);
        }
        if val.len() > MAX_FIELD_LEN {
            return Err(PeerHeaderError::FieldTooLong);
        }
        match k {
            b"s" => set_once(&mut s, val)?,
            b"v" => set_once(&mut v, val)?,
            b"n" => set_once(&mut n, val)?,
            b"w" => set_once(&mut w, val)?,
            // A signature that is not the last element.
            b"sig" => return Err(PeerHeaderError::Malformed),
            _ => {
                let Some(xk) = k.strip_prefix(EXTRA_PREFIX) else {
                    continue; // unknown key from a newer version-1 writer
                };
                if xk.is_empty() {
                    return Err(PeerHeaderError::Malformed);
                }
                if xk.len() > MAX_FIELD_LEN {
                    return Err(PeerHeaderError::FieldTooLong);
                }
                let xk = escape::unescape(xk)?;
                if extra.iter().any(|(ek, _)| *ek == xk) {
                    return Err(PeerHeaderError::DuplicateField);
                }
                if extra.len() == MAX_EXTRA {
                    return Err(PeerHeaderError::TooManyExtras);
                }
                extra.push((xk, escape::unescape(val)?));
            }
        }
    }
    let known = |o: Option<String>| o.filter(|x| !x.is_empty());
    let or_unknown = |o: Option<String>| known(o).unwrap_or_else(|| UNKNOWN.to_owned());
    Ok(PeerIdentity {
        service: known(s).ok_or(PeerHeaderError::MissingService)?,
        version: known(v).ok_or(PeerHeaderError::MissingVersion)?,
        namespace: or_unknown(n),
        workload: or_unknown(w),
        extra,
    })
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // inline test tables read better than aliases
mod tests {
    use super::*;
    use PeerHeaderError as E;

    fn id(s: &str, v: &str, n: &str, w: &str, extra: &[(&str, &str)]) -> WorkloadIdentity {
        WorkloadIdentity {
            service: s.into(),
            version: v.into(),
            namespace: n.into(),
            workload: w.into(),
            instance: "pod-abc".into(),
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            ..WorkloadIdentity::default()
        }
    }

    fn peer(s: &str, v: &str, n: &str, w: &str, extra: &[(&str, &str)]) -> PeerIdentity {
        PeerIdentity::from(&id(s, v, n, w, extra))
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[rustfmt::skip]
    const ROUND_TRIPS: &[(&str, &str, &str, &str, &[(&str, &str)], &str)] = &[
        ("reviews", "v2", "bookinfo", "reviews-v2", &[],
         "1;s=reviews;v=v2;n=bookinfo;w=reviews-v2"),
        ("cart", "1.4.0+b7", "shop", "cart", &[("rollout", "canary"), ("weight", "10")],
         "1;s=cart;v=1.4.0+b7;n=shop;w=cart;x.rollout=canary;x.weight=10"),
        ("a;b", "v=1", "n,s", "50%", &[("k;", "é ")],
         "1;s=a%3Bb;v=v%3D1;n=n%2Cs;w=50%25;x.k%3B=%C3%A9%20"),
        ("svc", "v1", "", "", &[],
         "1;s=svc;v=v1;n=unknown;w=unknown"),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn encode_decode_round_trip() {
        for (s, v, n, w, x, wire) in ROUND_TRIPS {
            let wid = id(s, v, n, w, x);
            let enc = encode(&wid, None);
            assert_eq!(enc, *wire);
            let mut want = PeerIdentity::from(&wid);
            for f in [&mut want.namespace, &mut want.workload] {
                if f.is_empty() {
                    *f = UNKNOWN.into();
                }
            }
            assert_eq!(decode(enc.as_bytes(), None), Ok(want.clone()), "{wire}");
            // Signed variant: same payload plus a signature, decodes with and without key.
            let signed = encode(&wid, Some(KEY));
            assert!(signed.starts_with(wire) && signed.len() == wire.len() + SIG_SUFFIX_LEN);
            assert_eq!(decode(signed.as_bytes(), Some(KEY)), Ok(want.clone()));
            assert_eq!(decode(signed.as_bytes(), None), Ok(want));
        }
    }

    #[rustfmt::skip]
    const DECODE: &[(&[u8], Result<(&str, &str, &str, &str), E>)] = &[
        (b"1;s=a;v=b;n=c;w=d",          Ok(("a", "b", "c", "d"))),
        (b"  1;s=a;v=b \t",             Ok(("a", "b", "unknown", "unknown"))),
        (b"1;v=b;s=a",                  Ok(("a", "b", "unknown", "unknown"))),
        (b"1;s=a;v=b;zz=future",        Ok(("a", "b", "unknown", "unknown"))),
        (b"1;s=a;v=b;n=",               Ok(("a", "b", "unknown", "unknown"))),
        (b"1;s=a;v=b;sig=ignored",      Ok(("a", "b", "unknown", "unknown"))), // no key: not checked
        (b"1;s=caf%c3%a9;v=%41",        Ok(("café", "A", "unknown", "unknown"))),
        (b"",                           Err(E::Empty)),
        (b" \t ",                       Err(E::Empty)),
        (b"2;s=a;v=b",                  Err(E::UnsupportedVersion)),
        (b"10;s=a;v=b",                 Err(E::UnsupportedVersion)),
        (b"s=a;v=b",                    Err(E::Malformed)),
        (b"v1;s=a",                     Err(E::Malformed)),
        (b"1",                          Err(E::MissingService)),
        (b"1;",                         Err(E::Malformed)),
        (b"1;s=a;v=b;",                 Err(E::Malformed)),
        (b"1;s=a;;v=b",                 Err(E::Malformed)),
        (b"1;s=a;v",                    Err(E::Malformed)),
        (b"1;=a;s=a;v=b",               Err(E::Malformed)),
        (b"1;s=a;v=b;x.=c",             Err(E::Malformed)),
        (b"1;sig=x;s=a;v=b",            Err(E::Malformed)),
        (b"1;s=a;v=b;s=c",              Err(E::DuplicateField)),
        (b"1;s=a;v=b;x.k=1;x.k=2",      Err(E::DuplicateField)),
        (b"1;s=a;v=b=c",                Err(E::InvalidByte)),
        (b"1;s=a b;v=b",                Err(E::InvalidByte)),
        (b"1;s=a,b;v=b",                Err(E::InvalidByte)),
        (b"1;s=\xff\xfe;v=b",           Err(E::InvalidByte)),
        (b"1;s=caf\xc3\xa9;v=b",        Err(E::InvalidByte)),
        (b"\xff;s=a",                   Err(E::Malformed)),
        (b"1;s=%zz;v=b",                Err(E::BadEscape)),
        (b"1;s=%;v=b",                  Err(E::BadEscape)),
        (b"1;s=%ff;v=b",                Err(E::BadEscape)),
        (b"1;v=b",                      Err(E::MissingService)),
        (b"1;s=;v=b",                   Err(E::MissingService)),
        (b"1;s=a",                      Err(E::MissingVersion)),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decode_table() {
        for (input, want) in DECODE {
            let got = decode(input, None).map(|p| (p.service, p.version, p.namespace, p.workload));
            let want = want.map(|(s, v, n, w)| (s.into(), v.into(), n.into(), w.into()));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn field_bounds() {
        let at = "a".repeat(MAX_FIELD_LEN);
        let past = "a".repeat(MAX_FIELD_LEN + 1);
        #[rustfmt::skip]
        let cases: Vec<(String, Result<(), E>)> = vec![
            (format!("1;s={at};v=b"),             Ok(())),
            (format!("1;s={past};v=b"),           Err(E::FieldTooLong)),
            (format!("1;s=a;v=b;x.{at}=1"),       Ok(())),
            (format!("1;s=a;v=b;x.{past}=1"),     Err(E::FieldTooLong)),
            (format!("1;s=a;v=b;x.k={past}"),     Err(E::FieldTooLong)),
            (format!("1;s=a;v=b;zz={past}"),      Err(E::FieldTooLong)),
        ];
        for (input, want) in cases {
            assert_eq!(decode(input.as_bytes(), None).map(|_| ()), want, "{input}");
        }
        // Encoding clamps on escaped length, without splitting a char or an escape.
        let enc = encode(&id(&past, &"é".repeat(40), "n", "w", &[]), None);
        let p = decode(enc.as_bytes(), None).unwrap();
        assert_eq!(p.service, at);
        assert_eq!(p.version, "é".repeat(10)); // 10 × "%C3%A9" = 60 bytes; one more is 66
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn header_bounds() {
        // Pad with unknown keys (ignored by decoders) to hit the exact limit.
        let base = "1;s=a;v=b";
        let fill = |total: usize| {
            let mut s = base.to_owned();
            // Chunks of ";z=<value>", each value within MAX_FIELD_LEN, the last one exact.
            while s.len() < total {
                let room = total - s.len();
                let value = if room > 3 + MAX_FIELD_LEN {
                    MAX_FIELD_LEN.min(room - 3 - 4)
                } else {
                    room - 3
                };
                s.push_str(";z=");
                s.push_str(&"y".repeat(value));
            }
            s
        };
        let at = fill(MAX_HEADER_LEN);
        assert_eq!(at.len(), MAX_HEADER_LEN);
        assert!(decode(at.as_bytes(), None).is_ok(), "{at}");
        let past = fill(MAX_HEADER_LEN + 1);
        assert_eq!(decode(past.as_bytes(), None), Err(E::TooLong));
        assert_eq!(decode(&[b'1'; 4096], None), Err(E::TooLong));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn encode_stays_within_limits_on_hostile_input() {
        let huge = ";=,%\u{7f}é€😀".repeat(50);
        let extra: Vec<(String, String)> = (0..20)
            .map(|i| (format!("{i}{huge}"), huge.clone()))
            .chain([
                (String::new(), "empty key".into()),
                ("dup".into(), "1".into()),
                ("dup".into(), "2".into()),
            ])
            .collect();
        let wid = WorkloadIdentity {
            service: huge.clone(),
            version: huge.clone(),
            namespace: huge.clone(),
            workload: huge.clone(),
            extra,
            ..WorkloadIdentity::default()
        };
        for key in [None, Some(KEY)] {
            let enc = encode(&wid, key);
            assert!(enc.len() <= MAX_HEADER_LEN, "{}", enc.len());
            let p = decode(enc.as_bytes(), key).unwrap();
            assert!(p.extra.len() <= MAX_EXTRA);
        }
        // Duplicate and empty keys are dropped, the first value wins.
        let wid = id("a", "b", "c", "d", &[("", "x"), ("k", "1"), ("k", "2")]);
        assert_eq!(
            decode(encode(&wid, None).as_bytes(), None).unwrap().extra,
            vec![("k".into(), "1".into())]
        );
        // More than MAX_EXTRA extras: the first MAX_EXTRA are kept.
        let many: Vec<(String, String)> = (0..12).map(|i| (format!("k{i}"), "v".into())).collect();
        let wid = WorkloadIdentity {
            extra: many.clone(),
            ..id("a", "b", "c", "d", &[])
        };
        assert_eq!(
            decode(encode(&wid, None).as_bytes(), None).unwrap().extra,
            many[..MAX_EXTRA]
        );
        let nine = format!(
            "1;s=a;v=b{}",
            (0..9).map(|i| format!(";x.k{i}=v")).collect::<String>()
        );
        assert_eq!(decode(nine.as_bytes(), None), Err(E::TooManyExtras));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn signatures() {
        let wid = id(
            "reviews",
            "v2",
            "bookinfo",
            "reviews-v2",
            &[("stage", "canary")],
        );
        let signed = encode(&wid, Some(KEY));
        let unsigned = encode(&wid, None);
        let tampered = signed.replacen("v=v2", "v=v3", 1);
        let mut flipped = signed.clone().into_bytes();
        if let Some(last) = flipped.last_mut() {
            *last = if *last == b'A' { b'B' } else { b'A' };
        }
        let truncated_sig = &signed[..signed.len() - 1];
        let appended = format!("{signed};x.evil=1");
        let empty_sig = format!("{unsigned};sig=");
        #[rustfmt::skip]
        let cases: Vec<(&[u8], Option<&[u8]>, Result<(), E>)> = vec![
            (signed.as_bytes(),        Some(KEY),              Ok(())),
            (signed.as_bytes(),        None,                   Ok(())),
            (signed.as_bytes(),        Some(&b"another key"[..]),   Err(E::BadSignature)),
            (tampered.as_bytes(),      Some(KEY),              Err(E::BadSignature)),
            (&flipped,                 Some(KEY),              Err(E::BadSignature)),
            (truncated_sig.as_bytes(), Some(KEY),              Err(E::BadSignature)),
            (appended.as_bytes(),      Some(KEY),              Err(E::Malformed)),
            (empty_sig.as_bytes(),     Some(KEY),              Err(E::BadSignature)),
            (unsigned.as_bytes(),      Some(KEY),              Err(E::MissingSignature)),
            (unsigned.as_bytes(),      None,                   Ok(())),
        ];
        for (i, (input, key, want)) in cases.into_iter().enumerate() {
            assert_eq!(decode(input, key).map(|_| ()), want, "case {i}");
        }
        assert_eq!(
            decode(signed.as_bytes(), Some(KEY)).unwrap(),
            PeerIdentity::from(&wid)
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn arbitrary_bytes_never_panic() {
        // Cheap deterministic fuzz: every prefix and single-byte mutation of a signed header.
        let signed = encode(&id("a;b", "v%1", "n", "w", &[("k", "é")]), Some(KEY));
        let bytes = signed.as_bytes();
        for end in 0..=bytes.len() {
            let _ = decode(&bytes[..end], Some(KEY));
            let _ = decode(&bytes[..end], None);
        }
        for i in 0..bytes.len() {
            for b in [0u8, b';', b'=', b'%', b' ', 0x80, 0xff] {
                let mut m = bytes.to_vec();
                m[i] = b;
                let _ = decode(&m, None);
                assert!(decode(&m, Some(KEY)).is_err() || m == bytes);
            }
        }
        assert_eq!(peer("a", "b", "c", "d", &[]).service, "a");
        assert_eq!(PeerIdentity::unknown().version, UNKNOWN);
    }
}
