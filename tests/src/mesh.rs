//! Small meshes for the propagation and identity tests: one Envoy per workload (inbound and
//! outbound listeners in one VM, from the shipped `envoy-config/sidecar.json.tmpl`), an app
//! behind each sidecar that calls the next service through its own outbound listener (copying
//! the trace headers it received, as an instrumented app would), an optional edge
//! (`tests/envoy/mesh-edge.yaml.tmpl`) and one OTLP receiver for every filter.
//!
//! Upstream clusters are named `{service}-{version}`; a caller of a service with several
//! versions splits its calls over them with Envoy `weighted_clusters` (equal weights).
use crate::otlp::ReceivedSpan;
use crate::{http, Envoy, EnvoyOptions, OtlpReceiver, Request, Response, Server};
use meshwake_envoy_bootstrap::{loopback_cluster, Sidecar};
use meshwake_semconv::attr;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Namespace of every workload in these meshes.
pub const NAMESPACE: &str = "test";
/// Identity of the edge.
pub const EDGE_SERVICE: &str = "edge";
pub const EDGE_VERSION: &str = "v1";
/// Request header asking an app to call its downstream this many times (default 1).
pub const FANOUT_HEADER: &str = "x-test-fanout";

/// Trace headers a well-behaved app copies from its request to its own calls.
pub const TRACE_HEADERS: [&str; 9] = [
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// One workload: a deployment `service@version` with its sidecar and app.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    pub service: String,
    pub version: String,
    /// The service the app calls on every request (all its versions), if any.
    pub calls: Option<String>,
    /// Whether the app copies trace headers to its call; `x-request-id` is always copied.
    pub forwards_trace: bool,
    /// Merged into both of the sidecar's plugin configurations.
    pub config: Value,
    /// Instead of a mesh service, the app calls this server outside the mesh:
    /// (cluster name, port). Used to see exactly what leaves an outbound sidecar.
    pub external: Option<(String, u16)>,
    /// Istio's endpoint metadata `filter_metadata.istio.workload` on the external server's
    /// endpoint, as istiod writes it (`workload;namespace;service;revision;cluster`).
    pub external_istio_workload: Option<String>,
}

impl WorkloadSpec {
    pub fn new(service: &str, version: &str) -> Self {
        WorkloadSpec {
            service: service.into(),
            version: version.into(),
            calls: None,
            forwards_trace: true,
            config: json!({}),
            external: None,
            external_istio_workload: None,
        }
    }
    /// The app calls `port` (a test server, cluster `cluster`) through its outbound sidecar.
    pub fn calls_external(mut self, cluster: &str, port: u16) -> Self {
        self.calls = Some(cluster.into());
        self.external = Some((cluster.into(), port));
        self
    }
    /// The external server's endpoint carries Istio's `istio.workload` metadata.
    pub fn external_istio_workload(mut self, value: &str) -> Self {
        self.external_istio_workload = Some(value.into());
        self
    }
    pub fn calls(mut self, service: &str) -> Self {
        self.calls = Some(service.into());
        self
    }
    /// The app drops trace headers on its calls (but keeps `x-request-id`).
    pub fn forgets_trace_headers(mut self) -> Self {
        self.forwards_trace = false;
        self
    }
    pub fn config(mut self, extra: Value) -> Self {
        merge(&mut self.config, &extra);
        self
    }
    /// `service@version`, as in lineage entries.
    pub fn id(&self) -> String {
        format!("{}@{}", self.service, self.version)
    }
    /// The cluster name callers use for this workload.
    pub fn cluster(&self) -> String {
        format!("{}-{}", self.service, self.version)
    }
}

/// `a → b → c ...`, each `v1`, each calling the next.
pub fn chain(services: &[&str]) -> Vec<WorkloadSpec> {
    services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let w = WorkloadSpec::new(s, "v1");
            match services.get(i + 1) {
                Some(next) => w.calls(next),
                None => w,
            }
        })
        .collect()
}

/// What to start.
#[derive(Clone, Debug)]
pub struct MeshSpec {
    pub name: String,
    pub workloads: Vec<WorkloadSpec>,
    /// An edge routing to this service, with this extra plugin configuration.
    pub edge: Option<(String, Value)>,
}

impl MeshSpec {
    pub fn new(name: &str, workloads: Vec<WorkloadSpec>) -> Self {
        MeshSpec {
            name: name.into(),
            workloads,
            edge: None,
        }
    }
    pub fn edge(mut self, entry_service: &str, extra: Value) -> Self {
        self.edge = Some((entry_service.into(), extra));
        self
    }
}

/// A running workload.
pub struct Workload {
    pub spec: WorkloadSpec,
    pub envoy: Envoy,
    pub app: Server,
}

impl Workload {
    pub fn inbound_port(&self) -> u16 {
        self.envoy.port("INBOUND_PORT")
    }
    pub fn outbound_port(&self) -> u16 {
        self.envoy.port("OUTBOUND_PORT")
    }
    /// Requests the app received, in order.
    pub fn received(&self) -> Vec<Request> {
        self.app.requests()
    }
}

/// A running mesh; everything stops on drop.
pub struct Mesh {
    pub otlp: OtlpReceiver,
    pub edge: Option<Envoy>,
    pub workloads: Vec<Workload>,
    /// Dropped last: lets the threads that spawned the Envoys exit.
    _keepers: Vec<std::sync::mpsc::Sender<()>>,
}

/// A free loopback port below the kernel's ephemeral range (32768 and up here).
///
/// Mesh ports are chosen before Envoys that take seconds to start bind them; a port from
/// `free_port()` (ephemeral) can meanwhile be handed to any socket of any test. Ports below
/// the range are only ever taken by explicit binds, and this counter never repeats one
/// within a process (the start differs per process).
pub fn mesh_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    crate::free_port()
}

/// Deep-merge `extra` into `base` (objects merge key by key, anything else replaces).
pub fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// The plugin configuration of one filter.
pub fn plugin_config(role: &str, service: &str, version: &str, extra: &Value) -> String {
    let mut c = json!({
        "role": role,
        "debug_header": true,
        "identity": {
            "service": service,
            "version": version,
            "namespace": NAMESPACE,
            "workload": format!("{service}-{version}"),
        },
        "export": {"cluster": "otlp_collector", "authority": "otlp", "flush_interval_ms": 10},
    });
    merge(&mut c, extra);
    c.to_string()
}

/// A route to every version of a service (`weighted_clusters` when several).
fn route_to(targets: &[(String, u16)]) -> Value {
    match targets {
        [] => json!({ "match": { "prefix": "/" },
                      "direct_response": { "status": 503, "body": { "inline_string": "no upstream" } } }),
        [(one, _)] => json!({ "match": { "prefix": "/" },
                              "route": { "cluster": one, "timeout": "15s" } }),
        many => {
            let clusters: Vec<Value> = many
                .iter()
                .map(|(n, _)| json!({ "name": n, "weight": 1 }))
                .collect();
            json!({ "match": { "prefix": "/" },
                    "route": { "weighted_clusters": { "clusters": clusters }, "timeout": "15s" } })
        }
    }
}

fn clusters(targets: &[(String, u16)], istio_workload: Option<&str>) -> Vec<Value> {
    targets
        .iter()
        .map(|(n, p)| {
            let mut c = loopback_cluster(n, *p);
            if let Some(w) = istio_workload {
                // Istio's endpoint metadata, as istiod writes it on every endpoint.
                c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["metadata"] =
                    json!({ "filter_metadata": { "istio": { "workload": w } } });
            }
            c
        })
        .collect()
}

/// Items of a YAML block sequence at the indentation of the edge template's clusters.
fn block_items(items: &[Value]) -> String {
    items
        .iter()
        .map(|c| format!("  - {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A workload's sidecar, from the template the shipped configs and the demo use too.
struct SidecarPorts {
    admin: u16,
    inbound: u16,
    outbound: u16,
    app: u16,
    otlp: u16,
}

fn sidecar(w: &WorkloadSpec, ports: &SidecarPorts, targets: &[(String, u16)]) -> String {
    let mut bootstrap = Sidecar {
        node_id: w.cluster(),
        node_cluster: w.service.clone(),
        admin_port: ports.admin,
        inbound_port: ports.inbound,
        outbound_port: ports.outbound,
        app_port: ports.app,
        collector_port: ports.otlp,
        wasm_path: crate::paths::meshwake_wasm().display().to_string(),
        failure_policy: "FAIL_CLOSED".into(),
        route_timeout: "15s".into(),
        inbound_config: plugin_config("inbound", &w.service, &w.version, &w.config),
        outbound_config: plugin_config("outbound", &w.service, &w.version, &w.config),
        outbound_virtual_hosts: json!([{ "name": "upstream", "domains": ["*"], "routes": [route_to(targets)] }]),
        upstream_clusters: clusters(targets, w.external_istio_workload.as_deref()),
        layered_runtime: None,
    }
    .render()
    .unwrap();
    if crate::Build::from_env() == crate::Build::Native {
        meshwake_envoy_bootstrap::use_native_filter(&mut bootstrap);
    }
    // Prometheus labels from the filter's stat names, so a scrape of /stats/prometheus has
    // meshwake_requests_total{...} as in production; histograms flushed on admin reads.
    let tags: Value = serde_json::from_str(&crate::stats_tags::flow_yaml()).unwrap();
    bootstrap["stats_config"] = json!({ "stats_tags": tags });
    bootstrap["stats_flush_on_admin"] = json!(true);
    // Multi-line, so that EnvoyOptions takes it as the configuration itself (JSON is YAML).
    serde_json::to_string_pretty(&bootstrap).unwrap()
}

/// The app of a workload: answers with who it is, the headers it got, and what its
/// downstream answered; calls downstream through its sidecar's outbound listener.
fn app(spec: &WorkloadSpec, outbound_port: Option<u16>) -> Server {
    let (service, version, forwards) = (
        spec.service.clone(),
        spec.version.clone(),
        spec.forwards_trace,
    );
    Server::start(move |req| {
        let mut downstream = Vec::new();
        let mut status = 200;
        if let Some(port) = outbound_port {
            let fanout: usize = req
                .header(FANOUT_HEADER)
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let mut headers: Vec<(&str, &[u8])> = Vec::new();
            for (k, v) in &req.headers {
                let copy = k == "x-request-id" || (forwards && TRACE_HEADERS.contains(&k.as_str()));
                if copy {
                    headers.push((k.as_str(), v.as_slice()));
                }
            }
            for _ in 0..fanout {
                match http::request(port, "GET", &req.path, &headers, b"") {
                    Ok(r) => {
                        if r.status != 200 {
                            status = 502;
                        }
                        downstream.push(
                            serde_json::from_slice(&r.body).unwrap_or_else(
                                |_| json!({"status": r.status, "body": r.body_str()}),
                            ),
                        );
                    }
                    Err(e) => {
                        status = 502;
                        downstream.push(json!({"error": e.to_string()}));
                    }
                }
            }
        }
        let received: serde_json::Map<String, Value> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value::String(String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        let body = json!({
            "service": service,
            "version": version,
            "received": received,
            "downstream": downstream,
        });
        Response::new(status)
            .with_header("content-type", "application/json")
            .with_body(body.to_string())
    })
}

impl Mesh {
    /// Start every app and Envoy (Envoys in parallel) and wait until all are ready.
    pub fn start(spec: MeshSpec) -> Mesh {
        let otlp = OtlpReceiver::start();
        let inbound: Vec<u16> = spec.workloads.iter().map(|_| mesh_port()).collect();
        let outbound: Vec<u16> = spec.workloads.iter().map(|_| mesh_port()).collect();
        let targets_of = |service: &str| -> Vec<(String, u16)> {
            spec.workloads
                .iter()
                .zip(&inbound)
                .filter(|(w, _)| w.service == service)
                .map(|(w, p)| (w.cluster(), *p))
                .collect()
        };
        let mut opts = Vec::new();
        let mut apps = Vec::new();
        for (i, w) in spec.workloads.iter().enumerate() {
            let targets = match &w.external {
                Some((cluster, port)) => vec![(cluster.clone(), *port)],
                None => w.calls.as_deref().map(targets_of).unwrap_or_default(),
            };
            assert!(
                w.calls.is_none() || !targets.is_empty(),
                "{} calls an unknown service",
                w.id()
            );
            let server = app(w, w.calls.as_ref().map(|_| outbound[i]));
            let ports = SidecarPorts {
                admin: mesh_port(),
                inbound: inbound[i],
                outbound: outbound[i],
                app: server.port(),
                otlp: otlp.port(),
            };
            opts.push(
                EnvoyOptions::default()
                    .name(format!("{}-{}", spec.name, w.cluster()))
                    .template(sidecar(w, &ports, &targets))
                    .var("ADMIN_PORT", ports.admin)
                    .var("INBOUND_PORT", ports.inbound)
                    .var("OUTBOUND_PORT", ports.outbound),
            );
            apps.push(server);
        }
        if let Some((entry, extra)) = &spec.edge {
            let targets = targets_of(entry);
            assert!(
                !targets.is_empty(),
                "edge routes to unknown service {entry}"
            );
            opts.push(
                crate::stats_tags::with_stats_tags(EnvoyOptions::default())
                    .name(format!("{}-edge", spec.name))
                    .template("mesh-edge.yaml.tmpl")
                    .var("ADMIN_PORT", mesh_port())
                    .var("LISTEN_PORT", mesh_port())
                    .var("OTLP_PORT", otlp.port())
                    .var("EDGE_ROUTE", route_to(&targets))
                    .var("UPSTREAM_CLUSTERS", block_items(&clusters(&targets, None)))
                    .var(
                        "EDGE_CONFIG",
                        json_string(&plugin_config("edge", EDGE_SERVICE, EDGE_VERSION, extra)),
                    ),
            );
        }
        let (mut envoys, keepers) = start_all(opts);
        let edge = spec.edge.as_ref().map(|_| envoys.pop().unwrap());
        let workloads = spec
            .workloads
            .into_iter()
            .zip(envoys)
            .zip(apps)
            .map(|((spec, envoy), app)| Workload { spec, envoy, app })
            .collect();
        Mesh {
            otlp,
            edge,
            workloads,
            _keepers: keepers,
        }
    }

    /// The workload `service@version`.
    pub fn workload(&self, service: &str, version: &str) -> &Workload {
        self.workloads
            .iter()
            .find(|w| w.spec.service == service && w.spec.version == version)
            .unwrap_or_else(|| panic!("no workload {service}@{version}"))
    }

    /// The edge's listener port (panics without an edge).
    pub fn edge_port(&self) -> u16 {
        self.edge.as_ref().expect("mesh has no edge").listen_port()
    }

    /// `GET path` at the edge with text headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http::get(self.edge_port(), path, headers)
    }

    /// Every span received so far for this trace id (hex).
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.otlp
            .spans()
            .into_iter()
            .filter(|s| s.trace_id_hex() == trace_id)
            .collect()
    }

    /// Wait until the trace has `n` spans.
    pub fn wait_trace(&self, trace_id: &str, n: usize, secs: u64) -> Vec<ReceivedSpan> {
        crate::wait_for(secs, &format!("{n} spans of trace {trace_id}"), || {
            let t = self.trace(trace_id);
            (t.len() >= n).then_some(t)
        })
    }

    /// Every Envoy's stats summed by name (edge included).
    pub fn stats_sum(&self, name: &str) -> u64 {
        self.workloads
            .iter()
            .map(|w| w.envoy.stat(name))
            .sum::<u64>()
            + self.edge.as_ref().map_or(0, |e| e.stat(name))
    }
}

/// The span of a service in a role (`inbound`, `outbound`, `edge`) among `spans`.
pub fn span_of<'a>(spans: &'a [ReceivedSpan], service: &str, role: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| {
            s.resource_str(attr::SERVICE_NAME).as_deref() == Some(service)
                && s.attr_str(attr::MESHWAKE_ROLE).as_deref() == Some(role)
        })
        .collect()
}

/// The `meshwake.lineage` attribute of a span.
pub fn lineage(span: &ReceivedSpan) -> Vec<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match span.attr(attr::MESHWAKE_LINEAGE) {
        Some(V::ArrayValue(a)) => a
            .values
            .iter()
            .filter_map(|v| match &v.value {
                Some(V::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A JSON string literal (valid as a YAML double-quoted scalar).
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Start several Envoys at once (each compiles the module: in parallel it is much faster).
///
/// Each Envoy is spawned by a helper thread that then stays parked until `keepers` is
/// dropped: Envoy gets SIGTERM when the thread that spawned it exits (parent-death signal),
/// so that thread must outlive the Envoy.
pub fn start_all(opts: Vec<EnvoyOptions>) -> (Vec<Envoy>, Vec<std::sync::mpsc::Sender<()>>) {
    let mut pending = Vec::new();
    let mut keepers = Vec::new();
    for o in opts {
        let (tx_envoy, rx_envoy) = std::sync::mpsc::channel();
        let (tx_stop, rx_stop) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let started = std::panic::catch_unwind(move || Envoy::start(o));
            let ok = started.is_ok();
            let _ = tx_envoy.send(started);
            if ok {
                let _ = rx_stop.recv();
            }
        });
        pending.push(rx_envoy);
        keepers.push(tx_stop);
    }
    let envoys = pending
        .into_iter()
        .map(
            |rx| match rx.recv().expect("envoy starter thread vanished") {
                Ok(e) => e,
                Err(p) => std::panic::resume_unwind(p),
            },
        )
        .collect();
    (envoys, keepers)
}

/// A parsed `traceparent`: (version, trace id, parent id, flags), all lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traceparent {
    pub version: String,
    pub trace_id: String,
    pub parent_id: String,
    pub flags: String,
}

impl Traceparent {
    /// The sampled bit of the flags.
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.flags, 16).unwrap() & 1 == 1
    }
}

/// Parse a `traceparent` strictly as version 00 (what the filter writes); panics otherwise.
pub fn traceparent(v: &str) -> Traceparent {
    let p: Vec<&str> = v.split('-').collect();
    assert_eq!(p.len(), 4, "bad traceparent {v:?}");
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        hex(p[0], 2) && hex(p[1], 32) && hex(p[2], 16) && hex(p[3], 2),
        "bad traceparent {v:?}"
    );
    Traceparent {
        version: p[0].into(),
        trace_id: p[1].into(),
        parent_id: p[2].into(),
        flags: p[3].into(),
    }
}

/// A request's `traceparent`, parsed; panics when absent or repeated.
pub fn traceparent_of(r: &Request) -> Traceparent {
    let all = r.header_all("traceparent");
    assert_eq!(all.len(), 1, "expected one traceparent, got {all:?}");
    traceparent(&all[0])
}

/// Headers of a request as a map of first values (for assertions with readable failures).
pub fn header_map(r: &Request) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in &r.headers {
        m.entry(k.clone())
            .or_insert_with(|| String::from_utf8_lossy(v).into_owned());
    }
    m
}
