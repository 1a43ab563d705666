//! HMAC-SHA256 integrity for the meshwake headers (see docs/adr/0002-identity-header.md).
//!
//! Each header signs the exact wire bytes before its `;sig=` suffix, prefixed by a
//! per-header domain string so a signature made for one header never verifies for another.
//! The tag travels as unpadded base64url (RFC 4648 section 5): 32 bytes → 43 characters.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Separator between a header's payload and its signature.
pub(crate) const SIG_SEPARATOR: &str = ";sig=";
/// Length of an HMAC-SHA256 tag in unpadded base64url.
pub(crate) const SIG_B64_LEN: usize = 43;
/// Bytes a signature adds to a header: `;sig=` plus the tag.
pub(crate) const SIG_SUFFIX_LEN: usize = SIG_SEPARATOR.len() + SIG_B64_LEN;

/// Domain of the `x-meshwake-peer` signature.
pub(crate) const PEER_DOMAIN: &[u8] = b"meshwake-peer\n";
/// Domain of the `x-meshwake-lineage` signature.
pub(crate) const LINEAGE_DOMAIN: &[u8] = b"meshwake-lineage\n";

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn mac(domain: &[u8], payload: &[u8], key: &[u8]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length, so this never fails in practice; no panic either way.
    let mut m = HmacSha256::new_from_slice(key).ok()?;
    m.update(domain);
    m.update(payload);
    Some(m)
}

/// Appends `;sig=<base64url tag>` for `payload` to `out`.
pub(crate) fn append_signature(out: &mut String, domain: &[u8], key: &[u8]) {
    let Some(m) = mac(domain, out.as_bytes(), key) else {
        return;
    };
    let tag = m.finalize().into_bytes();
    out.push_str(SIG_SEPARATOR);
    b64url_encode_into(out, &tag);
}

/// Checks `sig_b64` against `payload` in constant time.
pub(crate) fn verify(domain: &[u8], payload: &[u8], key: &[u8], sig_b64: &[u8]) -> bool {
    let mut tag = [0u8; 32];
    if sig_b64.len() != SIG_B64_LEN || !b64url_decode_into(sig_b64, &mut tag) {
        return false;
    }
    mac(domain, payload, key).is_some_and(|m| m.verify_slice(&tag).is_ok())
}

/// Splits `bytes` into `(payload, Some(signature))` at the last `;sig=`, or `(bytes, None)`.
pub(crate) fn split_signature(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    let sep = SIG_SEPARATOR.as_bytes();
    let pos = bytes.windows(sep.len()).rposition(|w| w == sep);
    match pos {
        Some(p) => (
            bytes.get(..p).unwrap_or_default(),
            bytes.get(p + sep.len()..),
        ),
        None => (bytes, None),
    }
}

/// True when `sig` could be a base64url tag (checked even without a key, so a stray
/// `;sig=` inside a value is not silently taken for a signature).
pub(crate) fn is_sig_syntax(sig: &[u8]) -> bool {
    sig.iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

fn b64url_encode_into(out: &mut String, data: &[u8]) {
    let sym = |v: u32| char::from(B64.get((v & 63) as usize).copied().unwrap_or(b'A'));
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        if chunk.len() > 1 {
            out.push(sym(n >> 6));
        }
        if chunk.len() > 2 {
            out.push(sym(n));
        }
    }
}

fn b64_val(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes unpadded base64url into exactly `out.len()` bytes; false on any mismatch.
fn b64url_decode_into(input: &[u8], out: &mut [u8]) -> bool {
    let mut written = 0;
    for chunk in input.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let Some(v) = b64_val(*c) else { return false };
            n |= v << (18 - 6 * i as u32);
        }
        // Unused low bits of a short final chunk must be zero: one tag, one encoding.
        let (produced, unused_mask) = match chunk.len() {
            4 => (3, 0),
            3 => (2, 0xff),
            2 => (1, 0xffff),
            _ => return false,
        };
        if n & unused_mask != 0 {
            return false;
        }
        for k in 0..produced {
            let Some(slot) = out.get_mut(written) else {
                return false;
            };
            *slot = (n >> (16 - 8 * k)) as u8;
            written += 1;
        }
    }
    written == out.len()
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // inline test tables read better than aliases
mod tests {
    use super::*;

    // RFC 4648 section 10 vectors, base64url without padding.
    #[rustfmt::skip]
    const B64_VECTORS: &[(&[u8], &str)] = &[
        (b"",       ""),
        (b"f",      "Zg"),
        (b"fo",     "Zm8"),
        (b"foo",    "Zm9v"),
        (b"foob",   "Zm9vYg"),
        (b"fooba",  "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
        (&[0xfb, 0xff], "-_8"),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn base64url_vectors() {
        for (raw, enc) in B64_VECTORS {
            let mut s = String::new();
            b64url_encode_into(&mut s, raw);
            assert_eq!(s, *enc);
            let mut back = vec![0u8; raw.len()];
            assert!(b64url_decode_into(enc.as_bytes(), &mut back), "{enc}");
            assert_eq!(&back, raw);
        }
        let mut two = [0u8; 2];
        assert!(!b64url_decode_into(b"Zm9v", &mut two), "too many bytes");
        assert!(
            !b64url_decode_into(b"Z=", &mut two),
            "padding is not base64url"
        );
        assert!(!b64url_decode_into(b"Z", &mut two), "dangling symbol");
        let mut one = [0u8; 1];
        assert!(
            !b64url_decode_into(b"Zh", &mut one),
            "non-canonical trailing bits"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2 with an empty domain: key "Jefe".
        let mut out = String::from("what do ya want for nothing?");
        let payload_len = out.len();
        append_signature(&mut out, b"", b"Jefe");
        let sig = out.get(payload_len + SIG_SEPARATOR.len()..).unwrap();
        let mut tag = [0u8; 32];
        assert!(b64url_decode_into(sig.as_bytes(), &mut tag));
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(sig.len(), SIG_B64_LEN);
        let payload = b"what do ya want for nothing?";
        assert!(verify(b"", payload, b"Jefe", sig.as_bytes()));
        assert!(!verify(b"", payload, b"jefe", sig.as_bytes()));
        assert!(!verify(PEER_DOMAIN, payload, b"Jefe", sig.as_bytes()));
        assert!(!verify(b"", payload, b"Jefe", b"short"));
    }

    #[rustfmt::skip]
    const SPLITS: &[(&[u8], &[u8], Option<&[u8]>)] = &[
        (b"1;s=a",             b"1;s=a", None),
        (b"1;s=a;sig=XYZ",     b"1;s=a", Some(b"XYZ")),
        (b"1;s=a;sig=",        b"1;s=a", Some(b"")),
        (b";sig=a;sig=b",      b";sig=a", Some(b"b")),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn split_at_last_signature() {
        for (input, payload, sig) in SPLITS {
            assert_eq!(split_signature(input), (*payload, *sig));
        }
    }
}
