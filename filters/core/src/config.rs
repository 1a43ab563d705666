//! Plugin configuration: parsed once per VM into an immutable value shared by every request.
//!
//! Never fails: invalid JSON, wrong types and out-of-range numbers each produce one clear
//! [`ConfigIssue`] naming the key, and that key falls back to its default while every
//! other key keeps its configured value. Unknown keys are warned about and ignored.
//! `{}` and the empty string both give the documented defaults (see `filters/CONFIG.md`).
//!
//! A section that tunes one crate is that crate's own type, so each default is written once,
//! next to the code it tunes: `identity` is [`IdentityConfig`], `export` is [`ExportConfig`],
//! the formats are [`Propagator`]s, `metrics.naming` is a [`MetricPrefix`]. [`crate::setup()`]
//! turns a `Config` into the runtime objects.
use crate::json::{self, Value};
use meshwake_identity::IdentityConfig;
use meshwake_telemetry::metrics::MetricPrefix;
use meshwake_telemetry::ExportConfig;
use meshwake_trace_context::propagator::Propagator;
use serde::{Deserialize, Serialize};
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
        use meshwake_semconv::attr::values;
        match self {
            Role::Inbound => values::ROLE_INBOUND,
            Role::Outbound => values::ROLE_OUTBOUND,
            Role::Edge => values::ROLE_EDGE,
        }
    }
}

/// Which formats to read (in priority order) and which to write, like `OTEL_PROPAGATORS`.
/// [`Propagator::Baggage`] is not accepted in the lists: `baggage` switches it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Propagation {
    pub extract: Vec<Propagator>,
    pub inject: Vec<Propagator>,
    /// Also write B3 (the format received) when the request arrived with B3, so a mesh
    /// migrating from Zipkin keeps working hop by hop.
    pub inject_received_b3: bool,
    /// Read and forward W3C `baggage`.
    pub baggage: bool,
}

impl Default for Propagation {
    fn default() -> Self {
        Propagation {
            extract: vec![
                Propagator::TraceContext,
                Propagator::B3Single,
                Propagator::B3Multi,
            ],
            inject: vec![Propagator::TraceContext],
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
            force_header: Some(meshwake_semconv::header::FORCE_SAMPLE.into()),
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

/// Request metrics as Envoy stats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub enabled: bool,
    /// `meshwake_requests_total`... or `istio_requests_total`... (Istio dashboards unchanged).
    pub naming: MetricPrefix,
    /// Distinct label sets per VM before values collapse to `overflow`.
    pub max_label_sets: usize,
    /// Also record `*_request_bytes`/`*_response_bytes` histograms (two more property reads
    /// per request, the costliest host calls: off unless asked for).
    pub size_histograms: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            naming: MetricPrefix::Meshwake,
            max_label_sets: 1000,
            size_histograms: false,
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
    /// Attributes Envoy only knows at stream end and that each cost a property read:
    /// `network.protocol.version`, body sizes, and the upstream cluster and host of inbound
    /// spans (outbound spans always carry their upstream). Off by default for speed.
    pub stream_details: bool,
}

impl Default for Spans {
    fn default() -> Self {
        Spans {
            enabled: true,
            routes: Vec::new(),
            stream_details: false,
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
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Absent: inferred from Envoy's listener direction, else outbound.
    pub role: Option<Role>,
    pub propagation: Propagation,
    pub sampling: Sampling,
    pub edge: Edge,
    pub identity: IdentityConfig,
    pub export: ExportConfig,
    pub metrics: Metrics,
    pub spans: Spans,
    pub context_recovery: Recovery,
    pub resource: Resource,
    /// Add `x-meshwake: meshwake/<version>` to responses (shows the filter ran); never at the edge.
    pub debug_header: bool,
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
    /// One entry of a list (a route template, a cluster pattern) is unusable: the entry is
    /// ignored, the rest of the list is kept.
    EntryIgnored {
        key: &'static str,
        entry: String,
        reason: String,
    },
    /// Legal but probably not meant: neither extracts nor injects any trace context.
    NothingPropagated,
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
            ConfigIssue::EntryIgnored { key, entry, reason } => {
                write!(f, "{key}: `{entry}` ignored: {reason}")
            }
            ConfigIssue::NothingPropagated => f.write_str(
                "propagation.extract and propagation.inject are both empty: trace context is not propagated",
            ),
        }
    }
}

impl ConfigIssue {
    /// Warnings leave the configured meaning intact; errors replaced something by a default.
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            ConfigIssue::UnknownKey(_)
                | ConfigIssue::EntryIgnored { .. }
                | ConfigIssue::NothingPropagated
        )
    }
}

/// Bounds applied after parsing.
pub mod limits {
    pub const MAX_QUEUE_SPANS: usize = 1 << 20;
    pub const MAX_BATCH_SPANS: usize = 8192;
    pub const MAX_IN_FLIGHT: usize = 64;
    pub const MAX_LABEL_SETS: usize = 100_000;
    pub const MAX_LINEAGE: usize = meshwake_identity::lineage::MAX_LINEAGE_CAP;
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
        let members = match json::parse(&text) {
            Ok(Value::Object(members)) => members,
            Ok(_) => {
                issues.push(ConfigIssue::NotAnObject);
                return (Config::default().normalized(&mut issues), issues);
            }
            Err(e) => {
                issues.push(ConfigIssue::InvalidJson(e.to_string()));
                return (Config::default().normalized(&mut issues), issues);
            }
        };
        let mut cfg = Config::default();
        cfg.repair(&members, &mut issues);
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
            // Documented: `0` means the default.
            self.identity.lineage_max = IdentityConfig::default().lineage_max;
        }
        clamp_usize(
            "identity.lineage_max",
            &mut self.identity.lineage_max,
            1,
            limits::MAX_LINEAGE,
        );
        // `sampling.ratio` was clamped (and reported, as written) while reading it; this
        // only guards the invariant without formatting a float (keeps flt2dec out).
        if !(0.0..=1.0).contains(&self.sampling.ratio) {
            self.sampling.ratio = 1.0;
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
            issues.push(ConfigIssue::NothingPropagated);
        }
        self
    }
}

/// Sections: top-level keys whose value is an object of keys, each checked on its own.
const SECTIONS: &[&str] = &[
    "propagation",
    "sampling",
    "edge",
    "identity",
    "export",
    "metrics",
    "spans",
    "context_recovery",
    "resource",
];

type Check<T> = Result<T, String>;

impl Config {
    /// Apply the user's keys to the defaults one at a time, two levels deep (section.key).
    /// A key with a wrong type or value keeps its default and is named precisely in its
    /// issue; one bad key never costs the others their values.
    fn repair(&mut self, user: &[(String, Value)], issues: &mut Vec<ConfigIssue>) {
        for (key, v) in user {
            let result = if SECTIONS.contains(&key.as_str()) {
                let Value::Object(fields) = v else {
                    issues.push(ConfigIssue::InvalidValue {
                        key: key.clone(),
                        error: expected("an object", v),
                    });
                    continue;
                };
                for (field, fv) in fields {
                    let full = format!("{key}.{field}");
                    match self.set_field(key, field, fv, &full, issues) {
                        None => issues.push(ConfigIssue::UnknownKey(full)),
                        Some(Err(error)) => {
                            issues.push(ConfigIssue::InvalidValue { key: full, error })
                        }
                        Some(Ok(())) => {}
                    }
                }
                continue;
            } else {
                match key.as_str() {
                    "role" => opt(v, role).map(|r| self.role = r),
                    "debug_header" => boolean(v).map(|b| self.debug_header = b),
                    _ => {
                        issues.push(ConfigIssue::UnknownKey(key.clone()));
                        continue;
                    }
                }
            };
            if let Err(error) = result {
                issues.push(ConfigIssue::InvalidValue {
                    key: key.clone(),
                    error,
                });
            }
        }
    }

    /// Set `section.field` (`full`); `None` for a key the schema does not have.
    fn set_field(
        &mut self,
        section: &str,
        field: &str,
        v: &Value,
        full: &str,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Check<()>> {
        let (p, s, e, i, x) = (
            &mut self.propagation,
            &mut self.sampling,
            &mut self.edge,
            &mut self.identity,
            &mut self.export,
        );
        Some(match (section, field) {
            ("propagation", "extract") => array(v, format).map(|f| p.extract = f),
            ("propagation", "inject") => array(v, format).map(|f| p.inject = f),
            ("propagation", "inject_received_b3") => boolean(v).map(|b| p.inject_received_b3 = b),
            ("propagation", "baggage") => boolean(v).map(|b| p.baggage = b),
            ("sampling", "ratio") => ratio(v, full, issues).map(|r| s.ratio = r),
            ("sampling", "parent_based") => boolean(v).map(|b| s.parent_based = b),
            ("sampling", "force_header") => opt(v, string).map(|h| s.force_header = h),
            ("edge", "trust_incoming_context") => boolean(v).map(|b| e.trust_incoming_context = b),
            ("edge", "tracestate_key") => string(v).map(|t| e.tracestate_key = t),
            ("edge", "baggage_prefix") => string(v).map(|t| e.baggage_prefix = t),
            ("identity", "service") => opt(v, string).map(|t| i.service = t),
            ("identity", "version") => opt(v, string).map(|t| i.version = t),
            ("identity", "namespace") => opt(v, string).map(|t| i.namespace = t),
            ("identity", "workload") => opt(v, string).map(|t| i.workload = t),
            ("identity", "attributes") => map(v).map(|m| i.attributes = m),
            ("identity", "hmac_key") => opt(v, string).map(|t| i.hmac_key = t),
            ("identity", "cluster_patterns") => array(v, string).map(|l| i.cluster_patterns = l),
            ("identity", "lineage_max") => int(v).map(|n| i.lineage_max = n),
            ("identity", "exchange") => boolean(v).map(|b| i.exchange = b),
            ("export", "cluster") => string(v).map(|t| x.cluster = t),
            ("export", "authority") => string(v).map(|t| x.authority = t),
            ("export", "path") => string(v).map(|t| x.path = t),
            ("export", "timeout_ms") => int(v).map(|n| x.timeout_ms = n),
            ("export", "max_queue_spans") => int(v).map(|n| x.max_queue_spans = n),
            ("export", "max_batch_spans") => int(v).map(|n| x.max_batch_spans = n),
            ("export", "flush_interval_ms") => int(v).map(|n| x.flush_interval_ms = n),
            ("export", "max_in_flight") => int(v).map(|n| x.max_in_flight = n),
            ("export", "max_retries") => int(v).map(|n| x.max_retries = n),
            ("export", "initial_backoff_ms") => int(v).map(|n| x.initial_backoff_ms = n),
            ("export", "max_backoff_ms") => int(v).map(|n| x.max_backoff_ms = n),
            ("metrics", "enabled") => boolean(v).map(|b| self.metrics.enabled = b),
            ("metrics", "naming") => naming(v).map(|n| self.metrics.naming = n),
            ("metrics", "max_label_sets") => int(v).map(|n| self.metrics.max_label_sets = n),
            ("metrics", "size_histograms") => boolean(v).map(|b| self.metrics.size_histograms = b),
            ("spans", "enabled") => boolean(v).map(|b| self.spans.enabled = b),
            ("spans", "routes") => array(v, string).map(|l| self.spans.routes = l),
            ("spans", "stream_details") => boolean(v).map(|b| self.spans.stream_details = b),
            ("context_recovery", "enabled") => {
                boolean(v).map(|b| self.context_recovery.enabled = b)
            }
            ("context_recovery", "ttl_ms") => int(v).map(|n| self.context_recovery.ttl_ms = n),
            ("context_recovery", "slots") => int(v).map(|n| self.context_recovery.slots = n),
            ("resource", "environment") => opt(v, string).map(|t| self.resource.environment = t),
            ("resource", "attributes") => map(v).map(|m| self.resource.attributes = m),
            _ => return None,
        })
    }
}

fn expected(what: &str, found: &Value) -> String {
    format!("expected {what}, found {}", found.kind())
}

fn boolean(v: &Value) -> Check<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(expected("a boolean", v)),
    }
}

fn string(v: &Value) -> Check<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(expected("a string", v)),
    }
}

/// `null` is `None`.
fn opt<T>(v: &Value, inner: fn(&Value) -> Check<T>) -> Check<Option<T>> {
    match v {
        Value::Null => Ok(None),
        _ => inner(v).map(Some),
    }
}

fn array<T>(v: &Value, item: fn(&Value) -> Check<T>) -> Check<Vec<T>> {
    match v {
        Value::Array(items) => items.iter().map(item).collect(),
        _ => Err(expected("an array", v)),
    }
}

/// An object of strings; a repeated key keeps its last value.
fn map(v: &Value) -> Check<BTreeMap<String, String>> {
    match v {
        Value::Object(members) => members
            .iter()
            .map(|(k, v)| Ok((k.clone(), string(v)?)))
            .collect(),
        _ => Err(expected("an object of strings", v)),
    }
}

/// A non-negative integer that fits `T` (u32, u64 or usize).
fn int<T: TryFrom<u64>>(v: &Value) -> Check<T> {
    let Value::Number(raw) = v else {
        return Err(expected("a non-negative integer", v));
    };
    raw.parse::<u64>()
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("expected a non-negative integer, found {raw}"))
}

/// A number, clamped into 0..1 with an issue quoting it as written (no float formatting).
fn ratio(v: &Value, key: &str, issues: &mut Vec<ConfigIssue>) -> Check<f64> {
    let Value::Number(raw) = v else {
        return Err(expected("a number", v));
    };
    let r: f64 = raw
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite())
        .ok_or_else(|| format!("number out of range: {raw}"))?;
    if (0.0..=1.0).contains(&r) {
        return Ok(r);
    }
    let (used, text) = if r < 0.0 { (0.0, "0") } else { (1.0, "1") };
    issues.push(ConfigIssue::OutOfRange {
        key: key.into(),
        value: raw.clone(),
        used: text.into(),
    });
    Ok(used)
}

/// One of a fixed set of lowercase names.
fn name<T: Copy>(v: &Value, names: &[(&str, T)]) -> Check<T> {
    let Value::String(s) = v else {
        return Err(expected("a string", v));
    };
    names
        .iter()
        .find(|(n, _)| n == s)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown variant `{s}`, expected one of {}",
                known.join(", ")
            )
        })
}

fn role(v: &Value) -> Check<Role> {
    name(
        v,
        &[
            ("inbound", Role::Inbound),
            ("outbound", Role::Outbound),
            ("edge", Role::Edge),
        ],
    )
}

/// A trace-context format (`baggage` has its own switch, `propagation.baggage`).
fn format(v: &Value) -> Check<Propagator> {
    name(
        v,
        &[
            ("tracecontext", Propagator::TraceContext),
            ("b3", Propagator::B3Single),
            ("b3multi", Propagator::B3Multi),
        ],
    )
}

fn naming(v: &Value) -> Check<MetricPrefix> {
    name(
        v,
        &[
            ("meshwake", MetricPrefix::Meshwake),
            ("istio", MetricPrefix::Istio),
        ],
    )
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
            assert_eq!(cfg, Config::default());
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
            vec![Propagator::B3Single, Propagator::TraceContext]
        );
        assert_eq!(cfg.sampling.ratio, 0.25);
        assert_eq!(cfg.identity.version.as_deref(), Some("v2"));
        assert_eq!(cfg.export.cluster, "otel");
        assert_eq!(cfg.export.max_batch_spans, 100);
        assert_eq!(cfg.metrics.naming, MetricPrefix::Istio);
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

    /// Every key set to a non-default value: the hand-written reader agrees with the
    /// serde derive (the schema other tools serialize) on the result.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn every_key_read_like_serde() {
        let raw = r#"{"role":"outbound","debug_header":false,
            "propagation":{"extract":["b3multi"],"inject":[],"inject_received_b3":false,"baggage":false},
            "sampling":{"ratio":0.125,"parent_based":false,"force_header":null},
            "edge":{"trust_incoming_context":true,"tracestate_key":"k\u00e9","baggage_prefix":"p."},
            "identity":{"service":"s","version":"v","namespace":"n","workload":"w","attributes":{"a":"1","b":"2"},
                        "hmac_key":"h","cluster_patterns":["{service}-{version}"],"lineage_max":3},
            "export":{"cluster":"c","authority":"a","path":"/p","timeout_ms":7,"max_queue_spans":9,"max_batch_spans":8,
                      "flush_interval_ms":11,"max_in_flight":2,"max_retries":1,"initial_backoff_ms":3,"max_backoff_ms":4},
            "metrics":{"enabled":false,"naming":"istio","max_label_sets":5},
            "spans":{"enabled":false,"routes":["/a/{id}"]},
            "context_recovery":{"enabled":false,"ttl_ms":6,"slots":7},
            "resource":{"environment":"prod","attributes":{"x":"y"}}}"#;
        let (cfg, issues) = parse(raw);
        assert!(issues.is_empty(), "{issues:?}");
        let via_serde: Config = serde_json::from_str(raw).unwrap();
        assert_eq!(cfg, via_serde);
        assert_ne!(cfg, Config::default());
    }

    #[rustfmt::skip]
    const INVALID: &[(&str, &str)] = &[
        // input, key named in the InvalidValue issue
        (r#"{"role":null,"debug_header":1}"#,               "debug_header"),
        (r#"{"sampling":5}"#,                               "sampling"),
        (r#"{"sampling":{"ratio":1e999}}"#,                 "sampling.ratio"),
        (r#"{"sampling":{"force_header":7}}"#,              "sampling.force_header"),
        (r#"{"edge":{"tracestate_key":null}}"#,             "edge.tracestate_key"),
        (r#"{"propagation":{"extract":["jaeger"]}}"#,       "propagation.extract"),
        (r#"{"identity":{"attributes":{"a":1}}}"#,          "identity.attributes"),
        (r#"{"export":{"timeout_ms":1.5}}"#,                "export.timeout_ms"),
        (r#"{"context_recovery":{"slots":4294967296}}"#,    "context_recovery.slots"),
        (r#"{"metrics":{"naming":"prometheus"}}"#,          "metrics.naming"),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn invalid_values_name_their_key_and_keep_the_default() {
        for (raw, key) in INVALID {
            let (cfg, issues) = parse(raw);
            let want: Vec<&str> = vec![key];
            let got: Vec<&str> = issues
                .iter()
                .filter_map(|i| match i {
                    ConfigIssue::InvalidValue { key, .. } => Some(key.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(got, want, "{raw}: {issues:?}");
            assert_eq!(issues.len(), 1, "{raw}: {issues:?}");
            assert_eq!(cfg, parse("{}").0, "{raw}");
        }
        let (cfg, issues) = parse(r#"{"sampling":{"ratio":-0.5}}"#);
        assert_eq!(cfg.sampling.ratio, 0.0);
        assert_eq!(
            issues[0].to_string(),
            "configuration key `sampling.ratio` = -0.5 is out of range: using 0"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn one_bad_key_keeps_the_others() {
        let (cfg, issues) = parse(
            r#"{"sampling":{"ratio":"x"},"export":{"cluster":"c1","bogus":1},"metrics":{"naming":"istio"}}"#,
        );
        assert_eq!(cfg.sampling.ratio, 1.0);
        assert_eq!(cfg.export.cluster, "c1");
        assert_eq!(cfg.metrics.naming, MetricPrefix::Istio);
        assert_eq!(issues.len(), 2, "{issues:?}");
    }
}
