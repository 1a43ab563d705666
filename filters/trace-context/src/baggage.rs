//! W3C Baggage header: `key=value;prop,...` with percent-encoded values.
//!
//! <https://www.w3.org/TR/baggage/>

use crate::error::BaggageError;

/// Header name.
pub const BAGGAGE_HEADER: &str = "baggage";
/// At most this many list-members are kept (`list-member 0*179( OWS "," OWS list-member )`).
/// <https://www.w3.org/TR/baggage/#limits>
pub const MAX_MEMBERS: usize = 180;
/// At most this many bytes in the serialized header.
/// <https://www.w3.org/TR/baggage/#limits>
pub const MAX_BYTES: usize = 8192;

/// One list-member. `value` is percent-decoded; `properties` is kept verbatim
/// (trimmed, `;`-joined) since we never interpret them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageMember {
    /// RFC 7230 token.
    pub key: String,
    /// Decoded UTF-8 value.
    pub value: String,
    /// Raw properties without the leading `;`, empty if none.
    pub properties: String,
}

impl BaggageMember {
    fn encoded_len(&self) -> usize {
        let mut s = String::new();
        self.write(&mut s);
        s.len()
    }

    fn write(&self, out: &mut String) {
        out.push_str(&self.key);
        out.push('=');
        encode_value(&self.value, out);
        if !self.properties.is_empty() {
            out.push(';');
            out.push_str(&self.properties);
        }
    }
}

/// What parsing dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaggageReport {
    /// Malformed list-members dropped.
    pub invalid: usize,
    /// List-members dropped past [`MAX_MEMBERS`] or [`MAX_BYTES`].
    pub over_limit: usize,
    /// The first reason a member was malformed.
    pub first_error: Option<BaggageError>,
}

impl BaggageReport {
    /// Nothing dropped.
    pub fn is_clean(&self) -> bool {
        self.invalid == 0 && self.over_limit == 0
    }
}

/// Ordered baggage list-members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<BaggageMember>,
    bytes: usize,
}

/// RFC 7230 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E` (no `"`, `,`, `;`, `\`, space).
fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn any_hex_val(c: u8) -> Option<u8> {
    crate::hex::lower_hex_val(c.to_ascii_lowercase())
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_tchar(c))
}

fn is_raw_value(s: &[u8]) -> bool {
    s.iter().all(|&c| is_baggage_octet(c))
}

/// Percent-decodes a raw value (which must only hold `baggage-octet`s) into UTF-8.
fn decode_value(raw: &[u8]) -> Result<String, BaggageError> {
    if !is_raw_value(raw) {
        return Err(BaggageError::InvalidValue);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut it = raw.iter();
    while let Some(&c) = it.next() {
        if c == b'%' {
            let hi = it.next().and_then(|&h| any_hex_val(h));
            let lo = it.next().and_then(|&l| any_hex_val(l));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(BaggageError::InvalidPercentEncoding),
            }
        } else {
            out.push(c);
        }
    }
    String::from_utf8(out).map_err(|_| BaggageError::NotUtf8)
}

/// Percent-encodes everything outside `baggage-octet`, and `%` itself.
fn encode_value(value: &str, out: &mut String) {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    for &c in value.as_bytes() {
        if is_baggage_octet(c) && c != b'%' {
            out.push(char::from(c));
        } else {
            out.push('%');
            for nibble in [c >> 4, c & 0x0f] {
                out.push(char::from(
                    UPPER.get(usize::from(nibble)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
}

/// `property = key OWS "=" OWS value / key OWS`
fn is_valid_property(p: &[u8]) -> bool {
    match p.iter().position(|&c| c == b'=') {
        None => is_token(p),
        Some(eq) => {
            let (k, v) = p.split_at(eq);
            let v = crate::trim_ows(v.get(1..).unwrap_or_default());
            is_token(crate::trim_ows(k)) && decode_value(v).is_ok()
        }
    }
}

fn parse_member(member: &[u8]) -> Result<BaggageMember, BaggageError> {
    let mut parts = member.split(|&c| c == b';');
    let kv = parts.next().unwrap_or_default();
    let eq = kv
        .iter()
        .position(|&c| c == b'=')
        .ok_or(BaggageError::MissingEquals)?;
    let (key, value) = kv.split_at(eq);
    let key = crate::trim_ows(key);
    if !is_token(key) {
        return Err(BaggageError::InvalidKey);
    }
    let value = decode_value(crate::trim_ows(value.get(1..).unwrap_or_default()))?;
    let mut properties = String::new();
    for p in parts {
        let p = crate::trim_ows(p);
        if !is_valid_property(p) {
            return Err(BaggageError::InvalidProperty);
        }
        if !properties.is_empty() {
            properties.push(';');
        }
        // Validated ASCII above.
        properties.push_str(&String::from_utf8_lossy(p));
    }
    Ok(BaggageMember {
        key: String::from_utf8_lossy(key).into_owned(),
        value,
        properties,
    })
}

impl Baggage {
    /// Parses one header value.
    pub fn parse(value: &[u8]) -> (Self, BaggageReport) {
        Self::parse_values(&[value])
    }

    /// Parses all `baggage` header values in order. Malformed members are dropped one
    /// by one; members that would pass [`MAX_MEMBERS`] or [`MAX_BYTES`] are dropped too.
    pub fn parse_values(values: &[&[u8]]) -> (Self, BaggageReport) {
        // Most requests carry none: no parser state set up for nothing.
        if values.is_empty() {
            return (Self::default(), BaggageReport::default());
        }
        let mut bag = Self::default();
        let mut report = BaggageReport::default();
        for member in values.iter().flat_map(|v| v.split(|&c| c == b',')) {
            let member = crate::trim_ows(member);
            if member.is_empty() {
                continue;
            }
            match parse_member(member) {
                Ok(m) => {
                    if !bag.push(m) {
                        report.over_limit += 1;
                    }
                }
                Err(e) => {
                    report.invalid += 1;
                    report.first_error.get_or_insert(e);
                }
            }
        }
        (bag, report)
    }

    /// Appends if within limits; false otherwise.
    fn push(&mut self, m: BaggageMember) -> bool {
        let added = m.encoded_len() + usize::from(!self.members.is_empty());
        if self.members.len() >= MAX_MEMBERS || self.bytes + added > MAX_BYTES {
            return false;
        }
        self.bytes += added;
        self.members.push(m);
        true
    }

    fn recount(&mut self) {
        let members: usize = self.members.iter().map(BaggageMember::encoded_len).sum();
        self.bytes = members + self.members.len().saturating_sub(1);
    }

    /// Sets `key` (replacing earlier members with that key, appending at the end).
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), BaggageError> {
        if !is_token(key.as_bytes()) {
            return Err(BaggageError::InvalidKey);
        }
        let before = self.members.clone();
        self.members.retain(|m| m.key != key);
        self.recount();
        let m = BaggageMember {
            key: key.to_owned(),
            value: value.to_owned(),
            properties: String::new(),
        };
        if self.push(m) {
            Ok(())
        } else {
            self.members = before;
            self.recount();
            Err(BaggageError::OverLimit)
        }
    }

    /// The value of the first member with `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.key == key)
            .map(|m| m.value.as_str())
    }

    /// Members in order.
    pub fn iter(&self) -> impl Iterator<Item = &BaggageMember> {
        self.members.iter()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Length in bytes of [`Self::to_header`].
    pub fn header_len(&self) -> usize {
        self.bytes
    }

    /// Removes members whose key starts with `prefix`; returns how many.
    pub fn remove_keys_with_prefix(&mut self, prefix: &str) -> usize {
        let before = self.members.len();
        self.members.retain(|m| !m.key.starts_with(prefix));
        self.recount();
        before - self.members.len()
    }

    /// The header value, members joined with `,`, values percent-encoded.
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(self.bytes);
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            m.write(&mut s);
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;
    use BaggageError as E;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn parse_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &[(&str, &str, &str)], usize, &str)] = &[
            // input, members (key, decoded value, properties), invalid count, re-serialized
            // W3C Baggage examples
            ("key1=value1,key2=value2", &[("key1", "value1", ""), ("key2", "value2", "")], 0, "key1=value1,key2=value2"),
            ("key1 = value1, key2 = value2", &[("key1", "value1", ""), ("key2", "value2", "")], 0, "key1=value1,key2=value2"),
            ("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
                &[("key1", "value1", "property1;property2"), ("key2", "value2", ""), ("key3", "value3", "propertyKey=propertyValue")],
                0, "key1=value1;property1;property2,key2=value2,key3=value3;propertyKey=propertyValue"),
            ("userId=alice,serverNode=DF%2028,isProduction=false",
                &[("userId", "alice", ""), ("serverNode", "DF 28", ""), ("isProduction", "false", "")], 0,
                "userId=alice,serverNode=DF%2028,isProduction=false"),
            // percent-encoding, incl. UTF-8 and lower-case escapes
            ("k=%E6%97%A5%e6%9c%ac", &[("k", "日本", "")], 0, "k=%E6%97%A5%E6%9C%AC"),
            ("k=50%25", &[("k", "50%", "")], 0, "k=50%25"),
            ("k=a=b", &[("k", "a=b", "")], 0, "k=a=b"),
            ("k=", &[("k", "", "")], 0, "k="),
            // invalid members dropped one by one
            ("k=%zz,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("k=%4,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("k=%ff,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("k=a b,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("k=\"q\",ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("noequals,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("=v,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("k(1)=v,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            ("k=v;bad prop,ok=1", &[("ok", "1", "")], 1, "ok=1"),
            (",, ,ok=1,", &[("ok", "1", "")], 0, "ok=1"),
            ("", &[], 0, ""),
        ];
        for (input, members, invalid, out) in cases {
            let (bag, report) = Baggage::parse(input.as_bytes());
            let got: Vec<(&str, &str, &str)> = bag
                .iter()
                .map(|m| (m.key.as_str(), m.value.as_str(), m.properties.as_str()))
                .collect();
            assert_eq!(got, *members, "{input}");
            assert_eq!(report.invalid, *invalid, "{input}");
            assert_eq!(report.over_limit, 0, "{input}");
            assert_eq!(bag.to_header(), *out, "{input}");
            assert_eq!(bag.header_len(), out.len(), "{input}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn first_error_and_non_utf8() {
        #[rustfmt::skip]
        let cases: &[(&[u8], E)] = &[
            (b"k=%C3%28",       E::NotUtf8),
            (b"k=\xc3\xa9",     E::InvalidValue),
            (b"k\xff=v",        E::InvalidKey),
            (b"k=%2",           E::InvalidPercentEncoding),
            (b"k",              E::MissingEquals),
            (b"k=v;p=%",        E::InvalidProperty),
        ];
        for (input, err) in cases {
            let (bag, report) = Baggage::parse(input);
            assert!(bag.is_empty());
            assert_eq!(report.first_error, Some(*err), "{input:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn limits() {
        // 181 members: the last is dropped.
        let many: Vec<String> = (0..181).map(|i| format!("k{i}=v")).collect();
        let (bag, report) = Baggage::parse(many.join(",").as_bytes());
        assert_eq!((bag.len(), report.over_limit), (180, 1));
        // Exactly 8192 bytes fits; one more byte does not.
        let exact = format!("k={}", "v".repeat(MAX_BYTES - 2));
        let (bag, report) = Baggage::parse(exact.as_bytes());
        assert_eq!(
            (bag.len(), bag.header_len(), report.over_limit),
            (1, MAX_BYTES, 0)
        );
        let over = format!("k={}", "v".repeat(MAX_BYTES - 1));
        assert_eq!(over.len(), 8193);
        let (bag, report) = Baggage::parse(over.as_bytes());
        assert_eq!((bag.len(), report.over_limit), (0, 1));
        // A member that fits after one that did not is still kept.
        let mixed = format!("a=1,{over},b=2");
        let (bag, report) = Baggage::parse(mixed.as_bytes());
        assert_eq!(
            (bag.to_header().as_str(), report.over_limit),
            ("a=1,b=2", 1)
        );
        // Encoded size counts: 3000 spaces become 9000 bytes.
        let spaces = format!("k={}", "%20".repeat(3000));
        let (bag, report) = Baggage::parse(spaces.as_bytes());
        assert_eq!((bag.len(), report.over_limit), (0, 1));
        // Huge input: bounded result.
        let huge = "k=v,".repeat(1 << 18);
        let (bag, report) = Baggage::parse(huge.as_bytes());
        assert_eq!((bag.len(), report.over_limit), (180, (1 << 18) - 180));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn multiple_values_insert_and_prefix_removal() {
        let (mut bag, _) = Baggage::parse_values(&[b"a=1", b"mw.x=2,b=3", b"mw.y=4"]);
        assert_eq!(bag.to_header(), "a=1,mw.x=2,b=3,mw.y=4");
        assert_eq!(bag.remove_keys_with_prefix("mw."), 2);
        assert_eq!(bag.to_header(), "a=1,b=3");
        bag.insert("a", "x y,z").unwrap();
        assert_eq!(bag.to_header(), "b=3,a=x%20y%2Cz");
        assert_eq!(bag.header_len(), bag.to_header().len());
        assert_eq!(bag.get("a"), Some("x y,z"));
        assert_eq!(bag.insert("bad key", "v"), Err(E::InvalidKey));
        assert_eq!(bag.insert("big", &"v".repeat(MAX_BYTES)), Err(E::OverLimit));
        assert_eq!(bag.to_header(), "b=3,a=x%20y%2Cz");
    }
}
