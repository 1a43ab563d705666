//! `x-meshwake-lineage`: decoding arbitrary bytes never panics and never returns more than
//! the cap; re-encoding what decoded decodes to the same entries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_identity::Lineage;

fuzz_target!(|data: &[u8]| {
    let (cap, keyed, bytes) = match data {
        [c, k, rest @ ..] => (usize::from(*c % 40), k & 1 == 1, rest),
        _ => (8, false, data),
    };
    let key: Option<&[u8]> = keyed.then_some(b"fuzz key".as_slice());
    if let Ok(mut l) = Lineage::decode(bytes, cap, key) {
        assert!(l.entries().len() <= l.cap().max(1), "{} > {}", l.entries().len(), l.cap());
        let enc = l.encode(key);
        let again = Lineage::decode(enc.as_bytes(), cap, key).expect("own encoding decodes");
        assert_eq!(again.entries(), l.entries());
        l.push("svc", "v1");
        assert!(l.entries().len() <= l.cap().max(1));
    }
});
