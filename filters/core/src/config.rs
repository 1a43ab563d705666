//! Plugin configuration: parsed once per VM into an immutable value shared by every request.
//!
//! Never fails: invalid JSON, wrong types and out-of-range numbers each produce one clear
//! [`ConfigIssue`] naming the key, and that key falls back to its default while every
//! other key keeps its configured value. Unknown keys are warned about and ignored.
//! `{}` and the empty string both give the documented defaults (see `filters/CONFIG.md`).
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Where this filter instance sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Server side of a workload: continues the incoming context, creates a SERVER span.
    Inbound,
    /// Client side of a workload: creates a CLIENT span as child of what the app sent.
    Outbound,
    /// Mesh edge / ingress gateway: a SERVER span, and outside context is not trusted by default.
    Edge,
}

impl Role {
    /// The `meshwake.role` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inbound => "inbound",
            Role::Outbound => "outbound",
            Role::Edge => "edge",
        }
    }
}

/// A trace-context wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// W3C Trace Context (`traceparent`, `tracestate`).
    Tracecontext,
    /// B3 single header (`b3`).
    B3,
    /// B3 multi header (`x-b3-*`).
    B3multi,
}

/// Which formats to read (in priority order) and which to write, like `OTEL_PROPAGATORS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Propagation {
    pub extract: Vec<Format>,
    pub inject: Vec<Format>,
    /// Also write B3 (the format received) when the request arrived with B3, so a mesh
    /// migrating from Zipkin keeps working hop by hop.
    pub inject_received_b3: bool,
    /// Read and forward W3C `baggage`.
    pub baggage: bool,
}

impl Default for Propagation {
    fn default() -> Self {
        Propagation {
            extract: vec![Format::Tracecontext, Format::B3, Format::B3multi],
            inject: vec![Format::Tracecontext],
            inject_received_b3: true,
            baggage: true,
        }
    }
}

/// Sampling: parent-based, with a ratio for new root traces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// Probability of sampling a trace this filter starts, deterministic on the trace id.
    pub ratio: f64,
    /// Follow the incoming sampled flag (OpenTelemetry's ParentBased).
    pub parent_based: bool,
    /// A request header that forces sampling when present with value `1`/`true` (debugging).
    pub force_header: Option<String>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            ratio: 1.0,
            parent_based: true,
            force_header: Some("x-meshwake-force-sample".into()),
        }
    }
}

/// The edge trust policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Edge {
    /// Continue trace context arriving from outside the mesh. Off: start a new trace and keep
    /// the outside context only as a link.
    pub trust_incoming_context: bool,
    /// This mesh's `tracestate` key: entries under it arriving from outside are dropped.
    pub tracestate_key: String,
    /// Baggage keys owned by this mesh: dropped when arriving from outside.
    pub baggage_prefix: String,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            trust_incoming_context: false,
            tracestate_key: "meshwake".into(),
            baggage_prefix: "meshwake.".into(),
        }
    }
}

/// Who this workload is, and how peers prove who they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    pub service: Option<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
    pub workload: Option<String>,
    /// Extra deployment attributes (git revision, rollout stage, canary weight...).
    pub attributes: BTreeMap<String, String>,
    /// Shared key for HMAC-SHA256 over the identity header; off when absent.
    pub hmac_key: Option<String>,
    /// Patterns that derive a peer's service/version from an upstream cluster name when the
    /// peer answered without identity, e.g. `{service}-{version}`.
    pub cluster_patterns: Vec<String>,
    /// How many `service@version` hops the lineage keeps.
    pub lineage_max: usize,
}

/// OTLP/HTTP export of spans through an Envoy cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Export {
    /// Envoy cluster of the collector.
    pub cluster: String,
    /// `:authority` sent to the collector.
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub max_queue_spans: usize,
    pub max_batch_spans: usize,
    pub flush_interval_ms: u64,
    pub max_in_flight: usize,
    pub max_retries: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for Export {
    fn default() -> Self {
        Export {
            cluster: "otlp_collector".into(),
            authority: "otlp-collector".into(),
            path: "/v1/traces".into(),
            timeout_ms: 5000,
            max_queue_spans: 8192,
            max_batch_spans: 512,
            flush_interval_ms: 1000,
            max_in_flight: 4,
            max_retries: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
        }
    }
}

/// Metric naming scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// `meshwake_requests_total`, ...
    Meshwake,
    /// `istio_requests_total`, ... so Istio/Kiali/Grafana dashboards work unchanged.
    Istio,
}

/// Request metrics as Envoy stats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
    pub naming: Naming,
    /// Distinct label sets per VM before values collapse to `overflow`.
    pub max_label_sets: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            naming: Naming::Meshwake,
            max_label_sets: 1000,
        }
    }
}

/// Span creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spans {
    pub enabled: bool,
    /// Route templates tried in order for the span name and `http.route`, e.g. `/users/{id}`.
    /// Without a match the name is the method and a path whose id-like segments are replaced.
    pub routes: Vec<String>,
}

impl Default for Spans {
    fn default() -> Self {
        Spans {
            enabled: true,
            routes: Vec::new(),
        }
    }
}

/// Continuing the trace of apps that forget trace headers on their outbound calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recovery {
    pub enabled: bool,
    pub ttl_ms: u64,
    /// Slots in the VM-wide table (fixed memory; collisions overwrite and are counted).
    pub slots: u32,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            enabled: true,
            ttl_ms: 30_000,
            slots: 4096,
        }
    }
}

/// Resource attributes beyond identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resource {
    pub environment: Option<String>,
    /// Any other resource attributes, verbatim.
    pub attributes: BTreeMap<String, String>,
}

/// The whole plugin configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Absent: inferred from Envoy's listener direction, else outbound.
    pub role: Option<Role>,
    pub propagation: Propagation,
    pub sampling: Sampling,
    pub edge: Edge,
    pub identity: Identity,
    pub export: Export,
    pub metrics: Metrics,
    pub spans: Spans,
    pub context_recovery: Recovery,
    pub resource: Resource,
    /// Add `x-meshwake: meshwake/<version>` to responses (shows the filter ran); never at the edge.
    pub debug_header: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: None,
            propagation: Propagation::default(),
            sampling: Sampling::default(),
            edge: Edge::default(),
            identity: Identity::default(),
            export: Export::default(),
            metrics: Metrics::default(),
            spans: Spans::default(),
            context_recovery: Recovery::default(),
            resource: Resource::default(),
            debug_header: true,
        }
    }
}

/// One problem found in the configuration; the filter logs each once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigIssue {
    /// Not JSON at all: every key takes its default.
    InvalidJson(String),
    /// The top level is not an object.
    NotAnObject,
    /// A key with a wrong type or value: that key takes its default.
    InvalidValue { key: String, error: String },
    /// A number out of range: clamped.
    OutOfRange {
        key: String,
        value: String,
        used: String,
    },
    /// A key this version does not know: ignored.
    UnknownKey(String),
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigIssue::InvalidJson(e) => write!(
                f,
                "configuration is not valid JSON ({e}): using defaults for every key"
            ),
            ConfigIssue::NotAnObject => write!(
                f,
                "configuration must be a JSON object: using defaults for every key"
            ),
            ConfigIssue::InvalidValue { key, error } => write!(
                f,
                "configuration key `{key}` is invalid ({error}): using its default"
            ),
            ConfigIssue::OutOfRange { key, value, used } => {
                write!(
                    f,
                    "configuration key `{key}` = {value} is out of range: using {used}"
                )
            }
            ConfigIssue::UnknownKey(k) => write!(f, "unknown configuration key `{k}` ignored"),
        }
    }
}

impl ConfigIssue {
    /// Warnings leave the configured meaning intact; errors replaced something by a default.
    pub fn is_error(&self) -> bool {
        !matches!(self, ConfigIssue::UnknownKey(_))
    }
}

/// Bounds applied after parsing.
pub mod limits {
    pub const MAX_QUEUE_SPANS: usize = 1 << 20;
    pub const MAX_BATCH_SPANS: usize = 8192;
    pub const MAX_IN_FLIGHT: usize = 64;
    pub const MAX_LABEL_SETS: usize = 100_000;
    pub const MAX_LINEAGE: usize = 32;
    pub const DEFAULT_LINEAGE: usize = 8;
    pub const MAX_RECOVERY_SLOTS: u32 = 1 << 16;
    pub const MIN_FLUSH_MS: u64 = 10;
}

impl Config {
    /// Parse plugin configuration bytes. Never fails; see the module docs.
    pub fn parse(raw: &[u8]) -> (Config, Vec<ConfigIssue>) {
        let mut issues = Vec::new();
        let text = String::from_utf8_lossy(raw);
        if text.trim().is_empty() {
            return (Config::default().normalized(&mut issues), issues);
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                issues.push(ConfigIssue::InvalidJson(e.to_string()));
                return (Config::default().normalized(&mut issues), issues);
            }
        };
        if !value.is_object() {
            issues.push(ConfigIssue::NotAnObject);
            return (Config::default().normalized(&mut issues), issues);
        }
        let (cfg, mut found) = repair(&value);
        issues.append(&mut found);
        (cfg.normalized(&mut issues), issues)
    }

    /// Clamp numbers into range, recording what was changed.
    fn normalized(mut self, issues: &mut Vec<ConfigIssue>) -> Config {
        let mut clamp_usize = |key: &str, v: &mut usize, lo: usize, hi: usize| {
            if *v < lo || *v > hi {
                let used = (*v).clamp(lo, hi);
                issues.push(ConfigIssue::OutOfRange {
                    key: key.into(),
                    value: v.to_string(),
                    used: used.to_string(),
                });
                *v = used;
            }
        };
        clamp_usize(
            "export.max_queue_spans",
            &mut self.export.max_queue_spans,
            1,
            limits::MAX_QUEUE_SPANS,
        );
        clamp_usize(
            "export.max_batch_spans",
            &mut self.export.max_batch_spans,
            1,
            limits::MAX_BATCH_SPANS,
        );
        clamp_usize(
            "export.max_in_flight",
            &mut self.export.max_in_flight,
            1,
            limits::MAX_IN_FLIGHT,
        );
        clamp_usize(
            "metrics.max_label_sets",
            &mut self.metrics.max_label_sets,
            1,
            limits::MAX_LABEL_SETS,
        );
        if self.identity.lineage_max == 0 {
            self.identity.lineage_max = limits::DEFAULT_LINEAGE;
        }
        clamp_usize(
            "identity.lineage_max",
            &mut self.identity.lineage_max,
            1,
            limits::MAX_LINEAGE,
        );
        if !(0.0..=1.0).contains(&self.sampling.ratio) || self.sampling.ratio.is_nan() {
            let used = if self.sampling.ratio.is_nan() {
                1.0
            } else {
                self.sampling.ratio.clamp(0.0, 1.0)
            };
            issues.push(ConfigIssue::OutOfRange {
                key: "sampling.ratio".into(),
                value: self.sampling.ratio.to_string(),
                used: used.to_string(),
            });
            self.sampling.ratio = used;
        }
        if self.export.flush_interval_ms < limits::MIN_FLUSH_MS {
            issues.push(ConfigIssue::OutOfRange {
                key: "export.flush_interval_ms".into(),
                value: self.export.flush_interval_ms.to_string(),
                used: limits::MIN_FLUSH_MS.to_string(),
            });
            self.export.flush_interval_ms = limits::MIN_FLUSH_MS;
        }
        if self.context_recovery.slots == 0
            || self.context_recovery.slots > limits::MAX_RECOVERY_SLOTS
        {
            let used = self
                .context_recovery
                .slots
                .clamp(1, limits::MAX_RECOVERY_SLOTS);
            issues.push(ConfigIssue::OutOfRange {
                key: "context_recovery.slots".into(),
                value: self.context_recovery.slots.to_string(),
                used: used.to_string(),
            });
            self.context_recovery.slots = used;
        }
        if self.propagation.inject.is_empty() && self.propagation.extract.is_empty() {
            // Legal (a metrics-only filter) but worth saying: nothing will be propagated.
            log::warn!("propagation.extract and propagation.inject are both empty: trace context is not propagated");
        }
        self
    }
}

/// Merge the user's keys into the defaults one at a time, two levels deep (section.key),
/// keeping each key only if the whole configuration still deserializes with it. Every key
/// is named precisely in its issue, and one bad key never costs the others their values.
/// Runs once per configuration, so the repeated deserialization is cheap enough, and it
/// keeps the module small (no path-tracking deserializer wrappers).
fn repair(user: &Value) -> (Config, Vec<ConfigIssue>) {
    let mut issues = Vec::new();
    let Ok(defaults) = serde_json::to_value(Config::default()) else {
        return (Config::default(), issues);
    };
    let (Some(user), Some(defaults)) = (user.as_object(), defaults.as_object()) else {
        return (Config::default(), issues);
    };
    let mut merged = defaults.clone();
    let accept = |merged: &serde_json::Map<String, Value>| {
        serde_json::from_value::<Config>(Value::Object(merged.clone()))
    };
    for (section, uv) in user {
        let Some(dv) = defaults.get(section) else {
            issues.push(ConfigIssue::UnknownKey(section.clone()));
            continue;
        };
        match (dv.as_object(), uv.as_object()) {
            (Some(dsec), Some(usec)) => {
                for (field, fv) in usec {
                    let key = format!("{section}.{field}");
                    if !dsec.contains_key(field) {
                        issues.push(ConfigIssue::UnknownKey(key));
                        continue;
                    }
                    let Some(Value::Object(msec)) = merged.get_mut(section) else {
                        continue;
                    };
                    let prev = msec.insert(field.clone(), fv.clone());
                    if let Err(e) = accept(&merged) {
                        if let (Some(Value::Object(msec)), Some(prev)) =
                            (merged.get_mut(section), prev)
                        {
                            msec.insert(field.clone(), prev);
                        }
                        issues.push(ConfigIssue::InvalidValue {
                            key,
                            error: clean_error(&e),
                        });
                    }
                }
            }
            _ => {
                let prev = merged.insert(section.clone(), uv.clone());
                if let Err(e) = accept(&merged) {
                    if let Some(prev) = prev {
                        merged.insert(section.clone(), prev);
                    }
                    issues.push(ConfigIssue::InvalidValue {
                        key: section.clone(),
                        error: clean_error(&e),
                    });
                }
            }
        }
    }
    match accept(&merged) {
        Ok(cfg) => (cfg, issues),
        Err(e) => {
            issues.push(ConfigIssue::InvalidJson(clean_error(&e)));
            (Config::default(), issues)
        }
    }
}

/// serde_json's message without the meaningless "at line 0 column 0" of value errors.
fn clean_error(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Config, Vec<ConfigIssue>) {
        Config::parse(s.as_bytes())
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn empty_and_empty_object_give_defaults() {
        for raw in ["", "   ", "{}"] {
            let (cfg, issues) = parse(raw);
            assert_eq!(
                cfg,
                Config {
                    identity: Identity {
                        lineage_max: 8,
                        ..Default::default()
                    },
                    ..Default::default()
                }
            );
            assert!(issues.is_empty(), "{raw:?}: {issues:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn full_config_round_trips() {
        let (cfg, issues) = parse(
            r#"{"role":"edge","propagation":{"extract":["b3","tracecontext"],"inject":["tracecontext","b3multi"]},
               "sampling":{"ratio":0.25},"identity":{"service":"reviews","version":"v2","hmac_key":"k"},
               "export":{"cluster":"otel","max_batch_spans":100},"metrics":{"naming":"istio"},"debug_header":true}"#,
        );
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(cfg.role, Some(Role::Edge));
        assert_eq!(
            cfg.propagation.extract,
            vec![Format::B3, Format::Tracecontext]
        );
        assert_eq!(cfg.sampling.ratio, 0.25);
        assert_eq!(cfg.identity.version.as_deref(), Some("v2"));
        assert_eq!(cfg.export.cluster, "otel");
        assert_eq!(cfg.export.max_batch_spans, 100);
        assert_eq!(cfg.metrics.naming, Naming::Istio);
        assert!(cfg.debug_header);
    }

    #[rustfmt::skip]
    const BAD: &[(&str, &str)] = &[
        // input, expected issue text fragment
        ("not json",                               "not valid JSON"),
        ("[1,2]",                                  "must be a JSON object"),
        (r#"{"role":"sideways"}"#,                 "`role` is invalid"),
        (r#"{"sampling":{"ratio":"half"}}"#,       "`sampling.ratio` is invalid"),
        (r#"{"sampling":{"ratio":7}}"#,            "`sampling.ratio` = 7 is out of range"),
        (r#"{"export":{"max_in_flight":0}}"#,      "`export.max_in_flight` = 0 is out of range"),
        (r#"{"export":{"max_queue_spans":-1}}"#,   "`export.max_queue_spans` is invalid"),
        (r#"{"colour":"blue"}"#,                   "unknown configuration key `colour`"),
        (r#"{"export":{"clustr":"x"}}"#,           "unknown configuration key `export.clustr`"),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn bad_config_names_the_key_and_keeps_defaults() {
        for (raw, want) in BAD {
            let (_, issues) = parse(raw);
            let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
            assert!(text.iter().any(|t| t.contains(want)), "{raw}: {text:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn one_bad_key_keeps_the_others() {
        let (cfg, issues) = parse(
            r#"{"sampling":{"ratio":"x"},"export":{"cluster":"c1","bogus":1},"metrics":{"naming":"istio"}}"#,
        );
        assert_eq!(cfg.sampling.ratio, 1.0);
        assert_eq!(cfg.export.cluster, "c1");
        assert_eq!(cfg.metrics.naming, Naming::Istio);
        assert_eq!(issues.len(), 2, "{issues:?}");
    }
}
