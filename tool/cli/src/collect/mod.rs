//! `meshwake collect`: an OTLP/HTTP trace receiver that stores spans in SQLite.

pub(crate) mod http;
pub mod metrics;
mod writer;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::store::StoreError;

/// Default body limit: 4 MiB, the OpenTelemetry Collector's default as well.
pub const DEFAULT_MAX_BODY: &str = "4MiB";
/// Batches waiting for the writer before handlers answer 503.
pub const WRITE_QUEUE_CAPACITY: usize = 64;

/// Options of `meshwake collect`.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed on stderr).
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub listen: SocketAddr,
    /// SQLite database file (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Largest request body accepted, compressed and decompressed (e.g. 512KiB, 4MiB, 1000000).
    #[arg(long, default_value = DEFAULT_MAX_BODY, value_parser = parse_size)]
    pub max_body_bytes: usize,
    /// Keep at most this many spans in the database, pruning the oldest.
    #[arg(long)]
    pub max_spans: Option<u64>,
    /// Also print each stored span as one JSON line on stdout.
    #[arg(long, default_value_t = false)]
    pub stdout_json: bool,
    /// Seconds a connection may take to send a request's headers (also how long an idle
    /// keep-alive connection stays open); then it is closed.
    #[arg(long, default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may take to arrive; then 408 and the connection closes.
    #[arg(long, default_value_t = 30)]
    pub body_read_timeout_secs: u64,
    /// Connections open at once; one more is closed as soon as it is accepted.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
}

/// What bounds one connection.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    header_read_timeout: Duration,
    max_connections: usize,
}

/// Why the collector stopped.
#[derive(Debug)]
pub enum CollectError {
    /// The span store could not be opened.
    Store(StoreError),
    /// The listen address could not be bound.
    Bind(std::io::Error),
    /// The async runtime could not be built.
    Runtime(std::io::Error),
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectError::Store(e) => write!(f, "{e}"),
            CollectError::Bind(e) => write!(f, "cannot listen: {e}"),
            CollectError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
        }
    }
}

impl std::error::Error for CollectError {}

/// Parses a byte size: a number with an optional `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB` suffix.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

/// Runs the collector until Ctrl-C.
pub fn run(args: CollectArgs) -> Result<(), CollectError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CollectError::Runtime)?;
    let stats = Arc::new(metrics::Stats::default());
    let config = writer::WriterConfig {
        db: args.db.clone(),
        max_spans: args.max_spans,
        stdout_json: args.stdout_json,
    };
    let (tx, writer_thread) =
        writer::spawn(config, stats.clone(), WRITE_QUEUE_CAPACITY).map_err(CollectError::Store)?;
    let shared = Arc::new(http::Shared {
        stats,
        writer: tx,
        max_body_bytes: args.max_body_bytes,
        body_read_timeout: Duration::from_secs(args.body_read_timeout_secs),
    });
    let limits = ConnLimits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
        max_connections: args.max_connections,
    };
    let result = runtime.block_on(serve(args.listen, shared, limits));
    // Dropping the runtime drops every handler and so every queue sender: the writer drains and ends.
    drop(runtime);
    let _ = writer_thread.join();
    result
}

async fn serve(
    listen: SocketAddr,
    shared: Arc<http::Shared>,
    limits: ConnLimits,
) -> Result<(), CollectError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(CollectError::Bind)?;
    let local = listener.local_addr().map_err(CollectError::Bind)?;
    eprintln!("meshwake collect: listening on http://{local}");
    let open = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        eprintln!("meshwake collect: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Over the cap: close at once (the client sees a reset or EOF and retries),
                // rather than leave it in the backlog where it cannot tell why nothing answers.
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    metrics::inc(&shared.stats.connections_rejected);
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    serve_connection(stream, shared, limits.header_read_timeout).await;
                    drop(permit);
                });
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("meshwake collect: shutting down");
                return Ok(());
            }
        }
    }
}

/// One HTTP/1.1 connection. Headers must arrive within `header_read_timeout` (hyper closes
/// the connection otherwise, also when idle between keep-alive requests).
async fn serve_connection(
    stream: TcpStream,
    shared: Arc<http::Shared>,
    header_read_timeout: Duration,
) {
    let svc = service_fn(move |req| http::handle(shared.clone(), req));
    // Connection errors (client reset, bad HTTP, header timeout) concern only that client.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn sizes() {
        let cases: [(&str, Result<usize, ()>); 8] = [
            ("4MiB", Ok(4 << 20)), ("512KiB", Ok(512 << 10)), ("1000", Ok(1000)), ("10kb", Ok(10_000)),
            ("2 MB", Ok(2_000_000)), ("", Err(())), ("MiB", Err(())), ("3 parsecs", Err(())),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s).map_err(|_| ()), want, "{s}");
        }
    }
}
