//! Running `meshwake demo` from a test (demo_e2e.rs, demo_scenarios.rs): the real Envoy, the
//! built filter module and demo service, one output directory per run under target/test-runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Envoy: $MESHWAKE_ENVOY, else the one `scripts/setup.sh test` installs.
pub fn envoy() -> PathBuf {
    let p = std::env::var_os("MESHWAKE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/envoy"));
    assert!(
        p.exists(),
        "Envoy not found at {}: run scripts/setup.sh test (or set MESHWAKE_ENVOY)",
        p.display()
    );
    p
}

/// The demo service binary of this profile, built if missing.
pub fn service_bin() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_meshwake"));
    let p = exe.with_file_name("meshwake-demo-service");
    if !p.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "-q", "-p", "meshwake-demo-service"]);
        if exe.parent().and_then(|d| d.file_name()) == Some("release".as_ref()) {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building meshwake-demo-service failed"
        );
    }
    p
}

/// target/meshwake.wasm, which `make build` writes.
pub fn wasm() -> PathBuf {
    let wasm = root().join("target/meshwake.wasm");
    assert!(
        wasm.exists(),
        "{} missing: run `make build` first",
        wasm.display()
    );
    wasm
}

/// An empty target/test-runs/{tag}-{pid}.
pub fn fresh_out_dir(tag: &str) -> PathBuf {
    let out = root().join(format!("target/test-runs/{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    out
}

/// `meshwake demo --topology {topology} --out {out}` with the test's Envoy, module and demo
/// service, then `extra`; stdout and stderr are the caller's to set.
pub fn demo_command(topology: &str, out: &Path, extra: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshwake"));
    cmd.current_dir(root())
        .args(["demo", "--topology", topology])
        .arg("--out")
        .arg(out)
        .arg("--envoy")
        .arg(envoy())
        .arg("--wasm")
        .arg(wasm())
        .arg("--service-bin")
        .arg(service_bin())
        .args(extra);
    cmd
}

/// What a finished demo run left.
pub struct DemoOutput {
    /// Its output directory (report.json, run.json, spans.db, logs/).
    pub out: PathBuf,
    pub stdout: String,
    pub stderr: String,
}

impl DemoOutput {
    /// A JSON file of the output directory.
    pub fn json(&self, file: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.out.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}\n{}", self.stderr));
        serde_json::from_str(&text).unwrap()
    }
}

/// Runs `meshwake demo` on `topology` to its end, which must come within `timeout` and be a
/// success; stdout and stderr are kept in the output directory `target/test-runs/{tag}-{pid}`.
pub fn run_demo(topology: &str, tag: &str, extra: &[String], timeout: Duration) -> DemoOutput {
    let out = fresh_out_dir(tag);
    let file = |name: &str| Stdio::from(std::fs::File::create(out.join(name)).unwrap());
    let mut child = demo_command(topology, &out, extra)
        .stdout(file("stdout.txt"))
        .stderr(file("stderr.txt"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{topology}: meshwake demo still running after {timeout:?}; output in {}",
                out.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();
    let (stdout, stderr) = (read("stdout.txt"), read("stderr.txt"));
    assert!(
        status.success(),
        "{topology}: meshwake demo failed ({status}):\n{stderr}\n{stdout}"
    );
    DemoOutput {
        out,
        stdout,
        stderr,
    }
}
