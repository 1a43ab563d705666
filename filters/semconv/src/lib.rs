//! The naming contract of meshwake: every name the filter writes and the analysis, the CLI
//! and the tests read, in one crate, the way OpenTelemetry keeps its semantic conventions
//! in `opentelemetry-semantic-conventions`. A renamed attribute, header or counter fails to
//! compile everywhere it is read, instead of silently reading nothing.
//!
//! Constants only (`&str`), no dependencies and `no_std`: it costs the wasm module nothing
//! beyond the strings it already used. docs/CONVENTIONS.md is the prose for these names;
//! change both together.
//!
//! | module | names |
//! | --- | --- |
//! | [`attr`] | resource and span attribute keys, fixed values in [`attr::values`] |
//! | [`span`] | span event names and link attributes |
//! | [`header`] | HTTP headers meshwake owns, and the request headers it reads |
//! | [`metric`] | Istio-compatible request metric names and their labels |
//! | [`stat`] | the filter's own Envoy counters and gauges (`meshwake.<name>`) |
#![no_std]

/// Resource and span attribute keys (docs/CONVENTIONS.md).
pub mod attr {
    // Resource attributes.
    /// `service.name`
    pub const SERVICE_NAME: &str = "service.name";
    /// `service.version`
    pub const SERVICE_VERSION: &str = "service.version";
    /// `service.namespace`
    pub const SERVICE_NAMESPACE: &str = "service.namespace";
    /// `service.instance.id`
    pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
    /// `deployment.environment.name`
    pub const DEPLOYMENT_ENVIRONMENT_NAME: &str = "deployment.environment.name";
    /// `k8s.pod.name`
    pub const K8S_POD_NAME: &str = "k8s.pod.name";
    /// `k8s.namespace.name`
    pub const K8S_NAMESPACE_NAME: &str = "k8s.namespace.name";
    /// `telemetry.sdk.name` (value [`values::SDK_NAME`])
    pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
    /// `telemetry.sdk.language` (value [`values::SDK_LANGUAGE`])
    pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";
    /// `telemetry.sdk.version`
    pub const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";
    /// Prefix of the resource attributes carrying the workload's extra identity fields
    /// (`meshwake.deployment.<key>`).
    pub const MESHWAKE_DEPLOYMENT_PREFIX: &str = "meshwake.deployment.";

    // Span attributes: OpenTelemetry HTTP semantic conventions (stable names).
    /// `http.request.method`
    pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
    /// `url.path`
    pub const URL_PATH: &str = "url.path";
    /// `url.scheme`
    pub const URL_SCHEME: &str = "url.scheme";
    /// `http.route`
    pub const HTTP_ROUTE: &str = "http.route";
    /// `http.response.status_code` (int)
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// `http.status_code`: the pre-1.0 name of [`HTTP_RESPONSE_STATUS_CODE`], never written
    /// by meshwake but still emitted by many SDKs, so the analysis reads it too.
    pub const HTTP_STATUS_CODE_OLD: &str = "http.status_code";
    /// `server.address`
    pub const SERVER_ADDRESS: &str = "server.address";
    /// `server.port` (int)
    pub const SERVER_PORT: &str = "server.port";
    /// `network.protocol.version`
    pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
    /// `user_agent.original`
    pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
    /// `error.type`
    pub const ERROR_TYPE: &str = "error.type";
    /// `http.request.body.size` (int)
    pub const HTTP_REQUEST_BODY_SIZE: &str = "http.request.body.size";
    /// `http.response.body.size` (int)
    pub const HTTP_RESPONSE_BODY_SIZE: &str = "http.response.body.size";
    /// `rpc.grpc.status_code` (int)
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";

    // Envoy details.
    /// `envoy.response_flags`
    pub const ENVOY_RESPONSE_FLAGS: &str = "envoy.response_flags";
    /// `envoy.upstream_cluster`
    pub const ENVOY_UPSTREAM_CLUSTER: &str = "envoy.upstream_cluster";
    /// `envoy.upstream_host`
    pub const ENVOY_UPSTREAM_HOST: &str = "envoy.upstream_host";
    /// `envoy.request_id`
    pub const ENVOY_REQUEST_ID: &str = "envoy.request_id";

    // meshwake.
    /// `meshwake.role`: one of [`values::ROLE_INBOUND`], [`values::ROLE_OUTBOUND`], [`values::ROLE_EDGE`].
    pub const MESHWAKE_ROLE: &str = "meshwake.role";
    /// `peer.service`
    pub const PEER_SERVICE: &str = "peer.service";
    /// `meshwake.peer.version`
    pub const MESHWAKE_PEER_VERSION: &str = "meshwake.peer.version";
    /// `meshwake.peer.namespace`
    pub const MESHWAKE_PEER_NAMESPACE: &str = "meshwake.peer.namespace";
    /// `meshwake.peer.version_source`: one of the `values::VERSION_SOURCE_*`.
    pub const MESHWAKE_PEER_VERSION_SOURCE: &str = "meshwake.peer.version_source";
    /// `meshwake.lineage`: array of `service@version` strings, oldest first.
    pub const MESHWAKE_LINEAGE: &str = "meshwake.lineage";

    /// Fixed attribute values from docs/CONVENTIONS.md.
    pub mod values {
        /// `telemetry.sdk.name` value.
        pub const SDK_NAME: &str = "meshwake";
        /// `telemetry.sdk.language` value.
        pub const SDK_LANGUAGE: &str = "rust";
        /// `meshwake.role` of a sidecar's inbound hop.
        pub const ROLE_INBOUND: &str = "inbound";
        /// `meshwake.role` of a sidecar's outbound hop.
        pub const ROLE_OUTBOUND: &str = "outbound";
        /// `meshwake.role` of an ingress/edge proxy.
        pub const ROLE_EDGE: &str = "edge";
        /// `meshwake.peer.version_source`: from the `x-meshwake-peer` header.
        pub const VERSION_SOURCE_HEADER: &str = "header";
        /// `meshwake.peer.version_source`: from the upstream cluster name.
        pub const VERSION_SOURCE_CLUSTER: &str = "cluster";
        /// `meshwake.peer.version_source`: from upstream host metadata.
        pub const VERSION_SOURCE_HOST_METADATA: &str = "host_metadata";
        /// `meshwake.peer.version_source`: not known.
        pub const VERSION_SOURCE_UNKNOWN: &str = "unknown";
        /// `error.type` of a failure Envoy did not flag.
        pub const ERROR_TYPE_OTHER: &str = "_OTHER";
    }
}

/// Span events and links.
pub mod span {
    /// Event: the first byte of the upstream's response (`spans.stream_details`).
    pub const EVENT_FIRST_UPSTREAM_BYTE: &str = "first_upstream_byte";
    /// Link attribute: why the span links to another context.
    pub const LINK_REASON: &str = "meshwake.link.reason";
    /// [`LINK_REASON`] of outside context an untrusting edge replaced by a new trace.
    pub const LINK_REASON_UNTRUSTED_EDGE: &str = "untrusted_edge_context";
}

/// HTTP header names: the ones meshwake owns, and the request headers it reads.
pub mod header {
    /// Identity of the caller (on requests) or of the answering workload (on responses).
    pub const PEER: &str = "x-meshwake-peer";
    /// Deployments (`service@version`, oldest first) the request passed through.
    pub const LINEAGE: &str = "x-meshwake-lineage";
    /// Response header showing the filter ran (with `debug_header`).
    pub const DEBUG: &str = "x-meshwake";
    /// Default of `sampling.force_header`: `1` or `true` samples the request.
    pub const FORCE_SAMPLE: &str = "x-meshwake-force-sample";

    /// `:method`
    pub const METHOD: &str = ":method";
    /// `:path`
    pub const PATH: &str = ":path";
    /// `:scheme`
    pub const SCHEME: &str = ":scheme";
    /// `:authority`
    pub const AUTHORITY: &str = ":authority";
    /// `user-agent`
    pub const USER_AGENT: &str = "user-agent";
    /// `x-request-id`: Envoy's request id, the context-recovery key.
    pub const REQUEST_ID: &str = "x-request-id";
    /// `content-type`
    pub const CONTENT_TYPE: &str = "content-type";
    /// `grpc-status`
    pub const GRPC_STATUS: &str = "grpc-status";
}

/// Istio-compatible request metrics (`metrics.naming`: `meshwake` or `istio`).
pub mod metric {
    /// `meshwake_requests_total` (counter).
    pub const MESHWAKE_REQUESTS_TOTAL: &str = "meshwake_requests_total";
    /// `meshwake_request_duration_milliseconds` (histogram).
    pub const MESHWAKE_REQUEST_DURATION_MILLISECONDS: &str =
        "meshwake_request_duration_milliseconds";
    /// `meshwake_request_bytes` (histogram).
    pub const MESHWAKE_REQUEST_BYTES: &str = "meshwake_request_bytes";
    /// `meshwake_response_bytes` (histogram).
    pub const MESHWAKE_RESPONSE_BYTES: &str = "meshwake_response_bytes";
    /// `istio_requests_total` (counter), drop-in for Istio dashboards.
    pub const ISTIO_REQUESTS_TOTAL: &str = "istio_requests_total";
    /// `istio_request_duration_milliseconds` (histogram).
    pub const ISTIO_REQUEST_DURATION_MILLISECONDS: &str = "istio_request_duration_milliseconds";
    /// `istio_request_bytes` (histogram).
    pub const ISTIO_REQUEST_BYTES: &str = "istio_request_bytes";
    /// `istio_response_bytes` (histogram).
    pub const ISTIO_RESPONSE_BYTES: &str = "istio_response_bytes";

    /// Label names (Istio's standard metric labels), in the order they are encoded.
    pub mod label {
        /// `reporter`
        pub const REPORTER: &str = "reporter";
        /// `source_workload`
        pub const SOURCE_WORKLOAD: &str = "source_workload";
        /// `source_workload_namespace`
        pub const SOURCE_WORKLOAD_NAMESPACE: &str = "source_workload_namespace";
        /// `source_version`
        pub const SOURCE_VERSION: &str = "source_version";
        /// `source_canonical_service`
        pub const SOURCE_CANONICAL_SERVICE: &str = "source_canonical_service";
        /// `destination_workload`
        pub const DESTINATION_WORKLOAD: &str = "destination_workload";
        /// `destination_workload_namespace`
        pub const DESTINATION_WORKLOAD_NAMESPACE: &str = "destination_workload_namespace";
        /// `destination_version`
        pub const DESTINATION_VERSION: &str = "destination_version";
        /// `destination_service`
        pub const DESTINATION_SERVICE: &str = "destination_service";
        /// `request_protocol`
        pub const REQUEST_PROTOCOL: &str = "request_protocol";
        /// `response_code`
        pub const RESPONSE_CODE: &str = "response_code";
        /// `grpc_response_status`
        pub const GRPC_RESPONSE_STATUS: &str = "grpc_response_status";
        /// `response_flags`
        pub const RESPONSE_FLAGS: &str = "response_flags";
    }
}

/// The filter's own Envoy counters and gauges. Names here are short: Envoy's stat is
/// [`PREFIX`] + name (and `wasmcustom.` in front of that in `/stats`).
pub mod stat {
    /// Prefix of every self-stat as the filter defines it.
    pub const PREFIX: &str = "meshwake.";

    /// Spans built (sampled requests with spans on).
    pub const SPANS_CREATED: &str = "spans.created";
    /// Spans the collector accepted.
    pub const SPANS_EXPORTED: &str = "spans.exported";
    /// Spans dropped because the queue was full.
    pub const SPANS_DROPPED_QUEUE_FULL: &str = "spans.dropped_queue_full";
    /// Requests not sampled (no span built).
    pub const SPANS_DROPPED_SAMPLED_OUT: &str = "spans.dropped_sampled_out";
    /// Spans dropped after the export failed for good.
    pub const SPANS_DROPPED_EXPORT_FAILED: &str = "spans.dropped_export_failed";
    /// Spans the collector rejected (partial success).
    pub const SPANS_DROPPED_REJECTED: &str = "spans.dropped_rejected";
    /// Export retries.
    pub const EXPORT_RETRIES: &str = "export.retries";
    /// Export calls made.
    pub const EXPORT_BATCHES_SENT: &str = "export.batches_sent";
    /// Export failures by cause.
    pub const EXPORT_FAILURES_STATUS_4XX: &str = "export.failures_status_4xx";
    /// Export failures: 5xx.
    pub const EXPORT_FAILURES_STATUS_5XX: &str = "export.failures_status_5xx";
    /// Export failures: 429.
    pub const EXPORT_FAILURES_STATUS_429: &str = "export.failures_status_429";
    /// Export failures: another status.
    pub const EXPORT_FAILURES_STATUS_OTHER: &str = "export.failures_status_other";
    /// Export failures: Envoy refused the call (e.g. unknown cluster).
    pub const EXPORT_FAILURES_CALL_FAILED: &str = "export.failures_call_failed";
    /// Export failures: timeout.
    pub const EXPORT_FAILURES_TIMEOUT: &str = "export.failures_timeout";
    /// Gauge: spans queued for export.
    pub const EXPORT_QUEUE_DEPTH: &str = "export.queue_depth";
    /// Gauge: export calls in flight.
    pub const EXPORT_BATCHES_IN_FLIGHT: &str = "export.batches_in_flight";
    /// Requests whose label set did not fit under `metrics.max_label_sets`.
    pub const METRICS_LABEL_OVERFLOW: &str = "metrics.label_overflow";
    /// Configuration errors (each fell back to a default).
    pub const CONFIG_ERRORS: &str = "config.errors";
    /// Configuration warnings.
    pub const CONFIG_WARNINGS: &str = "config.warnings";
    /// Context-recovery entries stored by inbound requests.
    pub const CONTEXT_RECOVERY_STORED: &str = "context_recovery_stored";
    /// Wasm: stream states dropped to keep the VM's stream table bounded (a stream whose
    /// log callback never came; expected 0).
    pub const STREAMS_EVICTED: &str = "streams_evicted";
    /// Gauge, wasm: streams whose state the VMs hold (between a stream's start and its log
    /// callback); back to 0 when no request is in flight.
    pub const STREAMS_ACTIVE: &str = "streams.active";
    /// Gauge: the VM's linear memory in bytes (it only grows).
    pub const VM_MEMORY_BYTES: &str = "vm.memory_bytes";

    /// Per-request notes (`meshwake_core::notes::Note`), one counter each.
    pub mod note {
        /// An incoming trace context was continued.
        pub const CONTEXT_CONTINUED: &str = "context_continued";
        /// A new trace was started.
        pub const CONTEXT_STARTED: &str = "context_started";
        /// A trace header was malformed and ignored or repaired.
        pub const CONTEXT_INVALID: &str = "context_invalid";
        /// An outbound call without context continued its inbound request's trace.
        pub const CONTEXT_RECOVERED: &str = "context_recovered";
        /// No remembered context for an outbound call without context.
        pub const CONTEXT_RECOVERY_MISS: &str = "context_recovery_miss";
        /// The request was not sampled.
        pub const SAMPLED_OUT: &str = "sampled_out";
        /// Outside context at the edge was replaced by a new trace.
        pub const EDGE_CONTEXT_RESTARTED: &str = "edge_context_restarted";
        /// Mesh-owned baggage from outside was dropped.
        pub const EDGE_BAGGAGE_STRIPPED: &str = "edge_baggage_stripped";
        /// Identity/lineage headers from outside were removed.
        pub const EDGE_IDENTITY_STRIPPED: &str = "edge_identity_stripped";
        /// The peer sent no identity header.
        pub const PEER_IDENTITY_MISSING: &str = "peer_identity_missing";
        /// The peer identity header was malformed.
        pub const PEER_IDENTITY_MALFORMED: &str = "peer_identity_malformed";
        /// The peer identity failed HMAC verification.
        pub const PEER_IDENTITY_REJECTED: &str = "peer_identity_rejected";
        /// The lineage header was malformed or failed verification.
        pub const LINEAGE_REJECTED: &str = "lineage_rejected";
        /// The lineage was longer than its cap.
        pub const LINEAGE_TRUNCATED: &str = "lineage_truncated";
    }
}
