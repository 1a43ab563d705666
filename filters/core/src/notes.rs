//! Per-request events the glue turns into Envoy counters (`meshwake.<name>`, names in
//! `meshwake_semconv::stat::note`), declared in one place like Envoy's `tracer_stats.h`.
//! A request carries them as a bitset: no allocation.

macro_rules! notes {
    ($($variant:ident => $name:expr, $doc:literal;)*) => {
        /// Something worth counting happened while handling a request.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Note { $(#[doc = $doc] $variant,)* }
        impl Note {
            /// Every note, in declaration order.
            pub const ALL: &'static [Note] = &[$(Note::$variant,)*];
            /// The counter name suffix.
            pub fn name(self) -> &'static str {
                match self { $(Note::$variant => $name,)* }
            }
        }
    };
}

use meshwake_semconv::stat::note;

notes! {
    ContextContinued => note::CONTEXT_CONTINUED, "an incoming trace context was continued";
    ContextStarted => note::CONTEXT_STARTED, "a new trace was started";
    ContextInvalid => note::CONTEXT_INVALID, "a trace header was malformed and ignored or repaired";
    ContextRecovered => note::CONTEXT_RECOVERED, "an outbound call without context continued its inbound request's trace";
    RecoveryMiss => note::CONTEXT_RECOVERY_MISS, "no remembered context for an outbound call without context";
    SampledOut => note::SAMPLED_OUT, "the request was not sampled";
    EdgeRestarted => note::EDGE_CONTEXT_RESTARTED, "outside context at the edge was replaced by a new trace";
    EdgeStrippedBaggage => note::EDGE_BAGGAGE_STRIPPED, "mesh-owned baggage from outside was dropped";
    EdgeStrippedIdentity => note::EDGE_IDENTITY_STRIPPED, "identity/lineage headers from outside were removed";
    PeerMissing => note::PEER_IDENTITY_MISSING, "the peer sent no identity header";
    PeerMalformed => note::PEER_IDENTITY_MALFORMED, "the peer identity header was malformed";
    PeerSignatureRejected => note::PEER_IDENTITY_REJECTED, "the peer identity failed HMAC verification";
    LineageRejected => note::LINEAGE_REJECTED, "the lineage header was malformed or failed verification";
    LineageTruncated => note::LINEAGE_TRUNCATED, "the lineage was longer than its cap";
}

/// A set of notes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notes(u32);

impl Notes {
    pub fn add(&mut self, n: Note) {
        self.0 |= 1 << (n as u8);
    }
    pub fn has(&self, n: Note) -> bool {
        self.0 & (1 << (n as u8)) != 0
    }
    /// The position in [`Note::ALL`] of each note added, lowest first: a walk of the set
    /// bits only (a request has one or two), for counting on the hot path.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let i = bits.trailing_zeros();
            (bits != 0).then(|| {
                bits &= bits - 1;
                i as usize
            })
        })
    }
    pub fn iter(&self) -> impl Iterator<Item = Note> + '_ {
        Note::ALL.iter().copied().filter(|n| self.has(*n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn indices_are_the_positions_of_the_notes_added() {
        assert_eq!(Notes::default().indices().count(), 0);
        // Every subset of a few notes, the last one included: indices match `iter`.
        let picks = [0, 1, 5, Note::ALL.len() - 1];
        for mask in 0u32..(1 << picks.len()) {
            let mut notes = Notes::default();
            for (bit, &i) in picks.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    notes.add(Note::ALL[i]);
                }
            }
            let want: Vec<usize> = notes.iter().map(|n| n as usize).collect();
            assert_eq!(notes.indices().collect::<Vec<_>>(), want, "{mask:b}");
            assert!(want.iter().all(|&i| Note::ALL[i] as usize == i));
        }
    }
}
