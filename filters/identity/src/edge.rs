//! Header names meshwake owns (named in `meshwake_semconv::header`).
//!
//! At the mesh edge the glue removes every owned header from requests coming from outside
//! (a client must not be able to claim an identity or lineage) and from responses leaving
//! the mesh (internal deployment details must not leak). Inside the mesh every sidecar
//! removes `x-meshwake-peer` after reading it and writes its own (hop-by-hop).

/// Identity of the caller (on requests) or of the answering workload (on responses).
pub const PEER_HEADER: &str = meshwake_semconv::header::PEER;

/// Deployments (`service@version`, oldest first) the request passed through.
pub const LINEAGE_HEADER: &str = meshwake_semconv::header::LINEAGE;

/// Every header meshwake owns; stripped at the edge in both directions.
pub const OWNED_HEADERS: [&str; 2] = [PEER_HEADER, LINEAGE_HEADER];

/// True when `name` (any ASCII case, as HTTP/1 may deliver it) is a header meshwake owns.
pub fn is_owned_header(name: &str) -> bool {
    OWNED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const CASES: &[(&str, bool)] = &[
        ("x-meshwake-peer",    true),
        ("X-Meshwake-Peer",    true),
        ("x-meshwake-lineage", true),
        ("x-meshwake",         false), // debug header, meant for clients
        ("x-meshwake-peer2",   false),
        ("traceparent",        false),
        ("",                   false),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn owned_headers() {
        for (name, owned) in CASES {
            assert_eq!(is_owned_header(name), *owned, "{name}");
        }
    }
}
