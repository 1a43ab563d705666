//! Decoding the host's serialized header maps without trusting them: the SDK's own decoder
//! unwraps on non-UTF-8 names and on short buffers, and a panic kills the VM.
//! Layout (proxy-wasm ABI): `count(u32 LE)`, then `count` pairs of `(key_len u32, value_len u32)`,
//! then each key and value followed by a NUL byte.

use meshwake_telemetry::metrics::same_bytes;
use meshwake_trace_context::propagator::HeaderSource;
use std::borrow::Cow;

/// Most header pairs decoded from one map; the rest are ignored (Envoy limits headers anyway).
pub const MAX_PAIRS: usize = 1024;

/// Pairs in the proxy-wasm map layout (what [`decode_map`] reads): the count, then each
/// name's and value's length, then each name and value NUL-terminated (u32 little-endian).
pub fn encode_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&n(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&n(k.len()));
        out.extend_from_slice(&n(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

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
    for_each_pair(bytes, |k, v| {
        out.push((name(k), v));
        true
    });
    out
}

/// A decoded header map borrowing the host's serialized bytes: names and values are not
/// copied nor checked for UTF-8, and lookups compare names case-insensitively as bytes.
/// Each pair is classified once, at decoding, into a slot when its name is one the pipeline
/// reads ([`KNOWN`]); the slot keeps the first value and the count, so a lookup of a known
/// name is an index, not a scan of every pair (in V8 the scans were the largest single
/// cost of propagation, ~30 lookups per request). Other names, and the later values of a
/// repeated known name, are found by walking the serialized map again.
/// No allocation: the per-request path.
#[derive(Debug, Default)]
pub struct HeaderMap<'a> {
    bytes: &'a [u8],
    /// Pairs decoded.
    len: usize,
    /// Per known slot: the first value with that name (empty when `counts` is 0).
    first: [&'a [u8]; KNOWN.len()],
    /// Per known slot: how many pairs have that name.
    counts: [u16; KNOWN.len()],
    /// Bit `c` set when some pair's name has [`candidate`] `c`, known or not: a name whose
    /// candidate no pair has is absent without comparing it (most lookups are of absent
    /// names: the formats and identity headers removed when present).
    candidates: u32,
}

/// The header names the pipeline reads, lower-case, by length: [`candidate`] maps each
/// (length, distinguishing byte) to its index here.
pub const KNOWN: [&str; 20] = [
    "b3",
    ":path",
    ":method",
    ":scheme",
    "baggage",
    ":authority",
    "user-agent",
    "tracestate",
    "x-b3-flags",
    "traceparent",
    "grpc-status",
    "x-b3-spanid",
    "x-request-id",
    "x-b3-traceid",
    "x-b3-sampled",
    "content-type",
    "x-meshwake-peer",
    "x-b3-parentspanid",
    "x-meshwake-lineage",
    "x-meshwake-force-sample",
];

/// Slot of `name` in [`KNOWN`], ignoring ASCII case: [`candidate`] picks the only possible
/// one, one comparison confirms it (no scan of the names).
#[inline]
pub fn known_slot(name: &[u8]) -> Option<usize> {
    candidate(name).filter(|&slot| is_slot(name, slot))
}

/// `name` is the name of `slot`, ignoring ASCII case.
#[inline]
fn is_slot(name: &[u8], slot: usize) -> bool {
    KNOWN
        .get(slot)
        .is_some_and(|known| eq_lower(name, known.as_bytes()))
}

/// The only slot `name` can have, from its length and at most one (case-folded) byte. Two
/// names equal ignoring case have the same candidate. Plain matches: at opt-level `s`
/// iterator chains here stayed calls per byte in the module.
#[inline(always)]
fn candidate(name: &[u8]) -> Option<usize> {
    let at = |i: usize| name.get(i).map_or(0, u8::to_ascii_lowercase);
    let slot = match name.len() {
        2 => 0,
        5 => 1,
        7 => match at(1) {
            b'm' => 2,
            b's' => 3,
            b'a' => 4,
            _ => return None,
        },
        10 => match at(0) {
            b':' => 5,
            b'u' => 6,
            b't' => 7,
            b'x' => 8,
            _ => return None,
        },
        11 => match at(0) {
            b't' => 9,
            b'g' => 10,
            b'x' => 11,
            _ => return None,
        },
        12 => match at(5) {
            b'u' => 12,
            b't' => 13,
            b's' => 14,
            b'n' => 15,
            _ => return None,
        },
        15 => 16,
        17 => 17,
        18 => 18,
        23 => 19,
        _ => return None,
    };
    Some(slot)
}

/// `name` equals `lower` (lower-case) ignoring ASCII case. The same bytes first (Envoy's
/// codecs lower-case names, and the pipeline asks with lower-case constants, often the very
/// constant of [`KNOWN`]), compared by words; byte by byte with case folding only when they
/// differ.
#[inline]
fn eq_lower(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && (std::ptr::eq(name.as_ptr(), lower.as_ptr())
            || same_bytes(name, lower)
            || eq_folded(name, lower))
}

/// Byte by byte, `name` folded to lower case.
fn eq_folded(name: &[u8], lower: &[u8]) -> bool {
    let mut i = 0;
    while let (Some(a), Some(b)) = (name.get(i), lower.get(i)) {
        if a.to_ascii_lowercase() != *b {
            return false;
        }
        i += 1;
    }
    true
}

impl<'a> HeaderMap<'a> {
    /// Decode the host's layout (see the module docs); a malformed tail is ignored.
    pub fn decode(bytes: &'a [u8]) -> HeaderMap<'a> {
        let mut map = HeaderMap {
            bytes,
            ..HeaderMap::default()
        };
        for_each_pair(bytes, |k, v| {
            if let Some(c) = candidate(k) {
                map.candidates |= 1 << c;
                if is_slot(k, c) {
                    map.note(c, v);
                }
            }
            map.len += 1;
            true
        });
        map
    }

    /// A pair named as `slot` has value `value`.
    fn note(&mut self, slot: usize, value: &'a [u8]) {
        if let (Some(first), Some(count)) = (self.first.get_mut(slot), self.counts.get_mut(slot)) {
            if *count == 0 {
                *first = value;
            }
            *count = count.saturating_add(1);
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map has no pair.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// First value and count of `name` from its slot, or nothing and 0 when no pair can
    /// have that name (`None`: not a known name and maybe present).
    #[inline(always)]
    fn known(&self, name: &[u8]) -> Option<(&'a [u8], usize)> {
        let slot = candidate(name)?;
        if self.candidates & (1 << slot) == 0 {
            return Some((&[], 0));
        }
        if !is_slot(name, slot) {
            return None;
        }
        Some((*self.first.get(slot)?, usize::from(*self.counts.get(slot)?)))
    }

    /// Every value named `name`, in order, while `each` returns true: a walk of the
    /// serialized map, for names without a slot and repeated ones.
    fn scan(&self, name: &[u8], mut each: impl FnMut(&'a [u8]) -> bool) {
        for_each_pair(self.bytes, |k, v| {
            if k.len() == name.len() && k.eq_ignore_ascii_case(name) {
                each(v)
            } else {
                true
            }
        });
    }
}

impl HeaderSource for HeaderMap<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        match self.known(name.as_bytes()) {
            Some((_, 0)) => None,
            Some((first, _)) => Some(first),
            None => {
                let mut found = None;
                self.scan(name.as_bytes(), |v| {
                    found = Some(v);
                    false
                });
                found
            }
        }
    }
    fn get_all(&self, name: &str) -> Vec<&[u8]> {
        match self.known(name.as_bytes()) {
            Some((_, 0)) => Vec::new(),
            Some((first, 1)) => vec![first],
            _ => {
                let mut out = Vec::new();
                self.scan(name.as_bytes(), |v| {
                    out.push(v);
                    true
                });
                out
            }
        }
    }
    fn count(&self, name: &str) -> usize {
        if let Some((_, count)) = self.known(name.as_bytes()) {
            return count;
        }
        let mut n = 0;
        self.scan(name.as_bytes(), |_| {
            n += 1;
            true
        });
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

/// Every `(name, value)` of the serialized map, in order, up to [`MAX_PAIRS`], while
/// `pair` returns true.
fn for_each_pair<'a>(bytes: &'a [u8], mut pair: impl FnMut(&'a [u8], &'a [u8]) -> bool) {
    let Some((count, rest)) = bytes.split_first_chunk::<4>() else {
        return;
    };
    let count = usize::try_from(u32::from_le_bytes(*count)).map_or(MAX_PAIRS, |n| n.min(MAX_PAIRS));
    // The size table, then the strings, each followed by a NUL. A table cut short leaves
    // the strings' start unknown: nothing is read. Sliced as it goes, so each length is
    // checked once against what is left (on every request: no index arithmetic per read).
    let Some((table, strings)) = rest.split_at_checked(count * 8) else {
        return;
    };
    let mut strings = Some(strings);
    for sizes in table.chunks_exact(8) {
        let (Some(klen), Some(vlen)) = (
            sizes.first_chunk::<4>().map(le_size),
            sizes.last_chunk::<4>().map(le_size),
        ) else {
            break;
        };
        let Some((key, after)) = strings.and_then(|s| s.split_at_checked(klen)) else {
            break;
        };
        let Some((value, after)) = after.get(1..).and_then(|s| s.split_at_checked(vlen)) else {
            break;
        };
        strings = after.get(1..);
        if !pair(key, value) {
            break;
        }
    }
}

/// A little-endian 32-bit size (beyond any slice when it does not fit a `usize`).
fn le_size(b: &[u8; 4]) -> usize {
    usize::try_from(u32::from_le_bytes(*b)).unwrap_or(usize::MAX)
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
    #[test]
    fn encode_map_is_what_decode_map_reads() {
        let m = super::encode_map(&[(":status", "200"), ("x-a", "")]);
        assert_eq!(
            super::decode_map(&m),
            vec![
                (":status".to_string(), b"200".to_vec()),
                ("x-a".to_string(), Vec::new())
            ]
        );
    }

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

    /// The layout read index by index, as the proxy-wasm hosts describe it: the reference
    /// the sliced reader must agree with on any bytes.
    fn reference_pairs(bytes: &[u8]) -> Vec<(&[u8], &[u8])> {
        let u32_at = |at: usize| -> Option<usize> {
            let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
            usize::try_from(u32::from_le_bytes(b)).ok()
        };
        let mut out = Vec::new();
        let Some(count) = u32_at(0).map(|c| c.min(MAX_PAIRS)) else {
            return out;
        };
        let mut p = 4 + count * 8;
        for n in 0..count {
            let (Some(klen), Some(vlen)) = (u32_at(4 + n * 8), u32_at(8 + n * 8)) else {
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
            out.push((key, value));
        }
        out
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn pairs_agree_with_the_indexed_reading_on_cut_and_corrupted_maps() {
        let good = encode(&[
            (b":path", b"/x"),
            (b"", b""),
            (b"traceparent", b"00-ab"),
            (b"k", b""),
        ]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut inputs: Vec<Vec<u8>> = (0..=good.len()).map(|cut| good[..cut].to_vec()).collect();
        for _ in 0..4000 {
            // One to three bytes anywhere set to random or boundary values.
            let mut b = good.clone();
            for _ in 0..=(next() % 3) {
                let at = (next() as usize) % b.len();
                b[at] = [0, 1, 0xff, next() as u8][(next() % 4) as usize];
            }
            let cut = (next() as usize) % (b.len() + 1);
            inputs.push(b[..cut].to_vec());
            inputs.push(b);
        }
        for b in &inputs {
            let mut got = Vec::new();
            for_each_pair(b, |k, v| {
                got.push((k, v));
                true
            });
            assert_eq!(got, reference_pairs(b), "{b:?}");
        }
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

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn every_known_name_has_its_slot_and_the_pipeline_reads_only_known_names() {
        for (slot, name) in KNOWN.iter().enumerate() {
            assert_eq!(known_slot(name.as_bytes()), Some(slot), "{name}");
            assert_eq!(known_slot(name.to_ascii_uppercase().as_bytes()), Some(slot));
            assert_eq!(name.to_ascii_lowercase(), *name);
        }
        use meshwake_semconv::header;
        use meshwake_trace_context::{b3, baggage, traceparent, tracestate};
        let read = [
            traceparent::TRACEPARENT_HEADER,
            tracestate::TRACESTATE_HEADER,
            baggage::BAGGAGE_HEADER,
            b3::B3_HEADER,
            header::PATH,
            header::METHOD,
            header::SCHEME,
            header::AUTHORITY,
            header::USER_AGENT,
            header::REQUEST_ID,
            header::CONTENT_TYPE,
            header::GRPC_STATUS,
            header::FORCE_SAMPLE,
            meshwake_identity::PEER_HEADER,
            meshwake_identity::LINEAGE_HEADER,
        ];
        for name in read.iter().chain(b3::B3_MULTI_HEADERS.iter()) {
            assert!(known_slot(name.as_bytes()).is_some(), "{name} has no slot");
        }
        for near in [
            "b4",
            ":paths",
            "traceparenT-",
            "x-b3-flagz",
            "",
            "x-meshwake-force-samplf",
            "x-meshwake-forcx-sample",
            "xraceparent",
            "x-b3-parentspanjd",
        ] {
            assert_eq!(known_slot(near.as_bytes()), None, "{near}");
        }
        for mixed in [
            "x-meshwake-fOrce-sample",
            "X-meshwake-force-sample",
            "x-b3-ParentSpanID",
        ] {
            assert!(known_slot(mixed.as_bytes()).is_some(), "{mixed}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn known_and_unknown_names_agree_with_a_scan_on_duplicates_and_case() {
        let b = encode(&[
            (b"X-Custom", b"1"),
            (b"Baggage", b"a=1"),
            (b":authority", b"host"),
            (b"x-custom", b"2"),
            (b"BAGGAGE", b"b=2"),
            (b"baggage", b"c=3"),
            (b"TraceState", b"k=v"),
            (b"x-b3-sampled", b"1"),
            (b"X-B3-Sampled", b"0"),
            (b"b3", b""),
            (b"X-B3-Flagz", b"z"),
            (b"B4", b"4"),
        ]);
        let m = HeaderMap::decode(&b);
        assert_eq!(m.count("baggage"), 3);
        assert_eq!(m.get("BaGgAgE"), Some(&b"a=1"[..]));
        assert_eq!(
            m.get_all("baggage"),
            vec![&b"a=1"[..], &b"b=2"[..], &b"c=3"[..]]
        );
        assert_eq!(m.count("x-custom"), 2);
        assert_eq!(m.get_all("X-CUSTOM"), vec![&b"1"[..], &b"2"[..]]);
        assert_eq!(m.get("x-b3-sampled"), Some(&b"1"[..]));
        assert_eq!(m.count("x-b3-sampled"), 2);
        assert_eq!(m.get("b3"), Some(&b""[..]));
        assert_eq!(m.get_all("tracestate"), vec![&b"k=v"[..]]);
        assert_eq!(m.count("traceparent"), 0);
        assert!(m.get_all("traceparent").is_empty());
        let scan = decode_map_borrowed(&b);
        let names = KNOWN
            .iter()
            .copied()
            .chain(["x-custom", "X-Custom", "missing", ""]);
        for name in names {
            let upper = name.to_ascii_uppercase();
            for n in [name, upper.as_str()] {
                assert_eq!(m.get(n), scan.get(n), "{n}");
                assert_eq!(m.get_all(n), scan.get_all(n), "{n}");
                assert_eq!(m.count(n), scan.count(n), "{n}");
            }
        }
    }
}
