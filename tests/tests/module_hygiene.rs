//! The built module speaks only the proxy-wasm ABI: it imports `env.proxy_*` and the WASI
//! calls Envoy implements, and exports the ABI version symbol.
use meshwake_tests::paths;
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
