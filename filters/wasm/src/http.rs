//! Per-request state: read headers as bytes, let the core decide, apply its edits,
//! and at stream end queue the request; spans and metrics are recorded a batch at a time.
use crate::abi::{MapType, MetricType};
use crate::host;
use crate::root::{Active, Root, Shared};
use meshwake_core::envoy::{self, property};
use meshwake_core::{Completion, HeaderEdits, RequestState, Role};
use meshwake_telemetry::metrics::MetricKind;
use meshwake_trace_context::propagator::HeaderSource;

/// One HTTP stream: its plugin (root context id) and, between its request headers and
/// its log callback, the core's request state.
pub struct Stream {
    pub root: u32,
    state: Option<RequestState>,
    /// `:status` of the response headers: the stream end then needs no `response.code`
    /// property read.
    status: Option<u16>,
}

/// Apply the core's edits (its removals name only headers the map has). A header that
/// already has exactly this one value (`tracestate` passed on as it came, say) is not
/// written: each write is a host call.
fn apply(map: MapType, edits: &HeaderEdits<'_>, current: &dyn HeaderSource) {
    for &n in &edits.remove {
        host::remove_header(map, n);
    }
    for (n, v) in &edits.set {
        // Compared by words: `memcmp` is a byte loop in the module (a new `traceparent`
        // differs from the incoming one only after the 36 bytes of version and trace id).
        let same = current.count(n) == 1
            && current
                .get(n)
                .is_some_and(|c| meshwake_telemetry::metrics::same_bytes(c, v.as_bytes()));
        if !same {
            host::set_header(map, n, v.as_bytes());
        }
    }
}

fn int_prop(path: &[&str]) -> Option<i64> {
    host::property(path).and_then(|b| envoy::int(&b))
}

fn text_prop(path: &[&str]) -> Option<String> {
    host::property(path)
        .map(|b| envoy::text(&b, 256))
        .filter(|s| !s.is_empty())
}

impl Stream {
    pub fn new(root: u32) -> Stream {
        Stream {
            root,
            state: None,
            status: None,
        }
    }

    pub fn on_request_headers(&mut self, root: &mut Root) {
        let Some(Active {
            engine,
            shared: sh,
            role,
        }) = root.active()
        else {
            return;
        };
        #[cfg(not(feature = "value-reads"))]
        let raw = host::header_map_bytes(MapType::Request);
        #[cfg(not(feature = "value-reads"))]
        let headers = meshwake_core::headers::HeaderMap::decode(&raw);
        // The A/B variant: each header the core asks for is one host read.
        #[cfg(feature = "value-reads")]
        let headers = crate::value_reads::ValueReads::new(MapType::Request);
        let now = if engine.wants_start_time() {
            host::now_ns()
        } else {
            0
        };
        let slots = engine.config().context_recovery.slots;
        let mut recall = |kind: &str, key: &[u8]| {
            let slot = meshwake_core::recovery::slot_key(kind, key, slots);
            engine.recall_entry(&host::shared_data(&slot)?, key, now)
        };
        sh.id_draws = sh.id_draws.saturating_add(2);
        // Fixed per listener: read once per plugin.
        let role = *role.get_or_insert_with(|| {
            int_prop(property::LISTENER_DIRECTION)
                .and_then(envoy::role_from_direction)
                .unwrap_or(Role::Outbound)
        });
        let spare = sh.spares.pop().unwrap_or_default();
        let (mut state, edits) =
            engine.on_request_reusing(role, &headers, now, &mut sh.ids, &mut recall, spare);
        apply(MapType::Request, &edits, &headers);
        #[cfg(not(feature = "value-reads"))]
        host::give_back(raw);
        let stats = &mut sh.stats;
        engine.remember_each(&state, &mut sh.remember, |k, v| {
            if host::set_shared_data(k, v) {
                let id = stats.recovery_stored;
                stats.add(id, 1);
            }
        });
        if crate::PROPAGATION_ONLY {
            // No response or stream end reaches this build: the request is done.
            sh.retire(&mut state);
        } else {
            self.state = Some(state);
        }
    }

    pub fn on_response_headers(&mut self, root: &mut Root) {
        let (Some(Active { engine, .. }), Some(state)) = (root.active(), self.state.as_mut())
        else {
            return;
        };
        // Each read is a host call: inbound needs no response header, and only spans need
        // the time.
        let reads_all = engine.reads_response_headers(state.role);
        #[cfg(not(feature = "value-reads"))]
        let raw = if reads_all {
            host::header_map_bytes(MapType::Response)
        } else {
            Vec::new()
        };
        #[cfg(not(feature = "value-reads"))]
        let headers = meshwake_core::headers::HeaderMap::decode(&raw);
        // The A/B variant (roles that read the response map): one host read per header asked.
        #[cfg(feature = "value-reads")]
        let headers = if reads_all {
            crate::value_reads::ValueReads::new(MapType::Response)
        } else {
            crate::value_reads::ValueReads::empty()
        };
        // The status for the stream end: one header read here costs Envoy far less than the
        // `response.code` property at stream end (docs/adr/0006, decision 8).
        let parse = meshwake_core::envoy::status_code;
        self.status = if reads_all {
            headers.get(":status").and_then(parse)
        } else if engine.config().spans.enabled || engine.config().metrics.enabled {
            host::header_value(MapType::Response, ":status").and_then(|value| {
                let status = parse(&value);
                host::give_back(value);
                status
            })
        } else {
            None
        };
        let now = if engine.wants_first_byte_time() {
            host::now_ns()
        } else {
            0
        };
        let edits = engine.on_response(state, &headers, now);
        apply(MapType::Response, &edits, &headers);
        #[cfg(not(feature = "value-reads"))]
        host::give_back(raw);
    }

    /// The stream's end: what Envoy knows of it now is read, and its span and metrics are
    /// recorded with the next batch of ended streams ([`record_ended`]).
    pub fn on_log(&mut self, root: &mut Root) {
        let (
            Some(Active {
                engine, shared: sh, ..
            }),
            Some(mut state),
        ) = (root.active(), self.state.take())
        else {
            self.state = None;
            return;
        };
        if !engine.config().spans.enabled && !engine.config().metrics.enabled {
            // Propagation only: no span, no metrics, so skip `stream_end` and the property
            // reads it needs (host calls).
            sh.retire(&mut state);
            return;
        }
        let completion = completion(engine, &state, self.status);
        sh.ended.push(Ended { state, completion });
        if sh.ended.len() < STREAM_END_BATCH {
            return;
        }
        record_ended(engine, sh);
        // A full batch is sent now rather than at the next tick: at tens of thousands of
        // requests per second a tick's worth of spans would otherwise sit in VM memory. The
        // call is made as the root context, which gets its answer.
        if sh.exporter.full_batch_ready() && host::act_as(self.root) {
            root.export_due();
        }
    }
}

/// Streams recorded together. Recording runs through a few dozen functions of the module
/// (the span's encoding, the label lookup) and Envoy's histogram code: run once per
/// request, between other requests' work, almost all of it misses the instruction cache;
/// run for a batch, it stays cached after the first (docs/adr/0006, decision 14).
pub const STREAM_END_BATCH: usize = 16;

/// A stream that ended and is not yet recorded: its state and what Envoy said at its end.
pub struct Ended {
    state: RequestState,
    completion: Completion,
}

/// Record every ended stream held: spans into the export queue, metrics into Envoy. Runs when
/// a batch is full and before each export, so a span waits for no more than it did.
pub fn record_ended(engine: &meshwake_core::Engine, sh: &mut Shared) {
    let mut ended = std::mem::take(&mut sh.ended);
    for e in &mut ended {
        record(engine, sh, &mut e.state, &e.completion);
    }
    ended.clear();
    sh.ended = ended;
}

/// One ended stream's span and metrics.
fn record(
    engine: &meshwake_core::Engine,
    sh: &mut Shared,
    state: &mut RequestState,
    c: &Completion,
) {
    let start = state.start_ns;
    // The span is encoded straight into the export queue and the labels looked up
    // borrowed: no owned span or label strings per request.
    let exporter = &mut sh.exporter;
    let mut span_created = false;
    let labels = engine.stream_end(state, c, &mut sh.text, |span| {
        span_created = true;
        exporter.stats_mut().spans_created += 1;
        let _ = exporter.push_view(span);
    });
    if !span_created && engine.config().spans.enabled {
        sh.exporter.stats_mut().dropped_sampled_out += 1;
    }
    if engine.config().metrics.enabled {
        let sizes = engine.config().metrics.size_histograms;
        let ids = sh.labels.get_or_insert_ref(&labels, |name, kind| {
            if !sizes && matches!(kind, MetricKind::RequestBytes | MetricKind::ResponseBytes) {
                // Not recorded: do not define (an empty histogram per label set).
                return Ok::<u32, ()>(0);
            }
            Ok(host::define_metric(metric_type(kind), name))
        });
        if let Ok(ids) = ids {
            sh.stats.add(ids.get(MetricKind::RequestsTotal), 1);
            let ms = c.end_ns.saturating_sub(start) / 1_000_000;
            host::record_metric(ids.get(MetricKind::RequestDurationMilliseconds), ms);
            if let Some(b) = c.request_bytes {
                host::record_metric(ids.get(MetricKind::RequestBytes), b.max(0) as u64);
            }
            if let Some(b) = c.response_bytes {
                host::record_metric(ids.get(MetricKind::ResponseBytes), b.max(0) as u64);
            }
        }
    }
    sh.retire(state);
}

fn metric_type(kind: MetricKind) -> MetricType {
    match kind.metric_type() {
        meshwake_telemetry::metrics::MetricType::Counter => MetricType::Counter,
        meshwake_telemetry::metrics::MetricType::Histogram => MetricType::Histogram,
    }
}

/// How the stream ended, from Envoy's properties: only the facts this request's span and
/// metrics use, each a property read. `status`: the response's `:status` if already read.
fn completion(
    engine: &meshwake_core::Engine,
    state: &RequestState,
    status: Option<u16>,
) -> Completion {
    let reads = engine.stream_end_reads(state);
    let status = status
        .or_else(|| int_prop(property::RESPONSE_CODE).and_then(|v| u16::try_from(v).ok()))
        .unwrap_or(0);
    let flags = if meshwake_core::needs_response_flags(status) {
        int_prop(property::RESPONSE_FLAGS).unwrap_or(0) as u64
    } else {
        0
    };
    let int_if = |read: bool, path| read.then(|| int_prop(path)).flatten();
    let text_if = |read: bool, path| read.then(|| text_prop(path)).flatten();
    Completion {
        end_ns: host::now_ns(),
        status,
        response_flags: envoy::response_flags(flags),
        grpc_status: int_if(reads.grpc_status, property::RESPONSE_GRPC_STATUS),
        request_bytes: int_if(reads.sizes, property::REQUEST_SIZE),
        response_bytes: int_if(reads.sizes, property::RESPONSE_SIZE),
        protocol: text_if(reads.protocol, property::REQUEST_PROTOCOL).unwrap_or_default(),
        upstream_cluster: text_if(reads.upstream, property::UPSTREAM_CLUSTER),
        upstream_host: text_if(reads.upstream, property::UPSTREAM_ADDRESS),
        // Only needed when the peer did not say who it is (the fallback's first source).
        upstream_workload_meta: text_if(reads.upstream_workload, property::UPSTREAM_ISTIO_WORKLOAD),
    }
}
