//! Context recovery for apps that forget trace headers: the inbound sidecar remembers
//! each request's context under its `x-request-id` (and trace id) in a fixed table of VM-wide
//! shared-data slots; the outbound sidecar of the same workload looks a context-less call
//! up by its `x-request-id`. Fixed memory: `slots` entries, each bounded; a collision
//! overwrites (counted by the glue), and entries older than the TTL are ignored.
use meshwake_trace_context::{SpanId, TraceFlags, TraceId};

/// Longest lookup key kept (a UUID is 36 bytes); longer keys are hashed and stored cut.
pub const MAX_KEY_LEN: usize = 128;
/// Longest lineage header kept in an entry.
pub const MAX_LINEAGE_LEN: usize = 1024;

/// What an inbound request left for the workload's outbound calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remembered {
    pub trace_id: TraceId,
    /// The inbound SERVER span: parent of recovered outbound CLIENT spans.
    pub span_id: SpanId,
    pub flags: TraceFlags,
    /// Encoded lineage to send downstream (already including this workload).
    pub lineage: String,
    pub stored_ns: u64,
}

/// FNV-1a: tiny, good enough to spread request ids over slots (not a security boundary:
/// entries carry their full key and are verified on read).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The shared-data key of the slot for `key` (`kind` separates request-id and trace-id lookups).
pub fn slot_key(kind: &str, key: &[u8], slots: u32) -> String {
    let mut out = String::with_capacity(12 + kind.len() + 1 + 20);
    slot_key_into(&mut out, kind, key, slots);
    out
}

/// [`slot_key`] written into `out` (cleared first): a buffer reused per request.
pub fn slot_key_into(out: &mut String, kind: &str, key: &[u8], slots: u32) {
    let n = fnv1a(key) % u64::from(slots.max(1));
    // Per request, twice: built by hand, `format!` costs several times more.
    out.clear();
    out.push_str("meshwake.rc.");
    out.push_str(kind);
    out.push('.');
    push_decimal(out, n);
}

fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for d in digits.iter().skip(i) {
        out.push(char::from(*d));
    }
}

fn bounded(key: &[u8]) -> &[u8] {
    key.get(..key.len().min(MAX_KEY_LEN)).unwrap_or(key)
}

/// Entry layout: `stored_ns(8 LE) | key_len(1) | key | trace(16) | span(8) | flags(1) | lineage`.
pub fn encode(key: &[u8], r: &Remembered) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, key, r, &r.lineage);
    out
}

/// [`encode`] into `out` (cleared first), with the lineage given apart (borrowed, so the
/// caller need not copy it into `r`; `r.lineage` is ignored).
pub fn encode_into(out: &mut Vec<u8>, key: &[u8], r: &Remembered, lineage: &str) {
    let key = bounded(key);
    let lineage = lineage.as_bytes();
    let lineage = lineage
        .get(..lineage.len().min(MAX_LINEAGE_LEN))
        .unwrap_or(b"");
    // The fixed-size parts laid out on the stack, each run one append (twice per inbound
    // request).
    let mut head = [0u8; 9];
    head[..8].copy_from_slice(&r.stored_ns.to_le_bytes());
    head[8] = key.len() as u8;
    let mut ids = [0u8; 25];
    ids[..16].copy_from_slice(&r.trace_id.0);
    ids[16..24].copy_from_slice(&r.span_id.0);
    ids[24] = r.flags.0;
    out.clear();
    out.reserve(34 + key.len() + lineage.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(key);
    out.extend_from_slice(&ids);
    out.extend_from_slice(lineage);
}

/// The entry for `key` if the slot holds it and it is younger than `ttl_ns`.
pub fn decode(bytes: &[u8], key: &[u8], now_ns: u64, ttl_ns: u64) -> Option<Remembered> {
    let key = bounded(key);
    let stored_ns = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let klen = usize::from(*bytes.get(8)?);
    let rest = bytes.get(9..)?;
    if rest.get(..klen)? != key || now_ns.saturating_sub(stored_ns) > ttl_ns {
        return None;
    }
    let rest = rest.get(klen..)?;
    let trace_id = TraceId(rest.get(..16)?.try_into().ok()?);
    let span_id = SpanId(rest.get(16..24)?.try_into().ok()?);
    let flags = TraceFlags(*rest.get(24)?);
    let lineage = String::from_utf8(rest.get(25..)?.to_vec()).ok()?;
    if !trace_id.is_valid() || !span_id.is_valid() {
        return None;
    }
    Some(Remembered {
        trace_id,
        span_id,
        flags,
        lineage,
        stored_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn round_trip_ttl_and_key_check() {
        let r = Remembered {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([9; 8]),
            flags: TraceFlags(1),
            lineage: "1;a@v1".into(),
            stored_ns: 1_000,
        };
        let b = encode(b"req-1", &r);
        assert_eq!(decode(&b, b"req-1", 2_000, 10_000), Some(r.clone()));
        assert_eq!(
            decode(&b, b"req-2", 2_000, 10_000),
            None,
            "other key in the same slot"
        );
        assert_eq!(decode(&b, b"req-1", 20_000, 10_000), None, "expired");
        assert_eq!(decode(&b[..20], b"req-1", 2_000, 10_000), None, "truncated");
        assert_eq!(decode(b"", b"", 0, 1), None);
        assert!(slot_key("r", b"x", 16).starts_with("meshwake.rc.r."));
        for (key, slots) in [(&b"x"[..], 16), (b"", 1), (b"abc", u32::MAX), (b"0", 10)] {
            let n = fnv1a(key) % u64::from(slots);
            assert_eq!(slot_key("t", key, slots), format!("meshwake.rc.t.{n}"));
        }
    }
}
