//! Per-request events the glue turns into Envoy counters (`meshwake.<name>`), declared in
//! one place like Envoy's `tracer_stats.h`. A request carries them as a bitset: no allocation.

macro_rules! notes {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
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

notes! {
    ContextContinued => "context_continued", "an incoming trace context was continued";
    ContextStarted => "context_started", "a new trace was started";
    ContextInvalid => "context_invalid", "a trace header was malformed and ignored or repaired";
    ContextRecovered => "context_recovered", "an outbound call without context continued its inbound request's trace";
    RecoveryMiss => "context_recovery_miss", "no remembered context for an outbound call without context";
    SampledOut => "sampled_out", "the request was not sampled";
    EdgeRestarted => "edge_context_restarted", "outside context at the edge was replaced by a new trace";
    EdgeStrippedBaggage => "edge_baggage_stripped", "mesh-owned baggage from outside was dropped";
    EdgeStrippedIdentity => "edge_identity_stripped", "identity/lineage headers from outside were removed";
    PeerMissing => "peer_identity_missing", "the peer sent no identity header";
    PeerMalformed => "peer_identity_malformed", "the peer identity header was malformed";
    PeerSignatureRejected => "peer_identity_rejected", "the peer identity failed HMAC verification";
    LineageRejected => "lineage_rejected", "the lineage header was malformed or failed verification";
    LineageTruncated => "lineage_truncated", "the lineage was longer than its cap";
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
    pub fn iter(&self) -> impl Iterator<Item = Note> + '_ {
        Note::ALL.iter().copied().filter(|n| self.has(*n))
    }
}
