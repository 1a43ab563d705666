//! `x-meshwake-lineage`: decoding arbitrary bytes never panics and never returns more than
//! the cap; re-encoding what decoded decodes again, to the same entries or, when the input
//! used the whole byte budget (the encoder keeps room for the `+N,` counter), to the newest of
//! them with the rest counted as dropped.
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
        let (old, new) = (l.entries(), again.entries());
        assert!(new.len() <= old.len() && old.ends_with(new), "re-encoding kept {new:?} of {old:?}");
        if new.len() < old.len() {
            assert!(again.is_truncated(), "entries left out without a drop count");
        }
        l.push("svc", "v1");
        assert!(l.entries().len() <= l.cap().max(1));
    }
});
