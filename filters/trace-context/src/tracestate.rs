//! W3C Trace Context `tracestate` header: vendor key/value list, leftmost = most recent.
//!
//! <https://www.w3.org/TR/trace-context-2/#tracestate-header>

use crate::error::TraceStateError;

/// Header name.
pub const TRACESTATE_HEADER: &str = "tracestate";
/// At most this many list-members; more makes the header invalid.
/// <https://www.w3.org/TR/trace-context-2/#list>
pub const MAX_MEMBERS: usize = 32;
/// Length we propagate at most (the spec asks to propagate at least this much).
/// <https://www.w3.org/TR/trace-context-2/#tracestate-limits>
pub const MAX_HEADER_LEN: usize = 512;
/// On truncation, members longer than this are removed first.
pub const LARGE_MEMBER_LEN: usize = 128;
/// Level 2 `key = ( lcalpha / DIGIT ) 0*255 ( keychar )`: at most 256 characters.
/// (Level 1's `tenant@system` split with its 241/14 limits is gone: `@` is a key character.)
pub const MAX_KEY_LEN: usize = 256;
/// `value = 0*255(chr) nblk-chr`
pub const MAX_VALUE_LEN: usize = 256;

/// An ordered `tracestate` list.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TraceState {
    entries: Vec<(String, String)>,
}

/// `keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"`
fn is_key_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// Whether `key` matches the Level 2 key grammar: a lowercase letter or digit first, then up
/// to 255 key characters, `@` anywhere but first (`foo@`, `foo@@bar`, `a@b@c` are valid).
/// <https://www.w3.org/TR/trace-context-2/#key>
pub fn is_valid_key(key: &[u8]) -> bool {
    match key.split_first() {
        Some((first, rest)) => {
            key.len() <= MAX_KEY_LEN
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|&c| is_key_char(c))
        }
        None => false,
    }
}

/// Whether `value` is valid: 1..=256 printable ASCII characters without `,` or `=`, not ending in a space.
/// <https://www.w3.org/TR/trace-context-2/#value>
pub fn is_valid_value(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_VALUE_LEN
        && value
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && value.last() != Some(&b' ')
}

impl TraceState {
    /// Parses one header value.
    pub fn parse(value: &[u8]) -> Result<Self, TraceStateError> {
        Self::parse_values(&[value])
    }

    /// Parses all `tracestate` header values, combined as if joined with `,`.
    /// Empty members are skipped; any invalid member or more than [`MAX_MEMBERS`] members
    /// (counted as received) invalidates the whole header. A repeated key keeps its first
    /// (leftmost, most recent) member and drops the later ones: the spec lets a receiver
    /// pass duplicates on or drop one, and the W3C suite expects the list to survive.
    /// <https://www.w3.org/TR/trace-context-2/#tracestate-header-field-values>
    pub fn parse_values(values: &[&[u8]]) -> Result<Self, TraceStateError> {
        // Most requests carry none: no parser state set up for nothing.
        if values.is_empty() {
            return Ok(Self::default());
        }
        let mut entries: Vec<(String, String)> = Vec::new();
        let mut received = 0usize;
        for member in values.iter().flat_map(|v| v.split(|&c| c == b',')) {
            let member = crate::trim_ows(member);
            if member.is_empty() {
                continue;
            }
            received += 1;
            if received > MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            let eq = member
                .iter()
                .position(|&c| c == b'=')
                .ok_or(TraceStateError::MissingEquals)?;
            let (key, value) = member.split_at(eq);
            let value = value.get(1..).unwrap_or_default();
            if !is_valid_key(key) {
                return Err(TraceStateError::InvalidKey);
            }
            if !is_valid_value(value) {
                return Err(TraceStateError::InvalidValue);
            }
            // Both validated as ASCII above.
            let key = String::from_utf8_lossy(key).into_owned();
            if !entries.iter().any(|(k, _)| *k == key) {
                entries.push((key, String::from_utf8_lossy(value).into_owned()));
            }
        }
        Ok(Self { entries })
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Number of list-members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No list-members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The members in order, leftmost first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets our own entry and moves it to the front, as a vendor that
    /// changed the `traceparent` must. The rightmost member is dropped past [`MAX_MEMBERS`].
    /// <https://www.w3.org/TR/trace-context-2/#mutating-the-tracestate-field>
    pub fn upsert(&mut self, key: &str, value: &str) -> Result<(), TraceStateError> {
        if !is_valid_key(key.as_bytes()) {
            return Err(TraceStateError::InvalidKey);
        }
        if !is_valid_value(value.as_bytes()) {
            return Err(TraceStateError::InvalidValue);
        }
        self.entries.retain(|(k, _)| k != key);
        self.entries.insert(0, (key.to_owned(), value.to_owned()));
        self.entries.truncate(MAX_MEMBERS);
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(pos).1)
    }

    /// Removes every member whose key matches; returns how many were removed.
    pub fn remove_keys_where(&mut self, mut pred: impl FnMut(&str) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| !pred(k));
        before - self.entries.len()
    }

    /// Length of [`Self::to_header`] without building it.
    pub fn header_len(&self) -> usize {
        let members: usize = self
            .entries
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len())
            .sum();
        members + self.entries.len().saturating_sub(1)
    }

    /// Shortens the list until its header fits `max_len`: members longer than
    /// [`LARGE_MEMBER_LEN`] go first (rightmost first), then members from the right.
    /// <https://www.w3.org/TR/trace-context-2/#tracestate-limits>
    pub fn truncate(&mut self, max_len: usize) {
        while self.header_len() > max_len {
            let large = self
                .entries
                .iter()
                .rposition(|(k, v)| k.len() + 1 + v.len() > LARGE_MEMBER_LEN);
            match large {
                Some(pos) => {
                    self.entries.remove(pos);
                }
                None => {
                    self.entries.pop();
                }
            }
        }
    }

    /// The header value, `key=value` joined with `,` (no spaces).
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(self.header_len());
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;
    use TraceStateError as E;

    fn parse_str(values: &[&str]) -> Result<String, E> {
        let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        TraceState::parse_values(&v).map(|t| t.to_header())
    }

    fn members(n: usize) -> String {
        (0..n)
            .map(|i| format!("k{i}=v{i}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn parse_table() {
        let all_value: String = (0x20u8..=0x7e)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect();
        let all_key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let all_vendor_key = format!("{all_key}@a-z0-9_-*/");
        let m32 = members(32);
        let m33 = members(33);
        let long_key = format!("a{}", "b".repeat(255));
        let too_long_key = format!("a{}", "b".repeat(256));
        let long_value = "v".repeat(256);
        let too_long_value = "v".repeat(257);
        let kv = |k: &str, v: &str| format!("{k}={v}");
        #[rustfmt::skip]
        let cases: Vec<(Vec<String>, Result<String, E>)> = vec![
            // W3C spec examples
            (vec!["congo=t61rcWkgMzE".into()], Ok("congo=t61rcWkgMzE".into())),
            (vec!["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into()], Ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into())),
            (vec!["congo=BleGNlZWRzIHRohbCBwbGVhc3VyZS4=".into()], Err(E::InvalidValue)),
            (vec!["fw529a3039@dt=s,rojo=00f067aa0ba902b7".into()], Ok("fw529a3039@dt=s,rojo=00f067aa0ba902b7".into())),
            // multiple headers combine in order; empty headers and members are ignored
            (vec!["foo=1,bar=2".into(), "rojo=1,congo=2".into(), "baz=3".into()], Ok("foo=1,bar=2,rojo=1,congo=2,baz=3".into())),
            (vec!["".into()], Ok("".into())),
            (vec!["foo=1".into(), "".into()], Ok("foo=1".into())),
            (vec![",, foo=1 ,,".into()], Ok("foo=1".into())),
            // OWS handling
            (vec!["foo=1 \t , \t bar=2, \t baz=3".into()], Ok("foo=1,bar=2,baz=3".into())),
            (vec!["\t foo=1 \t".into()], Ok("foo=1".into())),
            // a repeated key keeps its first member; the rest of the list survives
            (vec!["foo=1,foo=1".into()], Ok("foo=1".into())),
            (vec!["foo=1,bar=2,foo=3".into()], Ok("foo=1,bar=2".into())),
            (vec!["foo=1".into(), "foo=2".into()], Ok("foo=1".into())),
            // key grammar (Level 2: `@` is a key character, not a tenant/system separator)
            (vec!["foo =1".into()], Err(E::InvalidKey)),
            (vec!["FOO=1".into()], Err(E::InvalidKey)),
            (vec!["foo.bar=1".into()], Err(E::InvalidKey)),
            (vec!["1foo=1".into()], Ok("1foo=1".into())),
            (vec!["1foo@bar=1".into()], Ok("1foo@bar=1".into())),
            (vec!["foo@=1,bar=2".into()], Ok("foo@=1,bar=2".into())),
            (vec!["@foo=1,bar=2".into()], Err(E::InvalidKey)),
            (vec!["_foo=1".into()], Err(E::InvalidKey)),
            (vec!["foo@@bar=1,bar=2".into()], Ok("foo@@bar=1,bar=2".into())),
            (vec!["foo@bar@baz=1,bar=2".into()], Ok("foo@bar@baz=1,bar=2".into())),
            (vec!["foo@1bar=1".into()], Ok("foo@1bar=1".into())),
            (vec!["t@abcdefghijklmno=1".into()], Ok("t@abcdefghijklmno=1".into())),
            (vec![kv(&format!("{}@{}", "t".repeat(241), "v".repeat(14)), "1")], Ok(kv(&format!("{}@{}", "t".repeat(241), "v".repeat(14)), "1"))),
            (vec![kv(&format!("{}@v", "t".repeat(242)), "1")], Ok(kv(&format!("{}@v", "t".repeat(242)), "1"))),
            (vec![kv(&format!("{}@v", "t".repeat(255)), "1")], Err(E::InvalidKey)),
            (vec![kv(&long_key, "1")], Ok(kv(&long_key, "1"))),
            (vec![kv(&too_long_key, "1")], Err(E::InvalidKey)),
            (vec![kv(all_key, &all_value)], Ok(kv(all_key, &all_value))),
            (vec![kv(&all_vendor_key, &all_value)], Ok(kv(&all_vendor_key, &all_value))),
            // value grammar
            (vec!["foo=".into()], Err(E::InvalidValue)),
            (vec!["foo=a\u{7f}".into()], Err(E::InvalidValue)),
            (vec!["foo=\u{e9}".into()], Err(E::InvalidValue)),
            (vec![kv("foo", &long_value)], Ok(kv("foo", &long_value))),
            (vec![kv("foo", &too_long_value)], Err(E::InvalidValue)),
            (vec!["foo".into()], Err(E::MissingEquals)),
            // member count
            (vec![m32.clone()], Ok(m32.clone())),
            (vec![m33], Err(E::TooManyMembers)),
            (vec![m32.clone(), "x=1".into()], Err(E::TooManyMembers)),
            // duplicates count as received members
            (vec![m32, "k0=1".into()], Err(E::TooManyMembers)),
        ];
        for (values, expected) in cases {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            assert_eq!(parse_str(&refs), expected, "{values:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn non_utf8_and_huge() {
        assert_eq!(TraceState::parse(b"foo=\xff\xfe"), Err(E::InvalidValue));
        assert_eq!(TraceState::parse(b"f\xffo=1"), Err(E::InvalidKey));
        let commas = vec![b','; 1 << 20];
        assert_eq!(TraceState::parse(&commas).map(|t| t.len()), Ok(0));
        let mut big = b"foo=".to_vec();
        big.resize(1 << 20, b'a');
        assert_eq!(TraceState::parse(&big), Err(E::InvalidValue));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn upsert_moves_to_front() {
        let mut ts = TraceState::parse(b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").unwrap();
        ts.upsert("congo", "new").unwrap();
        assert_eq!(ts.to_header(), "congo=new,rojo=00f067aa0ba902b7");
        ts.upsert("mw", "x").unwrap();
        assert_eq!(ts.to_header(), "mw=x,congo=new,rojo=00f067aa0ba902b7");
        assert_eq!(ts.upsert("Bad", "x"), Err(E::InvalidKey));
        assert_eq!(ts.upsert("ok", "a,b"), Err(E::InvalidValue));
        assert_eq!(ts.get("congo"), Some("new"));
        assert_eq!(ts.remove("congo").as_deref(), Some("new"));
        assert_eq!(ts.remove_keys_where(|k| k.starts_with('m')), 1);
        assert_eq!(ts.to_header(), "rojo=00f067aa0ba902b7");
        // full list: the rightmost member falls off
        let mut full = TraceState::parse(members(32).as_bytes()).unwrap();
        full.upsert("mw", "1").unwrap();
        assert_eq!(full.len(), MAX_MEMBERS);
        assert_eq!(full.iter().next(), Some(("mw", "1")));
        assert_eq!(full.get("k31"), None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn truncation_table() {
        let big = |k: &str| format!("{k}={}", "x".repeat(200));
        let small = |k: &str| format!("{k}={}", "y".repeat(60));
        #[rustfmt::skip]
        let cases: Vec<(String, usize, Vec<&str>)> = vec![
            // fits: unchanged
            ("a=1,b=2".into(), 512, vec!["a", "b"]),
            // large members go first, rightmost first
            ([small("a"), big("b"), small("c"), big("d"), small("e")].join(","), 512, vec!["a", "b", "c", "e"]),
            ([small("a"), big("b"), small("c"), big("d"), small("e")].join(","), 300, vec!["a", "c", "e"]),
            // then from the end
            ((0..10).map(|i| small(&format!("k{i}"))).collect::<Vec<_>>().join(","), 200, vec!["k0", "k1", "k2"]),
            ("a=1".into(), 0, vec![]),
        ];
        for (input, max, keys) in cases {
            let mut ts = TraceState::parse(input.as_bytes()).unwrap();
            ts.truncate(max);
            assert!(ts.header_len() <= max);
            assert_eq!(ts.header_len(), ts.to_header().len());
            assert_eq!(
                ts.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                keys,
                "{input} / {max}"
            );
        }
    }
}
