//! Request headers, in the order the phases run: identity of the caller, extraction with
//! edge trust, recovery, choice of parent, sampling, the outgoing context, identity towards
//! the callee, capture of span attributes. Each phase reads the headers and what the earlier
//! ones decided, and adds to the header edits and notes.
use super::{header, Engine, HeaderEdits, RequestState, MAX_ATTR_LEN};
use crate::config::Role;
use crate::notes::{Note, Notes};
use crate::recovery::{self, Remembered};
use crate::route;
use meshwake_identity::{self as identity, Lineage, PeerIdentity};
use meshwake_trace_context::propagator::{
    self, Edit, Extracted, HeaderSource, InjectOptions, Propagator,
};
use meshwake_trace_context::{IdGenerator, SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Who called, as the caller's sidecar said (inbound only).
struct Caller {
    source: Option<PeerIdentity>,
    /// Deployments upstream of the caller, from its lineage header.
    lineage: Lineage,
}

/// The parent of this hop's span: the incoming context, a recovered one or none (a root).
struct Parent {
    trace_id: TraceId,
    span_id: Option<SpanId>,
    trace_state: TraceState,
    flags: Option<TraceFlags>,
}

impl Parent {
    /// This hop's trace flags: the parent's known flags (or `random` for a root) with the
    /// sampling decision.
    fn child_flags(&self, sampled: bool) -> TraceFlags {
        match self.flags {
            Some(parent) => TraceFlags(parent.0 & TraceFlags::KNOWN).with_sampled(sampled),
            None => TraceFlags(TraceFlags::RANDOM)
                .with_sampled(sampled)
                .with_random(true),
        }
    }
}

/// Request attributes only spans use: empty when spans are off (no copies).
#[derive(Debug, Default)]
struct SpanText {
    method: String,
    path: String,
    scheme: String,
    authority: String,
    user_agent: String,
}

/// The strings of a finished request, handed to the next one ([`Engine::on_request_reusing`])
/// so its copies of request attributes reuse their buffers instead of allocating.
#[derive(Debug, Default)]
pub struct Spare {
    text: SpanText,
    request_id: String,
}

impl RequestState {
    /// Like [`RequestState::into_spare`], leaving the state where it is, without its
    /// buffers: no move of the whole state.
    pub fn take_spare(&mut self) -> Spare {
        let take = std::mem::take::<String>;
        Spare {
            text: SpanText {
                method: take(&mut self.method),
                path: take(&mut self.path),
                scheme: take(&mut self.scheme),
                authority: take(&mut self.authority),
                user_agent: take(&mut self.user_agent),
            },
            request_id: take(&mut self.request_id),
        }
    }

    /// Whether any of the buffers [`RequestState::take_spare`] would keep holds memory (a
    /// hop that copies no request attribute has none worth keeping).
    pub fn holds_spare(&self) -> bool {
        [
            &self.method,
            &self.path,
            &self.scheme,
            &self.authority,
            &self.user_agent,
            &self.request_id,
        ]
        .iter()
        .any(|s| s.capacity() > 0)
    }

    /// Keep this request's string buffers for a later request.
    pub fn into_spare(mut self) -> Spare {
        self.take_spare()
    }
}

/// `b` cut at `max` bytes, as UTF-8 (lossy), into `out`'s buffer.
fn lossy_into(out: &mut String, b: Option<&[u8]>, max: usize) {
    out.clear();
    let Some(b) = b else {
        return;
    };
    let b = b.get(..b.len().min(max)).unwrap_or(b);
    match std::str::from_utf8(b) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(b)),
    }
}

/// Like [`lossy_into`], the usual methods and schemes copied from constants: no UTF-8 check.
fn token_into(out: &mut String, b: Option<&[u8]>, max: usize) {
    let known = match b.unwrap_or_default() {
        b"GET" => "GET",
        b"POST" => "POST",
        b"http" => "http",
        b"https" => "https",
        _ => return lossy_into(out, b, max),
    };
    out.clear();
    out.push_str(known);
}

/// The lineage this hop records, and the encoding it sent downstream.
struct LineageOut {
    recorded: Lineage,
    sent: String,
}

impl Engine {
    /// Request headers arrived. `recall(kind, key)` reads a context-recovery slot.
    pub fn on_request(
        &self,
        role: Role,
        headers: &dyn HeaderSource,
        now_ns: u64,
        ids: &mut IdGenerator,
        recall: &mut dyn FnMut(&str, &[u8]) -> Option<Remembered>,
    ) -> (RequestState, HeaderEdits<'_>) {
        self.on_request_reusing(role, headers, now_ns, ids, recall, Spare::default())
    }

    /// [`Engine::on_request`], copying request attributes into `spare`'s buffers (an
    /// earlier request's, from [`RequestState::into_spare`]).
    pub fn on_request_reusing(
        &self,
        role: Role,
        headers: &dyn HeaderSource,
        now_ns: u64,
        ids: &mut IdGenerator,
        recall: &mut dyn FnMut(&str, &[u8]) -> Option<Remembered>,
        spare: Spare,
    ) -> (RequestState, HeaderEdits<'_>) {
        let Spare {
            text: mut span_text,
            mut request_id,
        } = spare;
        let mut notes = Notes::default();
        let mut edits = HeaderEdits::default();

        let caller = self.caller_identity(role, headers, &mut notes);
        // Usually absent: one question for all before one per name.
        if headers.has_any(&identity::OWNED_HEADERS) {
            for name in identity::OWNED_HEADERS {
                edits.remove(headers, name);
            }
        }
        // Extraction with edge trust; in place (`Extracted` is large: no moves on the hot path).
        let mut extracted = propagator::extract(&self.extract, headers);
        let untrusted = self.apply_edge_trust(role, &mut extracted, &mut notes);

        // Only context recovery (its key) and spans (an attribute) use the request id.
        let request_id_bytes = (self.cfg.context_recovery.enabled || self.cfg.spans.enabled)
            .then(|| headers.get(header::REQUEST_ID))
            .flatten();
        // The key exactly as `remember` stores it (cut, lossy): a long or non-UTF-8
        // request id must land in the same slot on both sides.
        lossy_into(&mut request_id, request_id_bytes, recovery::MAX_KEY_LEN);
        let recovered = self.recover(
            role,
            &extracted,
            request_id_bytes.is_some().then_some(request_id.as_bytes()),
            recall,
            &mut notes,
        );

        // A hop that records no span passes its parent on (W3C: a vendor MAY update
        // `parent-id`): an id of its own would name a span nobody exports, and the
        // context it forwards unchanged needs no header write. Otherwise the span id is
        // drawn before a root's trace id, so the id sequence stays as it was.
        let passes_through =
            !self.cfg.spans.enabled && (extracted.context.is_some() || recovered.is_some());
        let own_span_id = (!passes_through).then(|| ids.new_span_id());
        let parent = choose_parent(&extracted, recovered.as_ref(), ids, &mut notes);
        let span_id = match (own_span_id, parent.span_id) {
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => ids.new_span_id(),
        };
        let debug = self.is_debug(&extracted, &parent.trace_state);
        let sampled = self.sampler.decide_hop(
            &extracted,
            recovered.as_ref().map(|r| r.flags),
            &parent.trace_id,
            debug || self.forced_by_header(headers),
        );
        if !sampled {
            notes.add(Note::SampledOut);
        }
        let mut ctx = SpanContext::new(parent.trace_id, span_id, parent.child_flags(sampled));
        ctx.trace_state = parent.trace_state;
        if debug {
            // Carried to later hops, which may only speak W3C.
            let key = &self.cfg.edge.tracestate_key;
            meshwake_trace_context::mark_mesh_debug(&mut ctx.trace_state, key);
        }

        // B3's `ParentSpanId` names the parent of the span propagated: ours, or when passing
        // through, the caller's own parent as it came.
        let b3_parent = if passes_through {
            extracted.context.as_ref().and_then(|c| c.parent_span_id)
        } else {
            parent.span_id
        };
        let options = InjectOptions {
            parent_span_id: b3_parent,
            debug,
            keep_traceparent: traceparent_says(&extracted, &ctx),
            // Removals: `write_context` decides, from the headers there.
            ..InjectOptions::default()
        };
        self.write_context(role, headers, &ctx, options, &extracted, &mut edits);
        let lineage =
            self.identity_towards_callee(role, recovered.as_ref(), caller.lineage, &mut edits);
        if lineage.recorded.is_truncated() {
            notes.add(Note::LineageTruncated);
        }

        self.capture_span_text(headers, &mut span_text);
        let state = RequestState {
            role,
            start_ns: now_ns,
            ctx,
            parent_span_id: parent.span_id,
            sampled,
            link: untrusted,
            method: span_text.method,
            path: span_text.path,
            scheme: span_text.scheme,
            authority: span_text.authority,
            user_agent: span_text.user_agent,
            request_id,
            // Read at stream end only, which spans or metrics need.
            grpc: (self.cfg.spans.enabled || self.cfg.metrics.enabled) && is_grpc(headers),
            source: caller.source,
            destination: None,
            lineage: lineage.recorded,
            lineage_out: lineage.sent,
            first_byte_ns: None,
            notes,
        };
        (state, edits)
    }

    /// Identity and lineage headers are trusted only from a meshwake peer (inbound); from
    /// outside (edge) or from the app (outbound) they are removed and rewritten.
    fn caller_identity(&self, role: Role, headers: &dyn HeaderSource, notes: &mut Notes) -> Caller {
        let lineage_cap = self.cfg.identity.lineage_max;
        let mut caller = Caller {
            source: None,
            lineage: Lineage::new(lineage_cap),
        };
        match role {
            Role::Inbound if self.cfg.identity.exchange => {
                caller.source = self.decode_peer(headers.get(identity::PEER_HEADER), notes);
                if let Some(value) = headers.get(identity::LINEAGE_HEADER) {
                    match Lineage::decode(value, lineage_cap, self.key.as_deref()) {
                        Ok(lineage) => caller.lineage = lineage,
                        Err(_) => notes.add(Note::LineageRejected),
                    }
                }
            }
            Role::Edge => {
                if headers.get(identity::PEER_HEADER).is_some()
                    || headers.get(identity::LINEAGE_HEADER).is_some()
                {
                    notes.add(Note::EdgeStrippedIdentity);
                }
            }
            Role::Inbound | Role::Outbound => {}
        }
        caller
    }

    /// What the edge trusts of the extracted context, B3 hints and baggage. An edge that
    /// does not trust outside context keeps it only as a link (returned), drops the
    /// sampling hint and the baggage under this mesh's prefix.
    fn apply_edge_trust(
        &self,
        role: Role,
        extracted: &mut Extracted,
        notes: &mut Notes,
    ) -> Option<SpanContext> {
        if !extracted.errors.is_empty() {
            notes.add(Note::ContextInvalid);
        }
        let mut untrusted = None;
        if role == Role::Edge && !self.cfg.edge.trust_incoming_context {
            if let Some(outside) = extracted.context.take() {
                untrusted = Some(outside.span_context);
                notes.add(Note::EdgeRestarted);
            }
            extracted.sampling_hint = None;
            let dropped = extracted
                .baggage
                .remove_keys_with_prefix(&self.cfg.edge.baggage_prefix);
            if dropped > 0 {
                notes.add(Note::EdgeStrippedBaggage);
            }
        }
        untrusted
    }

    /// Outbound only: what the inbound request left for this call. With context, the
    /// lineage by trace id (not gated by `context_recovery.enabled`: lineage needs it either
    /// way); without, the whole context by request id, for an app that dropped its headers.
    fn recover(
        &self,
        role: Role,
        extracted: &Extracted,
        request_id: Option<&[u8]>,
        recall: &mut dyn FnMut(&str, &[u8]) -> Option<Remembered>,
        notes: &mut Notes,
    ) -> Option<Remembered> {
        if role != Role::Outbound {
            return None;
        }
        if let (Some(incoming), true) = (&extracted.context, self.cfg.identity.exchange) {
            let trace_id = incoming.span_context.trace_id;
            return recall("t", trace_id.to_hex().as_bytes())
                .filter(|remembered| remembered.trace_id == trace_id);
        }
        let request_id = request_id.filter(|_| self.cfg.context_recovery.enabled)?;
        let recovered = recall("r", request_id);
        notes.add(if recovered.is_some() {
            Note::ContextRecovered
        } else {
            Note::RecoveryMiss
        });
        recovered
    }

    /// Whether the operator's force-sampling header says `1` or `true`.
    /// B3 debug as received, or as an earlier meshwake hop carried it in its tracestate
    /// entry: forces sampling and is passed on.
    fn is_debug(&self, extracted: &Extracted, trace_state: &TraceState) -> bool {
        extracted.context.as_ref().is_some_and(|c| c.debug)
            || meshwake_trace_context::mesh_debug(trace_state, &self.cfg.edge.tracestate_key)
    }

    fn forced_by_header(&self, headers: &dyn HeaderSource) -> bool {
        self.cfg
            .sampling
            .force_header
            .as_deref()
            .and_then(|name| headers.get(name))
            .is_some_and(|v| v == b"1" || v.eq_ignore_ascii_case(b"true"))
    }

    /// Write the context: to the app (inbound/edge) or upstream (outbound), own span as
    /// parent, in the configured formats plus B3 when it arrived.
    fn write_context(
        &self,
        role: Role,
        headers: &dyn HeaderSource,
        ctx: &SpanContext,
        mut options: InjectOptions,
        extracted: &Extracted,
        edits: &mut HeaderEdits<'_>,
    ) {
        // Trace headers besides `traceparent` (B3 among them) are usually absent: one
        // question for all, then name by name only when some is there.
        let others = headers.has_any(&propagator::REMOVABLE_BESIDES_TRACEPARENT);
        let received_b3 = if self.cfg.propagation.inject_received_b3 && others {
            received_b3_formats(headers)
        } else {
            [None, None]
        };
        // The configured list is copied only when B3 arrived in a format it lacks.
        let extra: Vec<Propagator> = received_b3
            .into_iter()
            .flatten()
            .filter(|format| !self.inject.contains(format))
            .collect();
        let joined;
        let formats: &[Propagator] = if extra.is_empty() {
            &self.inject
        } else {
            joined = [self.inject.as_slice(), extra.as_slice()].concat();
            &joined
        };
        // Never strip formats we did not extract from: an app's own headers pass through.
        // Removals name only trace headers: when none is there (B3 and the W3C state absent,
        // traceparent written), there is nothing to look up name by name.
        let strip = (extracted.context.is_some() || role != Role::Outbound)
            && (others || !formats.contains(&Propagator::TraceContext));
        options.skip_removals = !strip;
        let mut edit = |e: Edit| match e {
            Edit::Set(name, value) => edits.set(name, value),
            Edit::Remove(name) => edits.remove(headers, name),
        };
        propagator::inject_each(ctx, &options, &extracted.baggage, formats, &mut edit);
    }

    /// Outbound/edge: tell the callee who is calling, and the lineage including us (the one
    /// recovered from the inbound request, else this workload's own). Returns the lineage
    /// this hop records: the caller's (inbound, edge) or the one sent (outbound).
    fn identity_towards_callee<'e>(
        &'e self,
        role: Role,
        recovered: Option<&Remembered>,
        caller_lineage: Lineage,
        edits: &mut HeaderEdits<'e>,
    ) -> LineageOut {
        let mut out = LineageOut {
            recorded: caller_lineage,
            sent: String::new(),
        };
        if !self.cfg.identity.exchange || role == Role::Inbound {
            return out;
        }
        edits.set(identity::PEER_HEADER, self.peer_header.as_str());
        let lineage_cap = self.cfg.identity.lineage_max;
        let (sent_lineage, sent) = match recovered {
            Some(r) if !r.lineage.is_empty() && role != Role::Edge => {
                let key = self.key.as_deref();
                let lineage = Lineage::decode(r.lineage.as_bytes(), lineage_cap, key)
                    .unwrap_or_else(|_| Lineage::new(lineage_cap));
                let encoded = lineage.encode(key);
                (lineage, encoded)
            }
            _ => (self.own.clone(), self.own_lineage.clone()),
        };
        if !sent.is_empty() {
            edits.set(identity::LINEAGE_HEADER, sent.clone());
        }
        if role == Role::Outbound {
            out.recorded = sent_lineage;
        }
        out.sent = sent;
        out
    }

    /// Copies of the request attributes spans use (bounded), only when spans are on.
    fn capture_span_text(&self, headers: &dyn HeaderSource, out: &mut SpanText) {
        let SpanText {
            method,
            path,
            scheme,
            authority,
            user_agent,
        } = out;
        if !self.cfg.spans.enabled {
            for s in [method, path, scheme, authority, user_agent] {
                s.clear();
            }
            return;
        }
        lossy_into(path, headers.get(header::PATH), route::MAX_PATH_LEN * 2);
        let n = route::path_only(path).len();
        path.truncate(n);
        token_into(method, headers.get(header::METHOD), 16);
        token_into(scheme, headers.get(header::SCHEME), 16);
        lossy_into(authority, headers.get(header::AUTHORITY), MAX_ATTR_LEN);
        lossy_into(user_agent, headers.get(header::USER_AGENT), MAX_ATTR_LEN);
    }
}

/// The incoming context when there is one; else, only reached without it, the context
/// recovered for an app that forgot its headers; else a new trace.
fn choose_parent(
    extracted: &Extracted,
    recovered: Option<&Remembered>,
    ids: &mut IdGenerator,
    notes: &mut Notes,
) -> Parent {
    if let Some(incoming) = &extracted.context {
        notes.add(Note::ContextContinued);
        let remote = &incoming.span_context;
        return Parent {
            trace_id: remote.trace_id,
            span_id: Some(remote.span_id),
            trace_state: remote.trace_state.clone(),
            flags: Some(remote.flags),
        };
    }
    if let Some(remembered) = recovered {
        return Parent {
            trace_id: remembered.trace_id,
            span_id: Some(remembered.span_id),
            trace_state: TraceState::default(),
            flags: Some(remembered.flags),
        };
    }
    notes.add(Note::ContextStarted);
    Parent {
        trace_id: ids.new_trace_id(),
        span_id: None,
        trace_state: TraceState::default(),
        flags: None,
    }
}

/// Whether the request's one `traceparent` already says exactly `ctx` (a hop passing its
/// caller's context on): it came verbatim as `ctx` would be formatted, with the same ids
/// and flags.
fn traceparent_says(extracted: &Extracted, ctx: &SpanContext) -> bool {
    // Only a W3C extraction sets `verbatim`.
    extracted.context.as_ref().is_some_and(|incoming| {
        let c = &incoming.span_context;
        incoming.verbatim
            && (c.trace_id, c.span_id, c.flags) == (ctx.trace_id, ctx.span_id, ctx.flags)
    })
}

fn is_grpc(headers: &dyn HeaderSource) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.starts_with(b"application/grpc"))
}

/// B3 formats present in the request, whichever format won extraction: a hop that sent
/// B3 (next to W3C, as every sidecar does once B3 arrived) expects B3 back, or a
/// Zipkin-instrumented app behind the next sidecar would lose its context.
fn received_b3_formats(headers: &dyn HeaderSource) -> [Option<Propagator>; 2] {
    use meshwake_trace_context::b3;
    [
        headers.get(b3::B3_HEADER).map(|_| Propagator::B3Single),
        (headers.get(b3::X_B3_TRACE_ID).is_some() || headers.get(b3::X_B3_SAMPLED).is_some())
            .then_some(Propagator::B3Multi),
    ]
}

#[cfg(test)]
mod tests {
    use super::{lossy_into, token_into};

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn tokens_copy_as_lossy_into_does() {
        #[rustfmt::skip]
        let table: [&[u8]; 10] = [
            b"GET", b"POST", b"http", b"https", b"PUT", b"get", b"", b"\xffGET", b"GET ",
            b"OPTIONS-AND-MUCH-MORE",
        ];
        for value in table.iter().map(|b| Some(*b)).chain([None]) {
            let (mut lossy, mut token) = (String::from("old"), String::from("old"));
            lossy_into(&mut lossy, value, 16);
            token_into(&mut token, value, 16);
            assert_eq!(token, lossy, "{value:?}");
        }
    }
}
