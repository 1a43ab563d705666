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
    // Eight digits at a time as one 64-bit word (ids are decoded on every request: a
    // trace id is four words instead of 32 table lookups), the rest through the table.
    let mut digits = s.chunks_exact(8);
    let mut bytes = out.chunks_exact_mut(4);
    for (word, four) in (&mut digits).zip(&mut bytes) {
        let word = <[u8; 8]>::try_from(word).ok().map(u64::from_le_bytes)?;
        four.copy_from_slice(&decode_word(word)?.to_le_bytes());
    }
    let mut bad = 0u8;
    for (byte, pair) in bytes
        .into_remainder()
        .iter_mut()
        .zip(digits.remainder().chunks_exact(2))
    {
        if let [hi, lo] = pair {
            let (hi, lo) = (hex_value(*hi), hex_value(*lo));
            bad |= hi | lo;
            *byte = (hi << 4) | (lo & 0x0f);
        }
    }
    (bad & INVALID == 0).then_some(out)
}

/// Every byte of a word `x` set to `b`.
const fn lanes(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// Eight lower-case hex digits (the first in the low byte) → their four bytes, the first
/// digit pair in the low byte; `None` if any byte is not one. SWAR: each byte lane is
/// range-checked by adding a bias whose carry lands in the lane's top bit (no lane can
/// carry into the next: every byte is checked below 0x80 first).
#[inline]
fn decode_word(x: u64) -> Option<u32> {
    let top = lanes(0x80);
    // Lane ≥ lo sets the top bit of `x + (0x80 - lo)`; lane > hi sets it in `x + (0x7f - hi)`.
    let between = |lo: u8, hi: u8| {
        (x.wrapping_add(lanes(0x80 - lo)) & !x.wrapping_add(lanes(0x7f - hi))) & top
    };
    let digit = between(b'0', b'9');
    let letter = between(b'a', b'f');
    if x & top != 0 || (digit | letter) != top {
        return None;
    }
    // A digit's value is its low nibble; a letter's, its low nibble plus 9.
    let v = (x & lanes(0x0f)) + (letter >> 7) * 9;
    // Nibble pairs into bytes (in the low byte of each 16-bit lane), then the four bytes
    // packed together.
    let pairs = ((v << 4) | (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    u32::try_from((quads | (quads >> 16)) & 0xffff_ffff).ok()
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
    fn word_decoding_agrees_with_the_digit_rule_in_every_position() {
        // Every byte value at every one of the eight positions of a word, the others
        // valid digits: the word path must accept and decode exactly what the table does.
        let base = *b"0f9a5c3e";
        for at in 0..8 {
            for c in 0..=255u8 {
                let mut s = base;
                s[at] = c;
                let want: Option<Vec<u8>> = s
                    .chunks(2)
                    .map(|p| Some((lower_hex_val(p[0])? << 4) | lower_hex_val(p[1])?))
                    .collect();
                assert_eq!(decode::<4>(&s).map(|b| b.to_vec()), want, "{at} {c:#x}");
            }
        }
        // Words and table remainder together (a 20-digit value: two words and a pair).
        assert_eq!(
            decode::<10>(b"00112233445566778899"),
            Some([0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99])
        );
        assert_eq!(decode::<10>(b"0011223344556677889G"), None);
        assert_eq!(
            decode::<16>(b"4bf92f3577b34da6a3ce929d0e0e4736").map(|b| b[15]),
            Some(0x36)
        );
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
