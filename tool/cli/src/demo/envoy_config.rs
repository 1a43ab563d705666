//! Envoy bootstraps generated from the topology: one sidecar per workload (inbound and
//! outbound listeners in one process, so they share the Wasm VM: lineage and context recovery
//! need that), rendered from the shared `envoy-config/sidecar.json.tmpl`, and one edge
//! gateway. Written as JSON, which Envoy reads like YAML.
//!
//! Splits between versions are `weighted_clusters` with a `runtime_key_prefix`: the weights in
//! the file are the initial ones, and the rollout changes them live through the admin
//! endpoint `POST /runtime_modify` (an `admin_layer` in `layered_runtime`), with no restart.

use std::collections::BTreeMap;
use std::path::Path;

use meshwake_envoy_bootstrap::{loopback_cluster, Sidecar, TemplateError};
use serde_json::{json, Value};

use super::topology::{Call, Topology, Version, Workload};

/// Envoy route timeout: longer than any demo hang, so the app's own answers come back.
pub const ROUTE_TIMEOUT: &str = "10s";
/// A broken module is reloaded; while it cannot run, requests pass without it.
const FAILURE_POLICY: &str = "FAIL_RELOAD";
/// How often the filter exports spans. Each flush is one OTLP request per sidecar and one
/// transaction in the collector: at 200 ms a 31-deployment mesh sent ~155 of them a second;
/// at 1 s the batches are five times larger and the store is still complete within a second
/// of the traffic's end (the drain waits for 1.5 s without new spans).
pub const FLUSH_INTERVAL_MS: u64 = 1000;

/// Loopback ports of one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadPorts {
    /// The demo service itself.
    pub app: u16,
    /// Sidecar inbound listener (what callers reach).
    pub inbound: u16,
    /// Sidecar outbound listener (where the app sends its calls).
    pub outbound: u16,
    /// Sidecar admin.
    pub admin: u16,
}

/// Every port of the demo mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// The OTLP collector.
    pub collector: u16,
    /// Edge listener (where traffic is sent).
    pub edge_listen: u16,
    /// Edge admin.
    pub edge_admin: u16,
    /// Per workload.
    pub workloads: BTreeMap<Workload, WorkloadPorts>,
    /// A port nobody listens on: the crashed replicas of versions with an `unreachable_rate`.
    pub dead: u16,
}

/// The runtime key holding the weight of `cluster` in the split of `service`.
pub fn runtime_key(service: &str, cluster: &str) -> String {
    format!("{}.{cluster}", runtime_prefix(service))
}

fn runtime_prefix(service: &str) -> String {
    format!("meshwake_demo.split.{service}")
}

/// Filter configuration JSON of one listener.
pub fn plugin_config(
    role: &str,
    service: &str,
    version: &str,
    namespace: &str,
    collector: u16,
) -> String {
    json!({
        "role": role,
        "identity": {
            "service": service,
            "version": version,
            "namespace": namespace,
            "workload": format!("{service}-{version}"),
        },
        "export": {
            "cluster": "otlp_collector",
            "authority": format!("127.0.0.1:{collector}"),
            "flush_interval_ms": FLUSH_INTERVAL_MS,
        },
    })
    .to_string()
}

/// The meshwake filter block: the wasm module, or for a `.so` the native build (an Envoy
/// dynamic module found through `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`, set by the demo).
fn wasm_filter(name: &str, config: String, wasm: &Path) -> Value {
    if is_native(wasm) {
        return meshwake_envoy_bootstrap::native_filter(config.into());
    }
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": "meshwake",
                "failure_policy": FAILURE_POLICY,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": config,
                },
                // Same vm_id and code for both listeners: one VM per worker, shared.
                "vm_config": {
                    "vm_id": "meshwake",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": { "local": { "filename": wasm.display().to_string() } },
                },
            },
        },
    })
}

/// Whether `module` is the native build (`libmeshwake.so`) rather than a wasm module.
pub fn is_native(module: &Path) -> bool {
    module.extension().is_some_and(|e| e == "so")
}

fn listener(name: &str, port: u16, direction: &str, virtual_hosts: Value, filter: Value) -> Value {
    json!({
        "name": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "traffic_direction": direction,
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "route_config": { "name": name, "virtual_hosts": virtual_hosts },
                    "http_filters": [
                        filter,
                        {
                            "name": "envoy.filters.http.router",
                            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                        },
                    ],
                },
            }],
        }],
    })
}

/// The route action sending to `service`: one cluster, or a runtime-keyed split.
fn route_to(topo: &Topology, service: &str) -> Value {
    let versions = topo
        .services
        .get(service)
        .map(|s| {
            s.versions
                .iter()
                .map(|(v, b)| (v.clone(), b.weight))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    match versions.as_slice() {
        [(v, _)] => json!({ "cluster": format!("{service}-{v}"), "timeout": ROUTE_TIMEOUT }),
        _ => {
            let clusters: Vec<Value> = versions
                .iter()
                .map(|(v, w)| json!({ "name": format!("{service}-{v}"), "weight": w }))
                .collect();
            json!({
                "weighted_clusters": {
                    "runtime_key_prefix": runtime_prefix(service),
                    "clusters": clusters,
                },
                "timeout": ROUTE_TIMEOUT,
            })
        }
    }
}

/// An Envoy `Duration` in JSON form.
fn duration_ms(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// The route action of one call: [`route_to`] with the call's timeout and `retry_policy`.
fn call_route(topo: &Topology, call: &Call) -> Value {
    let mut action = route_to(topo, call.service());
    let (Some(spec), Some(fields)) = (call.spec(), action.as_object_mut()) else {
        return action;
    };
    if let Some(ms) = spec.timeout_ms {
        fields.insert("timeout".into(), json!(duration_ms(ms)));
    }
    if let Some(r) = &spec.retries {
        let mut policy = serde_json::Map::new();
        policy.insert("retry_on".into(), json!(r.retry_on));
        policy.insert("num_retries".into(), json!(r.num_retries));
        if let Some(ms) = r.per_try_timeout_ms {
            policy.insert("per_try_timeout".into(), json!(duration_ms(ms)));
        }
        fields.insert("retry_policy".into(), Value::Object(policy));
    }
    action
}

/// The routes of the outbound virtual host of `callee`: one per call with options (matched
/// on its path), then the plain route for everything else.
fn callee_routes(topo: &Topology, calls: &[Call], callee: &str) -> Vec<Value> {
    let mut routes: Vec<Value> = calls
        .iter()
        .filter(|c| c.service() == callee && c.spec().is_some())
        .map(|c| {
            let path = c.path();
            let path = path.split('?').next().unwrap_or("/").to_owned();
            json!({ "match": { "path": path }, "route": call_route(topo, c) })
        })
        .collect();
    routes.push(json!({ "match": { "prefix": "/" }, "route": route_to(topo, callee) }));
    routes
}

/// Clusters for every version of `service`, pointing at their sidecars' inbound listeners
/// (and, for a version with an `unreachable_rate`, at a port nobody listens on, as often).
fn version_clusters(topo: &Topology, service: &str, ports: &Ports) -> Vec<Value> {
    ports
        .workloads
        .iter()
        .filter(|(w, _)| w.service == service)
        .map(|(w, p)| {
            let rate = version_of(topo, w).map_or(0.0, |v| v.unreachable_rate);
            version_cluster(&w.cluster(), p.inbound, ports.dead, rate)
        })
        .collect()
}

fn version_of<'t>(topo: &'t Topology, w: &Workload) -> Option<&'t Version> {
    topo.services.get(&w.service)?.versions.get(&w.version)
}

/// One version's cluster; `unreachable_rate` of its connections go to `dead` (weighted round
/// robin over two endpoints: the live replica and a crashed one).
fn version_cluster(name: &str, live: u16, dead: u16, unreachable_rate: f64) -> Value {
    let mut cluster = loopback_cluster(name, live);
    if unreachable_rate <= 0.0 {
        return cluster;
    }
    // Weights in 1..=1000; a version down for good has the dead endpoint only.
    let dead_weight = (unreachable_rate * 1000.0).round().clamp(1.0, 1000.0) as u32;
    let endpoint = |port: u16, weight: u32| {
        json!({ "load_balancing_weight": weight, "endpoint": { "address": {
            "socket_address": { "address": "127.0.0.1", "port_value": port } } } })
    };
    let mut endpoints = vec![endpoint(dead, dead_weight)];
    if dead_weight < 1000 {
        endpoints.insert(0, endpoint(live, 1000 - dead_weight));
    }
    if let Some(assignment) = cluster
        .pointer_mut("/load_assignment")
        .and_then(Value::as_object_mut)
    {
        assignment.insert("endpoints".into(), json!([{ "lb_endpoints": endpoints }]));
    }
    cluster
}

/// The Envoy fault filter delaying every request by `ms`.
fn delay_filter(ms: u64) -> Value {
    json!({
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "delay": {
                "fixed_delay": duration_ms(ms),
                "percentage": { "numerator": 100, "denominator": "HUNDRED" },
            },
        },
    })
}

/// Puts a delay in front of the meshwake filter of the sidecar's inbound listener: time on
/// the wire and in proxies that the callers see and the version's own SERVER spans do not.
fn delay_inbound(bootstrap: &mut Value, ms: u64) {
    let listeners = bootstrap
        .pointer_mut("/static_resources/listeners")
        .and_then(Value::as_array_mut);
    let inbound = listeners.and_then(|ls| {
        ls.iter_mut()
            .find(|l| l.get("name").is_some_and(|n| n == "inbound"))
    });
    let filters = inbound.and_then(|l| {
        l.pointer_mut("/filter_chains/0/filters/0/typed_config/http_filters")
            .and_then(Value::as_array_mut)
    });
    if let Some(filters) = filters {
        filters.insert(0, delay_filter(ms));
    }
}

/// The admin layer is what `POST /runtime_modify` writes: the rollout's switch.
fn layered_runtime() -> Value {
    json!({ "layers": [
        { "name": "static", "static_layer": {} },
        { "name": "admin", "admin_layer": {} },
    ] })
}

fn bootstrap(node: &str, admin: u16, listeners: Vec<Value>, clusters: Vec<Value>) -> Value {
    json!({
        "node": { "id": node, "cluster": node },
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": admin } } },
        "layered_runtime": layered_runtime(),
        "static_resources": { "listeners": listeners, "clusters": clusters },
    })
}

/// The sidecar of `w`, from the shared template (`envoy-config/sidecar.json.tmpl`): inbound →
/// its app, outbound → one virtual host per callee (by Host). `None` for an unknown workload.
pub fn sidecar(
    topo: &Topology,
    w: &Workload,
    ports: &Ports,
    wasm: &Path,
) -> Result<Option<Value>, TemplateError> {
    let (Some(p), Some(svc)) = (ports.workloads.get(w), topo.services.get(&w.service)) else {
        return Ok(None);
    };
    let cfg = |role| {
        plugin_config(
            role,
            &w.service,
            &w.version,
            &topo.namespace,
            ports.collector,
        )
    };
    let mut callees: Vec<&str> = svc.calls.iter().map(|c| c.service()).collect();
    callees.sort_unstable();
    callees.dedup();
    let vhosts: Vec<Value> = callees
        .iter()
        .map(|c| {
            json!({
                "name": c,
                "domains": [c, format!("{c}:*")],
                "routes": callee_routes(topo, &svc.calls, c),
            })
        })
        .collect();
    let sidecar = Sidecar {
        node_id: w.cluster(),
        node_cluster: w.cluster(),
        admin_port: p.admin,
        inbound_port: p.inbound,
        outbound_port: p.outbound,
        app_port: p.app,
        collector_port: ports.collector,
        wasm_path: wasm.display().to_string(),
        failure_policy: FAILURE_POLICY.to_owned(),
        route_timeout: ROUTE_TIMEOUT.to_owned(),
        inbound_config: cfg("inbound"),
        outbound_config: cfg("outbound"),
        outbound_virtual_hosts: json!(vhosts),
        upstream_clusters: callees
            .iter()
            .flat_map(|c| version_clusters(topo, c, ports))
            .collect(),
        layered_runtime: Some(layered_runtime()),
    };
    let mut bootstrap = sidecar.render()?;
    if is_native(wasm) {
        meshwake_envoy_bootstrap::use_native_filter(&mut bootstrap);
    }
    let delay = version_of(topo, w).map_or(0, |v| v.inbound_delay_ms);
    if delay > 0 {
        delay_inbound(&mut bootstrap, delay);
    }
    Ok(Some(bootstrap))
}

/// The edge gateway: one listener, a route per edge path.
pub fn edge(topo: &Topology, ports: &Ports, wasm: &Path) -> Value {
    let routes: Vec<Value> = topo
        .edge
        .routes
        .iter()
        .map(|r| json!({ "match": { "prefix": r.path }, "route": route_to(topo, &r.service) }))
        .collect();
    let cfg = plugin_config(
        "edge",
        &topo.edge.name,
        "v1",
        &topo.namespace,
        ports.collector,
    );
    let l = listener(
        "edge",
        ports.edge_listen,
        "INBOUND",
        json!([{ "name": "edge", "domains": ["*"], "routes": routes }]),
        wasm_filter("meshwake-edge", cfg, wasm),
    );
    let mut routed: Vec<&str> = topo
        .edge
        .routes
        .iter()
        .map(|r| r.service.as_str())
        .collect();
    routed.sort_unstable();
    routed.dedup();
    let mut clusters = vec![loopback_cluster("otlp_collector", ports.collector)];
    for s in routed {
        clusters.extend(version_clusters(topo, s, ports));
    }
    bootstrap(&topo.edge.name, ports.edge_admin, vec![l], clusters)
}

/// Admin ports of the Envoys that route to `service` (its callers' sidecars and the edge if
/// it serves an edge route): where a rollout of `service` must change the split.
pub fn routers_of(topo: &Topology, service: &str, ports: &Ports) -> Vec<u16> {
    let mut out: Vec<u16> = ports
        .workloads
        .iter()
        .filter(|(w, _)| {
            topo.services
                .get(&w.service)
                .is_some_and(|s| s.calls.iter().any(|c| c.service() == service))
        })
        .map(|(_, p)| p.admin)
        .collect();
    if topo.edge.routes.iter().any(|r| r.service == service) {
        out.push(ports.edge_admin);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPO: &str = "
traffic: { rate_per_sec: 10, duration_secs: 5 }
edge:
  routes: [{ path: /shop, service: web }]
services:
  web:
    calls: [api, api]
    versions: { v1: {} }
  api:
    versions:
      v1: {}
      v2: { weight: 0 }
";

    fn ports(topo: &Topology) -> Ports {
        let mut next = 20000u16;
        let mut take = || {
            next += 1;
            next
        };
        Ports {
            collector: take(),
            edge_listen: take(),
            edge_admin: take(),
            workloads: topo
                .workloads()
                .into_iter()
                .map(|w| {
                    (
                        w,
                        WorkloadPorts {
                            app: take(),
                            inbound: take(),
                            outbound: take(),
                            admin: take(),
                        },
                    )
                })
                .collect(),
            dead: take(),
        }
    }

    #[test]
    fn sidecar_splits_callee_with_runtime_keys() {
        let topo = Topology::parse(TOPO).unwrap();
        let ports = ports(&topo);
        let web = Workload {
            service: "web".into(),
            version: "v1".into(),
        };
        let b = sidecar(&topo, &web, &ports, Path::new("/m.wasm"))
            .unwrap()
            .unwrap();
        let listeners = &b["static_resources"]["listeners"];
        let vhosts = &listeners[1]["filter_chains"][0]["filters"][0]["typed_config"]
            ["route_config"]["virtual_hosts"];
        assert_eq!(vhosts.as_array().unwrap().len(), 1, "callee listed once");
        assert_eq!(vhosts[0]["domains"], json!(["api", "api:*"]));
        let split = &vhosts[0]["routes"][0]["route"]["weighted_clusters"];
        assert_eq!(split["runtime_key_prefix"], "meshwake_demo.split.api");
        assert_eq!(
            split["clusters"],
            json!([{"name": "api-v1", "weight": 100}, {"name": "api-v2", "weight": 0}])
        );
        let names: Vec<&str> = b["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["local_app", "api-v1", "api-v2", "otlp_collector"]);
        let cfg: Value = serde_json::from_str(
            listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
                ["typed_config"]["config"]["configuration"]["value"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["role"], "inbound");
        assert_eq!(cfg["identity"]["service"], "web");
        assert_eq!(b["layered_runtime"]["layers"][1]["admin_layer"], json!({}));
        assert_eq!(
            runtime_key("api", "api-v2"),
            "meshwake_demo.split.api.api-v2"
        );
    }

    const FAULTS: &str = "
traffic: { rate_per_sec: 10, duration_secs: 5 }
edge:
  routes: [{ path: /shop, service: web }]
services:
  web:
    calls:
      - { service: api, path: /q?x=1, timeout_ms: 250, retries: { num_retries: 3, per_try_timeout_ms: 80 } }
      - { service: api, path: /r, fallback: true }
    versions: { v1: {} }
  api:
    versions:
      v1: { inbound_delay_ms: 40 }
      v2: { weight: 0, unreachable_rate: 0.25 }
";

    fn workload(s: &str, v: &str) -> Workload {
        Workload {
            service: s.into(),
            version: v.into(),
        }
    }

    fn http_filters<'b>(b: &'b Value, listener: &str) -> &'b Value {
        let ls = b["static_resources"]["listeners"].as_array().unwrap();
        let l = ls.iter().find(|l| l["name"] == listener).unwrap();
        &l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    }

    #[test]
    fn calls_become_retry_policies_timeouts_and_crashed_replicas() {
        let topo = Topology::parse(FAULTS).unwrap();
        let ports = ports(&topo);
        let b = sidecar(&topo, &workload("web", "v1"), &ports, Path::new("/m.wasm"))
            .unwrap()
            .unwrap();
        let ls = b["static_resources"]["listeners"].as_array().unwrap();
        let out = ls.iter().find(|l| l["name"] == "outbound").unwrap();
        let routes = &out["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
            ["virtual_hosts"][0]["routes"];
        // The call with options first (its path, without the query), then the plain route.
        assert_eq!(routes[0]["match"], json!({"path": "/q"}));
        assert_eq!(routes[0]["route"]["timeout"], "0.250s");
        assert_eq!(
            routes[0]["route"]["retry_policy"],
            json!({"retry_on": "5xx,reset,connect-failure", "num_retries": 3, "per_try_timeout": "0.080s"})
        );
        // A fallback is the app's business: its route has no Envoy policy.
        assert_eq!(routes[1]["match"], json!({"path": "/r"}));
        assert!(routes[1]["route"].get("retry_policy").is_none());
        assert_eq!(routes[2]["match"], json!({"prefix": "/"}));
        assert_eq!(routes[2]["route"]["timeout"], ROUTE_TIMEOUT);
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        let v2 = clusters.iter().find(|c| c["name"] == "api-v2").unwrap();
        let eps = &v2["load_assignment"]["endpoints"][0]["lb_endpoints"];
        let port = |i: usize| eps[i]["endpoint"]["address"]["socket_address"]["port_value"].clone();
        assert_eq!(
            port(0),
            json!(ports.workloads[&workload("api", "v2")].inbound)
        );
        assert_eq!(port(1), json!(ports.dead));
        assert_eq!(eps[0]["load_balancing_weight"], 750);
        assert_eq!(eps[1]["load_balancing_weight"], 250);
        let v1 = clusters.iter().find(|c| c["name"] == "api-v1").unwrap();
        assert_eq!(
            v1["load_assignment"]["endpoints"][0]["lb_endpoints"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // No delay on web: the meshwake filter comes first on both listeners.
        assert_eq!(
            http_filters(&b, "inbound")[0]["name"],
            "envoy.filters.http.wasm"
        );
    }

    #[test]
    fn inbound_delay_is_a_fault_filter_before_meshwake() {
        let topo = Topology::parse(FAULTS).unwrap();
        let ports = ports(&topo);
        let b = sidecar(&topo, &workload("api", "v1"), &ports, Path::new("/m.wasm"))
            .unwrap()
            .unwrap();
        let inbound = http_filters(&b, "inbound");
        let names: Vec<&str> = inbound
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.fault",
                "envoy.filters.http.wasm",
                "envoy.filters.http.router"
            ]
        );
        assert_eq!(inbound[0]["typed_config"]["delay"]["fixed_delay"], "0.040s");
        assert_eq!(
            http_filters(&b, "outbound")[0]["name"],
            "envoy.filters.http.wasm"
        );
    }

    #[test]
    fn edge_and_routers() {
        let topo = Topology::parse(TOPO).unwrap();
        let ports = ports(&topo);
        let e = edge(&topo, &ports, Path::new("/m.wasm"));
        let route = &e["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["match"]["prefix"], "/shop");
        assert_eq!(route["route"]["cluster"], "web-v1");
        let web = Workload {
            service: "web".into(),
            version: "v1".into(),
        };
        assert_eq!(
            routers_of(&topo, "api", &ports),
            vec![ports.workloads[&web].admin]
        );
        assert_eq!(routers_of(&topo, "web", &ports), vec![ports.edge_admin]);
    }
}
