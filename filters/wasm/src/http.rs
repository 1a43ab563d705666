//! Per-request context: read headers as bytes, let the core decide, apply its edits,
//! and at stream end record the span and the metrics.
use crate::host;
use crate::root::Shared;
use meshwake_core::envoy::{self, property};
use meshwake_core::{Completion, Engine, HeaderEdits, RequestState, Role};
use meshwake_telemetry::metrics::MetricKind;
use meshwake_trace_context::propagator::HeaderSource;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub struct Http {
    inner: Option<(Rc<Engine>, Rc<RefCell<Shared>>)>,
    /// `None`: not configured; read from the listener direction by the first request of
    /// this filter instance (the cell is the root context's).
    role: Rc<Cell<Option<Role>>>,
    state: Option<RequestState>,
}

impl Http {
    pub fn new(
        engine: Rc<Engine>,
        shared: Rc<RefCell<Shared>>,
        role: Rc<Cell<Option<Role>>>,
    ) -> Http {
        Http {
            inner: Some((engine, shared)),
            role,
            state: None,
        }
    }

    /// A context that does nothing (the VM is not configured yet).
    pub fn passthrough() -> Http {
        Http {
            inner: None,
            role: Rc::default(),
            state: None,
        }
    }
}

/// Apply the core's edits (its removals name only headers the map has). A header that
/// already has exactly this one value (`tracestate` passed on as it came, say) is not
/// written: each write is a host call.
fn apply(map: MapType, edits: HeaderEdits, current: &dyn HeaderSource) {
    for n in edits.remove {
        let _ = hostcalls::remove_map_value(map, n);
    }
    for (n, v) in edits.set {
        if current.count(n) != 1 || current.get(n) != Some(v.as_bytes()) {
            let _ = hostcalls::set_map_value_bytes(map, n, Some(v.as_bytes()));
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

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let Some((engine, shared)) = &self.inner else {
            return Action::Continue;
        };
        let raw = host::header_map_bytes(MapType::HttpRequestHeaders);
        let headers = meshwake_core::headers::HeaderMap::decode(&raw);
        let now = if engine.wants_start_time() {
            host::now_ns()
        } else {
            0
        };
        let mut recall = |kind: &str, key: &[u8]| {
            let slot = meshwake_core::recovery::slot_key(
                kind,
                key,
                engine.config().context_recovery.slots,
            );
            let (bytes, _) = hostcalls::get_shared_data(&slot).ok()?;
            engine.recall_entry(&bytes?, key, now)
        };
        let (state, edits) = {
            let mut sh = shared.borrow_mut();
            sh.id_draws = sh.id_draws.saturating_add(2);
            let role = self.role.get().unwrap_or_else(|| {
                // Fixed per listener: read once per filter instance.
                let r = int_prop(property::LISTENER_DIRECTION)
                    .and_then(envoy::role_from_direction)
                    .unwrap_or(Role::Outbound);
                self.role.set(Some(r));
                r
            });
            let spare = sh.spares.pop().unwrap_or_default();
            engine.on_request_reusing(role, &headers, now, &mut sh.ids, &mut recall, spare)
        };
        apply(MapType::HttpRequestHeaders, edits, &headers);
        let mut sh = shared.borrow_mut();
        let sh = &mut *sh;
        let stats = &mut sh.stats;
        engine.remember_each(&state, &mut sh.remember, |k, v| {
            if hostcalls::set_shared_data(k, Some(v), None).is_ok() {
                let id = stats.recovery_stored;
                stats.add(id, 1);
            }
        });
        self.state = Some(state);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let (Some((engine, _)), Some(state)) = (&self.inner, self.state.as_mut()) else {
            return Action::Continue;
        };
        // Each read is a host call: inbound needs no response header, and only spans need
        // the time.
        let raw = if engine.reads_response_headers(state.role) {
            host::header_map_bytes(MapType::HttpResponseHeaders)
        } else {
            Vec::new()
        };
        let headers = meshwake_core::headers::HeaderMap::decode(&raw);
        let now = if engine.wants_first_byte_time() {
            host::now_ns()
        } else {
            0
        };
        let edits = engine.on_response(state, &headers, now);
        apply(MapType::HttpResponseHeaders, edits, &headers);
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some((engine, shared)), Some(state)) = (&self.inner, self.state.take()) else {
            return;
        };
        if !engine.config().spans.enabled && !engine.config().metrics.enabled {
            // Propagation only: no span, no metrics, so skip `finish` and the property reads
            // it needs (host calls); only the per-request notes are counted.
            let mut sh = shared.borrow_mut();
            for n in state.notes.iter() {
                sh.stats.note(n);
            }
            sh.keep_spare(state.into_spare());
            return;
        }
        // Only the facts this request's span and metrics use: each is a property read.
        let reads = engine.stream_end_reads(&state);
        let status = int_prop(property::RESPONSE_CODE)
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(0);
        let c = Completion {
            end_ns: host::now_ns(),
            status,
            response_flags: envoy::response_flags(if meshwake_core::needs_response_flags(status) {
                int_prop(property::RESPONSE_FLAGS).unwrap_or(0) as u64
            } else {
                0
            }),
            grpc_status: reads
                .grpc_status
                .then(|| int_prop(property::RESPONSE_GRPC_STATUS))
                .flatten(),
            request_bytes: reads
                .sizes
                .then(|| int_prop(property::REQUEST_SIZE))
                .flatten(),
            response_bytes: reads
                .sizes
                .then(|| int_prop(property::RESPONSE_SIZE))
                .flatten(),
            protocol: if reads.protocol {
                text_prop(property::REQUEST_PROTOCOL).unwrap_or_default()
            } else {
                String::new()
            },
            upstream_cluster: reads
                .upstream
                .then(|| text_prop(property::UPSTREAM_CLUSTER))
                .flatten(),
            upstream_host: reads
                .upstream
                .then(|| text_prop(property::UPSTREAM_ADDRESS))
                .flatten(),
            // Only needed when the peer did not say who it is (the fallback's first source).
            upstream_workload_meta: reads
                .upstream_workload
                .then(|| text_prop(property::UPSTREAM_ISTIO_WORKLOAD))
                .flatten(),
        };
        let mut state = state;
        let start = state.start_ns;
        let mut sh = shared.borrow_mut();
        let sh = &mut *sh;
        for n in state.notes.iter() {
            sh.stats.note(n);
        }
        // The span is encoded straight into the export queue and the labels looked up
        // borrowed: no owned span or label strings per request.
        let end = engine.stream_end(&mut state, &c, &mut sh.text);
        if let Some(span) = &end.span {
            sh.exporter.stats_mut().spans_created += 1;
            let _ = sh.exporter.push_view(span);
        } else if engine.config().spans.enabled {
            sh.exporter.stats_mut().dropped_sampled_out += 1;
        }
        let labels = end.labels;
        if engine.config().metrics.enabled {
            let sizes = engine.config().metrics.size_histograms;
            let ids = sh.labels.get_or_insert_ref(&labels, |name, kind| {
                if !sizes && matches!(kind, MetricKind::RequestBytes | MetricKind::ResponseBytes) {
                    // Not recorded: do not define (an empty histogram per label set).
                    return Ok(0);
                }
                let t = match kind.metric_type() {
                    meshwake_telemetry::metrics::MetricType::Counter => {
                        proxy_wasm::types::MetricType::Counter
                    }
                    meshwake_telemetry::metrics::MetricType::Histogram => {
                        proxy_wasm::types::MetricType::Histogram
                    }
                };
                hostcalls::define_metric(t, name)
            });
            if let Ok(ids) = ids {
                sh.stats.add(ids.get(MetricKind::RequestsTotal), 1);
                let ms = c.end_ns.saturating_sub(start) / 1_000_000;
                let _ =
                    hostcalls::record_metric(ids.get(MetricKind::RequestDurationMilliseconds), ms);
                if let Some(b) = c.request_bytes {
                    let _ = hostcalls::record_metric(
                        ids.get(MetricKind::RequestBytes),
                        b.max(0) as u64,
                    );
                }
                if let Some(b) = c.response_bytes {
                    let _ = hostcalls::record_metric(
                        ids.get(MetricKind::ResponseBytes),
                        b.max(0) as u64,
                    );
                }
            }
        }
        sh.keep_spare(state.into_spare());
    }
}
