//! Helpers shared by the fuzz targets.
use meshwake_identity::{IdentityConfig, NodeMetadata, WorkloadIdentity};

/// A node without metadata.
pub struct NoNode;
impl NodeMetadata for NoNode {
    fn get(&self, _: &[&str]) -> Option<String> {
        None
    }
}

/// This workload's identity, as a test configuration would resolve it.
pub fn local_identity() -> WorkloadIdentity {
    let id = IdentityConfig {
        service: Some("fuzz".into()),
        version: Some("v1".into()),
        namespace: Some("ns".into()),
        workload: Some("fuzz-v1".into()),
        ..Default::default()
    };
    meshwake_identity::resolve(&id, &NoNode).0
}

/// A header map in the proxy-wasm ABI layout `decode_map` reads.
pub fn encode_map(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (k, v) in pairs {
        out.extend((k.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend(k);
        out.push(0);
        out.extend(v);
        out.push(0);
    }
    out
}

/// Header pairs from an HTTP/1-like text block, so seeds stay readable: one `name: value`
/// per line (`\n`), the name lower-cased as Envoy hands it over; bytes are kept as they are.
pub fn header_lines(block: &[u8]) -> Vec<(String, Vec<u8>)> {
    block
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            // Skip the first byte so `:path: /` splits after `:path`.
            let at = l.iter().skip(1).position(|&b| b == b':').map(|p| p + 1);
            let (k, v) = match at {
                Some(p) => (&l[..p], &l[p + 1..]),
                None => (l, &[][..]),
            };
            let v = v.strip_prefix(b" ").unwrap_or(v);
            (String::from_utf8_lossy(k).to_ascii_lowercase(), v.to_vec())
        })
        .collect()
}

/// Splits `data` at the first `\n\n` (the rest is empty when there is none).
pub fn split_blank_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(p) => (&data[..p], &data[p + 2..]),
        None => (data, &[]),
    }
}
