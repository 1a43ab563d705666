//! Per-VM state. Timers and exports live here; request contexts only enqueue.
use crate::host;
use crate::http::Http;
use crate::stats::Stats;
use meshwake_core::{Config, Engine, Role};
use meshwake_telemetry::cardinality::LabelCache;
use meshwake_telemetry::metrics::{MetricNaming, MetricPrefix};
use meshwake_telemetry::{export, ExportConfig, ExportOutcome, Exporter};
use meshwake_trace_context::IdGenerator;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};
use std::cell::RefCell;
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
    role_from_direction: Option<Role>,
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
        let mut sh = shared.borrow_mut();
        sh.exporter.on_result(batch, outcome, now);
        drop(sh);
        self.flush(now);
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        log::info!("meshwake {} starting", crate::VERSION);
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = proxy_wasm::hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let (cfg, issues) = Config::parse(&raw);
        let stats = Stats::define();
        for issue in &issues {
            if issue.is_error() {
                log::error!("meshwake: {issue}");
                Stats::bump(stats.config_errors, 1);
            } else {
                log::warn!("meshwake: {issue}");
                Stats::bump(stats.config_warnings, 1);
            }
        }
        let id_cfg = meshwake_identity::IdentityConfig {
            service: cfg.identity.service.clone(),
            version: cfg.identity.version.clone(),
            namespace: cfg.identity.namespace.clone(),
            workload: cfg.identity.workload.clone(),
            attributes: cfg.identity.attributes.clone(),
        };
        let (local, warnings) = meshwake_identity::resolve(&id_cfg, &host::NodeMetadata);
        for w in warnings {
            log::warn!("meshwake: {w}");
        }
        self.role_from_direction =
            host::property(meshwake_core::envoy::property::LISTENER_DIRECTION)
                .and_then(|b| meshwake_core::envoy::int(&b))
                .and_then(meshwake_core::envoy::role_from_direction);
        let e = &cfg.export;
        let exporter = Exporter::new(ExportConfig {
            max_queue_spans: e.max_queue_spans,
            max_batch_spans: e.max_batch_spans,
            flush_interval_ms: e.flush_interval_ms,
            max_in_flight: e.max_in_flight,
            max_retries: e.max_retries,
            initial_backoff_ms: e.initial_backoff_ms,
            max_backoff_ms: e.max_backoff_ms,
        });
        let naming = MetricNaming {
            prefix: match cfg.metrics.naming {
                meshwake_core::config::Naming::Meshwake => MetricPrefix::Meshwake,
                meshwake_core::config::Naming::Istio => MetricPrefix::Istio,
            },
        };
        let labels = LabelCache::new(naming, cfg.metrics.max_label_sets);
        // The tick flushes span batches and publishes counters summed in the VM.
        let tick = if cfg.spans.enabled {
            cfg.export.flush_interval_ms.clamp(10, STATS_PUBLISH_MS)
        } else {
            STATS_PUBLISH_MS
        };
        let spans_on = cfg.spans.enabled;
        let (engine, warnings) = Engine::new(cfg, local, crate::VERSION);
        for w in warnings {
            // Ignored route templates and cluster patterns: configuration problems too.
            log::warn!("meshwake: {w}");
            Stats::bump(stats.config_warnings, 1);
        }
        let l = engine.local();
        log::info!(
            "meshwake configuration: role={} identity={}@{} namespace={} spans={} metrics={} export=cluster:{} raw={}",
            engine.config().role.or(self.role_from_direction).map_or("auto(outbound)", |r| r.as_str()),
            l.service,
            l.version,
            l.namespace,
            spans_on,
            engine.config().metrics.enabled,
            engine.config().export.cluster,
            String::from_utf8_lossy(&raw)
        );
        self.shared = Some(Rc::new(RefCell::new(Shared {
            exporter,
            labels,
            ids: IdGenerator::new(host::seed()),
            stats,
            id_draws: 0,
        })));
        self.engine = Some(Rc::new(engine));
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
        // Without a configured role, each stream asks Envoy which way its listener faces.
        let role = engine.config().role.or(self.role_from_direction);
        Some(Box::new(Http::new(engine.clone(), shared.clone(), role)))
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
