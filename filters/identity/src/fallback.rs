//! "Never unknown when it can be known": the answering peer's service and version from what
//! Envoy itself knows, for responses that carry no `x-meshwake-peer` (peer without a
//! meshwake sidecar, header lost or rejected).
//!
//! Sources, most specific first: the upstream host's metadata (the endpoint actually
//! picked; Istio puts `filter_metadata.istio.workload` there), the upstream cluster name
//! matched against [`ClusterPattern`]s (Istio subset clusters carry the version), then route
//! metadata set by the operator. Each field is taken from the first source that has it.

use std::fmt;

use serde::Deserialize;

use crate::escape;
use crate::header::{PeerIdentity, MAX_FIELD_LEN};
use crate::workload::UNKNOWN;

/// Where the peer's version came from: the `meshwake.peer.version_source` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSource {
    /// The `x-meshwake-peer` header.
    Header,
    /// The upstream cluster name.
    Cluster,
    /// The upstream host (endpoint) metadata.
    HostMetadata,
    /// Not known.
    Unknown,
}

impl VersionSource {
    /// The attribute value: `header`, `cluster`, `host_metadata` or `unknown`.
    pub fn as_str(self) -> &'static str {
        use meshwake_semconv::attr::values;
        match self {
            VersionSource::Header => values::VERSION_SOURCE_HEADER,
            VersionSource::Cluster => values::VERSION_SOURCE_CLUSTER,
            VersionSource::HostMetadata => values::VERSION_SOURCE_HOST_METADATA,
            VersionSource::Unknown => values::VERSION_SOURCE_UNKNOWN,
        }
    }
}

/// Identity fragments from one source (host metadata, a cluster match).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerHints<'a> {
    /// Service name, if this source knows it.
    pub service: Option<&'a str>,
    /// Deployment version.
    pub version: Option<&'a str>,
    /// Namespace.
    pub namespace: Option<&'a str>,
    /// Workload name.
    pub workload: Option<&'a str>,
}

impl<'a> PeerHints<'a> {
    /// Parses Istio's endpoint metadata `filter_metadata.istio.workload`, written by istiod
    /// as `<workload>;<namespace>;<canonical service>;<canonical revision>;<cluster id>`
    /// (e.g. `reviews-v2;bookinfo;reviews;v2;Kubernetes`). Missing parts are `None`.
    pub fn from_istio_workload(value: &'a str) -> Self {
        let mut parts = value
            .split(';')
            .map(str::trim)
            .map(|p| Some(p).filter(|p| !p.is_empty()));
        let mut next = || parts.next().flatten();
        let (workload, namespace, service, version) = (next(), next(), next(), next());
        PeerHints {
            service,
            version,
            namespace,
            workload,
        }
    }
}

/// Maximum length of a pattern.
pub const MAX_PATTERN_LEN: usize = 256;
/// Maximum literal/placeholder elements in a pattern.
pub const MAX_PATTERN_TOKENS: usize = 16;
/// Cluster names longer than this are not matched.
pub const MAX_CLUSTER_LEN: usize = 512;
/// Matching steps before giving up (bounds backtracking on adversarial names).
const MAX_MATCH_STEPS: u32 = 4096;

/// Default patterns, tried in order: Istio subset clusters (version = subset name), Istio
/// clusters without subset (service only), then `<service>-<version>` names such as
/// `reviews-v2` where the version must look like one (`v2`, `v1.3`, `1.4.0`).
pub const DEFAULT_CLUSTER_PATTERNS: [&str; 3] = [
    "outbound|{port}|{version}|{service}.{namespace}.svc.{*}",
    "outbound|{port}||{service}.{namespace}.svc.{*}",
    "{service}-{version:ver}",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Service,
    Version,
    Namespace,
    Ignore,
}

/// Which characters a placeholder may capture (always at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// DNS-label-like: ASCII letters, digits, `-`, `_`.
    Name,
    /// Anything but `|` (Envoy/Istio's cluster name separator).
    Text,
    /// Version-like: `v`/`V` + digit, or digit with a `.`; then letters, digits, `.-_+`.
    Ver,
    /// ASCII digits.
    Num,
    /// Anything.
    All,
}

impl Class {
    fn allows(self, c: u8) -> bool {
        match self {
            Class::Name => c.is_ascii_alphanumeric() || c == b'-' || c == b'_',
            Class::Text => c != b'|',
            Class::Ver => c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'),
            Class::Num => c.is_ascii_digit(),
            Class::All => true,
        }
    }

    /// Whole-value check beyond per-character rules.
    fn accepts(self, v: &str) -> bool {
        match (self, v.as_bytes()) {
            (Class::Ver, [b'v' | b'V', d, ..]) => d.is_ascii_digit(),
            (Class::Ver, [d, ..]) => d.is_ascii_digit() && v.contains('.'),
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(String),
    Cap(Slot, Class),
}

/// Why a cluster pattern was rejected at configure time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern is empty.
    Empty,
    /// Longer than [`MAX_PATTERN_LEN`] or more than [`MAX_PATTERN_TOKENS`] elements.
    TooLong,
    /// A `{` without `}`, or a stray `}`.
    Unbalanced,
    /// Not one of `{service}`, `{version}`, `{namespace}`, `{port}`, `{*}`.
    UnknownPlaceholder(String),
    /// Not one of the classes `name`, `text`, `ver`, `num`, `all`.
    UnknownClass(String),
    /// Two placeholders in a row: where one ends would be a guess.
    AdjacentPlaceholders,
    /// The same placeholder twice.
    DuplicatePlaceholder(String),
    /// Neither `{service}` nor `{version}`: the pattern could never tell anything.
    NothingCaptured,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => write!(f, "empty cluster pattern"),
            PatternError::TooLong => write!(f, "cluster pattern too long"),
            PatternError::Unbalanced => write!(f, "unbalanced braces in cluster pattern"),
            PatternError::UnknownPlaceholder(p) => write!(f, "unknown placeholder {{{p}}}"),
            PatternError::UnknownClass(c) => write!(f, "unknown placeholder class {c:?}"),
            PatternError::AdjacentPlaceholders => {
                write!(f, "two placeholders need a literal between them")
            }
            PatternError::DuplicatePlaceholder(p) => write!(f, "placeholder {{{p}}} used twice"),
            PatternError::NothingCaptured => {
                write!(f, "pattern has neither {{service}} nor {{version}}")
            }
        }
    }
}

impl std::error::Error for PatternError {}

/// A cluster-name pattern such as `"{service}-{version}"` or
/// `"outbound|{port}|{version}|{service}.{namespace}.svc.cluster.local"`.
///
/// Placeholders: `{service}` and `{namespace}` (letters, digits, `-`, `_`), `{version}`
/// (anything but `|`), `{port}` (digits), `{*}` (anything, discarded). A class can be forced
/// with `{name:class}`, class one of `name`, `text`, `ver`, `num`, `all`. Each placeholder
/// captures at least one character; earlier placeholders take the longest possible match, so
/// `{service}-{version}` reads `my-svc-v2` as `my-svc` / `v2`. The whole name must match.
/// Parse once at configure time; deserializes from a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClusterPattern {
    tokens: Vec<Token>,
}

impl TryFrom<String> for ClusterPattern {
    type Error = PatternError;
    fn try_from(s: String) -> Result<Self, PatternError> {
        ClusterPattern::parse(&s)
    }
}

fn placeholder(spec: &str) -> Result<(Slot, Class), PatternError> {
    let (name, class) = match spec.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (spec, None),
    };
    let (slot, default) = match name {
        "service" => (Slot::Service, Class::Name),
        "namespace" => (Slot::Namespace, Class::Name),
        "version" => (Slot::Version, Class::Text),
        "port" => (Slot::Ignore, Class::Num),
        "*" => (Slot::Ignore, Class::All),
        _ => return Err(PatternError::UnknownPlaceholder(name.to_owned())),
    };
    let class = match class {
        None => default,
        Some("name") => Class::Name,
        Some("text") => Class::Text,
        Some("ver") => Class::Ver,
        Some("num") => Class::Num,
        Some("all") => Class::All,
        Some(other) => return Err(PatternError::UnknownClass(other.to_owned())),
    };
    Ok((slot, class))
}

impl ClusterPattern {
    /// Parses a pattern; see the type documentation for the syntax.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        let mut tokens = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            let (lit, after) = match rest.find('{') {
                Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
                None => (rest, None),
            };
            if lit.contains('}') {
                return Err(PatternError::Unbalanced);
            }
            if !lit.is_empty() {
                tokens.push(Token::Lit(lit.to_owned()));
            }
            let Some(after) = after else { break };
            let (spec, tail) = after.split_once('}').ok_or(PatternError::Unbalanced)?;
            let name = spec.split(':').next().unwrap_or_default();
            if name != "*" && seen.contains(&name) {
                return Err(PatternError::DuplicatePlaceholder(name.to_owned()));
            }
            seen.push(name);
            if matches!(tokens.last(), Some(Token::Cap(..))) {
                return Err(PatternError::AdjacentPlaceholders);
            }
            let (slot, class) = placeholder(spec)?;
            tokens.push(Token::Cap(slot, class));
            rest = tail;
        }
        if tokens.len() > MAX_PATTERN_TOKENS {
            return Err(PatternError::TooLong);
        }
        if !tokens
            .iter()
            .any(|t| matches!(t, Token::Cap(Slot::Service | Slot::Version, _)))
        {
            return Err(PatternError::NothingCaptured);
        }
        Ok(ClusterPattern { tokens })
    }

    /// Matches a whole cluster name; the captured parts as hints, or `None`.
    pub fn match_cluster<'a>(&self, cluster: &'a str) -> Option<PeerHints<'a>> {
        if cluster.len() > MAX_CLUSTER_LEN {
            return None;
        }
        let mut hints = PeerHints::default();
        let mut steps = MAX_MATCH_STEPS;
        match_tokens(&self.tokens, cluster, &mut hints, &mut steps).then_some(hints)
    }
}

/// The default patterns, parsed.
pub fn default_patterns() -> Vec<ClusterPattern> {
    DEFAULT_CLUSTER_PATTERNS
        .iter()
        .filter_map(|p| ClusterPattern::parse(p).ok())
        .collect()
}

fn slot_mut<'h, 'a>(hints: &'h mut PeerHints<'a>, slot: Slot) -> Option<&'h mut Option<&'a str>> {
    match slot {
        Slot::Service => Some(&mut hints.service),
        Slot::Version => Some(&mut hints.version),
        Slot::Namespace => Some(&mut hints.namespace),
        Slot::Ignore => None,
    }
}

/// Backtracking match, longest capture first, bounded by `steps`.
fn match_tokens<'a>(
    tokens: &[Token],
    input: &'a str,
    hints: &mut PeerHints<'a>,
    steps: &mut u32,
) -> bool {
    if *steps == 0 {
        return false;
    }
    *steps -= 1;
    let Some((first, rest)) = tokens.split_first() else {
        return input.is_empty();
    };
    let (slot, class) = match first {
        Token::Lit(l) => {
            return input
                .strip_prefix(l.as_str())
                .is_some_and(|r| match_tokens(rest, r, hints, steps));
        }
        Token::Cap(slot, class) => (*slot, *class),
    };
    // Captures can only extend up to the first character the class refuses.
    let limit = input
        .bytes()
        .position(|c| !class.allows(c))
        .unwrap_or(input.len());
    let next_lit = match rest.first() {
        Some(Token::Lit(l)) => Some(l.as_str()),
        _ => None,
    };
    for end in (1..=limit).rev() {
        let (Some(value), Some(tail)) = (input.get(..end), input.get(end..)) else {
            continue; // not a char boundary
        };
        if next_lit.is_some_and(|l| !tail.starts_with(l)) || !class.accepts(value) {
            continue;
        }
        let saved = slot_mut(hints, slot).and_then(|s| s.replace(value));
        if match_tokens(rest, tail, hints, steps) {
            return true;
        }
        if let Some(s) = slot_mut(hints, slot) {
            *s = saved;
        }
        if *steps == 0 {
            return false;
        }
    }
    false
}

fn clamped(v: Option<&str>) -> Option<&str> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| escape::clamp(v, MAX_FIELD_LEN))
}

/// Infers the answering peer from Envoy's own data when the response had no usable
/// `x-meshwake-peer`.
///
/// Each field comes from the first source that knows it: `host_meta` (e.g.
/// [`PeerHints::from_istio_workload`]), then the first of `patterns` matching `cluster`.
/// The [`VersionSource`] says where the version came from (`Unknown` if
/// only the service is known). `None` when neither service nor version is known.
pub fn infer_peer(
    cluster: Option<&str>,
    host_meta: Option<&PeerHints<'_>>,
    patterns: &[ClusterPattern],
) -> Option<(PeerIdentity, VersionSource)> {
    let from_cluster = cluster.and_then(|c| patterns.iter().find_map(|p| p.match_cluster(c)));
    let layers = [
        (host_meta.copied(), VersionSource::HostMetadata),
        (from_cluster, VersionSource::Cluster),
    ];
    let pick = |field: for<'h> fn(&PeerHints<'h>) -> Option<&'h str>| {
        layers.iter().find_map(|(hints, src)| {
            let v = clamped(hints.as_ref().and_then(|h| field(h)))?;
            Some((v.to_owned(), *src))
        })
    };
    let service = pick(|h| h.service);
    let version = pick(|h| h.version);
    if service.is_none() && version.is_none() {
        return None;
    }
    let source = version.as_ref().map_or(VersionSource::Unknown, |(_, s)| *s);
    let or_unknown =
        |v: Option<(String, VersionSource)>| v.map_or_else(|| UNKNOWN.to_owned(), |(v, _)| v);
    let peer = PeerIdentity {
        service: or_unknown(service),
        version: or_unknown(version),
        namespace: or_unknown(pick(|h| h.namespace)),
        workload: or_unknown(pick(|h| h.workload)),
        extra: Vec::new(),
    };
    Some((peer, source))
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // inline test tables read better than aliases
mod tests {
    use super::*;
    use VersionSource as S;

    #[rustfmt::skip]
    const MATCHES: &[(&str, &str, Option<(Option<&str>, Option<&str>, Option<&str>)>)] = &[
        // pattern, cluster, (service, version, namespace)
        ("{service}-{version}", "reviews-v2",                 Some((Some("reviews"), Some("v2"), None))),
        ("{service}-{version}", "my-svc-v2",                  Some((Some("my-svc"), Some("v2"), None))),
        ("{service}-{version}", "reviews",                    None),
        ("{service}-{version}", "reviews-",                   None),
        ("{service}-{version}", "-v2",                        None),
        ("{service}-{version:ver}", "reviews-v2",             Some((Some("reviews"), Some("v2"), None))),
        ("{service}-{version:ver}", "cart-1.4.0",             Some((Some("cart"), Some("1.4.0"), None))),
        ("{service}-{version:ver}", "redis-6379",             None),
        ("{service}-{version:ver}", "my-service",             None),
        ("{service}-{version:ver}", "canary-v1-beta",         Some((Some("canary"), Some("v1-beta"), None))),
        ("outbound|{port}|{version}|{service}.{namespace}.svc.cluster.local",
            "outbound|9080|v2|reviews.bookinfo.svc.cluster.local", Some((Some("reviews"), Some("v2"), Some("bookinfo")))),
        ("outbound|{port}|{version}|{service}.{namespace}.svc.cluster.local",
            "outbound|9080||reviews.bookinfo.svc.cluster.local",   None),
        ("outbound|{port}|{version}|{service}.{namespace}.svc.cluster.local",
            "outbound|http|v2|reviews.bookinfo.svc.cluster.local", None),
        ("outbound|{port}|{version}|{service}.{namespace}.svc.{*}",
            "outbound|9080|canary|reviews.bookinfo.svc.corp.example", Some((Some("reviews"), Some("canary"), Some("bookinfo")))),
        ("outbound|{port}||{service}.{namespace}.svc.{*}",
            "outbound|9080||reviews.bookinfo.svc.cluster.local",   Some((Some("reviews"), None, Some("bookinfo")))),
        ("{service}.{namespace}.svc.cluster.local", "ratings.prod.svc.cluster.local", Some((Some("ratings"), None, Some("prod")))),
        ("{*}_{service}_{version}", "a_b_c_d",                Some((Some("c"), Some("d"), None))),
        ("{service}-{version}", "ünï-v2",                     None), // service class is ASCII
        ("{*}-{version}", "ünï-v2",                           Some((None, Some("v2"), None))),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn pattern_matching() {
        for (pattern, cluster, want) in MATCHES {
            let p = ClusterPattern::parse(pattern).unwrap();
            let got = p
                .match_cluster(cluster)
                .map(|h| (h.service, h.version, h.namespace));
            assert_eq!(got, *want, "{pattern} ~ {cluster}");
        }
    }

    #[rustfmt::skip]
    const BAD_PATTERNS: &[(&str, PatternError)] = &[
        ("",                         PatternError::Empty),
        ("{service",                 PatternError::Unbalanced),
        ("service}-{version}",       PatternError::Unbalanced),
        ("{service}{version}",       PatternError::AdjacentPlaceholders),
        ("{service}-{service}",      PatternError::DuplicatePlaceholder(String::new())),
        ("{svc}-{version}",          PatternError::UnknownPlaceholder(String::new())),
        ("{service}-{version:semver}", PatternError::UnknownClass(String::new())),
        ("{namespace}-{port}",       PatternError::NothingCaptured),
        ("plain",                    PatternError::NothingCaptured),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn pattern_errors() {
        for (pattern, want) in BAD_PATTERNS {
            let got = ClusterPattern::parse(pattern).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(want),
                "{pattern}: {got}"
            );
        }
        let long = format!("{}{{service}}", "a".repeat(MAX_PATTERN_LEN));
        assert_eq!(ClusterPattern::parse(&long), Err(PatternError::TooLong));
        let many = "{*}-".repeat(MAX_PATTERN_TOKENS) + "{service}";
        assert_eq!(ClusterPattern::parse(&many), Err(PatternError::TooLong));
        assert_eq!(default_patterns().len(), DEFAULT_CLUSTER_PATTERNS.len());
        let from_json: Vec<ClusterPattern> =
            serde_json::from_str(r#"["{service}-{version}"]"#).unwrap();
        assert_eq!(
            from_json[0],
            ClusterPattern::parse("{service}-{version}").unwrap()
        );
        assert!(serde_json::from_str::<ClusterPattern>(r#""{nope}""#).is_err());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn adversarial_names_are_bounded() {
        let p = ClusterPattern::parse("{*}-{*}-{*}-{*}-{*}-{service}-{version}x").unwrap();
        let name = "-a".repeat(200);
        assert_eq!(p.match_cluster(&name), None);
        assert_eq!(p.match_cluster(&"a".repeat(MAX_CLUSTER_LEN + 1)), None);
    }

    type Row = (
        Option<&'static str>,
        Option<PeerHints<'static>>,
        Option<([&'static str; 4], VersionSource)>,
    );

    const fn hints(
        service: Option<&'static str>,
        version: Option<&'static str>,
    ) -> Option<PeerHints<'static>> {
        Some(PeerHints {
            service,
            version,
            namespace: None,
            workload: None,
        })
    }

    #[rustfmt::skip]
    const INFER: &[Row] = &[
        // cluster, host metadata, expected (service, version, namespace, workload) + source
        (Some("outbound|9080|v2|reviews.bookinfo.svc.cluster.local"), None,
            Some((["reviews", "v2", "bookinfo", UNKNOWN], S::Cluster))),
        (Some("reviews-v3"), None,
            Some((["reviews", "v3", UNKNOWN, UNKNOWN], S::Cluster))),
        (Some("outbound|9080||reviews.bookinfo.svc.cluster.local"), None,
            Some((["reviews", UNKNOWN, "bookinfo", UNKNOWN], S::Unknown))),
        (Some("outbound|9080|v2|reviews.bookinfo.svc.cluster.local"), hints(Some("reviews"), Some("v2-hot")),
            Some((["reviews", "v2-hot", "bookinfo", UNKNOWN], S::HostMetadata))),
        (Some("passthrough"), hints(Some(" "), Some("")), None),
        (None, hints(Some("payments"), None),
            Some((["payments", UNKNOWN, UNKNOWN, UNKNOWN], S::Unknown))),
        (None, None, None),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn infer_peer_table() {
        let patterns = default_patterns();
        for (i, (cluster, host, want)) in INFER.iter().enumerate() {
            let got = infer_peer(*cluster, host.as_ref(), &patterns)
                .map(|(p, s)| ([p.service, p.version, p.namespace, p.workload], s));
            let want = want.map(|(f, s)| (f.map(str::to_owned), s));
            assert_eq!(got, want, "row {i}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn istio_workload_metadata() {
        let h = PeerHints::from_istio_workload("reviews-v2;bookinfo;reviews;v2;Kubernetes");
        assert_eq!(
            h,
            PeerHints {
                service: Some("reviews"),
                version: Some("v2"),
                namespace: Some("bookinfo"),
                workload: Some("reviews-v2")
            }
        );
        let (p, s) = infer_peer(
            Some("outbound|9080||reviews.bookinfo.svc.cluster.local"),
            Some(&h),
            &default_patterns(),
        )
        .unwrap();
        assert_eq!(
            (p.workload.as_str(), p.version.as_str(), s),
            ("reviews-v2", "v2", S::HostMetadata)
        );
        assert_eq!(PeerHints::from_istio_workload(";;"), PeerHints::default());
        assert_eq!(PeerHints::from_istio_workload("w").workload, Some("w"));
        #[rustfmt::skip]
        let names = [(S::Header, "header"), (S::Cluster, "cluster"), (S::HostMetadata, "host_metadata"), (S::Unknown, "unknown")];
        for (s, name) in names {
            assert_eq!(s.as_str(), name);
        }
    }
}
