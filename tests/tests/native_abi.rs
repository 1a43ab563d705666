//! The native build against the Envoy binary the tests use: every Envoy callback the module
//! imports must be exported by that Envoy, and the module must export every event hook Envoy
//! resolves for an HTTP filter. A mismatch (another Envoy version, a renamed callback) fails
//! here, in `make test`, not when a production Envoy loads the module.
use meshwake_tests::paths;
use std::collections::BTreeSet;
use std::process::Command;

/// The event hooks Envoy 1.40 requires of an HTTP-filter module (it refuses to create the
/// filter, naming the first missing one), plus the two configuration hooks this module uses.
const HOOKS: &[&str] = &[
    "envoy_dynamic_module_on_program_init",
    "envoy_dynamic_module_on_http_filter_config_new",
    "envoy_dynamic_module_on_http_filter_config_destroy",
    "envoy_dynamic_module_on_http_filter_new",
    "envoy_dynamic_module_on_http_filter_destroy",
    "envoy_dynamic_module_on_http_filter_request_headers",
    "envoy_dynamic_module_on_http_filter_request_body",
    "envoy_dynamic_module_on_http_filter_request_trailers",
    "envoy_dynamic_module_on_http_filter_response_headers",
    "envoy_dynamic_module_on_http_filter_response_body",
    "envoy_dynamic_module_on_http_filter_response_trailers",
    "envoy_dynamic_module_on_http_filter_stream_complete",
    "envoy_dynamic_module_on_http_filter_http_callout_done",
    "envoy_dynamic_module_on_http_filter_http_stream_headers",
    "envoy_dynamic_module_on_http_filter_http_stream_data",
    "envoy_dynamic_module_on_http_filter_http_stream_trailers",
    "envoy_dynamic_module_on_http_filter_http_stream_complete",
    "envoy_dynamic_module_on_http_filter_http_stream_reset",
    "envoy_dynamic_module_on_http_filter_scheduled",
    "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
    "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
    "envoy_dynamic_module_on_http_filter_config_scheduled",
    "envoy_dynamic_module_on_http_filter_config_http_callout_done",
];

/// Dynamic symbols of an ELF file (`nm -D`), defined or undefined.
fn dynamic_symbols(file: &std::path::Path, defined: bool) -> BTreeSet<String> {
    let flag = if defined {
        "--defined-only"
    } else {
        "--undefined-only"
    };
    let out = Command::new("nm")
        .args(["-D", flag])
        .arg(file)
        .output()
        .expect("nm (binutils) runs");
    assert!(out.status.success(), "nm -D {}: {:?}", file.display(), out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect()
}

#[test]
fn every_imported_envoy_callback_is_exported_by_the_test_envoy() {
    let module = paths::meshwake_native();
    let envoy = paths::envoy_elf();
    let imported: BTreeSet<String> = dynamic_symbols(&module, false)
        .into_iter()
        .filter(|s| s.starts_with("envoy_dynamic_module_callback_"))
        .collect();
    assert!(
        imported.len() >= 10,
        "the module imports only {imported:?}: not the meshwake filter?"
    );
    let exported = dynamic_symbols(&envoy, true);
    let missing: Vec<&String> = imported.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "{} imports callbacks {} does not export: {missing:?}",
        module.display(),
        envoy.display()
    );
    // No other Envoy symbol is left for the loader to resolve: the rest is libc/libgcc.
    let foreign: Vec<String> = dynamic_symbols(&module, false)
        .into_iter()
        .filter(|s| s.starts_with("envoy_") && !s.starts_with("envoy_dynamic_module_callback_"))
        .collect();
    assert!(foreign.is_empty(), "unexpected Envoy imports: {foreign:?}");
}

#[test]
fn the_module_exports_every_hook_envoy_resolves() {
    let exported = dynamic_symbols(&paths::meshwake_native(), true);
    let missing: Vec<&&str> = HOOKS.iter().filter(|h| !exported.contains(**h)).collect();
    assert!(missing.is_empty(), "hooks not exported: {missing:?}");
}
