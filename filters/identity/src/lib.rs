//! Workload identity, peer metadata exchange header, deployment lineage and HMAC integrity. No proxy-wasm dependency.
