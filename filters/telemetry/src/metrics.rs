//! Istio-compatible request metrics: metric names, label sets, and the stat names that
//! carry the labels through Envoy.
//!
//! Proxy-wasm metrics have a name and no labels. As Istio's wasm stats filter did, the
//! labels are encoded inside the stat name and Envoy's tag extraction (bootstrap
//! `stats_config.stats_tags`, one regex per label, see [`STATS_TAGS`]) turns them back into
//! Prometheus labels:
//!
//! ```text
//! reporter=.=destination;.;source_workload=.=productpage-v1;.;...;.;istio_requests_total
//! ```
//!
//! i.e. for each label `name` + `=.=` + value + `;.;`, then the bare metric name (Istio's
//! `default_value_separator` / `default_field_separator`, proxy-wasm C++ SDK
//! `MetricBase::prefixWithFields`). Each tag regex `(name=\.=(.*?);\.;)` removes its first
//! group from the name and takes the second as the value, so once all tags are extracted
//! the name is the bare metric name.
//!
//! Envoy stores wasm-defined metrics under the custom stat namespace `wasmcustom.`
//! (so the stat is really `wasmcustom.reporter=.=...;.;istio_requests_total`); the regexes are
//! not anchored, so the prefix does not matter, and `/stats/prometheus` strips the namespace,
//! giving `istio_requests_total{reporter="destination",...}`.
//!
//! Values are sanitized so they can never forge a separator: `;` and `=`, whitespace,
//! control and non-ASCII characters, `"` and `\` become `_`, empty values become `unknown`,
//! and each value is cut at [`MAX_LABEL_VALUE_LEN`] bytes. Dots are kept (Istio's
//! `destination_service` is an FQDN such as `reviews.default.svc.cluster.local`): without `;`
//! and `=` a value cannot contain `;.;` or `=.=`, so the lazy `(.*?);\.;` still stops at the
//! right separator.

use serde::{Deserialize, Serialize};

/// Longest label value kept in a stat name, in bytes; longer values are cut.
pub const MAX_LABEL_VALUE_LEN: usize = 128;
/// Capacity guess per value when building a stat name (most values are short names).
const TYPICAL_VALUE_LEN: usize = 24;
/// Value used for an empty label, as Istio did.
pub const UNKNOWN_VALUE: &str = "unknown";
/// Separates a label name from its value in a stat name.
pub const VALUE_SEPARATOR: &str = "=.=";
/// Ends a label in a stat name.
pub const FIELD_SEPARATOR: &str = ";.;";
/// Namespace Envoy puts in front of every wasm-defined metric (removed by `/stats/prometheus`).
pub const ENVOY_WASM_NAMESPACE: &str = "wasmcustom.";

/// Istio label names (Prometheus label names after tag extraction), from the shared naming
/// contract [`meshwake_semconv::metric::label`].
pub mod label {
    pub use meshwake_semconv::metric::label::*;

    /// All labels, in the order they appear in stat names (Istio's order).
    pub const ALL: [&str; 13] = [
        REPORTER,
        SOURCE_WORKLOAD,
        SOURCE_WORKLOAD_NAMESPACE,
        SOURCE_VERSION,
        SOURCE_CANONICAL_SERVICE,
        DESTINATION_WORKLOAD,
        DESTINATION_WORKLOAD_NAMESPACE,
        DESTINATION_VERSION,
        DESTINATION_SERVICE,
        REQUEST_PROTOCOL,
        RESPONSE_CODE,
        GRPC_RESPONSE_STATUS,
        RESPONSE_FLAGS,
    ];
}

/// Envoy bootstrap `stats_config.stats_tags` entries: `(tag_name, regex)`, one per label of
/// [`label::ALL`], in the same order. Also written to `filters/telemetry/stats_tags.json`.
pub const STATS_TAGS: [(&str, &str); 13] = [
    (label::REPORTER, r"(reporter=\.=(.*?);\.;)"),
    (label::SOURCE_WORKLOAD, r"(source_workload=\.=(.*?);\.;)"),
    (
        label::SOURCE_WORKLOAD_NAMESPACE,
        r"(source_workload_namespace=\.=(.*?);\.;)",
    ),
    (label::SOURCE_VERSION, r"(source_version=\.=(.*?);\.;)"),
    (
        label::SOURCE_CANONICAL_SERVICE,
        r"(source_canonical_service=\.=(.*?);\.;)",
    ),
    (
        label::DESTINATION_WORKLOAD,
        r"(destination_workload=\.=(.*?);\.;)",
    ),
    (
        label::DESTINATION_WORKLOAD_NAMESPACE,
        r"(destination_workload_namespace=\.=(.*?);\.;)",
    ),
    (
        label::DESTINATION_VERSION,
        r"(destination_version=\.=(.*?);\.;)",
    ),
    (
        label::DESTINATION_SERVICE,
        r"(destination_service=\.=(.*?);\.;)",
    ),
    (label::REQUEST_PROTOCOL, r"(request_protocol=\.=(.*?);\.;)"),
    (label::RESPONSE_CODE, r"(response_code=\.=(.*?);\.;)"),
    (
        label::GRPC_RESPONSE_STATUS,
        r"(grpc_response_status=\.=(.*?);\.;)",
    ),
    (label::RESPONSE_FLAGS, r"(response_flags=\.=(.*?);\.;)"),
];

/// The `stats_tags` the Envoy bootstrap must carry, as `(tag_name, regex)`.
pub fn stats_tags() -> &'static [(&'static str, &'static str)] {
    &STATS_TAGS
}

/// [`STATS_TAGS`] as the JSON array Envoy's `stats_config.stats_tags` takes
/// (`[{"tag_name": ..., "regex": ...}]`); the content of `stats_tags.json`.
pub fn stats_tags_json() -> String {
    let mut out = String::from("[\n");
    for (i, (name, regex)) in STATS_TAGS.iter().enumerate() {
        out.push_str("  {\"tag_name\": \"");
        out.push_str(name);
        out.push_str("\", \"regex\": \"");
        // JSON string escaping: only backslashes occur in these regexes.
        out.push_str(&regex.replace('\\', "\\\\"));
        out.push_str(if i + 1 == STATS_TAGS.len() {
            "\"}\n"
        } else {
            "\"},\n"
        });
    }
    out.push_str("]\n");
    out
}

/// Which side of the request reported the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reporter {
    /// The caller's proxy (outbound hop).
    Source,
    /// The callee's proxy (inbound hop).
    #[default]
    Destination,
}

impl Reporter {
    /// The label value: `source` or `destination`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// Which metric family names to use (the plugin configuration's `metrics.naming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricPrefix {
    /// `meshwake_requests_total`, ...
    #[default]
    Meshwake,
    /// `istio_requests_total`, ... (drop-in for Istio dashboards).
    Istio,
}

/// Metric naming settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricNaming {
    /// Name family.
    pub prefix: MetricPrefix,
}

/// Host metric type (mirrors proxy-wasm's `MetricType` without depending on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// Monotonic counter.
    Counter,
    /// Histogram (Envoy's buckets).
    Histogram,
}

/// The four standard request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// `*_requests_total` counter.
    RequestsTotal,
    /// `*_request_duration_milliseconds` histogram.
    RequestDurationMilliseconds,
    /// `*_request_bytes` histogram.
    RequestBytes,
    /// `*_response_bytes` histogram.
    ResponseBytes,
}

impl MetricKind {
    /// All kinds, in definition order.
    pub const ALL: [MetricKind; 4] = [
        MetricKind::RequestsTotal,
        MetricKind::RequestDurationMilliseconds,
        MetricKind::RequestBytes,
        MetricKind::ResponseBytes,
    ];

    /// Counter or histogram.
    pub fn metric_type(self) -> MetricType {
        match self {
            MetricKind::RequestsTotal => MetricType::Counter,
            _ => MetricType::Histogram,
        }
    }

    /// The bare metric name (what Prometheus shows) under `naming`.
    pub fn name(self, naming: MetricNaming) -> &'static str {
        use meshwake_semconv::metric;
        match (naming.prefix, self) {
            (MetricPrefix::Meshwake, MetricKind::RequestsTotal) => metric::MESHWAKE_REQUESTS_TOTAL,
            (MetricPrefix::Meshwake, MetricKind::RequestDurationMilliseconds) => {
                metric::MESHWAKE_REQUEST_DURATION_MILLISECONDS
            }
            (MetricPrefix::Meshwake, MetricKind::RequestBytes) => metric::MESHWAKE_REQUEST_BYTES,
            (MetricPrefix::Meshwake, MetricKind::ResponseBytes) => metric::MESHWAKE_RESPONSE_BYTES,
            (MetricPrefix::Istio, MetricKind::RequestsTotal) => metric::ISTIO_REQUESTS_TOTAL,
            (MetricPrefix::Istio, MetricKind::RequestDurationMilliseconds) => {
                metric::ISTIO_REQUEST_DURATION_MILLISECONDS
            }
            (MetricPrefix::Istio, MetricKind::RequestBytes) => metric::ISTIO_REQUEST_BYTES,
            (MetricPrefix::Istio, MetricKind::ResponseBytes) => metric::ISTIO_RESPONSE_BYTES,
        }
    }
}

/// One request's metric labels (raw values; sanitized when the stat name is built).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MetricLabels {
    /// `reporter`
    pub reporter: Reporter,
    /// `source_workload`
    pub source_workload: String,
    /// `source_workload_namespace`
    pub source_workload_namespace: String,
    /// `source_version`
    pub source_version: String,
    /// `source_canonical_service`
    pub source_canonical_service: String,
    /// `destination_workload`
    pub destination_workload: String,
    /// `destination_workload_namespace`
    pub destination_workload_namespace: String,
    /// `destination_version`
    pub destination_version: String,
    /// `destination_service`
    pub destination_service: String,
    /// `request_protocol`
    pub request_protocol: String,
    /// `response_code` (0: no response)
    pub response_code: u16,
    /// `grpc_response_status`
    pub grpc_response_status: String,
    /// `response_flags`
    pub response_flags: String,
}

/// One request's metric labels borrowed from the request and the workload identity: what
/// the filter looks up per request (the owned [`MetricLabels`] is built only for a new set).
#[derive(Debug, Clone, Copy, Eq, Default)]
pub struct LabelsRef<'a> {
    /// `reporter`
    pub reporter: Reporter,
    /// `source_workload`
    pub source_workload: &'a str,
    /// `source_workload_namespace`
    pub source_workload_namespace: &'a str,
    /// `source_version`
    pub source_version: &'a str,
    /// `source_canonical_service`
    pub source_canonical_service: &'a str,
    /// `destination_workload`
    pub destination_workload: &'a str,
    /// `destination_workload_namespace`
    pub destination_workload_namespace: &'a str,
    /// `destination_version`
    pub destination_version: &'a str,
    /// `destination_service`
    pub destination_service: &'a str,
    /// `request_protocol`
    pub request_protocol: &'a str,
    /// `response_code` (0: no response)
    pub response_code: u16,
    /// `grpc_response_status`
    pub grpc_response_status: &'a str,
    /// `response_flags`
    pub response_flags: &'a str,
}

/// Field by field, the strings through [`same_text`]: the label cache compares each
/// request's set with the last one seen.
impl PartialEq for LabelsRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        // Field by field, not through `strings()`: two arrays of 11 built per comparison.
        self.reporter == other.reporter
            && self.response_code == other.response_code
            && same_text(self.source_workload, other.source_workload)
            && same_text(
                self.source_workload_namespace,
                other.source_workload_namespace,
            )
            && same_text(self.source_version, other.source_version)
            && same_text(
                self.source_canonical_service,
                other.source_canonical_service,
            )
            && same_text(self.destination_workload, other.destination_workload)
            && same_text(
                self.destination_workload_namespace,
                other.destination_workload_namespace,
            )
            && same_text(self.destination_version, other.destination_version)
            && same_text(self.destination_service, other.destination_service)
            && same_text(self.request_protocol, other.request_protocol)
            && same_text(self.grpc_response_status, other.grpc_response_status)
            && same_text(self.response_flags, other.response_flags)
    }
}

#[inline]
fn same_text(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// `a == b` without `memcmp`, which in the module is a call and a loop per byte: the
/// lengths, then whole words (8 bytes, or 4 for shorter strings; the last word overlaps the
/// one before), bytes only below 4. For the per-request comparisons of label values, header
/// values (the wasm glue) and header names (`meshwake_core::headers`).
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word8 = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    let word4 = |s: &[u8], at: usize| {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_ne_bytes)
    };
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if word8(a, at) != word8(b, at) {
                return false;
            }
            at += 8;
        }
        word8(a, n - 8) == word8(b, n - 8)
    } else if n >= 4 {
        word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4)
    } else {
        let mut i = 0;
        while i < n {
            if a.get(i) != b.get(i) {
                return false;
            }
            i += 1;
        }
        true
    }
}

impl LabelsRef<'_> {
    /// The owned label set.
    pub fn to_owned_labels(&self) -> MetricLabels {
        MetricLabels {
            reporter: self.reporter,
            source_workload: self.source_workload.into(),
            source_workload_namespace: self.source_workload_namespace.into(),
            source_version: self.source_version.into(),
            source_canonical_service: self.source_canonical_service.into(),
            destination_workload: self.destination_workload.into(),
            destination_workload_namespace: self.destination_workload_namespace.into(),
            destination_version: self.destination_version.into(),
            destination_service: self.destination_service.into(),
            request_protocol: self.request_protocol.into(),
            response_code: self.response_code,
            grpc_response_status: self.grpc_response_status.into(),
            response_flags: self.response_flags.into(),
        }
    }

    /// The string labels in [`label::ALL`] order, `reporter` and `response_code` excepted.
    pub fn strings(&self) -> [&str; 11] {
        [
            self.source_workload,
            self.source_workload_namespace,
            self.source_version,
            self.source_canonical_service,
            self.destination_workload,
            self.destination_workload_namespace,
            self.destination_version,
            self.destination_service,
            self.request_protocol,
            self.grpc_response_status,
            self.response_flags,
        ]
    }
}

impl MetricLabels {
    /// The borrowed view of this label set.
    pub fn as_ref_labels(&self) -> LabelsRef<'_> {
        LabelsRef {
            reporter: self.reporter,
            source_workload: &self.source_workload,
            source_workload_namespace: &self.source_workload_namespace,
            source_version: &self.source_version,
            source_canonical_service: &self.source_canonical_service,
            destination_workload: &self.destination_workload,
            destination_workload_namespace: &self.destination_workload_namespace,
            destination_version: &self.destination_version,
            destination_service: &self.destination_service,
            request_protocol: &self.request_protocol,
            response_code: self.response_code,
            grpc_response_status: &self.grpc_response_status,
            response_flags: &self.response_flags,
        }
    }

    /// Appends the label part of the stat name (every label, in [`label::ALL`] order).
    pub fn write_encoded(&self, out: &mut String) {
        let mut code = [0u8; 5];
        for (name, value) in label::ALL.iter().zip(self.raw_values(&mut code)) {
            out.push_str(name);
            out.push_str(VALUE_SEPARATOR);
            push_sanitized(out, value);
            out.push_str(FIELD_SEPARATOR);
        }
    }

    /// The label values in [`label::ALL`] order, sanitized exactly as in stat names: for
    /// hosts whose metrics take labels natively (Envoy dynamic modules), so both builds
    /// show the same Prometheus series.
    pub fn sanitized_values(&self) -> [String; 13] {
        let mut code = [0u8; 5];
        self.raw_values(&mut code).map(|v| {
            let mut out = String::with_capacity(v.len().min(MAX_LABEL_VALUE_LEN));
            push_sanitized(&mut out, v);
            out
        })
    }

    fn raw_values<'a>(&'a self, code: &'a mut [u8; 5]) -> [&'a str; 13] {
        [
            self.reporter.as_str(),
            &self.source_workload,
            &self.source_workload_namespace,
            &self.source_version,
            &self.source_canonical_service,
            &self.destination_workload,
            &self.destination_workload_namespace,
            &self.destination_version,
            &self.destination_service,
            &self.request_protocol,
            u16_decimal(self.response_code, code),
            &self.grpc_response_status,
            &self.response_flags,
        ]
    }

    /// Upper bound of [`MetricLabels::write_encoded`]'s output length.
    fn encoded_len_hint(&self) -> usize {
        // names + separators + bounded values
        label::ALL.iter().map(|n| n.len() + 6).sum::<usize>() + label::ALL.len() * TYPICAL_VALUE_LEN
    }
}

/// The full stat name to pass to the host's `define_metric` for `kind` and `labels`.
pub fn stat_name(naming: MetricNaming, kind: MetricKind, labels: &MetricLabels) -> String {
    let name = kind.name(naming);
    let mut out = String::with_capacity(labels.encoded_len_hint() + name.len());
    labels.write_encoded(&mut out);
    out.push_str(name);
    out
}

/// Appends `value` made safe for a stat name; see the module docs.
fn push_sanitized(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push_str(UNKNOWN_VALUE);
        return;
    }
    for c in value.chars().take(MAX_LABEL_VALUE_LEN) {
        let safe = c.is_ascii_graphic() && !matches!(c, ';' | '=' | '"' | '\\');
        out.push(if safe { c } else { '_' });
    }
}

/// Formats `v` in decimal into `buf` without `fmt` (keeps the wasm module small).
fn u16_decimal(mut v: u16, buf: &mut [u8; 5]) -> &str {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
        start -= 1;
        if v == 0 {
            break;
        }
    }
    buf.get(start..)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("0")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn labels() -> MetricLabels {
        MetricLabels {
            reporter: Reporter::Destination,
            source_workload: "productpage-v1".into(),
            source_workload_namespace: "default".into(),
            source_version: "v1".into(),
            source_canonical_service: "productpage".into(),
            destination_workload: "reviews-v2".into(),
            destination_workload_namespace: "default".into(),
            destination_version: "v2".into(),
            destination_service: "reviews.default.svc.cluster.local".into(),
            request_protocol: "http".into(),
            response_code: 200,
            grpc_response_status: "".into(),
            response_flags: "-".into(),
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn word_compare_agrees_with_str_eq() {
        // Every length up to 20, equal and differing at each position.
        for n in 0..=20usize {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_text(&a, &a.clone()), "{a}");
            for i in 0..n {
                let mut b = a.clone().into_bytes();
                b[i] = b'_';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_text(&a, &b), "{a} {b}");
            }
            assert!(!same_text(&a, &format!("{a}x")));
        }
        let l = labels();
        let mut m = l.clone();
        assert_eq!(l.as_ref_labels(), m.as_ref_labels());
        m.destination_service.push('x');
        assert_ne!(l.as_ref_labels(), m.as_ref_labels());
        m = l.clone();
        m.response_code = 503;
        assert_ne!(l.as_ref_labels(), m.as_ref_labels());
        m = l.clone();
        m.reporter = Reporter::Source;
        assert_ne!(l.as_ref_labels(), m.as_ref_labels());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn metric_names() {
        let mw = MetricNaming {
            prefix: MetricPrefix::Meshwake,
        };
        let istio = MetricNaming {
            prefix: MetricPrefix::Istio,
        };
        #[rustfmt::skip]
        let table = [
            (MetricKind::RequestsTotal, MetricType::Counter, "meshwake_requests_total", "istio_requests_total"),
            (MetricKind::RequestDurationMilliseconds, MetricType::Histogram, "meshwake_request_duration_milliseconds", "istio_request_duration_milliseconds"),
            (MetricKind::RequestBytes, MetricType::Histogram, "meshwake_request_bytes", "istio_request_bytes"),
            (MetricKind::ResponseBytes, MetricType::Histogram, "meshwake_response_bytes", "istio_response_bytes"),
        ];
        for (kind, ty, m, i) in table {
            assert_eq!(kind.metric_type(), ty);
            assert_eq!(kind.name(mw), m);
            assert_eq!(kind.name(istio), i);
        }
        let n: MetricNaming = serde_json::from_str(r#"{"prefix":"istio"}"#).unwrap();
        assert_eq!(n, istio);
        let n: MetricNaming = serde_json::from_str("{}").unwrap();
        assert_eq!(n, mw);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn stat_name_has_istio_layout() {
        let name = stat_name(
            MetricNaming {
                prefix: MetricPrefix::Istio,
            },
            MetricKind::RequestsTotal,
            &labels(),
        );
        assert_eq!(
            name,
            "reporter=.=destination;.;source_workload=.=productpage-v1;.;\
             source_workload_namespace=.=default;.;source_version=.=v1;.;\
             source_canonical_service=.=productpage;.;destination_workload=.=reviews-v2;.;\
             destination_workload_namespace=.=default;.;destination_version=.=v2;.;\
             destination_service=.=reviews.default.svc.cluster.local;.;request_protocol=.=http;.;\
             response_code=.=200;.;grpc_response_status=.=unknown;.;response_flags=.=-;.;\
             istio_requests_total"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn sanitize_values() {
        let long = "a".repeat(300);
        let long_want = "a".repeat(MAX_LABEL_VALUE_LEN);
        #[rustfmt::skip]
        let table: [(&str, &str); 9] = [
            ("", "unknown"),
            ("v1.2.3", "v1.2.3"),
            ("a;.;reporter=.=source", "a_._reporter_._source"),
            ("with space\ttab\nnl", "with_space_tab_nl"),
            ("quote\"back\\", "quote_back_"),
            ("héllo", "h_llo"),
            ("ctl\u{7f}\u{0}", "ctl__"),
            ("svc@v1/x:8080", "svc@v1/x:8080"),
            (&long, &long_want),
        ];
        for (input, want) in table {
            let mut out = String::new();
            push_sanitized(&mut out, input);
            assert_eq!(out, want, "{input:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn u16_decimal_formats() {
        for v in [0u16, 7, 10, 200, 404, 9999, 65535] {
            let mut buf = [0u8; 5];
            assert_eq!(u16_decimal(v, &mut buf), v.to_string());
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn stats_tags_match_labels_and_file() {
        assert_eq!(STATS_TAGS.len(), label::ALL.len());
        for ((tag, regex), name) in STATS_TAGS.iter().zip(label::ALL) {
            assert_eq!(*tag, name);
            assert_eq!(*regex, format!(r"({name}=\.=(.*?);\.;)"));
        }
        assert_eq!(
            include_str!("../stats_tags.json"),
            stats_tags_json(),
            "regenerate filters/telemetry/stats_tags.json from metrics::stats_tags_json()"
        );
    }
}

/// Envoy-like tag extraction with the `regex` crate (native only).
#[cfg(test)]
#[cfg(not(target_arch = "wasm32"))]
mod extraction {
    use super::tests::labels;
    use super::*;

    /// What Envoy's regex tag extractor does: for each `stats_tags` entry, search the
    /// original name; the 2nd group is the tag value, the 1st group is cut from the name.
    fn extract(name: &str) -> (Vec<(String, String)>, String) {
        let mut tags = Vec::new();
        let mut cut: Vec<(usize, usize)> = Vec::new();
        for (tag, re) in stats_tags() {
            let re = regex::Regex::new(re).unwrap();
            if let Some(c) = re.captures(name) {
                tags.push((tag.to_string(), c.get(2).unwrap().as_str().to_string()));
                let g = c.get(1).unwrap();
                cut.push((g.start(), g.end()));
            }
        }
        let residual: String = name
            .char_indices()
            .filter(|(i, _)| !cut.iter().any(|(s, e)| (*s..*e).contains(i)))
            .map(|(_, c)| c)
            .collect();
        (tags, residual)
    }

    #[test]
    fn regexes_recover_labels_and_bare_name() {
        let mut hostile = labels();
        hostile.reporter = Reporter::Source;
        hostile.source_workload = "evil;.;reporter=.=destination;.;".into();
        hostile.destination_service = String::new();
        hostile.response_flags = "UH,UF".into();
        hostile.response_code = 0;
        hostile.grpc_response_status = "14".into();

        let cases: [(&MetricLabels, [&str; 13]); 2] = [
            (
                &labels(),
                [
                    "destination",
                    "productpage-v1",
                    "default",
                    "v1",
                    "productpage",
                    "reviews-v2",
                    "default",
                    "v2",
                    "reviews.default.svc.cluster.local",
                    "http",
                    "200",
                    "unknown",
                    "-",
                ],
            ),
            (
                &hostile,
                [
                    "source",
                    "evil_._reporter_._destination_._",
                    "default",
                    "v1",
                    "productpage",
                    "reviews-v2",
                    "default",
                    "v2",
                    "unknown",
                    "http",
                    "0",
                    "14",
                    "UH,UF",
                ],
            ),
        ];
        for (labels, want) in cases {
            for prefix in [MetricPrefix::Meshwake, MetricPrefix::Istio] {
                let naming = MetricNaming { prefix };
                for kind in MetricKind::ALL {
                    let name = stat_name(naming, kind, labels);
                    for envoy_prefix in ["", ENVOY_WASM_NAMESPACE] {
                        let full = format!("{envoy_prefix}{name}");
                        let (tags, residual) = extract(&full);
                        assert_eq!(
                            residual,
                            format!("{envoy_prefix}{}", kind.name(naming)),
                            "{full}"
                        );
                        let want: Vec<(String, String)> = label::ALL
                            .iter()
                            .zip(want)
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                            .collect();
                        assert_eq!(tags, want, "{full}");
                    }
                }
            }
        }
    }
}
