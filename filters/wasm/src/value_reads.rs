//! The A/B variant of how headers are read (feature `value-reads`, off by default; issue 14,
//! docs/adr/0006 "Measured, not adopted"): one `proxy_get_header_map_value` per header name
//! the core asks for, instead of one `proxy_get_header_map_pairs` that serialises the map.
//!
//! Each answer is kept, so a name is read from the host at most once per map. Envoy's
//! `getHeaderMapValue` answers only the first value of a repeated header, so this source
//! sees one value per name: `get_all` has at most one element and `count` is 0 or 1, where
//! the pairs map sees every value (a repeated `traceparent` or `baggage` reads differently).
use crate::abi::MapType;
use crate::host;
use meshwake_core::headers::{known_slot, KNOWN};
use meshwake_trace_context::propagator::HeaderSource;
use std::cell::OnceCell;

/// Names outside [`KNOWN`] remembered per map; a further unknown name reads as absent.
const OTHER_NAMES: usize = 8;

/// One header map read name by name, lazily.
pub struct ValueReads {
    /// `None`: a map not read at all (every name absent, no host call).
    map: Option<MapType>,
    /// Per [`KNOWN`] slot: the host's answer once asked.
    known: [OnceCell<Option<Vec<u8>>>; KNOWN.len()],
    /// Other names asked, with their answers, in the order first asked.
    other: [OnceCell<(String, Option<Vec<u8>>)>; OTHER_NAMES],
}

impl ValueReads {
    pub fn new(map: MapType) -> ValueReads {
        ValueReads {
            map: Some(map),
            known: Default::default(),
            other: Default::default(),
        }
    }

    /// A map the role does not read (inbound responses): nothing is asked of the host.
    pub fn empty() -> ValueReads {
        ValueReads {
            map: None,
            known: Default::default(),
            other: Default::default(),
        }
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        host::header_value(self.map?, name)
    }

    /// The remembered answer for a name outside [`KNOWN`], read on first use.
    fn other(&self, name: &str) -> Option<&[u8]> {
        for cell in &self.other {
            match cell.get() {
                Some((n, v)) if n.eq_ignore_ascii_case(name) => return v.as_deref(),
                Some(_) => continue,
                None => {
                    let (_, v) = cell.get_or_init(|| (name.to_owned(), self.read(name)));
                    return v.as_deref();
                }
            }
        }
        None
    }
}

impl HeaderSource for ValueReads {
    fn get(&self, name: &str) -> Option<&[u8]> {
        match known_slot(name.as_bytes()).and_then(|s| self.known.get(s)) {
            Some(cell) => cell.get_or_init(|| self.read(name)).as_deref(),
            None => self.other(name),
        }
    }
    fn count(&self, name: &str) -> usize {
        usize::from(self.get(name).is_some())
    }
}
