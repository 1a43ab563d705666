//! `meshwake gate`: a live verdict service for progressive-delivery controllers (Flagger,
//! Argo Rollouts). An evaluator thread re-runs the impact analysis over a sliding window of
//! spans every `--interval`; the HTTP handlers answer from the latest evaluation
//! (docs/adr/0011-rollout-gate.md).

mod http;
pub mod metrics;
pub mod verdict;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::analysis_bridge::{self, AnalysisOptions, Report};
use crate::impact::prometheus::{self, Evidence};
use crate::window::{self, parse_duration, parse_duration_or_zero, unix_now_ns, Source};

/// What `meshwake gate --help` shows after the options: the HTTP contract.
const ENDPOINTS_HELP: &str = "\
Endpoints:
  GET  /v1/verdict?deployment=SERVICE@VERSION
       Always 200 for a well-formed question, JSON:
         {\"deployment\", \"verdict\": \"pass\"|\"fail\"|\"inconclusive\", \"reason\",
          \"window\": {start_ns, end_ns, seconds, spans, newest_span_age_s, evaluated_at, ...},
          \"requests\", \"missing_requests\", \"suspects\": [{rank, deployment, kind, summary,
          edge_routes}], \"error\"?: \"source_down\"|\"unknown_deployment\"|\"not_evaluated_yet\"}
       fail: the deployment is a suspect of the analysis; inconclusive: fewer than
       --min-requests requests in the window (missing_requests says how many more), nothing to
       compare it with, or the source is down; pass otherwise. 400 with {\"error\"} when the
       parameter is missing or not SERVICE@VERSION.
       Argo Rollouts: a `web` metric with successCondition: result.verdict != \"fail\".
  POST /v1/flagger
       Flagger webhook (types rollout, pre-rollout, confirm-promotion...). Body as Flagger
       sends it: {\"name\", \"namespace\", \"phase\", \"metadata\": {...}} with metadata keys
         deployment:       SERVICE@VERSION under test (required), e.g. reviews@v2
         on_inconclusive:  proceed (default) or halt
       200 + verdict JSON: go on. 412: fail (or inconclusive with halt). 503: span source down.
       400: malformed body, missing or unknown metadata key. Non-2xx halts the step and
       counts towards the canary's failure threshold; the reason is in the body.
  GET  /metrics
       Prometheus text: meshwake_gate_verdict{deployment,verdict} per deployment under test
       (asked about, or --deployment), evaluations, source errors and up, last evaluation
       age and duration, spans in the window, newest span age, HTTP answers.
  GET  /healthz
       200 \"ok\" while the server runs.

The window ends at the newest span of the source (live: now; a recorded spans.db: the end of
the recording); the canary is compared with the other versions of its service in the window,
or with --baseline before it.";

/// Requests a deployment must serve before the gate judges it. A promotion decision wants
/// more than the analysis's statistical minimum (5, enough for an exact test to say
/// anything): twenty requests per side, as before the analysis went exact.
pub const GATE_MIN_REQUESTS: u64 = 20;

/// Options of `meshwake gate`.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("source").required(true).args(["db", "otlp_json", "jaeger"])),
    after_help = ENDPOINTS_HELP
)]
pub struct GateArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed on stderr).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Read spans from a `meshwake collect` SQLite database.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Read spans from OTLP JSON files (re-read at every evaluation).
    #[arg(long, num_args = 1..)]
    pub otlp_json: Vec<PathBuf>,
    /// Read spans from a Jaeger query service (API v3), e.g. http://127.0.0.1:16686.
    #[arg(long, requires = "service")]
    pub jaeger: Option<String>,
    /// Services to fetch from Jaeger (repeatable).
    #[arg(long, num_args = 1..)]
    pub service: Vec<String>,
    /// Prometheus server or scrape endpoint for supporting evidence (request/5xx by version).
    #[arg(long)]
    pub prometheus: Option<String>,
    /// PromQL used with a Prometheus server.
    #[arg(long, default_value = prometheus::DEFAULT_QUERY)]
    pub prometheus_query: String,
    /// Length of the sliding window under test (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub window: Duration,
    /// Also compare with this much traffic before the window (0: the other versions only).
    #[arg(long, default_value = "0", value_parser = parse_duration_or_zero)]
    pub baseline: Duration,
    /// How often the window is re-evaluated.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Requests a deployment must serve in the window before it is judged.
    #[arg(long, default_value_t = GATE_MIN_REQUESTS)]
    pub min_requests: u64,
    /// Deployments to report in /metrics from the start (SERVICE@VERSION, repeatable).
    #[arg(long, value_parser = verdict::parse_deployment)]
    pub deployment: Vec<analysis_bridge::Deployment>,
}

/// Why the gate stopped.
#[derive(Debug)]
pub enum GateError {
    /// The listen address could not be bound.
    Bind(std::io::Error),
    /// The async runtime or the evaluator thread could not be started.
    Runtime(std::io::Error),
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::Bind(e) => write!(f, "cannot listen: {e}"),
            GateError::Runtime(e) => write!(f, "cannot start: {e}"),
        }
    }
}

impl std::error::Error for GateError {}

/// Where the evaluated window lies (the spans themselves are dropped after the analysis).
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowMeta {
    /// Window start, baseline included, Unix ns.
    pub start_ns: u64,
    /// Window end (newest span), Unix ns.
    pub end_ns: u64,
    /// Split between baseline and window under test.
    pub baseline_end_ns: Option<u64>,
    /// Spans in the window.
    pub spans: usize,
}

/// One run of the analysis over the window.
#[derive(Debug)]
pub struct Evaluation {
    /// When it ran, Unix ns; 0 for the placeholder before the first one.
    pub at_ns: u64,
    /// How long it took.
    pub took: Duration,
    /// The window.
    pub window: WindowMeta,
    /// The analysis, or why the source could not be read.
    pub report: Result<Report, String>,
    /// Metrics evidence, when `--prometheus` is given.
    pub evidence: Option<Result<Evidence, String>>,
}

impl Evaluation {
    fn placeholder() -> Self {
        Evaluation {
            at_ns: 0,
            took: Duration::ZERO,
            window: WindowMeta::default(),
            report: Err("the first evaluation has not finished yet".into()),
            evidence: None,
        }
    }
}

/// What one evaluation needs.
pub struct EvalConfig {
    /// The span source.
    pub source: Source,
    /// Window under test.
    pub window: Duration,
    /// Baseline before it (zero: none).
    pub baseline: Duration,
    /// Requests needed on each side of a comparison.
    pub min_requests: u64,
    /// Metrics evidence: URL and query.
    pub prometheus: Option<(String, String)>,
}

/// Loads the window and analyses it.
pub fn evaluate(cfg: &EvalConfig) -> Evaluation {
    let started = Instant::now();
    let at_ns = unix_now_ns();
    let (window, report) = match window::load(&cfg.source, cfg.window, cfg.baseline) {
        Ok(w) => {
            let options = AnalysisOptions {
                baseline_end_ns: w.baseline_end_ns,
                min_samples: cfg.min_requests,
                // The gate judges its window as a whole (canary against stable in the same
                // window) unless a baseline is configured: no inferred rollout split.
                infer_baseline_end: false,
                ..AnalysisOptions::default()
            };
            let report = analysis_bridge::analyze(&w.spans, &options);
            let meta = WindowMeta {
                start_ns: w.start_ns,
                end_ns: w.end_ns,
                baseline_end_ns: w.baseline_end_ns,
                spans: w.spans.len(),
            };
            (meta, Ok(report))
        }
        Err(e) => (WindowMeta::default(), Err(e)),
    };
    let evidence = cfg
        .prometheus
        .as_ref()
        .map(|(url, query)| prometheus::fetch(url, query).map_err(|e| e.to_string()));
    Evaluation {
        at_ns,
        took: started.elapsed(),
        window,
        report,
        evidence,
    }
}

/// Re-evaluates every `interval` forever, publishing each evaluation in `shared`.
fn evaluator(cfg: EvalConfig, interval: Duration, shared: Arc<http::Shared>) {
    let mut source_was_up = true;
    loop {
        let started = Instant::now();
        let eval = evaluate(&cfg);
        shared.stats.evaluations.fetch_add(1, Ordering::Relaxed);
        match &eval.report {
            Err(e) => {
                shared.stats.source_errors.fetch_add(1, Ordering::Relaxed);
                if source_was_up {
                    eprintln!("meshwake gate: source down: {e}");
                }
                source_was_up = false;
            }
            Ok(_) if !source_was_up => {
                eprintln!("meshwake gate: source back up");
                source_was_up = true;
            }
            Ok(_) => {}
        }
        if let Some(Err(e)) = &eval.evidence {
            eprintln!("meshwake gate: warning: {e}");
        }
        match shared.latest.lock() {
            Ok(mut g) => *g = Arc::new(eval),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(eval),
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// Runs the gate until Ctrl-C.
pub fn run(args: &GateArgs) -> Result<(), GateError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(GateError::Runtime)?;
    let shared = Arc::new(http::Shared {
        stats: metrics::Stats::default(),
        latest: Mutex::new(Arc::new(Evaluation::placeholder())),
        min_requests: args.min_requests,
    });
    for d in &args.deployment {
        shared.stats.under_test(d);
    }
    let cfg = EvalConfig {
        source: Source::from_options(
            args.db.as_ref(),
            args.jaeger.as_ref(),
            &args.service,
            &args.otlp_json,
        ),
        window: args.window,
        baseline: args.baseline,
        min_requests: args.min_requests,
        prometheus: args
            .prometheus
            .clone()
            .map(|u| (u, args.prometheus_query.clone())),
    };
    let about = format!(
        "{}, window {} s, re-evaluated every {} s",
        cfg.source,
        args.window.as_secs_f64(),
        args.interval.as_secs_f64()
    );
    let interval = args.interval;
    let for_evaluator = shared.clone();
    std::thread::Builder::new()
        .name("gate-evaluator".into())
        .spawn(move || evaluator(cfg, interval, for_evaluator))
        .map_err(GateError::Runtime)?;
    runtime.block_on(serve(args.listen, shared, &about))
}

async fn serve(
    listen: SocketAddr,
    shared: Arc<http::Shared>,
    about: &str,
) -> Result<(), GateError> {
    let listener = TcpListener::bind(listen).await.map_err(GateError::Bind)?;
    let local = listener.local_addr().map_err(GateError::Bind)?;
    eprintln!("meshwake gate: listening on http://{local} ({about})");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        eprintln!("meshwake gate: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| http::handle(shared.clone(), req));
                    // Connection errors (client reset, bad HTTP) concern only that client.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("meshwake gate: shutting down");
                return Ok(());
            }
        }
    }
}
