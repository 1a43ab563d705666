//! The proxy-wasm header map decoder (`proxy_get_header_map_pairs` bytes): never panics,
//! never returns more than `MAX_PAIRS`, the borrowing and owning decoders agree, and a
//! well-formed map decodes to what was encoded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_core::headers::{decode_map, decode_map_borrowed, MAX_PAIRS};

fuzz_target!(|data: &[u8]| {
    let m = decode_map(data);
    assert!(m.len() <= MAX_PAIRS);
    // The zero-copy decoder the glue uses on the request path agrees with the owning one.
    let borrowed: Vec<(String, Vec<u8>)> =
        decode_map_borrowed(data).into_iter().map(|(k, v)| (k.into_owned(), v.to_vec())).collect();
    assert_eq!(borrowed, m);
    // Round trip: encode the pairs we got (names as decoded) and decode again.
    let pairs: Vec<(Vec<u8>, Vec<u8>)> =
        m.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())).collect();
    assert_eq!(decode_map(&meshwake_fuzz::encode_map(&pairs)), m);
});
