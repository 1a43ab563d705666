//! Envoy facts the filter reads as properties, decoded without trusting their bytes.
//! Attribute encodings: <https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes>
//! (strings as raw bytes, integers as 8-byte little-endian).
use std::borrow::Cow;

/// Envoy property paths used by the filter, defined once.
pub mod property {
    pub const RESPONSE_CODE: &[&str] = &["response", "code"];
    pub const RESPONSE_FLAGS: &[&str] = &["response", "flags"];
    pub const RESPONSE_GRPC_STATUS: &[&str] = &["response", "grpc_status"];
    pub const REQUEST_SIZE: &[&str] = &["request", "size"];
    pub const RESPONSE_SIZE: &[&str] = &["response", "size"];
    pub const REQUEST_PROTOCOL: &[&str] = &["request", "protocol"];
    pub const UPSTREAM_CLUSTER: &[&str] = &["xds", "cluster_name"];
    pub const UPSTREAM_ADDRESS: &[&str] = &["upstream", "address"];
    /// Istio's endpoint metadata `istio.workload` (`workload;namespace;service;revision;cluster`).
    pub const UPSTREAM_ISTIO_WORKLOAD: &[&str] = &[
        "xds",
        "upstream_host_metadata",
        "filter_metadata",
        "istio",
        "workload",
    ];
    pub const LISTENER_DIRECTION: &[&str] = &["xds", "listener_direction"];
    pub const NODE_METADATA: &[&str] = &["node", "metadata"];
}

/// An integer property (8 bytes little-endian).
pub fn int(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

/// A `:status` value as `str::parse::<u16>` reads it (an optional `+`, then decimal digits,
/// no overflow), from the bytes: no UTF-8 check and no generic parser per response.
pub fn status_code(bytes: &[u8]) -> Option<u16> {
    let digits = bytes.strip_prefix(b"+").unwrap_or(bytes);
    if digits.is_empty() {
        return None;
    }
    let mut n: u16 = 0;
    for b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u16::from(b - b'0'))?;
    }
    Some(n)
}

/// A string property, lossily, bounded.
pub fn text(bytes: &[u8], max: usize) -> String {
    let b = bytes.get(..bytes.len().min(max)).unwrap_or(bytes);
    String::from_utf8_lossy(b).into_owned()
}

/// Envoy's response flag bits, in `StreamInfo::CoreResponseFlag` order, with their short names.
const FLAGS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
    "UDO",
];

/// The short form Envoy prints in access logs (`UF,URX`), or `-` when no flag is set
/// (borrowed: a successful request allocates nothing here).
pub fn response_flags(bits: u64) -> Cow<'static, str> {
    if bits == 0 {
        return Cow::Borrowed("-");
    }
    let mut out = String::new();
    for (i, name) in FLAGS.iter().enumerate() {
        if bits & (1u64 << i) != 0 {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(name);
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    Cow::Owned(out)
}

/// Listener direction property value → role (1 = INBOUND, 2 = OUTBOUND in envoy.config.core.v3.TrafficDirection).
pub fn role_from_direction(v: i64) -> Option<crate::Role> {
    match v {
        1 => Some(crate::Role::Inbound),
        2 => Some(crate::Role::Outbound),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn flags_and_ints() {
        assert_eq!(response_flags(0), "-");
        assert_eq!(response_flags(0x2), "UH");
        assert_eq!(response_flags(0x20 | 0x8000), "UF,URX");
        assert_eq!(int(&200i64.to_le_bytes()), Some(200));
        assert_eq!(int(b"abc"), None);
        assert_eq!(text(b"\xffab", 2), "\u{fffd}a");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn status_code_reads_like_str_parse() {
        let parse = |v: &[u8]| std::str::from_utf8(v).ok()?.parse::<u16>().ok();
        let mut cases: Vec<Vec<u8>> = [
            "200",
            "0",
            "+200",
            "+",
            "",
            "-1",
            "65535",
            "65536",
            "99999",
            "0000000200",
            " 200",
            "200 ",
            "2x0",
            "++1",
            "+-1",
            "1e3",
            "٣",
            "\u{ff}",
        ]
        .iter()
        .map(|c| c.as_bytes().to_vec())
        .collect();
        cases.push(b"\xff200".to_vec());
        cases.extend(
            (0..=70_000u32)
                .step_by(7)
                .map(|n| n.to_string().into_bytes()),
        );
        for c in cases {
            assert_eq!(status_code(&c), parse(&c), "{c:?}");
        }
    }
}
