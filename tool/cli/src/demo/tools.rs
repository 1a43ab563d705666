//! The binaries and files the demo runs: the Envoy, the module, the demo service, this binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io, DemoArgs, DemoError};

/// Binaries and files the demo runs.
pub(super) struct Tools {
    pub(super) envoy: PathBuf,
    pub(super) wasm: PathBuf,
    pub(super) service: PathBuf,
    pub(super) meshwake: PathBuf,
}

/// Finds them: flags first, then the environment, then the defaults; fails when the demo
/// service or the module is missing.
pub(super) fn find_tools(args: &DemoArgs) -> Result<Tools, DemoError> {
    let meshwake = std::env::current_exe().map_err(io("cannot find the meshwake binary"))?;
    let service = args.service_bin.clone().unwrap_or_else(|| {
        meshwake
            .parent()
            .unwrap_or(Path::new("."))
            .join("meshwake-demo-service")
    });
    if !service.exists() {
        return Err(DemoError::Missing(format!(
            "demo service binary {} not found: build it (cargo build --release -p meshwake-demo-service) or pass --service-bin",
            service.display()
        )));
    }
    let envoy = args
        .envoy
        .clone()
        .or_else(|| std::env::var_os("MESHWAKE_ENVOY").map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from(".venv/bin/envoy");
            p.exists().then_some(p)
        })
        .unwrap_or_else(|| PathBuf::from("envoy"));
    let wasm = std::fs::canonicalize(&args.wasm).map_err(|_| {
        DemoError::Missing(format!(
            "{} not found: run `make build` first",
            args.wasm.display()
        ))
    })?;
    Ok(Tools {
        envoy,
        wasm,
        service,
        meshwake,
    })
}

/// `envoy -c config` with the demo's flags (one worker thread, a base id of its own).
pub(super) fn envoy_command(tools: &Tools, config: &Path) -> Command {
    let mut cmd = Command::new(&tools.envoy);
    cmd.arg("-c").arg(config).args([
        "--concurrency",
        "1",
        "--use-dynamic-base-id",
        "-l",
        "warning",
    ]);
    if super::envoy_config::is_native(&tools.wasm) {
        // `dynamic_module_config: {name: meshwake}` → libmeshwake.so in this directory.
        if let Some(dir) = tools.wasm.parent() {
            cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir);
        }
    }
    cmd
}
