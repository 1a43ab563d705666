//! The input of the analysis: one flattened span, as the filter emits it
//! (see `docs/CONVENTIONS.md`), independent of the wire format it came in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Version reported when a span's resource carries no `service.version`.
pub const UNKNOWN_VERSION: &str = "unknown";
/// Service reported when a span's resource carries no `service.name` (the OTel SDK default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// `meshwake.role` value of the span a sidecar opens for a request entering the mesh.
pub const ROLE_EDGE: &str = meshwake_semconv::attr::values::ROLE_EDGE;
/// `meshwake.role` value of a sidecar's inbound (server) span.
pub const ROLE_INBOUND: &str = meshwake_semconv::attr::values::ROLE_INBOUND;
/// `meshwake.role` value of a sidecar's outbound (client) span.
pub const ROLE_OUTBOUND: &str = meshwake_semconv::attr::values::ROLE_OUTBOUND;

/// Span kind, reduced to what the analysis needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A request served by the span's deployment (`inbound` and `edge` roles).
    Server,
    /// A call made by the span's deployment to another one (`outbound` role).
    Client,
    /// Anything else (internal, producer, consumer, unspecified).
    Other,
}

/// One span, flattened. Ids are lowercase hex (32 chars for traces, 16 for spans).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// Trace id, lowercase hex.
    pub trace_id: String,
    /// Span id, lowercase hex.
    pub span_id: String,
    /// Parent span id, lowercase hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Resource attribute `service.name`.
    pub service: String,
    /// Resource attribute `service.version`.
    pub version: String,
    /// Span kind.
    pub kind: Kind,
    /// `meshwake.role`: `inbound`, `outbound` or `edge`.
    pub role: Option<String>,
    /// Start time, Unix nanoseconds.
    pub start_ns: u64,
    /// End time, Unix nanoseconds.
    pub end_ns: u64,
    /// Span status is ERROR.
    pub is_error: bool,
    /// `http.response.status_code`.
    pub http_status: Option<u16>,
    /// `http.route`, else the span name.
    pub route: Option<String>,
    /// `peer.service`: the other side of the call.
    pub peer_service: Option<String>,
    /// `meshwake.peer.version`: the other side's deployment version.
    pub peer_version: Option<String>,
}

impl SpanRecord {
    /// The deployment that emitted this span.
    pub fn deployment(&self) -> Deployment {
        Deployment::new(&self.service, &self.version)
    }

    /// Duration in nanoseconds (0 when the clock went backwards).
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The deployment on the other side of a client call, when the span names it.
    pub fn peer_deployment(&self) -> Option<Deployment> {
        self.peer_service
            .as_ref()
            .map(|s| Deployment::new(s, self.peer_version.as_deref().unwrap_or(UNKNOWN_VERSION)))
    }

    /// True for a span opened where a request enters the mesh.
    pub fn is_edge(&self) -> bool {
        self.role.as_deref() == Some(ROLE_EDGE)
    }
}

/// A deployment: one version of one service. Serialized as `service@version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Deployment {
    /// `service.name`.
    pub service: String,
    /// `service.version`.
    pub version: String,
}

impl Deployment {
    /// Builds a deployment from its two parts.
    pub fn new(service: &str, version: &str) -> Self {
        Self {
            service: service.to_owned(),
            version: version.to_owned(),
        }
    }
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.service, self.version)
    }
}

impl Serialize for Deployment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Deployment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // The version is after the last `@`; service names may not contain one but be lenient.
        Ok(match s.rsplit_once('@') {
            Some((service, version)) => Deployment::new(service, version),
            None => Deployment::new(&s, UNKNOWN_VERSION),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_serializes_as_service_at_version() {
        let d = Deployment::new("cart", "v2");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"cart@v2\"");
        let back: Deployment = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn span_record_round_trips_through_json() {
        let s = SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            parent_span_id: None,
            service: "cart".into(),
            version: "v1".into(),
            kind: Kind::Server,
            role: Some("edge".into()),
            start_ns: 1,
            end_ns: 5,
            is_error: false,
            http_status: Some(200),
            route: Some("/cart".into()),
            peer_service: None,
            peer_version: None,
        };
        let back: SpanRecord = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.duration_ns(), 4);
        assert!(s.is_edge());
    }
}
