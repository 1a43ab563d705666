//! Per-VM state. Timers and exports live here; request contexts only enqueue.
use crate::host;
use crate::http::Http;
use crate::stats::Stats;
use meshwake_core::{envoy, Engine, HostFacts, RememberBuf, Role, Severity, Spare, StreamEndText};
use meshwake_telemetry::cardinality::LabelCache;
use meshwake_telemetry::{export, ExportOutcome, Exporter};
use meshwake_trace_context::IdGenerator;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Mutable per-VM state shared with request contexts (one thread per VM: Rc/RefCell).
pub struct Shared {
    pub exporter: Exporter,
    pub labels: LabelCache<u32>,
    pub ids: IdGenerator,
    pub stats: Stats,
    pub id_draws: u32,
    /// Text buffers of stream end, reused by every request of the VM.
    pub text: StreamEndText,
    /// Buffers of the recovery entries, reused likewise.
    pub remember: RememberBuf,
    /// String buffers of finished requests, for the next ones (at most [`MAX_SPARES`]).
    pub spares: Vec<Spare>,
}

/// Finished requests' buffers kept: about the requests in flight at once on one worker.
const MAX_SPARES: usize = 64;

impl Shared {
    /// Keep a finished request's buffers for a later request, while there is room.
    pub fn keep_spare(&mut self, spare: Spare) {
        if self.spares.len() < MAX_SPARES {
            self.spares.push(spare);
        }
    }
}

/// Longest delay before counters counted in the VM show in Envoy's stats.
pub const STATS_PUBLISH_MS: u64 = 100;

/// How many ids are drawn before the generator is reseeded from the host's randomness.
const RESEED_EVERY: u32 = 1 << 20;

#[derive(Default)]
pub struct Root {
    engine: Option<Rc<Engine>>,
    shared: Option<Rc<RefCell<Shared>>>,
    /// Call-out token → batch id.
    calls: HashMap<u32, u64>,
    /// Configured, else the listener direction at configure time; `None`: asked per stream.
    /// Shared with this instance's streams: the first stream that reads the listener
    /// direction keeps it here for the others (one property read per filter instance).
    role: Rc<Cell<Option<Role>>>,
    /// A failed export dispatch was logged at warning level already.
    dispatch_warned: bool,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(batch) = self.calls.remove(&token) else {
            return;
        };
        let Some(shared) = &self.shared else { return };
        let now = host::now_ns();
        let headers = if num_headers > 0 {
            host::header_pairs(MapType::HttpCallResponseHeaders)
        } else {
            Vec::new()
        };
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u16>().ok());
        let retry_after = headers
            .iter()
            .find(|(k, _)| k == "retry-after")
            .map(|(_, v)| v.as_slice());
        // Envoy's own failures to reach the collector come back as local 502/503/504 replies:
        // read the start of the body only for those statuses to tell them apart.
        let probe = match status {
            Some(502..=504) if body_size > 0 => proxy_wasm::hostcalls::get_buffer(
                BufferType::HttpCallResponseBody,
                0,
                body_size.min(export::LOCAL_REPLY_PROBE_LEN),
            )
            .ok()
            .flatten()
            .unwrap_or_default(),
            _ => Vec::new(),
        };
        let outcome = match status {
            Some(s) => export::classify_response(s, retry_after, &probe),
            None => ExportOutcome::CallFailed,
        };
        let disposition = shared.borrow_mut().exporter.on_result(batch, outcome, now);
        // Counted in meshwake.spans.* / meshwake.export.*; the detail per batch for debugging.
        log::debug!("meshwake: export batch {batch}: {disposition:?}");
        self.flush(now);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        log::info!("meshwake {} starting", crate::VERSION);
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = proxy_wasm::hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let host_facts = HostFacts {
            node: &host::NodeMetadata,
            listener_direction: host::property(envoy::property::LISTENER_DIRECTION)
                .and_then(|b| envoy::int(&b)),
            filter_version: crate::VERSION,
        };
        let setup = meshwake_core::setup(&raw, &host_facts);
        let stats = Stats::define();
        for issue in &setup.issues {
            let counter = match issue.severity() {
                Severity::Error => {
                    log::error!("meshwake: {issue}");
                    stats.config_errors
                }
                Severity::Warning => {
                    log::warn!("meshwake: {issue}");
                    stats.config_warnings
                }
            };
            if issue.is_config_problem() {
                Stats::bump(counter, 1);
            }
        }
        log::info!(
            "meshwake configuration: {} raw={}",
            setup.summary(),
            String::from_utf8_lossy(&raw)
        );
        let tick = setup.timer_period_ms(STATS_PUBLISH_MS);
        let labels = setup.label_cache();
        self.shared = Some(Rc::new(RefCell::new(Shared {
            exporter: setup.exporter,
            labels,
            ids: IdGenerator::new(host::seed()),
            stats,
            id_draws: 0,
            text: StreamEndText::default(),
            remember: RememberBuf::default(),
            spares: Vec::new(),
        })));
        self.role.set(setup.role);
        self.engine = Some(Rc::new(setup.engine));
        let _ = proxy_wasm::hostcalls::set_tick_period(Duration::from_millis(tick));
        // Never refuse to start: a bad configuration has become defaults plus log lines.
        true
    }

    fn on_tick(&mut self) {
        self.flush(host::now_ns());
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let (Some(engine), Some(shared)) = (&self.engine, &self.shared) else {
            return Some(Box::new(Http::passthrough()));
        };
        // Without a role known here, the first stream asks Envoy which way its listener faces.
        Some(Box::new(Http::new(
            engine.clone(),
            shared.clone(),
            self.role.clone(),
        )))
    }
}

impl Root {
    /// Send every batch that is due, then publish the exporter's counters.
    fn flush(&mut self, now: u64) {
        let (Some(engine), Some(shared)) = (&self.engine, &self.shared) else {
            return;
        };
        let mut sh = shared.borrow_mut();
        let sh = &mut *sh;
        if sh.id_draws > RESEED_EVERY {
            sh.ids.reseed(host::seed());
            sh.id_draws = 0;
        }
        let e = &engine.config().export;
        while let Some(batch) = sh.exporter.poll(now, engine.resource(), engine.scope()) {
            let id = batch.id;
            let headers = vec![
                (":method", "POST"),
                (":path", e.path.as_str()),
                (":authority", e.authority.as_str()),
                ("content-type", meshwake_telemetry::otlp::CONTENT_TYPE),
            ];
            let body = batch.body.to_vec();
            match proxy_wasm::hostcalls::dispatch_http_call(
                &e.cluster,
                headers,
                Some(&body),
                vec![],
                Duration::from_millis(e.timeout_ms),
            ) {
                Ok(token) => {
                    self.calls.insert(token, id);
                }
                Err(status) => {
                    // Almost always a cluster Envoy does not have: say so once per VM, where
                    // an operator looks; the counters tell the rest.
                    if self.dispatch_warned {
                        log::debug!(
                            "meshwake: export call to cluster {} failed: {status:?}",
                            e.cluster
                        );
                    } else {
                        self.dispatch_warned = true;
                        log::warn!(
                            "meshwake: cannot send spans to Envoy cluster `{}` ({status:?}): is export.cluster defined in Envoy? Spans are dropped and counted in meshwake.export.failures_call_failed",
                            e.cluster
                        );
                    }
                    sh.exporter.on_result(id, ExportOutcome::CallFailed, now);
                    // Avoid spinning: a failed dispatch is retried by the backoff schedule.
                    break;
                }
            }
        }
        sh.stats
            .sync(sh.exporter.stats(), sh.labels.label_overflow());
    }
}
