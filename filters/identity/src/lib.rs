//! Workload identity, peer metadata exchange header, deployment lineage and HMAC integrity.
//! No proxy-wasm dependency.
//!
//! - [`workload`]: this workload's identity, resolved once from config and node metadata.
//! - [`header`]: the `x-meshwake-peer` header (caller identity on requests, answering
//!   workload on responses).
//! - [`lineage`]: the bounded `x-meshwake-lineage` list of `service@version` hops.
//! - [`fallback`]: the peer's service/version from Envoy's own data when no header came back.
//! - [`edge`]: the header names meshwake owns, stripped at the mesh edge.
//!
//! Design and threat model: `docs/adr/0002-identity-header.md`.

mod escape;
mod integrity;

pub mod edge;
pub mod fallback;
pub mod header;
pub mod lineage;
pub mod workload;

pub use edge::{is_owned_header, LINEAGE_HEADER, OWNED_HEADERS, PEER_HEADER};
pub use fallback::{infer_peer, ClusterPattern, PeerHints, VersionSource};
pub use header::{decode, encode, PeerHeaderError, PeerIdentity};
pub use lineage::{Lineage, LineageError};
pub use workload::{resolve, IdentityConfig, NodeMetadata, ValueSource, Warning, WorkloadIdentity};
