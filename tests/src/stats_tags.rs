//! The bootstrap `stats_config.stats_tags` the filter's metrics need, taken from the one
//! source of truth `filters/telemetry/stats_tags.json` and rendered for templates.
use crate::paths;

/// The tag regexes as `(tag_name, regex)`, read from `filters/telemetry/stats_tags.json`.
pub fn tags() -> Vec<(String, String)> {
    let p = paths::root().join("filters/telemetry/stats_tags.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag_name"].as_str().unwrap().to_string(),
                t["regex"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The value for a template's `{{STATS_TAGS}}` placeholder: a one-line YAML flow sequence
/// (JSON is YAML), e.g. `stats_config: { stats_tags: {{STATS_TAGS}} }`.
pub fn flow_yaml() -> String {
    let arr: Vec<serde_json::Value> = tags()
        .into_iter()
        .map(|(n, r)| serde_json::json!({"tag_name": n, "regex": r}))
        .collect();
    serde_json::to_string(&arr).unwrap()
}

/// `opts` with `{{STATS_TAGS}}` filled.
pub fn with_stats_tags(opts: crate::EnvoyOptions) -> crate::EnvoyOptions {
    opts.var("STATS_TAGS", flow_yaml())
}
