//! Decoding the host's serialized header maps without trusting them: the SDK's own decoder
//! unwraps on non-UTF-8 names and on short buffers, and a panic kills the VM.
//! Layout (proxy-wasm ABI): `count(u32 LE)`, then `count` pairs of `(key_len u32, value_len u32)`,
//! then each key and value followed by a NUL byte.

use meshwake_trace_context::propagator::HeaderSource;
use std::borrow::Cow;

/// Most header pairs decoded from one map; the rest are ignored (Envoy limits headers anyway).
pub const MAX_PAIRS: usize = 1024;

/// Header pairs with lower-cased, lossily decoded names and raw value bytes.
pub fn decode_map(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    decode_map_borrowed(bytes)
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.to_vec()))
        .collect()
}

/// Like [`decode_map`], borrowing from `bytes`: names are only copied when they are not
/// already lower-case UTF-8 (Envoy's codecs lower-case them), values never. This is the
/// per-request path: two allocations per header fewer than owned pairs.
pub fn decode_map_borrowed(bytes: &[u8]) -> Vec<(Cow<'_, str>, &[u8])> {
    let mut out = Vec::with_capacity(pair_count(bytes));
    for_each_pair(bytes, |k, v| out.push((name(k), v)));
    out
}

/// A decoded header map borrowing the host's serialized bytes: names and values are not
/// copied nor checked for UTF-8, and lookups compare names case-insensitively as bytes
/// (Envoy's codecs lower-case names, so a lookup is mostly a length check and a `memcmp`).
/// The per-request path: one allocation (the pair list) per map.
#[derive(Debug, Default)]
pub struct HeaderMap<'a> {
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> HeaderMap<'a> {
    /// Decode the host's layout (see the module docs); a malformed tail is ignored.
    pub fn decode(bytes: &'a [u8]) -> HeaderMap<'a> {
        let mut pairs = Vec::with_capacity(pair_count(bytes));
        for_each_pair(bytes, |k, v| pairs.push((k, v)));
        HeaderMap { pairs }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when the map has no pair.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Index of the first pair named `name` at or after `from`. A plain loop, the length
    /// compared first: in the module (opt-level `s`) an iterator chain here stayed a call
    /// per pair, the largest single cost of propagation in V8.
    fn find(&self, name: &[u8], from: usize) -> Option<usize> {
        let mut i = from;
        while let Some((k, _)) = self.pairs.get(i) {
            if k.len() == name.len() && k.eq_ignore_ascii_case(name) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    fn value(&self, i: usize) -> Option<&'a [u8]> {
        self.pairs.get(i).map(|(_, v)| *v)
    }
}

impl HeaderSource for HeaderMap<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.find(name.as_bytes(), 0).and_then(|i| self.value(i))
    }
    fn get_all(&self, name: &str) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut at = self.find(name.as_bytes(), 0);
        while let Some(i) = at {
            out.extend(self.value(i));
            at = self.find(name.as_bytes(), i + 1);
        }
        out
    }
    fn count(&self, name: &str) -> usize {
        let mut n = 0;
        let mut at = self.find(name.as_bytes(), 0);
        while let Some(i) = at {
            n += 1;
            at = self.find(name.as_bytes(), i + 1);
        }
        n
    }
}

/// The pair count the map announces, bounded by what its size can hold.
fn pair_count(bytes: &[u8]) -> usize {
    let announced = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes);
    usize::try_from(announced)
        .unwrap_or(0)
        .min(MAX_PAIRS)
        .min(bytes.len().saturating_sub(4) / 8)
}

/// Every `(name, value)` of the serialized map, in order, up to [`MAX_PAIRS`].
fn for_each_pair<'a>(bytes: &'a [u8], mut pair: impl FnMut(&'a [u8], &'a [u8])) {
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let Some(count) = u32_at(0) else {
        return;
    };
    let count = count.min(MAX_PAIRS);
    let Some(mut p) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else {
        return;
    };
    for n in 0..count {
        let s = 4 + n * 8;
        let (Some(klen), Some(vlen)) = (u32_at(s), u32_at(s + 4)) else {
            break;
        };
        let Some(key) = p.checked_add(klen).and_then(|e| bytes.get(p..e)) else {
            break;
        };
        p += klen + 1;
        let Some(value) = p.checked_add(vlen).and_then(|e| bytes.get(p..e)) else {
            break;
        };
        p += vlen + 1;
        pair(key, value);
    }
}

fn name(key: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(key) {
        Ok(s) if !s.bytes().any(|b| b.is_ascii_uppercase()) => Cow::Borrowed(s),
        Ok(s) => Cow::Owned(s.to_ascii_lowercase()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(key).to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(*k);
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decodes_and_survives_garbage() {
        let b = encode(&[(b":path", b"/x"), (b"X-Bin\xff", b"\xff\xfe")]);
        let m = decode_map(&b);
        assert_eq!(
            m,
            vec![
                (":path".into(), b"/x".to_vec()),
                ("x-bin\u{fffd}".into(), b"\xff\xfe".to_vec())
            ]
        );
        for cut in 0..b.len() {
            let _ = decode_map(&b[..cut]);
        }
        assert!(decode_map(&[0xff, 0xff, 0xff, 0xff, 1, 2]).is_empty());
        assert!(decode_map(b"").is_empty());
        let borrowed = decode_map_borrowed(&b);
        assert!(matches!(borrowed[0].0, Cow::Borrowed(":path")));
        assert_eq!(borrowed[1].0, "x-bin\u{fffd}");
        assert_eq!(borrowed[1].1, b"\xff\xfe");
        for cut in 0..b.len() {
            let _ = HeaderMap::decode(&b[..cut]);
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn header_map_lookups_ignore_case_and_keep_order() {
        let b = encode(&[
            (b":path", b"/x"),
            (b"TraceParent", b"a"),
            (b"traceparent", b"b"),
            (b"X-Bin\xff", b"\xff\xfe"),
            (b"tracestatf", b"no"),
        ]);
        let m = HeaderMap::decode(&b);
        assert_eq!(m.len(), 5);
        assert_eq!(m.get("traceparent"), Some(&b"a"[..]));
        assert_eq!(m.get("TRACEPARENT"), Some(&b"a"[..]));
        assert_eq!(m.get_all("traceparent"), vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(m.count("traceparent"), 2);
        assert_eq!(m.get("tracestate"), None);
        assert_eq!(m.count("tracestate"), 0);
        assert_eq!(m.get(":path"), Some(&b"/x"[..]));
        // What the owned decoding finds, this finds too.
        let owned = decode_map_borrowed(&b);
        for name in [":path", "traceparent", "x-bin", "tracestatf", "missing"] {
            assert_eq!(m.get(name), owned.get(name), "{name}");
            assert_eq!(m.get_all(name), owned.get_all(name), "{name}");
        }
    }
}
