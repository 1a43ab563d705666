//! One filter configuration (one `envoy.filters.http.dynamic_modules` entry): the engine,
//! the span exporter and the metric ids, shared by every worker's streams; and the main-
//! thread work: a ticker thread wakes the configuration's scheduler, whose event flushes
//! span batches through the configuration's HTTP callout and publishes the exporter's
//! counters. The wasm build does the same per VM with its root context's tick.
use crate::abi::{self, FilterConfigEnvoyPtr, LogLevel, ModuleBuffer, ModuleHttpHeader};
use crate::host;
use crate::stats::{Published, StatIds};
use meshwake_core::{Engine, HostFacts, Severity};
use meshwake_telemetry::{export, ExportOutcome, Exporter};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Longest delay before the exporter's counters show in Envoy's stats (as in the wasm build).
pub const STATS_PUBLISH_MS: u64 = 100;

/// Entry points that caught a panic, process-wide (published by every configuration's tick
/// as a delta of its own last reading).
pub static PANICS: AtomicU64 = AtomicU64::new(0);

/// What a configuration runs.
pub enum Module {
    /// `filter_name: noop`: the do-nothing baseline for benchmarks.
    Noop,
    Meshwake(Arc<Shared>),
    /// `filter_name: probe`: N host callbacks of one kind per request (benchmarks).
    Probe(Arc<crate::probe::Plan>),
}

/// State every stream of this configuration uses (any worker thread).
pub struct Shared {
    pub engine: Engine,
    /// Role from the listener direction, learnt on the first request without a configured
    /// role: 0 unknown, 1 inbound, 2 outbound, 3 the listener has no direction.
    pub direction: AtomicU8,
    pub exporter: Mutex<Exporter>,
    pub labels: Mutex<crate::labels::LabelSets>,
    pub ids: StatIds,
}

/// Main-thread state of a configuration (callouts and published counters). Its lock is never
/// held across a callout: Envoy may complete one inline, re-entering the module.
struct MainThread {
    /// Callout id → batch id.
    calls: HashMap<u64, u64>,
    /// Callouts that completed before their id was recorded (inline completion), at most
    /// [`MAX_EARLY`].
    early: Vec<(u64, Response)>,
    published: Published,
    /// A failed export dispatch was logged at warning level already.
    dispatch_warned: bool,
}

/// Inline completions kept until their id is known; more than one per flush is unexpected.
const MAX_EARLY: usize = 16;

/// What a collector (or Envoy on its behalf) answered to an export call.
pub struct Response {
    /// `None`: the call failed without a response (reset, buffer limit).
    pub status: Option<u16>,
    pub retry_after: Option<Vec<u8>>,
    /// The start of the body, to tell Envoy's local replies apart.
    pub probe: Vec<u8>,
}

impl Response {
    fn outcome(&self) -> ExportOutcome<'_> {
        match self.status {
            Some(s) => export::classify_response(s, self.retry_after.as_deref(), &self.probe),
            None => ExportOutcome::CallFailed,
        }
    }
}

/// The module side of an Envoy filter configuration; Envoy holds it as an opaque pointer.
pub struct FilterConfig {
    pub module: Module,
    envoy: FilterConfigEnvoyPtr,
    main: Mutex<MainThread>,
    ticker: Option<Ticker>,
}

impl FilterConfig {
    /// Build from the filter name and the plugin JSON. Never fails: a bad configuration has
    /// become defaults plus log lines, as in the wasm build.
    pub fn new(envoy: FilterConfigEnvoyPtr, name: &[u8], raw: &[u8]) -> FilterConfig {
        let main = Mutex::new(MainThread {
            calls: HashMap::new(),
            early: Vec::new(),
            published: Published::default(),
            dispatch_warned: false,
        });
        if name == b"noop" {
            return FilterConfig {
                module: Module::Noop,
                envoy,
                main,
                ticker: None,
            };
        }
        if name == b"probe" {
            return FilterConfig {
                module: Module::Probe(Arc::new(crate::probe::Plan::new(envoy, raw))),
                envoy,
                main,
                ticker: None,
            };
        }
        let (shared, tick_ms) = setup(envoy, raw);
        let ticker = (!host::validation_mode()).then(|| Ticker::start(envoy, tick_ms));
        FilterConfig {
            module: Module::Meshwake(Arc::new(shared)),
            envoy,
            main,
            ticker,
        }
    }

    /// The scheduled event (main thread): send due batches, publish counters.
    pub fn on_tick(&self) {
        if let Module::Meshwake(shared) = &self.module {
            flush(self.envoy, shared, &self.main, host::now_ns());
        }
    }

    /// A span export call finished (main thread).
    pub fn on_callout_done(&self, callout: u64, response: Response) {
        let Module::Meshwake(shared) = &self.module else {
            return;
        };
        let batch = {
            let Ok(mut main) = self.main.lock() else {
                return;
            };
            let batch = main.calls.remove(&callout);
            if batch.is_none() && main.early.len() < MAX_EARLY {
                main.early.push((callout, response));
                return;
            }
            batch
        };
        let now = host::now_ns();
        if let (Some(batch), Ok(mut ex)) = (batch, shared.exporter.lock()) {
            ex.on_result(batch, response.outcome(), now);
        }
        flush(self.envoy, shared, &self.main, now);
    }
}

impl Drop for FilterConfig {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.stop();
        }
    }
}

/// The core's one setup, then what needs Envoy: log and count the issues, define the
/// metrics. Returns the shared state and the tick period. The listener direction is not known
/// at configuration time here: a stream reads it when no role is configured.
fn setup(envoy: FilterConfigEnvoyPtr, raw: &[u8]) -> (Shared, u64) {
    let host_facts = HostFacts {
        node: &host::EnvNodeMetadata,
        listener_direction: None,
        filter_version: crate::VERSION,
        propagation_only: false,
    };
    let setup = meshwake_core::setup(raw, &host_facts);
    let ids = StatIds::define(envoy, setup.metric_naming);
    let (mut errors, mut warnings) = (0, 0);
    for issue in &setup.issues {
        let counter = match issue.severity() {
            Severity::Error => {
                host::log(LogLevel::Error, &format!("meshwake: {issue}"));
                &mut errors
            }
            Severity::Warning => {
                host::log(LogLevel::Warn, &format!("meshwake: {issue}"));
                &mut warnings
            }
        };
        if issue.is_config_problem() {
            *counter += 1;
        }
    }
    crate::stats::count_config(envoy, ids.config_errors, errors);
    crate::stats::count_config(envoy, ids.config_warnings, warnings);
    host::log(
        LogLevel::Info,
        &format!(
            "meshwake configuration: {} build=native abi={} raw={}",
            setup.summary(),
            String::from_utf8_lossy(
                abi::ABI_VERSION
                    .strip_suffix(b"\0")
                    .unwrap_or(abi::ABI_VERSION)
            ),
            String::from_utf8_lossy(raw)
        ),
    );
    let tick = setup.timer_period_ms(STATS_PUBLISH_MS);
    let shared = Shared {
        labels: Mutex::new(crate::labels::LabelSets::new(setup.label_cache())),
        exporter: Mutex::new(setup.exporter),
        engine: setup.engine,
        direction: AtomicU8::new(0),
        ids,
    };
    (shared, tick)
}

/// Send every batch that is due, then publish the exporter's counters. No lock is held
/// while Envoy runs the callout.
fn flush(envoy: FilterConfigEnvoyPtr, shared: &Shared, main: &Mutex<MainThread>, now: u64) {
    let engine = &shared.engine;
    let e = &engine.config().export;
    loop {
        let due = match shared.exporter.lock() {
            Ok(mut ex) => ex
                .poll(now, engine.resource(), engine.scope())
                .map(|b| (b.id, b.body.to_vec())),
            Err(_) => None,
        };
        let Some((batch, body)) = due else { break };
        let sent = dispatch(envoy, e, &body);
        let Ok(mut m) = main.lock() else { return };
        let outcome = match sent {
            Ok(callout) => match m.early.iter().position(|(c, _)| *c == callout) {
                Some(i) => Some(m.early.swap_remove(i).1),
                None => {
                    m.calls.insert(callout, batch);
                    None
                }
            },
            Err(why) => {
                // Almost always a cluster Envoy does not have: say so once, where an operator
                // looks; the counters tell the rest.
                if !m.dispatch_warned {
                    m.dispatch_warned = true;
                    host::log(
                        LogLevel::Warn,
                        &format!(
                            "meshwake: cannot send spans to Envoy cluster `{}` ({why:?}): is export.cluster defined in Envoy? Spans are dropped and counted in meshwake.export.failures_call_failed",
                            e.cluster
                        ),
                    );
                }
                Some(Response {
                    status: None,
                    retry_after: None,
                    probe: Vec::new(),
                })
            }
        };
        drop(m);
        if let Some(r) = outcome {
            if let Ok(mut ex) = shared.exporter.lock() {
                ex.on_result(batch, r.outcome(), now);
            }
            if sent.is_err() {
                // A failed dispatch is retried by the backoff schedule, not in a spin.
                break;
            }
        }
    }
    let stats = shared.exporter.lock().map(|ex| *ex.stats()).ok();
    // Requests counted since the last flush and no stream has flushed them: the traffic
    // stopped (crate::labels).
    let (overflow, due) = match shared.labels.lock() {
        Ok(mut l) => (l.label_overflow(), l.take_due(now, false)),
        Err(_) => (0, Vec::new()),
    };
    crate::stats::count_requests_config(envoy, &shared.ids, due);
    if let (Some(stats), Ok(mut m)) = (stats, main.lock()) {
        let panics = PANICS.load(Ordering::Relaxed);
        m.published
            .sync(envoy, &shared.ids, &stats, overflow, panics);
    }
}

/// One OTLP/HTTP POST through the configuration's callout.
fn dispatch(
    envoy: FilterConfigEnvoyPtr,
    e: &meshwake_telemetry::ExportConfig,
    body: &[u8],
) -> Result<u64, abi::CalloutInitResult> {
    let mut headers = [
        ModuleHttpHeader::new(b":method", b"POST"),
        ModuleHttpHeader::new(b":path", e.path.as_bytes()),
        ModuleHttpHeader::new(b":authority", e.authority.as_bytes()),
        ModuleHttpHeader::new(
            b"content-type",
            meshwake_telemetry::otlp::CONTENT_TYPE.as_bytes(),
        ),
    ];
    let mut id = 0u64;
    // SAFETY: `envoy` is the live configuration pointer and this runs on the main thread (a
    // scheduled event or a callout completion); every buffer outlives the call and Envoy
    // copies the request.
    let r = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_http_callout(
            envoy,
            &mut id,
            ModuleBuffer::new(e.cluster.as_bytes()),
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::new(body),
            e.timeout_ms,
        )
    };
    if r == abi::CalloutInitResult::Success {
        Ok(id)
    } else {
        Err(r)
    }
}

/// The configuration's scheduler pointer, moved to the ticker thread: `scheduler_commit` is
/// documented as callable from any thread.
struct SchedulerPtr(abi::ConfigSchedulerPtr);
// SAFETY: only `scheduler_commit` is called from the ticker thread (thread-safe by the ABI);
// `scheduler_delete` runs on the main thread after the thread has been joined.
unsafe impl Send for SchedulerPtr {}

/// A thread that wakes the configuration on the main thread every tick.
struct Ticker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    scheduler: abi::ConfigSchedulerPtr,
}

impl Ticker {
    fn start(envoy: FilterConfigEnvoyPtr, tick_ms: u64) -> Ticker {
        // SAFETY: `envoy` is the configuration pointer of the running config_new hook.
        let scheduler =
            unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(envoy) };
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let ptr = SchedulerPtr(scheduler);
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("meshwake-tick".into())
            .spawn(move || tick_loop(ptr, tick_ms, &s))
            .ok();
        Ticker {
            stop,
            thread,
            scheduler,
        }
    }

    fn stop(mut self) {
        let (lock, cv) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !self.scheduler.is_null() {
            // SAFETY: the only other user of the scheduler (the thread) has been joined.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                    self.scheduler,
                )
            };
        }
    }
}

fn tick_loop(ptr: SchedulerPtr, tick_ms: u64, stop: &(Mutex<bool>, Condvar)) {
    let (lock, cv) = stop;
    let Ok(mut stopped) = lock.lock() else { return };
    while !*stopped {
        match cv.wait_timeout(stopped, Duration::from_millis(tick_ms)) {
            Ok((guard, _)) => stopped = guard,
            Err(_) => return,
        }
        if *stopped || ptr.0.is_null() {
            return;
        }
        // SAFETY: see `SchedulerPtr`; the scheduler is deleted only after this thread ends.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(ptr.0, 0) };
    }
}
