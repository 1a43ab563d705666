//! Every plugin configuration shipped in envoy-config/, deploy/compose/ and deploy/istio/
//! (base and every kustomize overlay) is accepted by the filter's own parser with zero issues.
//! deploy/validate.py extracts them (YAML parsing lives there, with PyYAML in the venv).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use meshwake_core::config::{Config, Role};
use meshwake_tests::paths;
use std::process::Command;

fn shipped_configs() -> Vec<(String, String)> {
    let root = paths::root();
    let dir = paths::scratch_dir("deploy-plugin-configs");
    let python = root.join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(root.join("deploy/validate.py"))
        .arg("--dump-plugin-configs")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run make test (or scripts/test.d/deploy.sh) once",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "deploy/validate.py --dump-plugin-configs failed (PyYAML missing? run scripts/test.d/deploy.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            (
                v["name"].as_str().unwrap().to_string(),
                v["config"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_shipped_plugin_config_parses_without_issues() {
    let configs = shipped_configs();
    // 4 ready configs + 2 templates + the compose proxies + 6 Istio stages: far more than 20.
    assert!(
        configs.len() >= 20,
        "only {} plugin configurations found",
        configs.len()
    );
    for (name, raw) in &configs {
        // Test fixtures (single, chain, metrics, hostile...) get their plugin config per test;
        // only the shipped sidecar/edge templates carry a real one.
        let shipped_template = name.contains("tests/envoy/sidecar.yaml.tmpl")
            || name.contains("tests/envoy/edge.yaml.tmpl");
        if name.contains("tests/envoy/") && !shipped_template {
            continue;
        }
        let (cfg, issues) = Config::parse(raw.as_bytes());
        assert!(issues.is_empty(), "{name}: {raw}\n{issues:?}");
        let role = cfg.role.unwrap_or_else(|| panic!("{name}: no role"));
        // Istio plugins are named after their role; Envoy filters come in listener order:
        // sidecars inbound then outbound, edges edge then outbound; so do the native build's
        // EnvoyFilter patches (`istio:native/meshwake-native#0` inbound, `#1` outbound).
        let want = if name.contains("meshwake-gateway")
            || (name.contains("edge.yaml") && name.ends_with("#0"))
        {
            Role::Edge
        } else if name.contains("meshwake-inbound")
            || ((name.starts_with("envoy:") || name.contains("meshwake-native#"))
                && name.ends_with("#0"))
        {
            Role::Inbound
        } else {
            Role::Outbound
        };
        assert_eq!(role, want, "{name}");
        assert_ne!(cfg.export.cluster, "", "{name}");
        if name.starts_with("istio:") {
            assert!(
                cfg.export.cluster.starts_with("outbound|4318||"),
                "{name}: {}",
                cfg.export.cluster
            );
        }
    }
}

/// Every key of the configuration schema (the defaults, serialized) is documented in
/// filters/CONFIG.md as `` `section.key` ``.
#[test]
fn every_config_key_is_documented() {
    fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(map) = v.as_object() {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                // Sections are objects of keys; map-valued keys (attributes) are leaves.
                if v.is_object() && !key.ends_with("attributes") {
                    keys(&key, v, out);
                } else {
                    out.push(key);
                }
            }
        }
    }
    let doc = std::fs::read_to_string(paths::root().join("filters/CONFIG.md")).unwrap();
    let mut all = Vec::new();
    keys(
        "",
        &serde_json::to_value(Config::default()).unwrap(),
        &mut all,
    );
    assert!(all.len() > 30, "{all:?}");
    let missing: Vec<_> = all
        .iter()
        .filter(|k| !doc.contains(&format!("| `{k}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "filters/CONFIG.md does not document {missing:?}"
    );
}
