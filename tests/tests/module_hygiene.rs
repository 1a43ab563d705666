//! The built module speaks only the proxy-wasm ABI: it imports `env.proxy_*` and the WASI
//! calls Envoy implements, and exports the ABI version symbol. meshwake.wasm exports only
//! the callbacks the filter implements: Envoy enters the VM for every `proxy_on_*` a module
//! exports (per body chunk, per trailer block), and skips the ones it does not.
use meshwake_tests::paths;
use std::collections::BTreeSet;
use wasmparser::{Parser, Payload, TypeRef};

/// WASI preview1 functions Envoy's proxy-wasm host provides (envoy `source/extensions/common/wasm`
/// via proxy-wasm-cpp-host `src/exports.cc`). Anything else would fail to link at load time.
const ENVOY_WASI: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "environ_get",
    "environ_sizes_get",
    "fd_close",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_read",
    "fd_seek",
    "fd_write",
    "path_open",
    "poll_oneoff",
    "proc_exit",
    "random_get",
    "sched_yield",
];

/// Imports outside the allowed set, or None if the module has no ABI version export.
pub fn check_module(bytes: &[u8]) -> Result<(), Vec<String>> {
    let mut bad = Vec::new();
    let mut has_abi = false;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| vec![format!("parse error: {e}")])? {
            Payload::ImportSection(r) => {
                for imp in r {
                    let imp = imp.map_err(|e| vec![e.to_string()])?;
                    let ok = match (imp.module, &imp.ty) {
                        ("env", TypeRef::Func(_)) => imp.name.starts_with("proxy_"),
                        ("wasi_snapshot_preview1", TypeRef::Func(_)) => {
                            ENVOY_WASI.contains(&imp.name)
                        }
                        _ => false,
                    };
                    if !ok {
                        bad.push(format!("{}.{}", imp.module, imp.name));
                    }
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(|e| vec![e.to_string()])?;
                    has_abi |= e.name.starts_with("proxy_abi_version_");
                }
            }
            _ => {}
        }
    }
    if !has_abi {
        bad.push("missing export proxy_abi_version_*".into());
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

/// What meshwake.wasm exports (`MESHWAKE_EXPORTS` in scripts/lib.sh): linear memory,
/// the WASI reactor entry, the ABI version, and the callbacks the filter implements.
const MESHWAKE_EXPORTS: &[&str] = &[
    "_initialize",
    "memory",
    "proxy_abi_version_0_2_1",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_http_call_response",
    "proxy_on_log",
    "proxy_on_memory_allocate",
    "proxy_on_request_headers",
    "proxy_on_response_headers",
    "proxy_on_tick",
    "proxy_on_vm_start",
];

/// What meshwake-propagate.wasm leaves out of meshwake.wasm's exports (`PROPAGATE_EXPORTS`):
/// a stream is done after its request headers, so neither the response nor the stream end
/// enters the VM.
const STREAM_END_EXPORTS: &[&str] = &["proxy_on_log", "proxy_on_response_headers"];

fn propagate_exports() -> Vec<&'static str> {
    MESHWAKE_EXPORTS
        .iter()
        .copied()
        .filter(|e| !STREAM_END_EXPORTS.contains(e))
        .collect()
}

/// Callbacks Envoy would make for every request if exported, which the filter has no use for.
const NEVER_EXPORTED: &[&str] = &[
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_done",
    // The stream's state is dropped in `proxy_on_log` (filters/wasm/src/dispatch.rs).
    "proxy_on_delete",
];

fn exports(bytes: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::ExportSection(r) = payload.unwrap() {
            out.extend(r.into_iter().map(|e| e.unwrap().name.to_string()));
        }
    }
    out
}

/// Exports of `bytes` that are per-request callbacks the filter does not implement, and
/// the difference to the expected export set.
fn check_exports(bytes: &[u8], expected: &[&str]) -> Result<(), String> {
    let got = exports(bytes);
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let unwanted: Vec<&str> = NEVER_EXPORTED
        .iter()
        .copied()
        .filter(|n| got.contains(*n))
        .collect();
    if unwanted.is_empty() && got == want {
        return Ok(());
    }
    Err(format!(
        "callbacks Envoy would call for nothing: {unwanted:?}; missing: {:?}; extra: {:?}",
        want.difference(&got).collect::<Vec<_>>(),
        got.difference(&want).collect::<Vec<_>>()
    ))
}

#[test]
fn meshwake_module_exports_only_the_callbacks_it_implements() {
    let bytes = std::fs::read(paths::meshwake_wasm()).unwrap();
    check_exports(&bytes, MESHWAKE_EXPORTS).unwrap_or_else(|e| panic!("meshwake.wasm: {e}"));
}

#[test]
fn propagate_module_exports_no_response_or_stream_end_callback() {
    let bytes = std::fs::read(paths::propagate_wasm()).unwrap();
    check_exports(&bytes, &propagate_exports())
        .unwrap_or_else(|e| panic!("meshwake-propagate.wasm: {e}"));
    check_module(&bytes).unwrap_or_else(|bad| panic!("meshwake-propagate.wasm: {bad:?}"));
    // The full module's export set is not the propagation build's (the check can fail).
    let full = std::fs::read(paths::meshwake_wasm()).unwrap();
    let e = check_exports(&full, &propagate_exports()).expect_err("the full module has more");
    assert!(
        e.contains("proxy_on_log") && e.contains("proxy_on_response_headers"),
        "{e}"
    );
}

/// The export check fails on what the SDK exports by default (the no-op module keeps it):
/// body and trailer callbacks, `proxy_on_done` and `proxy_on_delete`.
#[test]
fn export_check_rejects_the_sdk_default_callbacks() {
    let bytes = std::fs::read(paths::noop_wasm()).unwrap();
    let e = check_exports(&bytes, MESHWAKE_EXPORTS).expect_err("the SDK exports every callback");
    for name in NEVER_EXPORTED {
        assert!(e.contains(name), "{name} not reported: {e}");
    }
}

#[test]
fn meshwake_module_imports_only_the_proxy_wasm_abi() {
    let bytes = std::fs::read(paths::meshwake_wasm()).unwrap();
    check_module(&bytes)
        .unwrap_or_else(|bad| panic!("forbidden imports/exports in meshwake.wasm: {bad:?}"));
}

#[test]
fn noop_module_imports_only_the_proxy_wasm_abi() {
    let bytes = std::fs::read(paths::noop_wasm()).unwrap();
    check_module(&bytes)
        .unwrap_or_else(|bad| panic!("forbidden imports in meshwake-noop.wasm: {bad:?}"));
}

/// The checker itself rejects a module with a foreign import (so the tests above can fail).
#[test]
fn hygiene_check_rejects_foreign_imports() {
    let module = wat::parse_str(
        r#"(module (import "env" "emscripten_memcpy" (func)) (import "env" "proxy_log" (func))
                   (import "wasi_snapshot_preview1" "sock_accept" (func))
                   (func (export "proxy_abi_version_0_2_1")))"#,
    )
    .unwrap();
    let err = check_module(&module).expect_err("foreign import must be rejected");
    assert_eq!(
        err,
        vec![
            "env.emscripten_memcpy".to_string(),
            "wasi_snapshot_preview1.sock_accept".to_string()
        ]
    );
}
