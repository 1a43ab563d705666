//! Bounded-cardinality span names: `{method} {route}` where the route is a configured
//! template (`/users/{id}`) or the path with id-like segments replaced by `{id}`.
//! Never the raw path: ids in span names explode every backend's index.

/// The longest path we look at; longer paths are cut before templating.
pub const MAX_PATH_LEN: usize = 512;
/// Segments kept in a derived template; deeper paths end in `/…`.
pub const MAX_SEGMENTS: usize = 8;

/// A configured route template: literal segments, `{name}` for one segment, `*` at the end for the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

impl RouteTemplate {
    /// Parse a template such as `/api/users/{id}/orders/*`.
    pub fn parse(text: &str) -> Option<RouteTemplate> {
        if !text.starts_with('/') || text.len() > MAX_PATH_LEN {
            return None;
        }
        let segments = split(text)
            .map(|s| {
                if s == "*" {
                    Segment::Rest
                } else if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        Some(RouteTemplate {
            text: text.to_string(),
            segments,
        })
    }

    /// The template text when `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut it = split(path);
        for seg in &self.segments {
            match (seg, it.next()) {
                (Segment::Rest, _) => return true,
                (Segment::Param, Some(_)) => {}
                (Segment::Literal(l), Some(s)) if l == s => {}
                _ => return false,
            }
        }
        it.next().is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn split(path: &str) -> Segments<'_> {
    Segments { path, at: 0 }
}

/// The non-empty `/`-separated segments of a path (`path.split('/')` without the empty
/// ones), found by a byte loop: per request, and `str::split` stayed a searcher call per
/// segment in the module.
struct Segments<'a> {
    path: &'a str,
    at: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.path.as_bytes();
        while self.at < bytes.len() {
            let start = self.at;
            let mut end = start;
            while bytes.get(end).is_some_and(|b| *b != b'/') {
                end += 1;
            }
            self.at = end + 1;
            if end > start {
                // `/` is ASCII: both ends are char boundaries.
                return self.path.get(start..end);
            }
        }
        None
    }
}

/// The path part of a request target (no query, no fragment), bounded.
pub fn path_only(target: &str) -> &str {
    // A byte loop: `find` with a char pattern is a searcher call per request.
    let end = target
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let p = target.get(..end).unwrap_or(target);
    if p.len() <= MAX_PATH_LEN {
        return p;
    }
    let mut cut = MAX_PATH_LEN;
    while !p.is_char_boundary(cut) {
        cut -= 1;
    }
    p.get(..cut).unwrap_or("")
}

/// A segment that is an identifier rather than a resource name: digits, uuids, long hex,
/// or anything long with digits in it.
fn looks_like_id(seg: &str) -> bool {
    let digits = seg.bytes().filter(u8::is_ascii_digit).count();
    if digits == 0 {
        return seg.len() > 32;
    }
    if digits == seg.len() {
        return true;
    }
    // Short names with a digit are versions (`v1`, `api2`), not ids.
    if seg.len() <= 4 {
        return false;
    }
    let hexish = seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (hexish && seg.len() >= 8) || seg.len() >= 16 || digits * 2 >= seg.len()
}

/// The route for a path: the first matching configured template, else a derived one.
pub fn route_for(path: &str, templates: &[RouteTemplate]) -> (String, bool) {
    let mut derived = String::new();
    let (route, templated) = route_ref(path, templates, &mut derived);
    (route.to_string(), templated)
}

/// Like [`route_for`], without a copy: the matching template's text, or the derived route
/// written into `derived` (a buffer the caller reuses).
pub fn route_ref<'a>(
    path: &str,
    templates: &'a [RouteTemplate],
    derived: &'a mut String,
) -> (&'a str, bool) {
    if let Some(t) = templates.iter().find(|t| t.matches(path)) {
        return (t.as_str(), true);
    }
    derived.clear();
    derive_route(path, derived);
    (derived.as_str(), false)
}

fn derive_route(path: &str, out: &mut String) {
    for (i, seg) in split(path).enumerate() {
        if i == MAX_SEGMENTS {
            out.push_str("/…");
            break;
        }
        out.push('/');
        if looks_like_id(seg) {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const DERIVED: &[(&str, &str)] = &[
        ("/",                                        "/"),
        ("/api/users/123",                           "/api/users/{id}"),
        ("/api/users/123/orders/9f1c2d3e4b5a6978",   "/api/users/{id}/orders/{id}"),
        ("/o/550e8400-e29b-41d4-a716-446655440000",  "/o/{id}"),
        ("/static/app.js",                           "/static/app.js"),
        ("/v1/traces",                               "/v1/traces"),
        ("/a/b/c/d/e/f/g/h/i/j",                     "/a/b/c/d/e/f/g/h/…"),
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn segments_are_the_non_empty_parts_between_slashes() {
        for path in [
            "",
            "/",
            "//",
            "a",
            "/a",
            "a/",
            "//a//b/",
            "/ü/x/",
            "/a/b/c/d/e/f/g/h/i/j",
        ] {
            let want: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(split(path).collect::<Vec<_>>(), want, "{path:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn derived_templates_hide_ids() {
        for (path, want) in DERIVED {
            assert_eq!(route_for(path, &[]).0, *want, "{path}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn configured_templates_win() {
        let t = vec![
            RouteTemplate::parse("/users/{name}").unwrap(),
            RouteTemplate::parse("/files/*").unwrap(),
        ];
        assert_eq!(
            route_for("/users/alice", &t),
            ("/users/{name}".into(), true)
        );
        assert_eq!(route_for("/files/a/b/c", &t), ("/files/*".into(), true));
        assert!(!route_for("/users/alice/x", &t).1);
        assert_eq!(path_only("/a/b?x=1#f"), "/a/b");
    }
}
