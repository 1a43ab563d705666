//! `meshwake`: collect spans over OTLP/HTTP, analyse the cross-service impact of deployments,
//! run the local demo mesh.

mod analysis_bridge;
mod collect;
mod demo;
mod gate;
mod impact;
mod otlp;
mod store;
mod window;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code when a command could not do its work (clap uses 2 for usage errors).
const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(name = "meshwake", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive OTLP/HTTP traces (POST /v1/traces) and store them in SQLite.
    Collect(collect::CollectArgs),
    /// Find the deployments behind errors and latency, and their blast radius.
    Impact(impact::ImpactArgs),
    /// Run a local mesh (Envoy sidecars with the module, demo services, a collector), roll out
    /// a canary, and name the culprit with the impact analysis.
    Demo(demo::DemoArgs),
    /// Serve live rollout verdicts over HTTP for Flagger and Argo Rollouts (see --help for
    /// the endpoints).
    Gate(gate::GateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Collect(args) => collect::run(args).map_err(Into::into),
        Command::Impact(args) => impact::run(&args).map_err(Into::into),
        Command::Demo(args) => demo::run(&args).map_err(Into::into),
        Command::Gate(args) => gate::run(&args).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshwake: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
