//! `meshwake-demo-service`: one workload of the demo mesh. It adds latency, fails on purpose,
//! calls its downstreams forwarding the trace headers, and propagates their failures.

mod config;
mod downstream;
mod rng;
mod server;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let config = match config::Config::from_args(config::Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshwake-demo-service: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread: a demo workload mostly sleeps and waits on sockets, and a mesh runs dozens
    // of them on a small machine; a worker pool per process only adds threads to schedule.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshwake-demo-service: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshwake-demo-service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: config::Config) -> std::io::Result<()> {
    // Validated in Config::from_args, so every URL parses here.
    let targets = config
        .calls
        .iter()
        .filter_map(|u| downstream::Target::parse(u).ok())
        .collect();
    let seed = config.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let listener = TcpListener::bind(config.listen).await?;
    eprintln!(
        "meshwake-demo-service {}@{}: listening on http://{}",
        config.service,
        config.version,
        listener.local_addr()?
    );
    let app = Arc::new(server::App {
        config,
        targets,
        rng: rng::Rng::new(seed),
        pool: downstream::Pool::default(),
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        eprintln!("meshwake-demo-service: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let app = app.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| server::handle(app.clone(), peer, req));
                    // A service error (the simulated crash) closes the connection unanswered.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
