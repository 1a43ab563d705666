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
//!
//! ```
//! use meshwake_identity::{header, fallback, IdentityConfig, Lineage, NodeMetadata};
//!
//! struct Node;
//! impl NodeMetadata for Node {
//!     fn get(&self, path: &[&str]) -> Option<String> {
//!         match path {
//!             ["LABELS", "app"] => Some("reviews".into()),
//!             ["LABELS", "version"] => Some("v2".into()),
//!             _ => None,
//!         }
//!     }
//! }
//!
//! // Configure time: resolve once, log the warnings, encode once.
//! let key: Option<&[u8]> = Some(b"shared secret");
//! let (me, _warnings) = meshwake_identity::resolve(&IdentityConfig::default(), &Node);
//! let peer_header = header::encode(&me, key);
//!
//! // Per request: the next hop decodes (and verifies) it.
//! let caller = header::decode(peer_header.as_bytes(), key).unwrap();
//! assert_eq!((caller.service.as_str(), caller.version.as_str()), ("reviews", "v2"));
//!
//! let mut lineage = Lineage::decode(b"", 8, key).unwrap();
//! lineage.push(&me.service, &me.version);
//! assert_eq!(lineage.entries(), ["reviews@v2"]);
//! let _lineage_header = lineage.encode(key);
//!
//! // A response without the header: infer from the upstream cluster name.
//! let patterns = fallback::default_patterns();
//! let (peer, source) = fallback::infer_peer(
//!     Some("outbound|9080|v3|ratings.bookinfo.svc.cluster.local"), None, &patterns,
//! ).unwrap();
//! assert_eq!((peer.version.as_str(), source.as_str()), ("v3", "cluster"));
//! ```

mod escape;
mod integrity;

pub mod edge;
pub mod fallback;
pub mod header;
pub mod lineage;
pub mod workload;

pub use edge::{is_owned_header, LINEAGE_HEADER, OWNED_HEADERS, PEER_HEADER};
pub use fallback::{infer_peer, ClusterPattern, PatternError, PeerHints, VersionSource};
pub use header::{PeerHeaderError, PeerIdentity};
pub use lineage::{Lineage, LineageError};
pub use workload::{resolve, IdentityConfig, NodeMetadata, ValueSource, Warning, WorkloadIdentity};
