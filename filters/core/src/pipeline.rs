//! The per-request pipeline: what the filter does at request headers, response headers and
//! stream end, for each role. Pure logic: the glue hands in header bytes, time and ids and
//! applies the header edits returned; nothing here calls the host.
use crate::config::{Config, ConfigIssue, Role};
use crate::notes::{Note, Notes};
use crate::recovery::{self, Remembered};
use crate::route::{self, RouteTemplate};
use meshwake_identity::{
    self as identity, ClusterPattern, Lineage, PeerHints, PeerIdentity, VersionSource,
    WorkloadIdentity,
};
use meshwake_telemetry::metrics::{MetricLabels, Reporter};
use meshwake_telemetry::span::{attr, Event, Link};
use meshwake_telemetry::{KeyValue, Resource, Scope, Span, SpanKind, Status};
use meshwake_trace_context::propagator::{
    self, HeaderSource, InjectOptions, PropagationConfig, Propagator,
};
use meshwake_trace_context::{IdGenerator, Sampler, SpanContext, SpanId, TraceFlags};
use std::borrow::Cow;

/// Request header names read by the pipeline, defined once.
pub mod header {
    pub const METHOD: &str = ":method";
    pub const PATH: &str = ":path";
    pub const SCHEME: &str = ":scheme";
    pub const AUTHORITY: &str = ":authority";
    pub const USER_AGENT: &str = "user-agent";
    pub const REQUEST_ID: &str = "x-request-id";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const GRPC_STATUS: &str = "grpc-status";
    /// Response header showing the filter ran (with `debug_header`).
    pub const DEBUG: &str = "x-meshwake";
}

/// Longest value kept for free-text attributes (user agent, authority...).
pub const MAX_ATTR_LEN: usize = 256;

/// Header changes for the host to apply. Removals only name headers the map has: each is a
/// host call, so the glue applies them as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub set: Vec<(&'static str, String)>,
    pub remove: Vec<&'static str>,
}

impl HeaderEdits {
    fn set(&mut self, name: &'static str, value: String) {
        self.remove.retain(|n| *n != name);
        self.set.push((name, value));
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

/// What Envoy knows when the stream ends.
#[derive(Clone, Debug, Default)]
pub struct Completion {
    pub end_ns: u64,
    pub status: u16,
    pub response_flags: String,
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

fn lossy(b: Option<&[u8]>, max: usize) -> String {
    let b = b.unwrap_or_default();
    String::from_utf8_lossy(b.get(..b.len().min(max)).unwrap_or(b)).into_owned()
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

    /// Request headers arrived. `recall(kind, key)` reads a context-recovery slot.
    pub fn on_request(
        &self,
        role: Role,
        h: &dyn HeaderSource,
        now_ns: u64,
        ids: &mut IdGenerator,
        recall: &mut dyn FnMut(&str, &[u8]) -> Option<Remembered>,
    ) -> (RequestState, HeaderEdits) {
        let mut notes = Notes::default();
        let mut edits = HeaderEdits::default();
        let key = self.key.as_deref();
        let lineage_cap = self.cfg.identity.lineage_max;

        // Identity and lineage headers: trusted only from a meshwake peer (inbound);
        // from outside (edge) or from the app (outbound) they are removed and rewritten.
        let mut source = None;
        let mut lineage = Lineage::new(lineage_cap);
        let exchange = self.cfg.identity.exchange;
        match role {
            Role::Inbound if exchange => {
                match h
                    .get(identity::PEER_HEADER)
                    .map(|v| identity::header::decode(v, key))
                {
                    Some(Ok(p)) => source = Some(p),
                    Some(Err(e)) => notes.add(if is_signature_error(e) {
                        Note::PeerSignatureRejected
                    } else {
                        Note::PeerMalformed
                    }),
                    None => notes.add(Note::PeerMissing),
                }
                if let Some(v) = h.get(identity::LINEAGE_HEADER) {
                    match Lineage::decode(v, lineage_cap, key) {
                        Ok(l) => lineage = l,
                        Err(_) => notes.add(Note::LineageRejected),
                    }
                }
            }
            Role::Edge => {
                if h.get(identity::PEER_HEADER).is_some()
                    || h.get(identity::LINEAGE_HEADER).is_some()
                {
                    notes.add(Note::EdgeStrippedIdentity);
                }
            }
            Role::Inbound | Role::Outbound => {}
        }
        for name in identity::OWNED_HEADERS {
            edits.remove(h, name);
        }

        // Trace context.
        let mut ex = propagator::extract(&self.extract, h);
        if !ex.errors.is_empty() {
            notes.add(Note::ContextInvalid);
        }
        let mut link = None;
        if role == Role::Edge && !self.cfg.edge.trust_incoming_context {
            if let Some(rc) = ex.context.take() {
                link = Some(rc.span_context);
                notes.add(Note::EdgeRestarted);
            }
            ex.sampling_hint = None;
            let n = ex
                .baggage
                .remove_keys_with_prefix(&self.cfg.edge.baggage_prefix);
            if n > 0 {
                notes.add(Note::EdgeStrippedBaggage);
            }
        }
        let received_b3 = if self.cfg.propagation.inject_received_b3 {
            received_b3_formats(h)
        } else {
            [None, None]
        };

        let request_id_bytes = h.get(header::REQUEST_ID);
        // The key exactly as `remember` stores it (cut, lossy): a long or non-UTF-8
        // request id must land in the same slot on both sides.
        let request_id = lossy(request_id_bytes, recovery::MAX_KEY_LEN);
        let mut recovered: Option<Remembered> = None;
        if role == Role::Outbound {
            if let (Some(rc), true) = (&ex.context, exchange) {
                // The app forwarded context: pick up this workload's lineage by trace id.
                // Not gated by `context_recovery.enabled`: lineage needs it either way.
                recovered = recall("t", rc.span_context.trace_id.to_hex().as_bytes())
                    .filter(|r| r.trace_id == rc.span_context.trace_id);
            } else if self.cfg.context_recovery.enabled && request_id_bytes.is_some() {
                recovered = recall("r", request_id.as_bytes());
                notes.add(if recovered.is_some() {
                    Note::ContextRecovered
                } else {
                    Note::RecoveryMiss
                });
            }
        }

        let forced = self
            .cfg
            .sampling
            .force_header
            .as_deref()
            .and_then(|n| h.get(n))
            .is_some_and(|v| v == b"1" || v.eq_ignore_ascii_case(b"true"));

        let span_id = ids.new_span_id();
        let (trace_id, parent_span_id, mut trace_state, parent_flags) =
            if let Some(rc) = &ex.context {
                notes.add(Note::ContextContinued);
                let sc = &rc.span_context;
                (
                    sc.trace_id,
                    Some(sc.span_id),
                    sc.trace_state.clone(),
                    Some(sc.flags),
                )
            } else if let Some(r) = &recovered {
                // Only reached without incoming context: the app forgot its headers.
                (
                    r.trace_id,
                    Some(r.span_id),
                    Default::default(),
                    Some(r.flags),
                )
            } else {
                notes.add(Note::ContextStarted);
                (ids.new_trace_id(), None, Default::default(), None)
            };
        if role == Role::Edge && !self.cfg.edge.trust_incoming_context {
            meshwake_trace_context::drop_own_tracestate(
                &mut trace_state,
                &self.cfg.edge.tracestate_key,
            );
        }
        // B3 debug as received, or as an earlier meshwake hop carried it in its tracestate entry.
        let debug = ex.context.as_ref().is_some_and(|c| c.debug)
            || meshwake_trace_context::mesh_debug(&trace_state, &self.cfg.edge.tracestate_key);
        let sampled = if forced || debug {
            true
        } else if ex.context.is_some() {
            self.sampler.decide(&ex, &trace_id)
        } else if let Some(f) = parent_flags {
            let parent = SpanContext::new(trace_id, SpanId([1; 8]), f);
            self.sampler.should_sample(Some(&parent), &trace_id, false)
        } else {
            let hinted = ex.sampling_hint.map(|s| s.is_sampled());
            hinted.unwrap_or_else(|| self.sampler.should_sample(None, &trace_id, false))
        };
        if !sampled {
            notes.add(Note::SampledOut);
        }
        let mut flags =
            TraceFlags(parent_flags.map_or(TraceFlags::RANDOM, |f| f.0 & TraceFlags::KNOWN))
                .with_sampled(sampled);
        if parent_flags.is_none() {
            flags = flags.with_random(true);
        }
        if debug {
            meshwake_trace_context::mark_mesh_debug(
                &mut trace_state,
                &self.cfg.edge.tracestate_key,
            );
        }
        let mut ctx = SpanContext::new(trace_id, span_id, flags);
        ctx.trace_state = trace_state;

        // Write the context: to the app (inbound/edge) or upstream (outbound), own span as parent.
        // The configured formats, plus B3 when it arrived (copied only then).
        let extra: Vec<Propagator> = received_b3
            .into_iter()
            .flatten()
            .filter(|f| !self.inject.contains(f))
            .collect();
        let joined;
        let formats: &[Propagator] = if extra.is_empty() {
            &self.inject
        } else {
            joined = [self.inject.as_slice(), extra.as_slice()].concat();
            &joined
        };
        let inj = propagator::inject_with(
            &ctx,
            &InjectOptions {
                parent_span_id,
                debug,
            },
            &ex.baggage,
            formats,
        );
        for (n, v) in inj.set {
            edits.set(n, v);
        }
        for n in inj.remove {
            // Never strip formats we did not extract from: an app's own headers pass through.
            if ex.context.is_some() || role != Role::Outbound {
                edits.remove(h, n);
            }
        }

        // Identity downstream: who is calling, and the lineage including us.
        let mut lineage_out = String::new();
        if exchange && matches!(role, Role::Outbound | Role::Edge) {
            edits.set(identity::PEER_HEADER, self.peer_header.clone());
            let (l, is_own) = match &recovered {
                Some(r) if !r.lineage.is_empty() && role != Role::Edge => (
                    Lineage::decode(r.lineage.as_bytes(), lineage_cap, key)
                        .unwrap_or_else(|_| Lineage::new(lineage_cap)),
                    false,
                ),
                _ => (self.own.clone(), true),
            };
            lineage_out = if is_own {
                self.own_lineage.clone()
            } else {
                l.encode(key)
            };
            if !lineage_out.is_empty() {
                edits.set(identity::LINEAGE_HEADER, lineage_out.clone());
            }
            if role == Role::Outbound {
                lineage = l;
            }
        }
        if lineage.is_truncated() {
            notes.add(Note::LineageTruncated);
        }

        let grpc = h
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.starts_with(b"application/grpc"));
        // Attributes only spans use: not copied when spans are off.
        let spans_on = self.cfg.spans.enabled;
        let text = |name: &str, max: usize| {
            if spans_on {
                lossy(h.get(name), max)
            } else {
                String::new()
            }
        };
        let state = RequestState {
            role,
            start_ns: now_ns,
            ctx,
            parent_span_id,
            sampled,
            link,
            method: text(header::METHOD, 16),
            path: if spans_on {
                let p = lossy(h.get(header::PATH), route::MAX_PATH_LEN * 2);
                match route::path_only(&p).len() {
                    n if n == p.len() => p,
                    n => p.get(..n).unwrap_or_default().to_string(),
                }
            } else {
                String::new()
            },
            scheme: text(header::SCHEME, 16),
            authority: text(header::AUTHORITY, MAX_ATTR_LEN),
            user_agent: text(header::USER_AGENT, MAX_ATTR_LEN),
            request_id,
            grpc,
            source,
            destination: None,
            lineage,
            lineage_out,
            first_byte_ns: None,
            notes,
        };
        (state, edits)
    }

    /// Recovery entries an inbound request leaves for the workload's outbound calls:
    /// `(slot key, value)` pairs for the host's shared data. The trace-id entry (lineage
    /// for calls that carry context) is always left; the request-id entry (context for
    /// calls without) only with `context_recovery.enabled`.
    pub fn remember(&self, s: &RequestState) -> Vec<(String, Vec<u8>)> {
        let exchange = self.cfg.identity.exchange;
        let by_request_id = self.cfg.context_recovery.enabled && !s.request_id.is_empty();
        if s.role != Role::Inbound || !(exchange || by_request_id) {
            return Vec::new();
        }
        let lineage = if s.lineage.is_empty() {
            self.own_lineage.clone()
        } else {
            let mut l = s.lineage.clone();
            l.push(&self.local.service, &self.local.version);
            l.encode(self.key.as_deref())
        };
        let r = Remembered {
            trace_id: s.ctx.trace_id,
            span_id: s.ctx.span_id,
            flags: s.ctx.flags,
            lineage,
            stored_ns: s.start_ns,
        };
        let slots = self.cfg.context_recovery.slots;
        let mut out = Vec::with_capacity(2);
        if exchange {
            let tid = s.ctx.trace_id.to_hex();
            out.push((
                recovery::slot_key("t", tid.as_bytes(), slots),
                recovery::encode(tid.as_bytes(), &r),
            ));
        }
        if by_request_id {
            let k = s.request_id.as_bytes();
            out.push((recovery::slot_key("r", k, slots), recovery::encode(k, &r)));
        }
        out
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
    ) -> HeaderEdits {
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
                    edits.set(identity::PEER_HEADER, self.peer_header.clone());
                }
            }
            Role::Outbound | Role::Edge => {
                if self.cfg.identity.exchange {
                    match h
                        .get(identity::PEER_HEADER)
                        .map(|v| identity::header::decode(v, self.key.as_deref()))
                    {
                        Some(Ok(p)) => s.destination = Some((p, VersionSource::Header)),
                        Some(Err(e)) => s.notes.add(if is_signature_error(e) {
                            Note::PeerSignatureRejected
                        } else {
                            Note::PeerMalformed
                        }),
                        None => s.notes.add(Note::PeerMissing),
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

    /// The stream ended: the span (when sampled and spans are on) and the metric labels.
    pub fn finish(&self, mut s: RequestState, c: &Completion) -> (Option<Span>, MetricLabels) {
        // Never `unknown` when Envoy knows better: fall back to the upstream's cluster and metadata.
        if matches!(s.role, Role::Outbound | Role::Edge) && s.destination.is_none() {
            let host = c
                .upstream_workload_meta
                .as_deref()
                .map(PeerHints::from_istio_workload);
            s.destination =
                identity::infer_peer(c.upstream_cluster.as_deref(), host.as_ref(), &self.patterns);
        }
        let labels = self.labels(&s, c);
        if !s.sampled || !self.cfg.spans.enabled {
            return (None, labels);
        }
        (Some(self.span(s, c)), labels)
    }

    fn labels(&self, s: &RequestState, c: &Completion) -> MetricLabels {
        let unknown = || identity::workload::UNKNOWN.to_string();
        let local = &self.local;
        let (src_w, src_ns, src_v, src_s, dst_w, dst_ns, dst_v, dst_s, reporter) = match s.role {
            Role::Inbound => {
                let p = s.source.as_ref();
                (
                    p.map_or_else(unknown, |p| p.workload.clone()),
                    p.map_or_else(unknown, |p| p.namespace.clone()),
                    p.map_or_else(unknown, |p| p.version.clone()),
                    p.map_or_else(unknown, |p| p.service.clone()),
                    local.workload.clone(),
                    local.namespace.clone(),
                    local.version.clone(),
                    local.service.clone(),
                    Reporter::Destination,
                )
            }
            Role::Outbound | Role::Edge => {
                let p = s.destination.as_ref().map(|(p, _)| p);
                (
                    local.workload.clone(),
                    local.namespace.clone(),
                    local.version.clone(),
                    local.service.clone(),
                    p.map_or_else(unknown, |p| p.workload.clone()),
                    p.map_or_else(unknown, |p| p.namespace.clone()),
                    p.map_or_else(unknown, |p| p.version.clone()),
                    p.map_or_else(unknown, |p| p.service.clone()),
                    Reporter::Source,
                )
            }
        };
        MetricLabels {
            reporter,
            source_workload: src_w,
            source_workload_namespace: src_ns,
            source_version: src_v,
            source_canonical_service: src_s,
            destination_workload: dst_w,
            destination_workload_namespace: dst_ns,
            destination_version: dst_v,
            destination_service: dst_s,
            request_protocol: if s.grpc { "grpc".into() } else { "http".into() },
            response_code: c.status,
            grpc_response_status: c.grpc_status.map(|g| g.to_string()).unwrap_or_default(),
            response_flags: c.response_flags.clone(),
        }
    }

    fn span(&self, s: RequestState, c: &Completion) -> Span {
        let kind = match s.role {
            Role::Outbound => SpanKind::Client,
            Role::Inbound | Role::Edge => SpanKind::Server,
        };
        let (route, templated) = route::route_for(&s.path, &self.routes);
        let name = if s.method.is_empty() {
            route.clone()
        } else {
            let mut n = String::with_capacity(s.method.len() + 1 + route.len());
            n.push_str(&s.method);
            n.push(' ');
            n.push_str(&route);
            n
        };
        let mut a: Vec<KeyValue> = Vec::with_capacity(24);
        a.push(KeyValue::new(attr::HTTP_REQUEST_METHOD, s.method));
        a.push(KeyValue::new(attr::URL_PATH, s.path));
        if !s.scheme.is_empty() {
            a.push(KeyValue::new(attr::URL_SCHEME, s.scheme));
        }
        if templated {
            a.push(KeyValue::new(attr::HTTP_ROUTE, route));
        }
        if c.status > 0 {
            a.push(KeyValue::new(attr::HTTP_RESPONSE_STATUS_CODE, c.status));
        }
        let (host, port) = split_authority(&s.authority);
        if !host.is_empty() {
            a.push(KeyValue::new(attr::SERVER_ADDRESS, host.to_string()));
        }
        if let Some(p) = port {
            a.push(KeyValue::new(attr::SERVER_PORT, i64::from(p)));
        }
        if let Some(v) = protocol_version(&c.protocol) {
            a.push(KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, v));
        }
        if !s.user_agent.is_empty() {
            a.push(KeyValue::new(attr::USER_AGENT_ORIGINAL, s.user_agent));
        }
        let status = Status::from_http(kind, c.status);
        let error_type = if c.status == 0 || (c.status >= 500 && c.response_flags != "-") {
            Some(if c.response_flags != "-" {
                c.response_flags.clone()
            } else {
                "_OTHER".into()
            })
        } else if status.code == meshwake_telemetry::StatusCode::Error {
            Some(c.status.to_string())
        } else {
            None
        };
        if let Some(e) = error_type {
            a.push(KeyValue::new(attr::ERROR_TYPE, e));
        }
        if let Some(n) = c.request_bytes {
            a.push(KeyValue::new(attr::HTTP_REQUEST_BODY_SIZE, n));
        }
        if let Some(n) = c.response_bytes {
            a.push(KeyValue::new(attr::HTTP_RESPONSE_BODY_SIZE, n));
        }
        if let Some(g) = c.grpc_status {
            a.push(KeyValue::new(attr::RPC_GRPC_STATUS_CODE, g));
        }
        a.push(KeyValue::new(
            attr::ENVOY_RESPONSE_FLAGS,
            c.response_flags.clone(),
        ));
        if let Some(v) = &c.upstream_cluster {
            a.push(KeyValue::new(attr::ENVOY_UPSTREAM_CLUSTER, v.clone()));
        }
        if let Some(v) = &c.upstream_host {
            a.push(KeyValue::new(attr::ENVOY_UPSTREAM_HOST, v.clone()));
        }
        if !s.request_id.is_empty() {
            a.push(KeyValue::new(attr::ENVOY_REQUEST_ID, s.request_id));
        }
        a.push(KeyValue::new(attr::MESHWAKE_ROLE, s.role.as_str()));
        let peer = match s.role {
            Role::Inbound => s.source.map(|p| (p, VersionSource::Header)),
            _ => s.destination,
        };
        match peer {
            Some((p, src)) => {
                a.push(KeyValue::new(attr::PEER_SERVICE, p.service));
                a.push(KeyValue::new(attr::MESHWAKE_PEER_VERSION, p.version));
                a.push(KeyValue::new(attr::MESHWAKE_PEER_NAMESPACE, p.namespace));
                a.push(KeyValue::new(
                    attr::MESHWAKE_PEER_VERSION_SOURCE,
                    src.as_str(),
                ));
            }
            None => a.push(KeyValue::new(
                attr::MESHWAKE_PEER_VERSION_SOURCE,
                VersionSource::Unknown.as_str(),
            )),
        }
        if !s.lineage.is_empty() {
            let entries = s
                .lineage
                .entries()
                .iter()
                .map(|e| meshwake_telemetry::AnyValue::from(e.clone()))
                .collect();
            a.push(KeyValue::new(
                attr::MESHWAKE_LINEAGE,
                meshwake_telemetry::AnyValue::Array(entries),
            ));
        }
        let mut events = Vec::new();
        if let Some(t) = s.first_byte_ns {
            events.push(Event {
                time_unix_nano: t,
                name: Cow::Borrowed("first_upstream_byte"),
                attributes: Vec::new(),
            });
        }
        let links = s
            .link
            .map(|l| Link {
                trace_id: l.trace_id.0,
                span_id: l.span_id.0,
                trace_state: l.trace_state.to_header(),
                attributes: vec![KeyValue::new(
                    "meshwake.link.reason",
                    "untrusted_edge_context",
                )],
                ..Default::default()
            })
            .into_iter()
            .collect();
        Span {
            trace_id: s.ctx.trace_id.0,
            span_id: s.ctx.span_id.0,
            parent_span_id: s.parent_span_id.map(|p| p.0),
            trace_state: s.ctx.trace_state.to_header(),
            flags: u32::from(s.ctx.flags.0)
                | meshwake_telemetry::span::flags::CONTEXT_HAS_IS_REMOTE
                | if s.parent_span_id.is_some() && s.role != Role::Outbound {
                    meshwake_telemetry::span::flags::CONTEXT_IS_REMOTE
                } else {
                    0
                },
            name,
            kind,
            start_time_unix_nano: s.start_ns,
            end_time_unix_nano: c.end_ns.max(s.start_ns),
            attributes: a,
            events,
            links,
            status,
        }
    }
}

/// B3 formats present in the request, whichever format won extraction: a hop that sent
/// B3 (next to W3C, as every sidecar does once B3 arrived) expects B3 back, or a
/// Zipkin-instrumented app behind the next sidecar would lose its context.
fn received_b3_formats(h: &dyn HeaderSource) -> [Option<Propagator>; 2] {
    use meshwake_trace_context::b3;
    [
        h.get(b3::B3_HEADER).map(|_| Propagator::B3Single),
        (h.get(b3::X_B3_TRACE_ID).is_some() || h.get(b3::X_B3_SAMPLED).is_some())
            .then_some(Propagator::B3Multi),
    ]
}

fn is_signature_error(e: identity::PeerHeaderError) -> bool {
    matches!(
        e,
        identity::PeerHeaderError::MissingSignature | identity::PeerHeaderError::BadSignature
    )
}

fn split_authority(a: &str) -> (&str, Option<u16>) {
    if a.starts_with('[') {
        if let Some(end) = a.find(']') {
            let host = a.get(..=end).unwrap_or(a);
            let port = a
                .get(end + 1..)
                .and_then(|p| p.strip_prefix(':'))
                .and_then(|p| p.parse().ok());
            return (host, port);
        }
    }
    match a.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => (a, None),
        },
        None => (a, None),
    }
}

fn protocol_version(p: &str) -> Option<&'static str> {
    match p {
        "HTTP/1.0" => Some("1.0"),
        "HTTP/1.1" => Some("1.1"),
        "HTTP/2" => Some("2"),
        "HTTP/3" => Some("3"),
        _ => None,
    }
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
        a.push(KeyValue::new(format!("meshwake.deployment.{k}"), v.clone()));
    }
    for (k, v) in &cfg.resource.attributes {
        a.push(KeyValue::new(k.clone(), v.clone()));
    }
    a.push(KeyValue::new(attr::TELEMETRY_SDK_NAME, "meshwake"));
    a.push(KeyValue::new(attr::TELEMETRY_SDK_LANGUAGE, "rust"));
    a.push(KeyValue::new(attr::TELEMETRY_SDK_VERSION, sdk_version));
    Resource { attributes: a }
}
