//! Stream end: the metric labels of every request and the span of a sampled one, from the
//! request state and what Envoy knew when the stream ended.
use super::{Completion, Engine, RequestState};
use crate::config::Role;
use crate::route;
use meshwake_identity::{self as identity, PeerIdentity, VersionSource, WorkloadIdentity};
use meshwake_semconv::span as semconv_span;
use meshwake_telemetry::metrics::{MetricLabels, Reporter};
use meshwake_telemetry::span::{attr, flags, Event, Link};
use meshwake_telemetry::{AnyValue, KeyValue, Span, SpanKind, Status, StatusCode};
use std::borrow::Cow;
use std::mem::take;

/// One side of a request in the metric labels: the workload that sent or answered it.
struct Party {
    workload: String,
    namespace: String,
    version: String,
    service: String,
}

impl Party {
    fn local(local: &WorkloadIdentity) -> Party {
        Party {
            workload: local.workload.clone(),
            namespace: local.namespace.clone(),
            version: local.version.clone(),
            service: local.service.clone(),
        }
    }

    /// The peer as identified, `unknown` in every field when it was not.
    fn peer(peer: Option<&PeerIdentity>) -> Party {
        let field = |get: fn(&PeerIdentity) -> &String| {
            peer.map_or_else(
                || identity::workload::UNKNOWN.to_string(),
                |p| get(p).clone(),
            )
        };
        Party {
            workload: field(|p| &p.workload),
            namespace: field(|p| &p.namespace),
            version: field(|p| &p.version),
            service: field(|p| &p.service),
        }
    }
}

impl Engine {
    /// Istio-compatible labels: inbound reports as the destination, outbound and edge as
    /// the source.
    pub(super) fn labels(&self, state: &RequestState, completion: &Completion) -> MetricLabels {
        let (source, destination, reporter) = match state.role {
            Role::Inbound => (
                Party::peer(state.source.as_ref()),
                Party::local(&self.local),
                Reporter::Destination,
            ),
            Role::Outbound | Role::Edge => (
                Party::local(&self.local),
                Party::peer(state.destination.as_ref().map(|(peer, _)| peer)),
                Reporter::Source,
            ),
        };
        MetricLabels {
            reporter,
            source_workload: source.workload,
            source_workload_namespace: source.namespace,
            source_version: source.version,
            source_canonical_service: source.service,
            destination_workload: destination.workload,
            destination_workload_namespace: destination.namespace,
            destination_version: destination.version,
            destination_service: destination.service,
            request_protocol: if state.grpc {
                "grpc".into()
            } else {
                "http".into()
            },
            response_code: completion.status,
            grpc_response_status: completion
                .grpc_status
                .map(|g| g.to_string())
                .unwrap_or_default(),
            response_flags: completion.response_flags.clone(),
        }
    }

    /// The hop's span, attributes per docs/CONVENTIONS.md.
    pub(super) fn span(&self, mut state: RequestState, completion: &Completion) -> Span {
        let kind = match state.role {
            Role::Outbound => SpanKind::Client,
            Role::Inbound | Role::Edge => SpanKind::Server,
        };
        let status = Status::from_http(kind, completion.status);
        let (route, templated) = route::route_for(&state.path, &self.routes);
        let name = span_name(&state.method, &route);
        let mut attributes: Vec<KeyValue> = Vec::with_capacity(24);
        push_http_attributes(
            &mut attributes,
            &mut state,
            completion,
            templated.then_some(route),
        );
        push_outcome_attributes(&mut attributes, completion, &status);
        push_envoy_attributes(
            &mut attributes,
            completion,
            std::mem::take(&mut state.request_id),
        );
        attributes.push(KeyValue::new(attr::MESHWAKE_ROLE, state.role.as_str()));
        let peer = match state.role {
            Role::Inbound => state.source.map(|p| (p, VersionSource::Header)),
            Role::Outbound | Role::Edge => state.destination,
        };
        push_peer_attributes(&mut attributes, peer);
        if !state.lineage.is_empty() {
            let entries = state
                .lineage
                .entries()
                .iter()
                .map(|entry| AnyValue::from(entry.clone()))
                .collect();
            attributes.push(KeyValue::new(
                attr::MESHWAKE_LINEAGE,
                AnyValue::Array(entries),
            ));
        }
        let events = state
            .first_byte_ns
            .map(|t| Event {
                time_unix_nano: t,
                name: Cow::Borrowed(semconv_span::EVENT_FIRST_UPSTREAM_BYTE),
                attributes: Vec::new(),
            })
            .into_iter()
            .collect();
        let links = state.link.map(untrusted_edge_link).into_iter().collect();
        // The parent came from another process unless this is the outbound hop of the
        // workload's own inbound span.
        let remote_parent = state.parent_span_id.is_some() && state.role != Role::Outbound;
        Span {
            trace_id: state.ctx.trace_id.0,
            span_id: state.ctx.span_id.0,
            parent_span_id: state.parent_span_id.map(|p| p.0),
            trace_state: state.ctx.trace_state.to_header(),
            flags: u32::from(state.ctx.flags.0)
                | flags::CONTEXT_HAS_IS_REMOTE
                | if remote_parent {
                    flags::CONTEXT_IS_REMOTE
                } else {
                    0
                },
            name,
            kind,
            start_time_unix_nano: state.start_ns,
            end_time_unix_nano: completion.end_ns.max(state.start_ns),
            attributes,
            events,
            links,
            status,
        }
    }
}

/// `METHOD route`, or the route alone when the method is unknown.
fn span_name(method: &str, route: &str) -> String {
    if method.is_empty() {
        return route.to_string();
    }
    let mut name = String::with_capacity(method.len() + 1 + route.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
    name
}

/// Request line and response code: method, path, scheme, route (when a template matched),
/// status, server address and port, protocol version, user agent. The request's strings
/// move into the attributes (no copies).
fn push_http_attributes(
    attributes: &mut Vec<KeyValue>,
    state: &mut RequestState,
    completion: &Completion,
    route: Option<String>,
) {
    attributes.push(KeyValue::new(
        attr::HTTP_REQUEST_METHOD,
        take(&mut state.method),
    ));
    attributes.push(KeyValue::new(attr::URL_PATH, take(&mut state.path)));
    if !state.scheme.is_empty() {
        attributes.push(KeyValue::new(attr::URL_SCHEME, take(&mut state.scheme)));
    }
    if let Some(route) = route {
        attributes.push(KeyValue::new(attr::HTTP_ROUTE, route));
    }
    if completion.status > 0 {
        attributes.push(KeyValue::new(
            attr::HTTP_RESPONSE_STATUS_CODE,
            completion.status,
        ));
    }
    let (host, port) = split_authority(&state.authority);
    if !host.is_empty() {
        attributes.push(KeyValue::new(attr::SERVER_ADDRESS, host.to_string()));
    }
    if let Some(port) = port {
        attributes.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
    }
    if let Some(version) = protocol_version(&completion.protocol) {
        attributes.push(KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, version));
    }
    if !state.user_agent.is_empty() {
        attributes.push(KeyValue::new(
            attr::USER_AGENT_ORIGINAL,
            take(&mut state.user_agent),
        ));
    }
}

/// `error.type`, body sizes and the gRPC status.
fn push_outcome_attributes(
    attributes: &mut Vec<KeyValue>,
    completion: &Completion,
    status: &Status,
) {
    if let Some(error) = error_type(completion, status) {
        attributes.push(KeyValue::new(attr::ERROR_TYPE, error));
    }
    if let Some(n) = completion.request_bytes {
        attributes.push(KeyValue::new(attr::HTTP_REQUEST_BODY_SIZE, n));
    }
    if let Some(n) = completion.response_bytes {
        attributes.push(KeyValue::new(attr::HTTP_RESPONSE_BODY_SIZE, n));
    }
    if let Some(grpc) = completion.grpc_status {
        attributes.push(KeyValue::new(attr::RPC_GRPC_STATUS_CODE, grpc));
    }
}

/// The response flags when Envoy failed the request (no response, or a 5xx it flagged),
/// `_OTHER` when it failed without a flag, else the status code of an error status.
fn error_type(completion: &Completion, status: &Status) -> Option<String> {
    let flagged = completion.response_flags != "-";
    if completion.status == 0 || (completion.status >= 500 && flagged) {
        Some(if flagged {
            completion.response_flags.clone()
        } else {
            attr::values::ERROR_TYPE_OTHER.into()
        })
    } else if status.code == StatusCode::Error {
        Some(completion.status.to_string())
    } else {
        None
    }
}

fn push_envoy_attributes(
    attributes: &mut Vec<KeyValue>,
    completion: &Completion,
    request_id: String,
) {
    attributes.push(KeyValue::new(
        attr::ENVOY_RESPONSE_FLAGS,
        completion.response_flags.clone(),
    ));
    if let Some(cluster) = &completion.upstream_cluster {
        attributes.push(KeyValue::new(attr::ENVOY_UPSTREAM_CLUSTER, cluster.clone()));
    }
    if let Some(host) = &completion.upstream_host {
        attributes.push(KeyValue::new(attr::ENVOY_UPSTREAM_HOST, host.clone()));
    }
    if !request_id.is_empty() {
        attributes.push(KeyValue::new(attr::ENVOY_REQUEST_ID, request_id));
    }
}

/// The peer's service, version and namespace, and where the version came from.
fn push_peer_attributes(
    attributes: &mut Vec<KeyValue>,
    peer: Option<(PeerIdentity, VersionSource)>,
) {
    match peer {
        Some((peer, source)) => {
            attributes.push(KeyValue::new(attr::PEER_SERVICE, peer.service));
            attributes.push(KeyValue::new(attr::MESHWAKE_PEER_VERSION, peer.version));
            attributes.push(KeyValue::new(attr::MESHWAKE_PEER_NAMESPACE, peer.namespace));
            attributes.push(KeyValue::new(
                attr::MESHWAKE_PEER_VERSION_SOURCE,
                source.as_str(),
            ));
        }
        None => attributes.push(KeyValue::new(
            attr::MESHWAKE_PEER_VERSION_SOURCE,
            VersionSource::Unknown.as_str(),
        )),
    }
}

/// Outside context an untrusting edge replaced, as a link to the new trace's root.
fn untrusted_edge_link(outside: meshwake_trace_context::SpanContext) -> Link {
    Link {
        trace_id: outside.trace_id.0,
        span_id: outside.span_id.0,
        trace_state: outside.trace_state.to_header(),
        attributes: vec![KeyValue::new(
            semconv_span::LINK_REASON,
            semconv_span::LINK_REASON_UNTRUSTED_EDGE,
        )],
        ..Default::default()
    }
}

fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let host = authority.get(..=end).unwrap_or(authority);
            let port = authority
                .get(end + 1..)
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|port| port.parse().ok());
            return (host, port);
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

fn protocol_version(protocol: &str) -> Option<&'static str> {
    match protocol {
        "HTTP/1.0" => Some("1.0"),
        "HTTP/1.1" => Some("1.1"),
        "HTTP/2" => Some("2"),
        "HTTP/3" => Some("3"),
        _ => None,
    }
}
