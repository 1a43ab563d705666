//! One sidecar bootstrap for every generator: `envoy-config/sidecar.json.tmpl` holds the shape
//! (inbound and outbound listeners sharing one Wasm VM, the app and collector clusters);
//! `deploy/gen.py` renders it for the shipped configs, this crate for `meshwake demo` and the
//! mesh tests. Why a JSON template: docs/adr/0008-one-sidecar-template.md.
//!
//! Placeholders are whole JSON strings: `"{{NAME}}"` is replaced by a value (required),
//! an object member `"{{?NAME}}"` is dropped when there is no value, and an array element
//! `"{{...NAME}}"` is replaced by the elements of an array value. Values are not filled again.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

/// The template, compiled in: the demo binary needs no file from the repository at run time.
pub const SIDECAR_TEMPLATE: &str = include_str!("../../../envoy-config/sidecar.json.tmpl");

/// Every listener, the admin and the collector of a rendered sidecar bind loopback here.
const LOOPBACK: &str = "127.0.0.1";

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template is not JSON.
    Json(String),
    /// A required placeholder has no value.
    Missing(String),
    /// A `{{...NAME}}` placeholder outside an array, or whose value is not an array.
    Spread(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "sidecar template is not JSON: {e}"),
            Self::Missing(name) => write!(f, "sidecar template: no value for {{{{{name}}}}}"),
            Self::Spread(name) => {
                write!(
                    f,
                    "sidecar template: {{{{...{name}}}}} needs an array, in an array"
                )
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// What one workload's sidecar needs besides the shape; everything binds loopback.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidecar {
    /// Envoy `node.id`.
    pub node_id: String,
    /// Envoy `node.cluster`.
    pub node_cluster: String,
    /// Admin port.
    pub admin_port: u16,
    /// Inbound listener (what callers reach).
    pub inbound_port: u16,
    /// Outbound listener (where the app sends its calls).
    pub outbound_port: u16,
    /// The app behind the sidecar.
    pub app_port: u16,
    /// The OTLP/HTTP collector.
    pub collector_port: u16,
    /// The meshwake module.
    pub wasm_path: String,
    /// Wasm `failure_policy` (`FAIL_RELOAD` shipped, `FAIL_CLOSED` in tests).
    pub failure_policy: String,
    /// Timeout of the inbound route to the app.
    pub route_timeout: String,
    /// Plugin configuration (JSON text) of the inbound filter.
    pub inbound_config: String,
    /// Plugin configuration (JSON text) of the outbound filter.
    pub outbound_config: String,
    /// The outbound listener's `virtual_hosts`.
    pub outbound_virtual_hosts: Value,
    /// Clusters of the callees, next to `local_app` and `otlp_collector`.
    pub upstream_clusters: Vec<Value>,
    /// Bootstrap `layered_runtime`, if any.
    pub layered_runtime: Option<Value>,
}

impl Sidecar {
    /// The bootstrap, from [`SIDECAR_TEMPLATE`].
    pub fn render(&self) -> Result<Value, TemplateError> {
        let template: Value = serde_json::from_str(SIDECAR_TEMPLATE)
            .map_err(|e| TemplateError::Json(e.to_string()))?;
        let mut vars: BTreeMap<&str, Value> = BTreeMap::from([
            ("NODE_ID", self.node_id.clone().into()),
            ("NODE_CLUSTER", self.node_cluster.clone().into()),
            ("ADMIN_ADDRESS", LOOPBACK.into()),
            ("ADMIN_PORT", self.admin_port.into()),
            ("INBOUND_ADDRESS", LOOPBACK.into()),
            ("INBOUND_PORT", self.inbound_port.into()),
            ("OUTBOUND_ADDRESS", LOOPBACK.into()),
            ("OUTBOUND_PORT", self.outbound_port.into()),
            ("ROUTE_TIMEOUT", self.route_timeout.clone().into()),
            (
                "OUTBOUND_VIRTUAL_HOSTS",
                self.outbound_virtual_hosts.clone(),
            ),
            ("FAILURE_POLICY", self.failure_policy.clone().into()),
            ("WASM_PATH", self.wasm_path.clone().into()),
            ("INBOUND_CONFIG", self.inbound_config.clone().into()),
            ("OUTBOUND_CONFIG", self.outbound_config.clone().into()),
            ("APP_PORT", self.app_port.into()),
            ("UPSTREAM_CLUSTERS", self.upstream_clusters.clone().into()),
            ("COLLECTOR_ADDRESS", LOOPBACK.into()),
            ("COLLECTOR_PORT", self.collector_port.into()),
        ]);
        if let Some(runtime) = &self.layered_runtime {
            vars.insert("LAYERED_RUNTIME", runtime.clone());
        }
        fill(&template, &vars)
    }
}

/// Swap every meshwake wasm filter of a rendered bootstrap for the native build (the Envoy
/// dynamic module `libmeshwake.so`, docs/adr/0009-native-dynamic-module.md) with the same
/// plugin configuration. Envoy then needs `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` pointing at the
/// library's directory.
pub fn use_native_filter(node: &mut Value) {
    let is_wasm = node.get("name") == Some(&Value::from("envoy.filters.http.wasm"));
    let config = is_wasm
        .then(|| {
            node.pointer("/typed_config/config/configuration/value")
                .cloned()
        })
        .flatten();
    if let Some(config) = config {
        *node = native_filter(config);
        return;
    }
    match node {
        Value::Object(map) => map.values_mut().for_each(use_native_filter),
        Value::Array(items) => items.iter_mut().for_each(use_native_filter),
        _ => {}
    }
}

/// The dynamic-module filter entry with plugin configuration `config` (a JSON string).
pub fn native_filter(config: Value) -> Value {
    json!({
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": { "name": "meshwake" },
            "filter_name": "meshwake",
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config,
            },
        },
    })
}

/// A static cluster of one loopback endpoint (a callee's sidecar, the collector...).
pub fn loopback_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": LOOPBACK, "port_value": port } } } }] }],
        },
    })
}

/// A placeholder: how it is filled and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole<'a> {
    Required(&'a str),
    Optional(&'a str),
    Spread(&'a str),
}

fn hole(s: &str) -> Option<Hole<'_>> {
    let name = s.strip_prefix("{{")?.strip_suffix("}}")?;
    let hole = if let Some(n) = name.strip_prefix('?') {
        Hole::Optional(n)
    } else if let Some(n) = name.strip_prefix("...") {
        Hole::Spread(n)
    } else {
        Hole::Required(name)
    };
    let n = match hole {
        Hole::Required(n) | Hole::Optional(n) | Hole::Spread(n) => n,
    };
    let well_formed = !n.is_empty() && n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    well_formed.then_some(hole)
}

/// Fills `template` with `vars` by the rules of the crate documentation.
pub fn fill(template: &Value, vars: &BTreeMap<&str, Value>) -> Result<Value, TemplateError> {
    match template {
        Value::String(s) => match hole(s) {
            None => Ok(template.clone()),
            Some(Hole::Required(n) | Hole::Optional(n)) => vars
                .get(n)
                .cloned()
                .ok_or_else(|| TemplateError::Missing(n.to_owned())),
            Some(Hole::Spread(n)) => Err(TemplateError::Spread(n.to_owned())),
        },
        Value::Object(members) => {
            let mut out = Map::new();
            for (key, value) in members {
                if let Some(Hole::Optional(n)) = value.as_str().and_then(hole) {
                    if let Some(v) = vars.get(n) {
                        out.insert(key.clone(), v.clone());
                    }
                    continue;
                }
                out.insert(key.clone(), fill(value, vars)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(Hole::Spread(n)) = item.as_str().and_then(hole) {
                    let spread = vars.get(n).and_then(Value::as_array);
                    out.extend(
                        spread
                            .ok_or_else(|| TemplateError::Spread(n.to_owned()))?
                            .iter()
                            .cloned(),
                    );
                    continue;
                }
                out.push(fill(item, vars)?);
            }
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar() -> Sidecar {
        Sidecar {
            node_id: "web-v1".into(),
            node_cluster: "web".into(),
            admin_port: 1,
            inbound_port: 2,
            outbound_port: 3,
            app_port: 4,
            collector_port: 5,
            wasm_path: "/m.wasm".into(),
            failure_policy: "FAIL_CLOSED".into(),
            route_timeout: "15s".into(),
            inbound_config: r#"{"role":"inbound"}"#.into(),
            outbound_config: r#"{"role":"outbound"}"#.into(),
            outbound_virtual_hosts: json!([{"name": "up", "domains": ["*"], "routes": []}]),
            upstream_clusters: vec![json!({"name": "api-v1"}), json!({"name": "api-v2"})],
            layered_runtime: None,
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let b = sidecar().render().unwrap();
        let text = b.to_string();
        assert!(!text.contains("{{"), "{text}");
        assert_eq!(b["node"], json!({"id": "web-v1", "cluster": "web"}));
        assert!(b.get("stats_config").is_none() && b.get("layered_runtime").is_none());
        let names: Vec<&str> = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["local_app", "api-v1", "api-v2", "otlp_collector"]);
        let listeners = &b["static_resources"]["listeners"];
        let wasm = |i: usize| {
            &listeners[i]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
                ["typed_config"]["config"]
        };
        assert_eq!(wasm(0)["configuration"]["value"], r#"{"role":"inbound"}"#);
        assert_eq!(wasm(1)["configuration"]["value"], r#"{"role":"outbound"}"#);
        // One VM for both listeners: lineage and context recovery need it.
        assert_eq!(wasm(0)["vm_config"], wasm(1)["vm_config"]);
        assert_eq!(wasm(0)["failure_policy"], "FAIL_CLOSED");
        assert_eq!(listeners[1]["address"]["socket_address"]["port_value"], 3);
        let collector = &b["static_resources"]["clusters"][3];
        assert!(collector.get("type").is_none());
        let with_runtime = Sidecar {
            layered_runtime: Some(json!({"layers": []})),
            ..sidecar()
        };
        assert_eq!(
            with_runtime.render().unwrap()["layered_runtime"],
            json!({"layers": []})
        );
    }

    #[test]
    fn placeholder_rules() {
        let vars = BTreeMap::from([("A", json!(1)), ("L", json!([2, 3]))]);
        let t = json!({"a": "{{A}}", "b": "{{?B}}", "c": "{{?A}}", "l": [0, "{{...L}}", 4],
                       "text": "x {{A}}", "lower": "{{a}}"});
        assert_eq!(
            fill(&t, &vars).unwrap(),
            json!({"a": 1, "c": 1, "l": [0, 2, 3, 4], "text": "x {{A}}", "lower": "{{a}}"})
        );
        assert_eq!(
            fill(&json!(["{{B}}"]), &vars),
            Err(TemplateError::Missing("B".into()))
        );
        assert_eq!(
            fill(&json!({"l": "{{...L}}"}), &vars),
            Err(TemplateError::Spread("L".into()))
        );
        assert_eq!(
            fill(&json!(["{{...A}}"]), &vars),
            Err(TemplateError::Spread("A".into()))
        );
    }
}
