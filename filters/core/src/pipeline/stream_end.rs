//! Stream end: the metric labels of every request and the span of a sampled one, from the
//! request state and what Envoy knew when the stream ended. Both are views borrowed from
//! the request state, the completion and the engine: the glue encodes the span straight
//! into the export queue and looks the labels up without building owned strings.
use super::{Completion, Engine, RequestState};
use crate::config::Role;
use crate::route;
use meshwake_identity::{self as identity, PeerIdentity, VersionSource, WorkloadIdentity};
use meshwake_semconv::span as semconv_span;
use meshwake_telemetry::metrics::{LabelsRef, Reporter};
use meshwake_telemetry::span::{attr, flags, AttrList, Link, SpanView, ValueRef};
use meshwake_telemetry::{KeyValue, SpanKind, Status, StatusCode};
use std::borrow::Cow;
use std::fmt::Write;

/// Text a stream end formats (a derived route, numbers as labels): buffers the glue keeps
/// from one request to the next, so the views borrow them without allocating.
#[derive(Debug, Default)]
pub struct StreamEndText {
    route: String,
    grpc_status: String,
    error_type: String,
}

/// One side of a request in the metric labels: the workload that sent or answered it.
struct Party<'a> {
    workload: &'a str,
    namespace: &'a str,
    version: &'a str,
    service: &'a str,
}

impl<'a> Party<'a> {
    fn local(local: &'a WorkloadIdentity) -> Party<'a> {
        Party {
            workload: &local.workload,
            namespace: &local.namespace,
            version: &local.version,
            service: &local.service,
        }
    }

    /// The peer as identified, `unknown` in every field when it was not.
    fn peer(peer: Option<&'a PeerIdentity>) -> Party<'a> {
        match peer {
            Some(p) => Party {
                workload: &p.workload,
                namespace: &p.namespace,
                version: &p.version,
                service: &p.service,
            },
            None => Party {
                workload: identity::workload::UNKNOWN,
                namespace: identity::workload::UNKNOWN,
                version: identity::workload::UNKNOWN,
                service: identity::workload::UNKNOWN,
            },
        }
    }
}

impl Engine {
    /// The stream ended: `emit` gets the span (when sampled and spans are on), and the
    /// metric labels are returned, both borrowed. The span is lent, not returned: it is
    /// large (its attribute slots, ~0.6 KB) and each move of it is a copy. For an outbound
    /// or edge request whose peer did not say who it is, the destination is first inferred
    /// from Envoy's upstream cluster and metadata.
    pub fn stream_end<'a>(
        &'a self,
        s: &'a mut RequestState,
        c: &'a Completion,
        text: &'a mut StreamEndText,
        emit: impl FnOnce(&SpanView<'_>),
    ) -> LabelsRef<'a> {
        // Never `unknown` when Envoy knows better: fall back to the upstream's cluster and metadata.
        if matches!(s.role, Role::Outbound | Role::Edge) && s.destination.is_none() {
            let host = c
                .upstream_workload_meta
                .as_deref()
                .map(identity::PeerHints::from_istio_workload);
            s.destination =
                identity::infer_peer(c.upstream_cluster.as_deref(), host.as_ref(), &self.patterns);
        }
        let s: &'a RequestState = s;
        let StreamEndText {
            route,
            grpc_status,
            error_type,
        } = text;
        let labels = self.labels(s, c, grpc_status);
        if s.sampled && self.cfg.spans.enabled {
            self.emit_span(s, c, route, error_type, emit);
        }
        labels
    }

    /// Istio-compatible labels: inbound reports as the destination, outbound and edge as
    /// the source.
    fn labels<'a>(
        &'a self,
        state: &'a RequestState,
        completion: &'a Completion,
        grpc_text: &'a mut String,
    ) -> LabelsRef<'a> {
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
        grpc_text.clear();
        if let Some(g) = completion.grpc_status {
            let _ = write!(grpc_text, "{g}");
        }
        LabelsRef {
            reporter,
            source_workload: source.workload,
            source_workload_namespace: source.namespace,
            source_version: source.version,
            source_canonical_service: source.service,
            destination_workload: destination.workload,
            destination_workload_namespace: destination.namespace,
            destination_version: destination.version,
            destination_service: destination.service,
            request_protocol: if state.grpc { "grpc" } else { "http" },
            response_code: completion.status,
            grpc_response_status: grpc_text.as_str(),
            response_flags: completion.response_flags.as_ref(),
        }
    }

    /// The hop's span, attributes per docs/CONVENTIONS.md, lent to `emit` from where it is
    /// built (returned, it would be copied).
    fn emit_span<'a>(
        &'a self,
        state: &'a RequestState,
        completion: &'a Completion,
        route_text: &'a mut String,
        error_text: &'a mut String,
        emit: impl FnOnce(&SpanView<'_>),
    ) {
        let kind = match state.role {
            Role::Outbound => SpanKind::Client,
            Role::Inbound | Role::Edge => SpanKind::Server,
        };
        let status = Status::from_http(kind, completion.status);
        let (route, templated) = route::route_ref(&state.path, &self.routes, route_text);
        let name = if state.method.is_empty() {
            ["", "", route]
        } else {
            [state.method.as_str(), " ", route]
        };
        // The parent came from another process unless this is the outbound hop of the
        // workload's own inbound span.
        let remote_parent = state.parent_span_id.is_some() && state.role != Role::Outbound;
        let mut view = SpanView {
            trace_id: state.ctx.trace_id.0,
            span_id: state.ctx.span_id.0,
            parent_span_id: state.parent_span_id.map(|p| p.0),
            // Most requests carry no `tracestate`: no header to format then.
            trace_state: if state.ctx.trace_state.is_empty() {
                Cow::Borrowed("")
            } else {
                Cow::Owned(state.ctx.trace_state.to_header())
            },
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
            // Filled below, in place: a list built apart would be copied into the view.
            attributes: AttrList::default(),
            event: state
                .first_byte_ns
                .map(|t| (t, semconv_span::EVENT_FIRST_UPSTREAM_BYTE)),
            links: state
                .link
                .clone()
                .map(untrusted_edge_link)
                .into_iter()
                .collect(),
            status: status.code,
        };
        let attributes = &mut view.attributes;
        push_http_attributes(attributes, state, completion, templated.then_some(route));
        push_outcome_attributes(attributes, completion, &status, error_text);
        push_envoy_attributes(attributes, completion, &state.request_id);
        attributes.str(attr::MESHWAKE_ROLE, state.role.as_str());
        let peer = match state.role {
            Role::Inbound => state.source.as_ref().map(|p| (p, VersionSource::Header)),
            Role::Outbound | Role::Edge => state.destination.as_ref().map(|(p, v)| (p, *v)),
        };
        push_peer_attributes(attributes, peer);
        if !state.lineage.is_empty() {
            attributes.push(
                attr::MESHWAKE_LINEAGE,
                ValueRef::StrList(state.lineage.entries()),
            );
        }
        emit(&view);
    }
}

/// Request line and response code: method, path, scheme, route (when a template matched),
/// status, server address and port, protocol version, user agent.
fn push_http_attributes<'a>(
    attributes: &mut AttrList<'a>,
    state: &'a RequestState,
    completion: &Completion,
    route: Option<&'a str>,
) {
    attributes.str(attr::HTTP_REQUEST_METHOD, &state.method);
    attributes.str(attr::URL_PATH, &state.path);
    if !state.scheme.is_empty() {
        attributes.str(attr::URL_SCHEME, &state.scheme);
    }
    if let Some(route) = route {
        attributes.str(attr::HTTP_ROUTE, route);
    }
    if completion.status > 0 {
        attributes.int(
            attr::HTTP_RESPONSE_STATUS_CODE,
            i64::from(completion.status),
        );
    }
    let (host, port) = split_authority(&state.authority);
    if !host.is_empty() {
        attributes.str(attr::SERVER_ADDRESS, host);
    }
    if let Some(port) = port {
        attributes.int(attr::SERVER_PORT, i64::from(port));
    }
    if let Some(version) = protocol_version(&completion.protocol) {
        attributes.str(attr::NETWORK_PROTOCOL_VERSION, version);
    }
    if !state.user_agent.is_empty() {
        attributes.str(attr::USER_AGENT_ORIGINAL, &state.user_agent);
    }
}

/// `error.type`, body sizes and the gRPC status.
fn push_outcome_attributes<'a>(
    attributes: &mut AttrList<'a>,
    completion: &'a Completion,
    status: &Status,
    error_text: &'a mut String,
) {
    if let Some(error) = error_type(completion, status, error_text) {
        attributes.str(attr::ERROR_TYPE, error);
    }
    if let Some(n) = completion.request_bytes {
        attributes.int(attr::HTTP_REQUEST_BODY_SIZE, n);
    }
    if let Some(n) = completion.response_bytes {
        attributes.int(attr::HTTP_RESPONSE_BODY_SIZE, n);
    }
    if let Some(grpc) = completion.grpc_status {
        attributes.int(attr::RPC_GRPC_STATUS_CODE, grpc);
    }
}

/// The response flags when Envoy failed the request (no response, or a 5xx it flagged),
/// `_OTHER` when it failed without a flag, else the status code of an error status.
fn error_type<'a>(
    completion: &'a Completion,
    status: &Status,
    text: &'a mut String,
) -> Option<&'a str> {
    let flagged = completion.response_flags != "-";
    if completion.status == 0 || (completion.status >= 500 && flagged) {
        Some(if flagged {
            completion.response_flags.as_ref()
        } else {
            attr::values::ERROR_TYPE_OTHER
        })
    } else if status.code == StatusCode::Error {
        text.clear();
        let _ = write!(text, "{}", completion.status);
        Some(text.as_str())
    } else {
        None
    }
}

fn push_envoy_attributes<'a>(
    attributes: &mut AttrList<'a>,
    completion: &'a Completion,
    request_id: &'a str,
) {
    attributes.str(
        attr::ENVOY_RESPONSE_FLAGS,
        completion.response_flags.as_ref(),
    );
    if let Some(cluster) = &completion.upstream_cluster {
        attributes.str(attr::ENVOY_UPSTREAM_CLUSTER, cluster);
    }
    if let Some(host) = &completion.upstream_host {
        attributes.str(attr::ENVOY_UPSTREAM_HOST, host);
    }
    if !request_id.is_empty() {
        attributes.str(attr::ENVOY_REQUEST_ID, request_id);
    }
}

/// The peer's service, version and namespace, and where the version came from.
fn push_peer_attributes<'a>(
    attributes: &mut AttrList<'a>,
    peer: Option<(&'a PeerIdentity, VersionSource)>,
) {
    match peer {
        Some((peer, source)) => {
            attributes.str(attr::PEER_SERVICE, &peer.service);
            attributes.str(attr::MESHWAKE_PEER_VERSION, &peer.version);
            attributes.str(attr::MESHWAKE_PEER_NAMESPACE, &peer.namespace);
            attributes.str(attr::MESHWAKE_PEER_VERSION_SOURCE, source.as_str());
        }
        None => attributes.str(
            attr::MESHWAKE_PEER_VERSION_SOURCE,
            VersionSource::Unknown.as_str(),
        ),
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
    // A byte loop: `rsplit_once` is a `memrchr` call per sampled request. `:` is ASCII, so
    // both sides are char boundaries.
    let colon = authority.bytes().rposition(|b| b == b':');
    match colon.and_then(|at| Some((authority.get(..at)?, authority.get(at + 1..)?))) {
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

#[cfg(test)]
mod tests {
    use super::split_authority;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn authority_splits_at_the_last_colon_when_a_port_follows() {
        for (authority, want) in [
            ("bench", ("bench", None)),
            ("bench:8080", ("bench", Some(8080))),
            ("a:b:80", ("a:b", Some(80))),
            ("bench:", ("bench:", None)),
            ("bench:http", ("bench:http", None)),
            ("bench:70000", ("bench:70000", None)),
            (":80", ("", Some(80))),
            ("[::1]:443", ("[::1]", Some(443))),
            ("[::1]", ("[::1]", None)),
            ("", ("", None)),
            ("hé:1", ("hé", Some(1))),
        ] {
            assert_eq!(split_authority(authority), want, "{authority}");
        }
    }
}
