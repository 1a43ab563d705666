//! From plugin configuration to a running filter, once: the raw configuration bytes plus
//! what the host knows ([`HostFacts`]) become everything a host glue needs ([`Setup`]): the
//! per-request [`Engine`], the span [`Exporter`], metric naming, the role, and the list of
//! configuration problems to log.
//!
//! Host-free and never failing, like [`Config::parse`]: a bad configuration becomes defaults
//! plus [`SetupIssue`]s, which are values (core does not log). Every glue calls [`setup`]
//! and only does what needs its host:
//!
//! - the proxy-wasm module (`filters/wasm`, `on_configure`): reads the plugin configuration
//!   buffer and `xds.listener_direction`, answers node metadata from properties, logs the
//!   issues and counts them in `meshwake.config.errors`/`.warnings`, sets its timer;
//! - a native Envoy dynamic module: the same JSON as a string, node metadata from its own
//!   API (anything implementing [`NodeMetadata`]), same logging;
//! - `bench/harness` `hotpath`: a node without metadata, issues ignored.
use crate::config::{limits, Config, ConfigIssue, Role};
use crate::envoy;
use crate::pipeline::Engine;
use meshwake_identity::{self as identity, NodeMetadata};
use meshwake_telemetry::cardinality::LabelCache;
use meshwake_telemetry::metrics::MetricNaming;
use meshwake_telemetry::Exporter;
use std::fmt;

/// What the host knows at configuration time, beyond the plugin configuration.
pub struct HostFacts<'a> {
    /// Envoy's `node.metadata` (pod labels, `NAMESPACE`, `WORKLOAD_NAME`...), read for the
    /// identity fields the configuration leaves out.
    pub node: &'a dyn NodeMetadata,
    /// Envoy's `xds.listener_direction` (`envoy.config.core.v3.TrafficDirection`: 1 inbound,
    /// 2 outbound), if the host can tell at configuration time: the role when none is
    /// configured.
    pub listener_direction: Option<i64>,
    /// The filter's own version: the instrumentation scope version of every span.
    pub filter_version: &'static str,
    /// The build sees only request headers (the propagation-only wasm module exports no
    /// response or stream-end callback): spans, metrics and the identity exchange, which
    /// need those, are turned off whatever the configuration says.
    pub propagation_only: bool,
}

/// Everything a glue needs to run the filter, built by [`setup`].
pub struct Setup {
    /// The immutable per-request pipeline; [`Engine::config`] is the parsed configuration
    /// (export cluster, path, timeout for the glue's call-outs; switches).
    pub engine: Engine,
    /// The configured role, else the listener direction. `None`: the glue asks per stream
    /// (the listener direction may only be known there), else outbound.
    pub role: Option<Role>,
    /// The span export state machine, configured (one per VM or worker).
    pub exporter: Exporter,
    /// Metric family names (`meshwake_*` or `istio_*`).
    pub metric_naming: MetricNaming,
    /// Problems to log once each, in the order found; see [`SetupIssue::is_config_problem`]
    /// for what the glue counts.
    pub issues: Vec<SetupIssue>,
}

/// Something worth one log line at configuration time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetupIssue {
    /// A problem in the plugin configuration: the key took its default or was clamped.
    Config(ConfigIssue),
    /// An identity field not configured and not in node metadata (or cut to size).
    Identity(identity::Warning),
}

/// How loud a [`SetupIssue`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something configured was replaced by a default (log at error level).
    Error,
    /// The configured meaning is intact, or a fallback was used (log at warning level).
    Warning,
}

impl SetupIssue {
    pub fn severity(&self) -> Severity {
        match self {
            SetupIssue::Config(issue) if issue.is_error() => Severity::Error,
            _ => Severity::Warning,
        }
    }

    /// Counted in `meshwake.config.errors` / `meshwake.config.warnings` (by severity).
    /// Identity fallbacks are facts about the deployment (a pod without a `version`
    /// label), not about the configuration: logged, not counted.
    pub fn is_config_problem(&self) -> bool {
        matches!(self, SetupIssue::Config(_))
    }
}

impl fmt::Display for SetupIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupIssue::Config(issue) => fmt::Display::fmt(issue, f),
            SetupIssue::Identity(warning) => fmt::Display::fmt(warning, f),
        }
    }
}

/// Parse the plugin configuration and build the runtime objects. Never fails: see
/// [`Config::parse`] for how bad values fall back, and [`Setup::issues`] for what to log.
pub fn setup(raw_plugin_config: &[u8], host: &HostFacts<'_>) -> Setup {
    let (mut config, config_issues) = Config::parse(raw_plugin_config);
    if host.propagation_only {
        config.spans.enabled = false;
        config.metrics.enabled = false;
        config.identity.exchange = false;
    }
    let mut issues: Vec<SetupIssue> = config_issues.into_iter().map(SetupIssue::Config).collect();
    let (local, identity_warnings) = identity::resolve(&config.identity, host.node);
    issues.extend(identity_warnings.into_iter().map(SetupIssue::Identity));
    let role = config
        .role
        .or_else(|| host.listener_direction.and_then(envoy::role_from_direction));
    let exporter = Exporter::new(config.export.clone());
    let metric_naming = MetricNaming {
        prefix: config.metrics.naming,
    };
    let (engine, ignored) = Engine::new(config, local, host.filter_version);
    issues.extend(ignored.into_iter().map(SetupIssue::Config));
    Setup {
        engine,
        role,
        exporter,
        metric_naming,
        issues,
    }
}

impl Setup {
    /// The per-VM cache of metric label sets to host metric ids of type `Id`.
    pub fn label_cache<Id: Copy>(&self) -> LabelCache<Id> {
        LabelCache::new(
            self.metric_naming,
            self.engine.config().metrics.max_label_sets,
        )
    }

    /// Period of the glue's timer that flushes span batches: the export flush interval, but
    /// at most `at_most_ms` (the glue's other periodic work, e.g. publishing counters).
    pub fn timer_period_ms(&self, at_most_ms: u64) -> u64 {
        if self.engine.config().spans.enabled {
            self.engine
                .config()
                .export
                .flush_interval_ms
                .min(at_most_ms)
                .max(limits::MIN_FLUSH_MS)
        } else {
            at_most_ms
        }
    }

    /// One line saying what this filter will do, for the start-up log:
    /// `role=inbound identity=reviews@v2 namespace=default spans=true metrics=true exchange=true export=cluster:otlp_collector`.
    pub fn summary(&self) -> String {
        let config = self.engine.config();
        let local = self.engine.local();
        format!(
            "role={} identity={}@{} namespace={} spans={} metrics={} exchange={} export=cluster:{}",
            self.role.map_or("auto(outbound)", Role::as_str),
            local.service,
            local.version,
            local.namespace,
            config.spans.enabled,
            config.metrics.enabled,
            config.identity.exchange,
            config.export.cluster,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwake_telemetry::metrics::MetricPrefix;

    /// A pod with Istio's canonical labels and a namespace.
    struct Pod;
    impl NodeMetadata for Pod {
        fn get(&self, path: &[&str]) -> Option<String> {
            match path {
                ["LABELS", "service.istio.io/canonical-name"] => Some("reviews".into()),
                ["LABELS", "service.istio.io/canonical-revision"] => Some("v2".into()),
                ["NAMESPACE"] => Some("shop".into()),
                ["WORKLOAD_NAME"] => Some("reviews-v2".into()),
                ["NAME"] => Some("reviews-v2-abc".into()),
                _ => None,
            }
        }
    }

    struct Bare;
    impl NodeMetadata for Bare {
        fn get(&self, _: &[&str]) -> Option<String> {
            None
        }
    }

    fn host(node: &dyn NodeMetadata, direction: Option<i64>) -> HostFacts<'_> {
        HostFacts {
            node,
            listener_direction: direction,
            filter_version: "9.9.9",
            propagation_only: false,
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn node_metadata_and_direction_fill_what_is_not_configured() {
        let s = setup(b"{}", &host(&Pod, Some(1)));
        assert!(s.issues.is_empty(), "{:?}", s.issues);
        assert_eq!(s.role, Some(Role::Inbound));
        let local = s.engine.local();
        assert_eq!(
            (local.service.as_str(), local.version.as_str()),
            ("reviews", "v2")
        );
        assert_eq!(
            s.summary(),
            "role=inbound identity=reviews@v2 namespace=shop spans=true metrics=true exchange=true export=cluster:otlp_collector"
        );
        assert_eq!(s.engine.scope().version, "9.9.9");
        // A configured role wins over the direction; no direction and no role: per stream.
        let s = setup(br#"{"role":"edge"}"#, &host(&Pod, Some(2)));
        assert_eq!(s.role, Some(Role::Edge));
        let s = setup(b"{}", &host(&Pod, Some(0)));
        assert_eq!(s.role, None);
        assert!(s.summary().starts_with("role=auto(outbound) "));
    }

    /// The propagation-only build cannot see responses or stream ends: what needs them is
    /// off whatever the configuration asks, and the summary line says so.
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_propagation_only_build_turns_off_what_needs_the_stream_end() {
        let raw = br#"{"spans":{"enabled":true},"metrics":{"enabled":true},"identity":{"exchange":true},"context_recovery":{"enabled":true}}"#;
        let only = HostFacts {
            propagation_only: true,
            ..host(&Pod, Some(1))
        };
        let s = setup(raw, &only);
        let c = s.engine.config();
        assert!(!c.spans.enabled && !c.metrics.enabled && !c.identity.exchange);
        assert!(
            c.context_recovery.enabled,
            "recovery works at request headers"
        );
        assert!(s
            .summary()
            .contains("spans=false metrics=false exchange=false"));
        let c = setup(raw, &host(&Pod, Some(1))).engine.config().clone();
        assert!(c.spans.enabled && c.metrics.enabled && c.identity.exchange);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn configuration_reaches_the_runtime_objects() {
        let raw = br#"{"identity":{"service":"s","version":"v"},
            "export":{"cluster":"c","max_batch_spans":7,"flush_interval_ms":40},
            "metrics":{"naming":"istio","max_label_sets":3}}"#;
        let s = setup(raw, &host(&Pod, None));
        assert_eq!(s.engine.local().service, "s");
        assert_eq!(s.exporter.config().max_batch_spans, 7);
        assert_eq!(s.engine.config().export.cluster, "c");
        assert_eq!(s.metric_naming.prefix, MetricPrefix::Istio);
        assert_eq!(s.timer_period_ms(100), 40);
        assert_eq!(s.timer_period_ms(20), 20);
        let s = setup(br#"{"spans":{"enabled":false}}"#, &host(&Pod, None));
        assert_eq!(s.timer_period_ms(100), 100);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn issues_in_order_with_severity_and_what_is_counted() {
        let raw = br#"{"sampling":{"ratio":"x"},"colour":1,"spans":{"routes":["nope"]}}"#;
        let s = setup(raw, &host(&Bare, None));
        let seen: Vec<(Severity, bool, String)> = s
            .issues
            .iter()
            .map(|i| (i.severity(), i.is_config_problem(), i.to_string()))
            .collect();
        let first = |needle: &str| seen.iter().position(|(_, _, t)| t.contains(needle));
        let (ratio, colour, version, route) = (
            first("`sampling.ratio` is invalid"),
            first("unknown configuration key `colour`"),
            first("identity version not configured and not in node metadata"),
            first("spans.routes: `nope` ignored: a template starts with `/`"),
        );
        assert!(
            ratio < colour && colour < version && version < route && ratio.is_some(),
            "{seen:#?}"
        );
        let at = |i: Option<usize>| seen.get(i.unwrap_or(usize::MAX)).map(|s| (s.0, s.1));
        assert_eq!(at(ratio), Some((Severity::Error, true)));
        assert_eq!(at(colour), Some((Severity::Warning, true)));
        assert_eq!(at(version), Some((Severity::Warning, false)));
        assert_eq!(at(route), Some((Severity::Warning, true)));
    }
}
