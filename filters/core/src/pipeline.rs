//! The per-request pipeline: what the filter does at request headers, response headers and
//! stream end, for each role. Pure logic: the glue hands in header bytes, time and ids and
//! applies the header edits returned; nothing here calls the host.
//!
//! This file holds the engine and the request state; the phases of request headers are in
//! `pipeline/request.rs`, the span and metric labels of stream end in `pipeline/stream_end.rs`.
use crate::config::{Config, ConfigIssue, Role};
use crate::notes::{Note, Notes};
use crate::recovery::{self, Remembered};
use crate::route::RouteTemplate;
use meshwake_identity::{
    self as identity, ClusterPattern, Lineage, PeerIdentity, VersionSource, WorkloadIdentity,
};
use meshwake_telemetry::metrics::MetricLabels;
use meshwake_telemetry::span::attr;
use meshwake_telemetry::{KeyValue, Resource, Scope, Span};
use meshwake_trace_context::propagator::{
    HeaderSource, HeaderValue, PropagationConfig, Propagator,
};
use meshwake_trace_context::{Sampler, SpanContext, SpanId};
use smallvec::SmallVec;
use std::borrow::Cow;

mod request;
mod stream_end;

pub use request::Spare;
pub use stream_end::StreamEndText;

/// Header names the pipeline reads and writes: the shared naming contract.
pub use meshwake_semconv::header;

/// Longest value kept for free-text attributes (user agent, authority...).
pub const MAX_ATTR_LEN: usize = 256;

/// Header sets of one callback, one inline: an inbound request sets `traceparent`, a
/// response the peer header, so neither allocates a list. An outbound request also sets the
/// two identity headers, and a changed `tracestate` is a second set: those spill to the heap,
/// as every list did before decision 13. The new `traceparent` is held inline in its value
/// (60 bytes), so each inline slot costs moves: two slots cost the propagation-only module
/// ~130 wasm operators more than one (docs/adr/0006, decisions 13 and 15). A value the engine
/// holds for every request (the peer header) is lent, not copied.
pub type HeaderSets<'e> = SmallVec<[(&'static str, HeaderValue<'e>); 1]>;

/// Header changes for the host to apply. Removals only name headers the map has: each is a
/// host call, so the glue applies them as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits<'e> {
    pub set: HeaderSets<'e>,
    pub remove: Vec<&'static str>,
}

impl<'e> HeaderEdits<'e> {
    fn set(&mut self, name: &'static str, value: impl Into<HeaderValue<'e>>) {
        self.remove.retain(|n| *n != name);
        self.set.push((name, value.into()));
    }
    /// Remove `name` if `h` has it.
    fn remove(&mut self, h: &dyn HeaderSource, name: &'static str) {
        if h.get(name).is_some()
            && !self.set.iter().any(|(n, _)| *n == name)
            && !self.remove.contains(&name)
        {
            self.remove.push(name);
        }
    }
}

/// Everything the pipeline keeps between request headers and stream end.
#[derive(Clone, Debug)]
pub struct RequestState {
    pub role: Role,
    pub start_ns: u64,
    /// This hop's span: trace id, our span id, flags, tracestate.
    pub ctx: SpanContext,
    pub parent_span_id: Option<SpanId>,
    pub sampled: bool,
    /// Outside context not trusted at the edge, kept as a link.
    pub link: Option<SpanContext>,
    pub method: String,
    pub path: String,
    pub scheme: String,
    pub authority: String,
    pub user_agent: String,
    pub request_id: String,
    pub grpc: bool,
    /// Inbound: who called (from its identity header).
    pub source: Option<PeerIdentity>,
    /// Outbound/edge: who answered, and where that came from.
    pub destination: Option<(PeerIdentity, VersionSource)>,
    /// Deployments upstream of this hop.
    pub lineage: Lineage,
    /// Lineage sent downstream (outbound/edge), encoded.
    pub lineage_out: String,
    pub first_byte_ns: Option<u64>,
    pub notes: Notes,
}

/// Buffers [`Engine::remember_each`] reuses from one request to the next.
#[derive(Debug, Default)]
pub struct RememberBuf {
    key: String,
    value: Vec<u8>,
    lineage: String,
}

/// What Envoy knows when the stream ends.
#[derive(Clone, Debug, Default)]
pub struct Completion {
    pub end_ns: u64,
    pub status: u16,
    /// Envoy's short form (`UF,URX`), `-` when none.
    pub response_flags: Cow<'static, str>,
    pub grpc_status: Option<i64>,
    pub request_bytes: Option<i64>,
    pub response_bytes: Option<i64>,
    pub protocol: String,
    pub upstream_cluster: Option<String>,
    pub upstream_host: Option<String>,
    /// Istio endpoint metadata `istio.workload` of the upstream host, if any.
    pub upstream_workload_meta: Option<String>,
}

/// Stream-end facts the glue reads from Envoy (see [`Engine::stream_end_reads`]); the
/// response code is always read and the response flags when [`needs_response_flags`] says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamEndReads {
    pub sizes: bool,
    pub protocol: bool,
    pub upstream: bool,
    pub upstream_workload: bool,
    pub grpc_status: bool,
}

/// Response flags are read only for failed or reset streams: they explain failures
/// (`UF`, `UH`, `URX`, `DC`...), and a successful stream rarely carries one, so a success
/// reports `-` without a property read.
pub fn needs_response_flags(status: u16) -> bool {
    status == 0 || status >= 400
}

/// The immutable per-VM engine, built once from configuration.
pub struct Engine {
    cfg: Config,
    extract: PropagationConfig,
    inject: Vec<Propagator>,
    sampler: Sampler,
    local: WorkloadIdentity,
    key: Option<Vec<u8>>,
    peer_header: String,
    /// The lineage of a request that arrived without one: just this workload, and its
    /// encoding, built once (the common case for inbound entries and outbound headers).
    own: Lineage,
    own_lineage: String,
    patterns: Vec<ClusterPattern>,
    routes: Vec<RouteTemplate>,
    resource: Resource,
    scope: Scope,
}

impl Engine {
    /// Build the engine; returns the configuration entries it had to ignore (bad cluster
    /// patterns, route templates), for the glue to log once.
    pub fn new(
        cfg: Config,
        local: WorkloadIdentity,
        sdk_version: &'static str,
    ) -> (Engine, Vec<ConfigIssue>) {
        let mut warnings = Vec::new();
        let mut extract = cfg.propagation.extract.clone();
        let mut inject = cfg.propagation.inject.clone();
        if cfg.propagation.baggage {
            extract.push(Propagator::Baggage);
            inject.push(Propagator::Baggage);
        }
        let sampler = if cfg.sampling.parent_based {
            Sampler::ParentBasedRatio {
                ratio: cfg.sampling.ratio,
            }
        } else {
            Sampler::TraceIdRatio {
                ratio: cfg.sampling.ratio,
            }
        };
        let key = cfg
            .identity
            .hmac_key
            .as_ref()
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec());
        let peer_header = identity::header::encode(&local, key.as_deref());
        let mut patterns = Vec::new();
        for p in &cfg.identity.cluster_patterns {
            match ClusterPattern::parse(p) {
                Ok(p) => patterns.push(p),
                Err(e) => warnings.push(ConfigIssue::EntryIgnored {
                    key: "identity.cluster_patterns",
                    entry: p.clone(),
                    reason: format!("{e:?}"),
                }),
            }
        }
        patterns.extend(identity::fallback::default_patterns());
        let mut routes = Vec::new();
        for r in &cfg.spans.routes {
            match RouteTemplate::parse(r) {
                Some(t) => routes.push(t),
                None => warnings.push(ConfigIssue::EntryIgnored {
                    key: "spans.routes",
                    entry: r.clone(),
                    reason: "a template starts with `/`".into(),
                }),
            }
        }
        let resource = build_resource(&cfg, &local, sdk_version);
        let scope = Scope {
            name: Cow::Borrowed("meshwake"),
            version: Cow::Borrowed(sdk_version),
        };
        let mut own = Lineage::new(cfg.identity.lineage_max);
        own.push(&local.service, &local.version);
        let own_lineage = own.encode(key.as_deref());
        let engine = Engine {
            own,
            own_lineage,
            extract: PropagationConfig {
                extract,
                inject: inject.clone(),
            },
            inject,
            sampler,
            key,
            peer_header,
            patterns,
            routes,
            resource,
            scope,
            local,
            cfg,
        };
        (engine, warnings)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn local(&self) -> &WorkloadIdentity {
        &self.local
    }
    pub fn resource(&self) -> &Resource {
        &self.resource
    }
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Recovery entries an inbound request leaves for the workload's outbound calls:
    /// `(slot key, value)` pairs for the host's shared data. The trace-id entry (lineage
    /// for calls that carry context) is always left; the request-id entry (context for
    /// calls without) only with `context_recovery.enabled`.
    pub fn remember(&self, s: &RequestState) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        self.remember_each(s, &mut RememberBuf::default(), |k, v| {
            out.push((k.to_string(), v.to_vec()))
        });
        out
    }

    /// Like [`Engine::remember`], handing each `(slot key, value)` to `store`, built in
    /// `buf`'s reused buffers: no allocation per request once they have grown.
    pub fn remember_each(
        &self,
        s: &RequestState,
        buf: &mut RememberBuf,
        mut store: impl FnMut(&str, &[u8]),
    ) {
        let exchange = self.cfg.identity.exchange;
        let by_request_id = self.cfg.context_recovery.enabled && !s.request_id.is_empty();
        if s.role != Role::Inbound || !(exchange || by_request_id) {
            return;
        }
        let RememberBuf {
            key,
            value,
            lineage,
        } = buf;
        let lineage: &str = if s.lineage.is_empty() {
            &self.own_lineage
        } else {
            let mut l = s.lineage.clone();
            l.push(&self.local.service, &self.local.version);
            *lineage = l.encode(self.key.as_deref());
            lineage
        };
        let r = Remembered {
            trace_id: s.ctx.trace_id,
            span_id: s.ctx.span_id,
            flags: s.ctx.flags,
            lineage: String::new(),
            stored_ns: s.start_ns,
        };
        let slots = self.cfg.context_recovery.slots;
        if exchange {
            let trace_hex = s.ctx.trace_id.hex_bytes();
            recovery::slot_key_into(key, "t", &trace_hex, slots);
            recovery::encode_into(value, &trace_hex, &r, lineage);
            store(key, value);
        }
        if by_request_id {
            let k = s.request_id.as_bytes();
            recovery::slot_key_into(key, "r", k, slots);
            recovery::encode_into(value, k, &r, lineage);
            store(key, value);
        }
    }

    /// A peer's identity header, verified with the shared key; noted when missing or bad.
    fn decode_peer(&self, value: Option<&[u8]>, notes: &mut Notes) -> Option<PeerIdentity> {
        let Some(value) = value else {
            notes.add(Note::PeerMissing);
            return None;
        };
        match identity::header::decode(value, self.key.as_deref()) {
            Ok(peer) => Some(peer),
            Err(e) => {
                notes.add(if is_signature_error(e) {
                    Note::PeerSignatureRejected
                } else {
                    Note::PeerMalformed
                });
                None
            }
        }
    }

    /// Decode a recovery slot read by the host.
    pub fn recall_entry(&self, bytes: &[u8], key: &[u8], now_ns: u64) -> Option<Remembered> {
        recovery::decode(
            bytes,
            key,
            now_ns,
            self.cfg.context_recovery.ttl_ms.saturating_mul(1_000_000),
        )
    }

    /// Whether `on_response` looks at the response headers for this role (reading them is
    /// a host call; inbound only writes).
    pub fn reads_response_headers(&self, role: Role) -> bool {
        role != Role::Inbound
    }

    /// Whether the request's start time is used (spans, metrics, recovery entries); without
    /// it the glue skips the clock read (a host call).
    pub fn wants_start_time(&self) -> bool {
        let c = &self.cfg;
        c.spans.enabled || c.metrics.enabled || c.identity.exchange || c.context_recovery.enabled
    }

    /// Whether the glue should take a timestamp at response headers (the span's
    /// `first_upstream_byte` event, one of the `spans.stream_details`).
    pub fn wants_first_byte_time(&self) -> bool {
        self.cfg.spans.enabled && self.cfg.spans.stream_details
    }

    /// Which stream-end facts to read from Envoy for this request. Each is a property read,
    /// the dearest host call (about 2 µs in Envoy 1.40, `make bench` hostcalls), so only
    /// what the span and metrics will use.
    pub fn stream_end_reads(&self, s: &RequestState) -> StreamEndReads {
        let details = self.cfg.spans.enabled && self.cfg.spans.stream_details;
        let outward = s.role != Role::Inbound;
        StreamEndReads {
            sizes: details || (self.cfg.metrics.enabled && self.cfg.metrics.size_histograms),
            protocol: details,
            upstream: outward || details,
            upstream_workload: outward && s.destination.is_none(),
            grpc_status: s.grpc,
        }
    }

    /// Response headers arrived.
    pub fn on_response(
        &self,
        s: &mut RequestState,
        h: &dyn HeaderSource,
        now_ns: u64,
    ) -> HeaderEdits<'_> {
        let mut edits = HeaderEdits::default();
        if now_ns > 0 {
            s.first_byte_ns.get_or_insert(now_ns);
        }
        match s.role {
            Role::Inbound => {
                // Tell the caller's sidecar who answered. Nothing else: the app never saw
                // our identity headers (stripped from its request) and the caller's sidecar
                // strips them from responses, so inbound reads no response headers at all.
                if self.cfg.identity.exchange {
                    edits.set(identity::PEER_HEADER, self.peer_header.as_str());
                }
            }
            Role::Outbound | Role::Edge => {
                if self.cfg.identity.exchange {
                    if let Some(peer) = self.decode_peer(h.get(identity::PEER_HEADER), &mut s.notes)
                    {
                        s.destination = Some((peer, VersionSource::Header));
                    }
                }
                for name in identity::OWNED_HEADERS {
                    edits.remove(h, name);
                }
            }
        }
        if self.cfg.debug_header && s.role != Role::Edge {
            edits.set(
                header::DEBUG,
                concat!("meshwake/", env!("CARGO_PKG_VERSION")).to_string(),
            );
        }
        edits
    }

    /// The stream ended: the span (when sampled and spans are on) and the metric labels,
    /// owned ([`Engine::stream_end`] is the same without copies).
    pub fn finish(&self, mut s: RequestState, c: &Completion) -> (Option<Span>, MetricLabels) {
        let mut text = StreamEndText::default();
        let mut span = None;
        let labels = self.stream_end(&mut s, c, &mut text, |v| span = Some(v.to_span()));
        (span, labels.to_owned_labels())
    }
}

fn is_signature_error(e: identity::PeerHeaderError) -> bool {
    matches!(
        e,
        identity::PeerHeaderError::MissingSignature | identity::PeerHeaderError::BadSignature
    )
}

fn build_resource(cfg: &Config, id: &WorkloadIdentity, sdk_version: &'static str) -> Resource {
    let mut a = vec![
        KeyValue::new(attr::SERVICE_NAME, id.service.clone()),
        KeyValue::new(attr::SERVICE_VERSION, id.version.clone()),
        KeyValue::new(attr::SERVICE_NAMESPACE, id.namespace.clone()),
    ];
    if !id.instance.is_empty() && id.instance != identity::workload::UNKNOWN {
        a.push(KeyValue::new(
            attr::SERVICE_INSTANCE_ID,
            id.instance.clone(),
        ));
        a.push(KeyValue::new(attr::K8S_POD_NAME, id.instance.clone()));
    }
    if id.namespace != identity::workload::UNKNOWN {
        a.push(KeyValue::new(
            attr::K8S_NAMESPACE_NAME,
            id.namespace.clone(),
        ));
    }
    if let Some(env) = &cfg.resource.environment {
        a.push(KeyValue::new(
            attr::DEPLOYMENT_ENVIRONMENT_NAME,
            env.clone(),
        ));
    }
    for (k, v) in &id.extra {
        a.push(KeyValue::new(
            format!("{}{k}", attr::MESHWAKE_DEPLOYMENT_PREFIX),
            v.clone(),
        ));
    }
    for (k, v) in &cfg.resource.attributes {
        a.push(KeyValue::new(k.clone(), v.clone()));
    }
    a.push(KeyValue::new(
        attr::TELEMETRY_SDK_NAME,
        attr::values::SDK_NAME,
    ));
    a.push(KeyValue::new(
        attr::TELEMETRY_SDK_LANGUAGE,
        attr::values::SDK_LANGUAGE,
    ));
    a.push(KeyValue::new(attr::TELEMETRY_SDK_VERSION, sdk_version));
    Resource { attributes: a }
}
