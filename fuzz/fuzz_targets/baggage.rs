//! W3C `baggage`: never panics, stays within its limits, and what it writes parses back to
//! the same members.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_trace_context::Baggage;

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let (mut bag, _report) = Baggage::parse_values(&values);
    assert!(bag.len() <= 180);
    let h = bag.to_header();
    assert_eq!(h.len(), bag.header_len());
    assert!(h.len() <= 8192);
    let (again, report) = Baggage::parse(h.as_bytes());
    assert!(report.is_clean(), "own output re-parsed with errors: {h:?} {report:?}");
    assert_eq!(again.to_header(), h);
    bag.remove_keys_with_prefix("meshwake.");
    let _ = bag.insert("meshwake.k", "v");
    assert_eq!(bag.to_header().len(), bag.header_len());
});
