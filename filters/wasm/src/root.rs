//! Per plugin (root context): configuration, identity, span export, metric ids, the timer.
//! Streams only enqueue; the tick exports.
use crate::abi::{BufferType, MapType};
use crate::host;
use crate::http::Stream;
use crate::stats::Stats;
use meshwake_core::{
    envoy, Engine, HostFacts, RememberBuf, RequestState, Role, Severity, Spare, StreamEndText,
};
use meshwake_telemetry::cardinality::LabelCache;
use meshwake_telemetry::{export, ExportOutcome, Exporter};
use meshwake_trace_context::IdGenerator;
use std::collections::HashMap;

/// Mutable per-plugin state its streams use.
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
    /// Ended streams not yet recorded (at most [`crate::http::STREAM_END_BATCH`]).
    pub ended: Vec<crate::http::Ended>,
}

/// Finished requests' buffers kept: about the requests in flight at once on one worker.
const MAX_SPARES: usize = 64;

impl Shared {
    /// Keep a finished request's buffers for a later request, while there is room.
    fn keep_spare(&mut self, spare: Spare) {
        if self.spares.len() < MAX_SPARES {
            self.spares.push(spare);
        }
    }

    /// A request nothing more will be asked of: its notes counted, its buffers kept. The
    /// state stays where it is (a move is a copy of a few hundred bytes); the caller drops it.
    pub fn retire(&mut self, state: &mut RequestState) {
        self.stats.count_notes(state.notes);
        if state.holds_spare() {
            self.keep_spare(state.take_spare());
        }
    }
}

/// Longest delay before counters counted in the VM show in Envoy's stats.
pub const STATS_PUBLISH_MS: u64 = 100;

/// How many ids are drawn before the generator is reseeded from the host's randomness.
const RESEED_EVERY: u32 = 1 << 20;

/// A configured plugin: what its streams use.
pub struct Active {
    pub engine: Engine,
    pub shared: Shared,
    /// Configured, else the listener direction at configure time; `None`: the first stream
    /// reads the listener direction and keeps it here for the others (one property read
    /// per plugin).
    pub role: Option<Role>,
}

#[derive(Default)]
pub struct Root {
    /// `None` until configured: its streams pass through.
    active: Option<Active>,
    /// Call-out token → batch id.
    calls: HashMap<u32, u64>,
    /// A failed export dispatch was logged at warning level already.
    dispatch_warned: bool,
    /// Host time of the last tick (or of configuration): a root context Envoy deleted
    /// stops ticking (see `dispatch`).
    last_tick_ns: u64,
    /// Streams of this plugin whose state the VM holds (the `streams.active` gauge).
    streams: u64,
}

impl Root {
    pub fn configure(&mut self) {
        let raw = host::buffer(BufferType::PluginConfiguration, 0, usize::MAX).unwrap_or_default();
        let host_facts = HostFacts {
            node: &host::NodeMetadata,
            listener_direction: host::property(envoy::property::LISTENER_DIRECTION)
                .and_then(|b| envoy::int(&b)),
            filter_version: crate::VERSION,
            propagation_only: crate::PROPAGATION_ONLY,
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
        self.active = Some(Active {
            shared: Shared {
                exporter: setup.exporter,
                labels,
                ids: IdGenerator::new(host::seed()),
                stats,
                id_draws: 0,
                text: StreamEndText::default(),
                remember: RememberBuf::default(),
                spares: Vec::new(),
                ended: Vec::new(),
            },
            role: setup.role,
            engine: setup.engine,
        });
        self.last_tick_ns = host::now_ns();
        host::set_tick_period(tick);
    }

    /// A stream of this plugin (passes through while the plugin is not configured).
    pub fn new_stream(&mut self, root_id: u32) -> Stream {
        self.streams = self.streams.saturating_add(1);
        Stream::new(root_id)
    }

    /// A stream's state was dropped (its log callback, or eviction).
    pub fn stream_ended(&mut self) {
        self.streams = self.streams.saturating_sub(1);
    }

    pub fn active(&mut self) -> Option<&mut Active> {
        self.active.as_mut()
    }

    /// A stream's state was dropped to keep the stream table bounded.
    pub fn stream_evicted(&mut self) {
        self.stream_ended();
        if let Some(a) = &mut self.active {
            let id = a.shared.stats.streams_evicted;
            a.shared.stats.add(id, 1);
        }
    }

    pub fn last_tick_ns(&self) -> u64 {
        self.last_tick_ns
    }

    pub fn on_tick(&mut self, now: u64) {
        self.last_tick_ns = now;
        self.flush(now);
    }

    pub fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let Some(batch) = self.calls.remove(&token) else {
            return;
        };
        let Some(active) = &mut self.active else {
            return;
        };
        let now = host::now_ns();
        let headers = if num_headers > 0 {
            host::header_pairs(MapType::HttpCallResponse)
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
            Some(502..=504) if body_size > 0 => host::buffer(
                BufferType::HttpCallResponseBody,
                0,
                body_size.min(export::LOCAL_REPLY_PROBE_LEN),
            )
            .unwrap_or_default(),
            _ => Vec::new(),
        };
        let outcome = match status {
            Some(s) => export::classify_response(s, retry_after, &probe),
            None => ExportOutcome::CallFailed,
        };
        let disposition = active.shared.exporter.on_result(batch, outcome, now);
        // Counted in meshwake.spans.* / meshwake.export.*; the detail per batch for debugging.
        log::debug!("meshwake: export batch {batch}: {disposition:?}");
        self.flush(now);
    }

    /// Export what is due between ticks (a full batch), from a stream's callback made to act
    /// as this root context.
    pub fn export_due(&mut self) {
        self.flush(host::now_ns());
    }

    /// Send every batch that is due, then publish the exporter's counters.
    fn flush(&mut self, now: u64) {
        let Some(Active { engine, shared, .. }) = &mut self.active else {
            return;
        };
        let sh = shared;
        if !crate::PROPAGATION_ONLY {
            // Before the export, so a span waits no longer than before (that build ends
            // no stream).
            crate::http::record_ended(engine, sh);
        }
        if sh.id_draws > RESEED_EVERY {
            sh.ids.reseed(host::seed());
            sh.id_draws = 0;
        }
        let e = &engine.config().export;
        while let Some(batch) = sh.exporter.poll(now, engine.resource(), engine.scope()) {
            let id = batch.id;
            let headers = [
                (":method", "POST"),
                (":path", e.path.as_str()),
                (":authority", e.authority.as_str()),
                ("content-type", meshwake_telemetry::otlp::CONTENT_TYPE),
            ];
            match host::http_call(&e.cluster, &headers, batch.body, e.timeout_ms) {
                Some(token) => {
                    self.calls.insert(token, id);
                }
                None => {
                    // Almost always a cluster Envoy does not have: say so once per VM, where
                    // an operator looks; the counters tell the rest.
                    if self.dispatch_warned {
                        log::debug!("meshwake: export call to cluster {} failed", e.cluster);
                    } else {
                        self.dispatch_warned = true;
                        log::warn!(
                            "meshwake: cannot send spans to Envoy cluster `{}`: is export.cluster defined in Envoy? Spans are dropped and counted in meshwake.export.failures_call_failed",
                            e.cluster
                        );
                    }
                    sh.exporter.on_result(id, ExportOutcome::CallFailed, now);
                    // Avoid spinning: a failed dispatch is retried by the backoff schedule.
                    break;
                }
            }
        }
        let streams = self.streams;
        sh.stats
            .sync(sh.exporter.stats(), sh.labels.label_overflow(), streams);
    }
}
