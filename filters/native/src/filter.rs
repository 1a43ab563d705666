//! Per-stream work: read headers, let the core decide, apply its edits, and at stream end
//! record the span and the metrics. Mirrors `filters/wasm/src/http.rs`, with direct calls
//! instead of host calls.
use crate::abi::{AttributeId, FilterEnvoyPtr, HeaderType};
use crate::config::Shared;
use crate::host::{self, Headers};
use crate::stats;
use meshwake_core::{Completion, HeaderEdits, RequestState, Role};
use meshwake_trace_context::IdGenerator;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How many ids a thread's generator draws before it is reseeded from the kernel.
const RESEED_EVERY: u32 = 1 << 20;

thread_local! {
    /// One id generator per worker thread: no lock on the request path.
    static IDS: RefCell<Option<(IdGenerator, u32)>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's id generator (seeded on first use, reseeded periodically).
fn with_ids<R>(f: impl FnOnce(&mut IdGenerator) -> R) -> R {
    IDS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (ids, draws) = slot.get_or_insert_with(|| (IdGenerator::new(host::seed()), 0));
        *draws = draws.saturating_add(2);
        if *draws > RESEED_EVERY {
            ids.reseed(host::seed());
            *draws = 0;
        }
        f(ids)
    })
}

/// The module side of one HTTP stream.
pub struct Filter {
    shared: Arc<Shared>,
    state: Option<RequestState>,
}

impl Filter {
    pub fn new(shared: Arc<Shared>) -> Filter {
        Filter {
            shared,
            state: None,
        }
    }

    /// The configured role, else the listener's direction (read once per configuration).
    fn role(&self, f: FilterEnvoyPtr) -> Role {
        if let Some(r) = self.shared.engine.config().role {
            return r;
        }
        let known = match self.shared.direction.load(Ordering::Relaxed) {
            1 => Some(Some(Role::Inbound)),
            2 => Some(Some(Role::Outbound)),
            3 => Some(None),
            _ => None,
        };
        let role = known.unwrap_or_else(|| {
            let r = host::attribute_int(f, AttributeId::XdsListenerDirection)
                .and_then(meshwake_core::envoy::role_from_direction);
            let code = match r {
                Some(Role::Inbound) => 1,
                Some(Role::Outbound) => 2,
                _ => 3,
            };
            self.shared.direction.store(code, Ordering::Relaxed);
            r
        });
        role.unwrap_or(Role::Outbound)
    }

    pub fn on_request_headers(&mut self, f: FilterEnvoyPtr) {
        let engine = &self.shared.engine;
        let role = self.role(f);
        let now = if engine.wants_start_time() {
            host::now_ns()
        } else {
            0
        };
        let slots = engine.config().context_recovery.slots;
        let mut recall = |kind: &str, key: &[u8]| {
            let slot = meshwake_core::recovery::slot_key(kind, key, slots);
            engine.recall_entry(&crate::recovery::get(&slot)?, key, now)
        };
        let (state, edits) = {
            // The borrowed header values are only valid until the first write.
            let headers = Headers::read(f, HeaderType::RequestHeader);
            with_ids(|ids| engine.on_request(role, &headers, now, ids, &mut recall))
        };
        apply(f, HeaderType::RequestHeader, &edits);
        for (k, v) in engine.remember(&state) {
            if crate::recovery::put(k, v) {
                stats::count(f, self.shared.ids.recovery_stored, 1);
            }
        }
        self.state = Some(state);
    }

    pub fn on_response_headers(&mut self, f: FilterEnvoyPtr) {
        let engine = &self.shared.engine;
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let now = if engine.wants_first_byte_time() {
            host::now_ns()
        } else {
            0
        };
        let edits = {
            let headers = if engine.reads_response_headers(state.role) {
                Headers::read(f, HeaderType::ResponseHeader)
            } else {
                Headers::empty()
            };
            engine.on_response(state, &headers, now)
        };
        apply(f, HeaderType::ResponseHeader, &edits);
    }

    pub fn on_stream_complete(&mut self, f: FilterEnvoyPtr) {
        let Some(state) = self.state.take() else {
            return;
        };
        let shared = &*self.shared;
        let engine = &shared.engine;
        for n in state.notes.iter() {
            stats::count(f, shared.ids.note_id(n), 1);
        }
        let cfg = engine.config();
        if !cfg.spans.enabled && !cfg.metrics.enabled {
            return;
        }
        let c = completion(f, engine, &state);
        let start = state.start_ns;
        let (span, labels) = engine.finish(state, &c);
        if let Ok(mut ex) = shared.exporter.lock() {
            if let Some(span) = span {
                ex.stats_mut().spans_created += 1;
                let _ = ex.push(span);
            } else if cfg.spans.enabled {
                ex.stats_mut().dropped_sampled_out += 1;
            }
        }
        if cfg.metrics.enabled {
            let (values, due) = match shared.labels.lock() {
                Ok(mut l) => (l.count(&labels), l.take_due(c.end_ns, false)),
                Err(_) => return,
            };
            let sizes = cfg
                .metrics
                .size_histograms
                .then_some((c.request_bytes, c.response_bytes));
            let ms = c.end_ns.saturating_sub(start) / 1_000_000;
            if let Some(values) = values {
                stats::record_histograms(f, &shared.ids, &values, ms, sizes);
            }
            stats::count_requests(f, &shared.ids, due);
        }
    }
}

/// The stream-end facts this request's span and metrics use (each an attribute read).
fn completion(f: FilterEnvoyPtr, engine: &meshwake_core::Engine, s: &RequestState) -> Completion {
    let reads = engine.stream_end_reads(s);
    let int = |id| host::attribute_int(f, id);
    let text = |id| host::attribute_text(f, id, 256);
    let status = int(AttributeId::ResponseCode)
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0);
    let flags = if meshwake_core::needs_response_flags(status) {
        int(AttributeId::ResponseFlags).unwrap_or(0) as u64
    } else {
        0
    };
    Completion {
        end_ns: host::now_ns(),
        status,
        response_flags: meshwake_core::envoy::response_flags(flags),
        grpc_status: reads
            .grpc_status
            .then(|| int(AttributeId::ResponseGrpcStatus))
            .flatten(),
        request_bytes: reads.sizes.then(|| int(AttributeId::RequestSize)).flatten(),
        response_bytes: reads
            .sizes
            .then(|| int(AttributeId::ResponseSize))
            .flatten(),
        protocol: if reads.protocol {
            text(AttributeId::RequestProtocol).unwrap_or_default()
        } else {
            String::new()
        },
        upstream_cluster: reads
            .upstream
            .then(|| text(AttributeId::XdsClusterName))
            .flatten(),
        upstream_host: reads
            .upstream
            .then(|| text(AttributeId::UpstreamAddress))
            .flatten(),
        upstream_workload_meta: reads
            .upstream_workload
            .then(|| host::host_metadata(f, "istio", "workload", 256))
            .flatten(),
    }
}

/// Apply the core's edits (its removals name only headers the map has).
fn apply(f: FilterEnvoyPtr, map: HeaderType, edits: &HeaderEdits<'_>) {
    for &n in &edits.remove {
        host::set_header(f, map, n, None);
    }
    for (n, v) in &edits.set {
        host::set_header(f, map, n, Some(v.as_bytes()));
    }
}
