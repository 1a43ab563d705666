//! This workload's own identity, resolved once at configure time from the plugin config and
//! Envoy's node metadata (as written by Istio's sidecar injector).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::escape;
use crate::header::{MAX_EXTRA, MAX_FIELD_LEN};
use crate::lineage::DEFAULT_LINEAGE_CAP;

/// Value used for any identity field that cannot be determined.
pub const UNKNOWN: &str = "unknown";

/// Node metadata keys and label names (Istio conventions), defined once.
pub mod node_keys {
    /// Pod name.
    pub const NAME: &str = "NAME";
    /// Pod namespace.
    pub const NAMESPACE: &str = "NAMESPACE";
    /// Name of the owning workload (Deployment, StatefulSet...).
    pub const WORKLOAD_NAME: &str = "WORKLOAD_NAME";
    /// Map of the pod's labels.
    pub const LABELS: &str = "LABELS";
    /// Istio canonical service label.
    pub const CANONICAL_NAME: &str = "service.istio.io/canonical-name";
    /// Istio canonical revision label.
    pub const CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";
    /// Kubernetes recommended name label.
    pub const K8S_NAME: &str = "app.kubernetes.io/name";
    /// Kubernetes recommended version label.
    pub const K8S_VERSION: &str = "app.kubernetes.io/version";
    /// Conventional `app` label.
    pub const APP: &str = "app";
    /// Conventional `version` label.
    pub const VERSION: &str = "version";
}

/// Read access to Envoy's `node.metadata`; the wasm glue implements it over properties.
pub trait NodeMetadata {
    /// Value at `path` below `node.metadata`, e.g. `["LABELS", "app"]`; `None` if absent.
    fn get(&self, path: &[&str]) -> Option<String>;
}

/// The `identity` section of the plugin configuration: who this workload is (each field
/// overrides node metadata) and how it proves who it is to peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Overrides the service name found in node metadata.
    pub service: Option<String>,
    /// Overrides the deployment version found in node metadata.
    pub version: Option<String>,
    /// Overrides the namespace.
    pub namespace: Option<String>,
    /// Overrides the workload name.
    pub workload: Option<String>,
    /// Extra attributes carried in the peer header (revision, rollout stage, canary
    /// weight...); at most [`MAX_EXTRA`], taken in key order.
    pub attributes: BTreeMap<String, String>,
    /// Shared key for HMAC-SHA256 over the identity and lineage headers; off when absent.
    pub hmac_key: Option<String>,
    /// Patterns that derive a peer's service/version from an upstream cluster name when the
    /// peer answered without identity, e.g. `{service}-{version}`.
    pub cluster_patterns: Vec<String>,
    /// How many `service@version` hops the lineage keeps (`1..=`[`crate::lineage::MAX_LINEAGE_CAP`]).
    pub lineage_max: usize,
    /// Exchange identity with peers (`x-meshwake-peer` both ways, lineage). Off: trace
    /// context only, and identity headers from outside are still stripped.
    pub exchange: bool,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            service: None,
            version: None,
            namespace: None,
            workload: None,
            attributes: BTreeMap::new(),
            hmac_key: None,
            cluster_patterns: Vec::new(),
            lineage_max: DEFAULT_LINEAGE_CAP,
            exchange: true,
        }
    }
}

/// Where a resolved identity field came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ValueSource {
    /// The plugin configuration.
    Config,
    /// Envoy node metadata (pod labels, `NAMESPACE`...).
    NodeMetadata,
    /// Nothing known: the value is [`UNKNOWN`].
    #[default]
    Default,
}

/// The identity fields, for warnings and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Service name.
    Service,
    /// Deployment version.
    Version,
    /// Namespace.
    Namespace,
    /// Workload name.
    Workload,
    /// Pod name.
    Instance,
}

impl Field {
    /// Lower-case field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Service => "service",
            Field::Version => "version",
            Field::Namespace => "namespace",
            Field::Workload => "workload",
            Field::Instance => "instance",
        }
    }
}

/// Where each field of a [`WorkloadIdentity`] came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentitySources {
    /// Source of `service`.
    pub service: ValueSource,
    /// Source of `version`.
    pub version: ValueSource,
    /// Source of `namespace`.
    pub namespace: ValueSource,
    /// Source of `workload`.
    pub workload: ValueSource,
    /// Source of `instance`.
    pub instance: ValueSource,
}

/// Who this workload is. Built once per plugin configuration and shared by every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadIdentity {
    /// Service name (`service.name`).
    pub service: String,
    /// Deployment version (`service.version`).
    pub version: String,
    /// Namespace (`service.namespace`).
    pub namespace: String,
    /// Workload name, e.g. the Deployment `reviews-v2`.
    pub workload: String,
    /// Pod name (`k8s.pod.name`, `service.instance.id`); never sent to peers.
    pub instance: String,
    /// Bounded extra attributes sent to peers, at most [`MAX_EXTRA`].
    pub extra: Vec<(String, String)>,
    /// Where each field came from, for the start-up log.
    pub sources: IdentitySources,
}

/// Something worth one log line at configure time; resolution itself never fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Nothing configured or in node metadata: the field is [`UNKNOWN`].
    Defaulted(Field),
    /// The value was cut to fit [`MAX_FIELD_LEN`] escaped bytes.
    Truncated(Field),
    /// More than [`MAX_EXTRA`] attributes: the named ones were ignored.
    ExtraDropped(Vec<String>),
    /// An attribute key or value was cut to fit [`MAX_FIELD_LEN`].
    ExtraTruncated(String),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Defaulted(field) => write!(
                f,
                "identity {} not configured and not in node metadata; using \"{UNKNOWN}\"",
                field.as_str()
            ),
            Warning::Truncated(field) => write!(
                f,
                "identity {} longer than {MAX_FIELD_LEN} bytes; truncated",
                field.as_str()
            ),
            Warning::ExtraDropped(keys) => write!(
                f,
                "more than {MAX_EXTRA} identity attributes; ignored: {}",
                keys.join(", ")
            ),
            Warning::ExtraTruncated(key) => write!(
                f,
                "identity attribute {key:?} longer than {MAX_FIELD_LEN} bytes; truncated"
            ),
        }
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn label(node: &dyn NodeMetadata, name: &str) -> Option<String> {
    non_empty(node.get(&[node_keys::LABELS, name]))
}

/// Picks the first known value, clamps it to the wire limit and records warnings.
fn pick(
    field: Field,
    config: Option<&String>,
    node: impl FnOnce() -> Option<String>,
    warnings: &mut Vec<Warning>,
) -> (String, ValueSource) {
    let (value, source) = match non_empty(config.cloned()) {
        Some(v) => (v, ValueSource::Config),
        None => match node() {
            Some(v) => (v, ValueSource::NodeMetadata),
            None => {
                warnings.push(Warning::Defaulted(field));
                return (UNKNOWN.to_owned(), ValueSource::Default);
            }
        },
    };
    let clamped = escape::clamp(&value, MAX_FIELD_LEN);
    if clamped.len() < value.len() {
        warnings.push(Warning::Truncated(field));
        return (clamped.to_owned(), source);
    }
    (value, source)
}

/// Resolves this workload's identity.
///
/// Priority per field: config, then Istio canonical labels
/// (`service.istio.io/canonical-name` / `-revision`), then `app.kubernetes.io/name` /
/// `-version`, then `app` / `version` labels, then (service only) `WORKLOAD_NAME`, then
/// [`UNKNOWN`] with a warning. Namespace comes from `NAMESPACE`, workload from
/// `WORKLOAD_NAME`, instance from `NAME`. Values are clamped to what the peer header can
/// carry so local telemetry and peers see the same strings. Call once per configuration.
pub fn resolve(
    config: &IdentityConfig,
    node: &dyn NodeMetadata,
) -> (WorkloadIdentity, Vec<Warning>) {
    use node_keys as k;
    let mut w = Vec::new();
    let (service, s_src) = pick(
        Field::Service,
        config.service.as_ref(),
        || {
            label(node, k::CANONICAL_NAME)
                .or_else(|| label(node, k::K8S_NAME))
                .or_else(|| label(node, k::APP))
                .or_else(|| non_empty(node.get(&[k::WORKLOAD_NAME])))
        },
        &mut w,
    );
    let (version, v_src) = pick(
        Field::Version,
        config.version.as_ref(),
        || {
            label(node, k::CANONICAL_REVISION)
                .or_else(|| label(node, k::K8S_VERSION))
                .or_else(|| label(node, k::VERSION))
        },
        &mut w,
    );
    let (namespace, n_src) = pick(
        Field::Namespace,
        config.namespace.as_ref(),
        || non_empty(node.get(&[k::NAMESPACE])),
        &mut w,
    );
    let (workload, w_src) = pick(
        Field::Workload,
        config.workload.as_ref(),
        || non_empty(node.get(&[k::WORKLOAD_NAME])),
        &mut w,
    );
    let (instance, i_src) = pick(
        Field::Instance,
        None,
        || non_empty(node.get(&[k::NAME])),
        &mut w,
    );

    let mut extra = Vec::with_capacity(config.attributes.len().min(MAX_EXTRA));
    let mut dropped = Vec::new();
    for (key, value) in &config.attributes {
        if key.is_empty() {
            continue;
        }
        if extra.len() == MAX_EXTRA {
            dropped.push(key.clone());
            continue;
        }
        let (ck, cv) = (
            escape::clamp(key, MAX_FIELD_LEN),
            escape::clamp(value, MAX_FIELD_LEN),
        );
        if ck.len() < key.len() || cv.len() < value.len() {
            w.push(Warning::ExtraTruncated(key.clone()));
        }
        extra.push((ck.to_owned(), cv.to_owned()));
    }
    if !dropped.is_empty() {
        w.push(Warning::ExtraDropped(dropped));
    }

    let identity = WorkloadIdentity {
        service,
        version,
        namespace,
        workload,
        instance,
        extra,
        sources: IdentitySources {
            service: s_src,
            version: v_src,
            namespace: n_src,
            workload: w_src,
            instance: i_src,
        },
    };
    (identity, w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ValueSource::{Config as C, Default as D, NodeMetadata as N};

    /// Node metadata as a flat list of (`path` joined by '/', value).
    struct MockNode(&'static [(&'static str, &'static str)]);

    impl NodeMetadata for MockNode {
        fn get(&self, path: &[&str]) -> Option<String> {
            let key = path.join("/");
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const ISTIO_POD: &[(&str, &str)] = &[
        ("NAME", "reviews-v2-5d8f7c9b4-x7k2p"),
        ("NAMESPACE", "bookinfo"),
        ("WORKLOAD_NAME", "reviews-v2"),
        ("LABELS/app", "reviews"),
        ("LABELS/version", "v2"),
        (
            "LABELS/service.istio.io/canonical-name",
            "reviews-canonical",
        ),
        ("LABELS/service.istio.io/canonical-revision", "v2-canonical"),
    ];
    const APP_LABELS: &[(&str, &str)] = &[
        ("NAME", "pod-1"),
        ("NAMESPACE", "shop"),
        ("WORKLOAD_NAME", "cart-v3"),
        ("LABELS/app", "cart"),
        ("LABELS/version", "v3"),
    ];
    const K8S_LABELS: &[(&str, &str)] = &[
        ("LABELS/app.kubernetes.io/name", "k8s-name"),
        ("LABELS/app.kubernetes.io/version", "1.4.0"),
        ("LABELS/app", "app-name"),
    ];
    const WORKLOAD_ONLY: &[(&str, &str)] = &[("WORKLOAD_NAME", "ratings-v1"), ("LABELS/app", "  ")];
    const EMPTY: &[(&str, &str)] = &[];

    fn cfg(service: Option<&str>, version: Option<&str>) -> IdentityConfig {
        IdentityConfig {
            service: service.map(str::to_owned),
            version: version.map(str::to_owned),
            ..IdentityConfig::default()
        }
    }

    type Row = (
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
        Option<&'static str>,
        [&'static str; 5],
        [ValueSource; 5],
        usize,
    );

    #[rustfmt::skip]
    const RESOLVE: &[Row] = &[
        // node metadata,  config service,  config version,  (service, version, namespace, workload, instance), sources, warnings
        (ISTIO_POD,     None,            None,          ["reviews-canonical", "v2-canonical", "bookinfo", "reviews-v2", "reviews-v2-5d8f7c9b4-x7k2p"], [N, N, N, N, N], 0),
        (ISTIO_POD,     Some("rev"),     Some("9"),     ["rev", "9", "bookinfo", "reviews-v2", "reviews-v2-5d8f7c9b4-x7k2p"], [C, C, N, N, N], 0),
        (ISTIO_POD,     Some(""),        None,          ["reviews-canonical", "v2-canonical", "bookinfo", "reviews-v2", "reviews-v2-5d8f7c9b4-x7k2p"], [N, N, N, N, N], 0),
        (APP_LABELS,    None,            None,          ["cart", "v3", "shop", "cart-v3", "pod-1"], [N, N, N, N, N], 0),
        (K8S_LABELS,    None,            None,          ["k8s-name", "1.4.0", UNKNOWN, UNKNOWN, UNKNOWN], [N, N, D, D, D], 3),
        (WORKLOAD_ONLY, None,            None,          ["ratings-v1", UNKNOWN, UNKNOWN, "ratings-v1", UNKNOWN], [N, D, D, N, D], 3),
        (EMPTY,         None,            None,          [UNKNOWN; 5], [D; 5], 5),
        (EMPTY,         Some("svc"),     Some("v1"),    ["svc", "v1", UNKNOWN, UNKNOWN, UNKNOWN], [C, C, D, D, D], 3),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn resolution_priority() {
        for (i, (node, s, v, want, src, n_warn)) in RESOLVE.iter().enumerate() {
            let (id, warnings) = resolve(&cfg(*s, *v), &MockNode(node));
            let got = [
                id.service.as_str(),
                id.version.as_str(),
                id.namespace.as_str(),
                id.workload.as_str(),
                id.instance.as_str(),
            ];
            assert_eq!(&got, want, "row {i}");
            let s = id.sources;
            assert_eq!(
                [s.service, s.version, s.namespace, s.workload, s.instance],
                *src,
                "row {i}"
            );
            assert_eq!(warnings.len(), *n_warn, "row {i}: {warnings:?}");
            assert!(warnings.iter().all(|w| matches!(w, Warning::Defaulted(_))));
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn config_from_json_with_defaults() {
        let c: IdentityConfig = serde_json::from_str(
            r#"{"version":"v7","attributes":{"rollout":"canary","weight":"10"}}"#,
        )
        .unwrap();
        assert_eq!(c.version.as_deref(), Some("v7"));
        assert_eq!(c.service, None);
        let (id, _) = resolve(&c, &MockNode(APP_LABELS));
        assert_eq!(id.version, "v7");
        assert_eq!(id.sources.version, ValueSource::Config);
        assert_eq!(
            id.extra,
            vec![
                ("rollout".to_owned(), "canary".to_owned()),
                ("weight".to_owned(), "10".to_owned())
            ]
        );
        let empty: IdentityConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, IdentityConfig::default());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn bounds_and_warnings() {
        let mut c = cfg(
            Some(&"s".repeat(MAX_FIELD_LEN + 1)),
            Some(&"v".repeat(MAX_FIELD_LEN)),
        );
        for i in 0..MAX_EXTRA + 2 {
            c.attributes.insert(format!("k{i:02}"), "x".repeat(100));
        }
        c.attributes.insert(String::new(), "ignored".into());
        let (id, warnings) = resolve(&c, &MockNode(APP_LABELS));
        assert_eq!(id.service.len(), MAX_FIELD_LEN);
        assert_eq!(id.version.len(), MAX_FIELD_LEN);
        assert_eq!(id.extra.len(), MAX_EXTRA);
        assert!(id.extra.iter().all(|(_, v)| v.len() == MAX_FIELD_LEN));
        assert!(warnings.contains(&Warning::Truncated(Field::Service)));
        assert!(!warnings.contains(&Warning::Truncated(Field::Version)));
        assert!(warnings.contains(&Warning::ExtraDropped(vec!["k08".into(), "k09".into()])));
        assert!(warnings.contains(&Warning::ExtraTruncated("k00".into())));
        let text = Warning::Defaulted(Field::Namespace).to_string();
        assert!(
            text.contains("namespace") && text.contains(UNKNOWN),
            "{text}"
        );
    }
}
