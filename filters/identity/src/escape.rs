//! Percent-escaping shared by the peer and lineage headers.
//!
//! Escaped on the wire: the separators `;` `=` `,` and `%` itself, plus every byte outside
//! visible ASCII (space, controls, DEL, non-ASCII). Everything else passes through, so
//! ordinary names like `reviews` or `v2.1-rc` stay readable in captures.

/// Why an escaped value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnescapeError {
    /// `%` not followed by two hex digits, or the result is not UTF-8.
    BadEscape,
    /// A raw byte that must have been escaped (separator, space, control, non-ASCII).
    InvalidByte,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_digit(nibble: u8) -> char {
    char::from(HEX.get(usize::from(nibble & 0x0f)).copied().unwrap_or(b'0'))
}

fn needs_escape(b: u8) -> bool {
    !(0x21..=0x7e).contains(&b) || matches!(b, b';' | b'=' | b',' | b'%')
}

/// Wire length of `c` once escaped.
fn escaped_char_len(c: char) -> usize {
    let mut buf = [0u8; 4];
    let s = c.encode_utf8(&mut buf);
    s.bytes().map(|b| if needs_escape(b) { 3 } else { 1 }).sum()
}

/// Longest prefix of `value` (on a char boundary) whose escaped form fits in `max_wire`.
pub(crate) fn clamp(value: &str, max_wire: usize) -> &str {
    let mut wire = 0;
    for (i, c) in value.char_indices() {
        wire += escaped_char_len(c);
        if wire > max_wire {
            return value.get(..i).unwrap_or_default();
        }
    }
    value
}

/// Appends the escaped form of `value` to `out`, cut (on a char boundary) so that at most
/// `max_wire` bytes are written.
pub(crate) fn escape_into(out: &mut String, value: &str, max_wire: usize) {
    for b in clamp(value, max_wire).bytes() {
        if needs_escape(b) {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        } else {
            out.push(char::from(b));
        }
    }
}

/// Length of the escaped form of `value`.
pub(crate) fn escaped_len(value: &str) -> usize {
    value.chars().map(escaped_char_len).sum()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes an escaped wire value. Never panics, whatever the bytes.
pub(crate) fn unescape(wire: &[u8]) -> Result<String, UnescapeError> {
    let mut out = Vec::with_capacity(wire.len());
    let mut it = wire.iter().copied();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hi = it
                .next()
                .and_then(hex_val)
                .ok_or(UnescapeError::BadEscape)?;
            let lo = it
                .next()
                .and_then(hex_val)
                .ok_or(UnescapeError::BadEscape)?;
            out.push((hi << 4) | lo);
        } else if needs_escape(b) {
            return Err(UnescapeError::InvalidByte);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| UnescapeError::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(v: &str, max: usize) -> String {
        let mut s = String::new();
        escape_into(&mut s, v, max);
        s
    }

    #[rustfmt::skip]
    const ROUND_TRIPS: &[(&str, &str)] = &[
        ("reviews",       "reviews"),
        ("v2.1-rc_3+b",   "v2.1-rc_3+b"),
        ("a;b=c,d%e",     "a%3Bb%3Dc%2Cd%25e"),
        ("with space",    "with%20space"),
        ("tab\tnl\n",     "tab%09nl%0A"),
        ("café",          "caf%C3%A9"),
        ("",              ""),
        ("a@b",           "a@b"),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn escape_round_trips() {
        for (raw, wire) in ROUND_TRIPS {
            assert_eq!(esc(raw, 1000), *wire, "escape {raw:?}");
            assert_eq!(escaped_len(raw), wire.len(), "len {raw:?}");
            assert_eq!(
                unescape(wire.as_bytes()).as_deref(),
                Ok(*raw),
                "unescape {wire:?}"
            );
        }
    }

    #[rustfmt::skip]
    const BAD: &[(&[u8], UnescapeError)] = &[
        (b"%",        UnescapeError::BadEscape),
        (b"%4",       UnescapeError::BadEscape),
        (b"%zz",      UnescapeError::BadEscape),
        (b"%FF",      UnescapeError::BadEscape),   // lone 0xFF is not UTF-8
        (b"%C3",      UnescapeError::BadEscape),   // truncated UTF-8 sequence
        (b"a b",      UnescapeError::InvalidByte),
        (b"a;b",      UnescapeError::InvalidByte),
        (b"\xff\xfe", UnescapeError::InvalidByte),
        (b"caf\xc3\xa9", UnescapeError::InvalidByte), // raw UTF-8 must be escaped
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn unescape_rejects() {
        for (wire, err) in BAD {
            assert_eq!(unescape(wire), Err(*err), "{wire:?}");
        }
    }

    #[rustfmt::skip]
    const CLAMPS: &[(&str, usize, &str)] = &[
        ("abcdef", 3, "abc"),
        ("abc",    3, "abc"),
        ("a;b",    3, "a"),     // `;` needs 3 bytes, only 2 left
        ("a;b",    4, "a;"),
        ("éé",     8, "é"),     // never split a char
        ("éé",     5, ""),
        ("",       0, ""),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn clamp_cuts_on_char_boundary() {
        for (v, max, want) in CLAMPS {
            assert_eq!(clamp(v, *max), *want, "{v:?} {max}");
            assert!(esc(v, *max).len() <= *max);
        }
    }
}
