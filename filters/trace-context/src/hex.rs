//! Lower-case hex helpers shared by the parsers. Upper-case is rejected on purpose:
//! W3C Trace Context and B3 both require lower-case hex.

/// Value of one lower-case hex digit.
pub(crate) const fn lower_hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly `2 * N` lower-case hex digits into `N` bytes.
pub(crate) fn decode<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    // Through a table, and one check per byte: ids are decoded on every request.
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        if let [hi, lo] = pair {
            let (hi, lo) = (hex_value(*hi), hex_value(*lo));
            bad |= hi | lo;
            *byte = (hi << 4) | (lo & 0x0f);
        }
    }
    (bad & INVALID == 0).then_some(out)
}

/// Marks a byte that is not a lower-case hex digit in [`HEX_VALUE`].
const INVALID: u8 = 0x80;

/// [`lower_hex_val`] of `c`, or [`INVALID`].
#[inline]
fn hex_value(c: u8) -> u8 {
    HEX_VALUE.get(usize::from(c)).copied().unwrap_or(INVALID)
}

/// [`lower_hex_val`] of every byte, [`INVALID`] for the others.
// Indexing in a constant's evaluation: out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const HEX_VALUE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut c = 0;
    while c < 256 {
        if let Some(v) = lower_hex_val(c as u8) {
            table[c] = v;
        }
        c += 1;
    }
    table
};

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Writes the lower-case hex form of `bytes` into `out` (two digits a byte; what does not
/// fit, or a missing `out`, is skipped).
pub(crate) fn write(bytes: &[u8], out: Option<&mut [u8]>) {
    let Some(out) = out else {
        return;
    };
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        if let [hi, lo] = pair {
            *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = DIGITS.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0');
        }
    }
}

/// Appends the lower-case hex form of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    // In chunks through a stack buffer: one `push_str` per 32 bytes instead of a `push`
    // (capacity check, UTF-8 encoding) per digit; ids are hex-encoded several times a request.
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(32) {
        for (pair, b) in buf.chunks_exact_mut(2).zip(chunk) {
            if let [hi, lo] = pair {
                *hi = DIGITS.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                *lo = DIGITS.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0');
            }
        }
        let digits = buf.get(..chunk.len() * 2).unwrap_or_default();
        // Always ASCII hex digits.
        out.push_str(std::str::from_utf8(digits).unwrap_or_default());
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn table_decoding_agrees_with_the_digit_rule_for_every_byte_pair() {
        for hi in 0..=255u8 {
            for lo in 0..=255u8 {
                let want = match (lower_hex_val(hi), lower_hex_val(lo)) {
                    (Some(h), Some(l)) => Some([(h << 4) | l]),
                    _ => None,
                };
                assert_eq!(decode::<1>(&[hi, lo]), want, "{hi:#x} {lo:#x}");
            }
        }
        assert_eq!(decode::<2>(b"0aFF"), None);
        assert_eq!(decode::<2>(b"0aff"), Some([0x0a, 0xff]));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn encode_any_length_appends_lowercase_digits() {
        for n in [0usize, 1, 8, 16, 31, 32, 33, 64, 100] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 5) as u8).collect();
            let mut out = String::from("x");
            encode_into(&bytes, &mut out);
            let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(out, format!("x{want}"), "{n}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decode_table() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<[u8; 2]>)] = &[
            ("00ff", Some([0x00, 0xff])),
            ("a1b2", Some([0xa1, 0xb2])),
            ("A1B2", None),
            ("a1b",  None),
            ("a1b23", None),
            ("g1b2", None),
            ("",     None),
        ];
        for (input, expected) in cases {
            assert_eq!(decode::<2>(input.as_bytes()), *expected, "{input}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn encode_roundtrip() {
        let mut s = String::new();
        encode_into(&[0x00, 0x0f, 0xa0, 0xff], &mut s);
        assert_eq!(s, "000fa0ff");
        assert_eq!(decode::<4>(s.as_bytes()), Some([0x00, 0x0f, 0xa0, 0xff]));
    }
}
