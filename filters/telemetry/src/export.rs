//! Export state machine: bounded span queue, batching, in-flight limit, retry with backoff.
//!
//! Host-free: the glue (root context) owns one [`Exporter`], calls [`Exporter::push`] from
//! request contexts, and from its timer and HTTP call-out callbacks calls
//! [`Exporter::poll`] (in a loop, until `None`) and [`Exporter::on_result`]. Time is passed
//! in as Unix nanoseconds; the glue's timer ticks at most every `flush_interval_ms`.
//!
//! Memory bound: at most `max_queue_spans` queued spans plus `max_in_flight` encoded
//! batches (in flight or waiting for a retry, each keeping its encoded body so a retry
//! sends the same bytes). While all slots are taken, new spans stay queued and beyond the
//! queue limit are dropped and counted.
//!
//! Retry policy follows the OTLP/HTTP spec ("Failures" / "Throttling"): 429, 502, 503, 504
//! and transport failures are retryable with exponential backoff, honouring `Retry-After`
//! given in seconds; any other non-2xx status drops the batch.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::otlp::{encode_export_request_from, write_span_view};
use crate::span::{Resource, Scope, Span, SpanView};

const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Longest `Retry-After` seconds value parsed (10 digits, ~317 years): no overflow possible.
const MAX_RETRY_AFTER_DIGITS: usize = 10;

/// The `export` section of the plugin configuration: where spans go (an Envoy cluster the
/// glue calls out to) and the exporter's limits. Each default is written here only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// Envoy cluster of the collector.
    pub cluster: String,
    /// `:authority` sent to the collector.
    pub authority: String,
    /// `:path` of the OTLP/HTTP traces endpoint.
    pub path: String,
    /// Timeout of one export call.
    pub timeout_ms: u64,
    /// Spans waiting to be batched; beyond this, new spans are dropped (`dropped_queue_full`).
    pub max_queue_spans: usize,
    /// Spans per OTLP request; a full batch is sent without waiting for the interval.
    pub max_batch_spans: usize,
    /// Longest time a span waits in the queue while fewer than `max_batch_spans` are queued.
    pub flush_interval_ms: u64,
    /// Batches held at once, in flight or waiting for a retry.
    pub max_in_flight: usize,
    /// Retries after the first attempt before the batch is dropped (`dropped_export_failed`).
    pub max_retries: u32,
    /// Delay before the first retry; doubles with every further retry.
    pub initial_backoff_ms: u64,
    /// Cap of the retry delay, also applied to `Retry-After`.
    pub max_backoff_ms: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            cluster: "otlp_collector".into(),
            authority: "otlp-collector".into(),
            path: "/v1/traces".into(),
            timeout_ms: 5000,
            max_queue_spans: 8192,
            max_batch_spans: 512,
            flush_interval_ms: 1000,
            max_in_flight: 4,
            max_retries: 5,
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
        }
    }
}

/// Why [`Exporter::push`] refused a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The queue holds `max_queue_spans` already.
    QueueFull,
}

/// What came back from an export call-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportOutcome<'a> {
    /// HTTP response: `:status` and the raw `Retry-After` header, if any.
    Status(u16, Option<&'a [u8]>),
    /// The call could not be made or was reset (no response).
    CallFailed,
    /// The call timed out (if the glue can tell this apart from [`ExportOutcome::CallFailed`]).
    Timeout,
}

/// Why a batch was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// A non-retryable status (4xx other than 429, 500, 501, 1xx, 3xx...).
    Rejected(u16),
    /// `max_retries` retries all failed.
    RetriesExhausted,
}

/// What [`Exporter::on_result`] did with the batch, for the glue's debug log line (the
/// counters in [`ExporterStats`] say the same in sum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultDisposition {
    /// Accepted by the collector (2xx).
    Exported {
        /// Spans in the batch.
        spans: usize,
    },
    /// Will be sent again by a [`Exporter::poll`] at or after `at_ns`.
    RetryScheduled {
        /// Unix nanoseconds of the retry.
        at_ns: u64,
        /// Number of this retry (1 = first retry).
        retry: u32,
    },
    /// Given up; spans counted in `dropped_rejected` or `dropped_export_failed`.
    Dropped {
        /// Why.
        cause: DropCause,
        /// Spans in the batch.
        spans: usize,
    },
    /// No batch with this id is in flight (late or duplicate callback): ignored.
    UnknownBatch,
}

/// A batch to send now: POST `body` to the collector's `/v1/traces`, then report the
/// result with [`Exporter::on_result`] and `id`. The body stays owned by the exporter
/// (kept for retries), so the host copies it during the call-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingBatch<'a> {
    /// Batch id, unique per exporter; a retry keeps its id.
    pub id: u64,
    /// `ExportTraceServiceRequest` protobuf body.
    pub body: &'a [u8],
    /// Spans in the batch.
    pub span_count: usize,
    /// 1 for the first send, 2 for the first retry, ...
    pub attempt: u32,
}

/// Export failures by cause (one count per failed call, not per span).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportFailures {
    /// 4xx responses other than 429.
    pub status_4xx: u64,
    /// 5xx responses (retryable 502/503/504 and non-retryable others).
    pub status_5xx: u64,
    /// 429 Too Many Requests.
    pub status_429: u64,
    /// 1xx/3xx or out-of-range statuses.
    pub status_other: u64,
    /// Call-out failed or was reset.
    pub call_failed: u64,
    /// Call-out timed out.
    pub timeout: u64,
}

/// Exporter counters and gauges, all in one place (the glue mirrors them as host metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExporterStats {
    /// Spans created by the filter (incremented by the glue).
    pub spans_created: u64,
    /// Spans accepted by [`Exporter::push`].
    pub spans_enqueued: u64,
    /// Spans acknowledged with a 2xx.
    pub spans_exported: u64,
    /// Spans refused because the queue was full.
    pub dropped_queue_full: u64,
    /// Spans not recorded because of sampling (incremented by the glue).
    pub dropped_sampled_out: u64,
    /// Spans of batches whose retries were all used up.
    pub dropped_export_failed: u64,
    /// Spans of batches rejected with a non-retryable status.
    pub dropped_rejected: u64,
    /// Failed calls by cause.
    pub export_failures_by_cause: ExportFailures,
    /// Retries scheduled.
    pub retries: u64,
    /// Batches handed out by [`Exporter::poll`], retries included.
    pub batches_sent: u64,
    /// Gauge: spans queued now.
    pub queue_depth: u64,
    /// Gauge: batches in flight now.
    pub batches_in_flight: u64,
    /// Gauge: batches waiting for a retry now.
    pub batches_retry_pending: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchState {
    InFlight,
    WaitingRetry { at_ns: u64 },
}

#[derive(Debug)]
struct Batch {
    id: u64,
    body: Vec<u8>,
    span_count: usize,
    /// Sends so far (1 after the first send).
    attempts: u32,
    state: BatchState,
}

/// Encoded spans end to end in chunks of about [`QUEUE_CHUNK`] bytes, and each one's length:
/// a queued span costs its wire size and no allocation of its own, and the queue grows and
/// shrinks a chunk at a time. One buffer grown by doubling and drained from the front made
/// the VM's linear memory peak at 4.19 MiB under saturation (budget 4 MiB; ADR 0006).
#[derive(Debug, Default)]
struct SpanQueue {
    /// Each chunk and how many queued spans it still holds; a span never straddles chunks.
    chunks: VecDeque<(Vec<u8>, usize)>,
    /// Bytes of the front chunk already handed to batches.
    head: usize,
    lens: VecDeque<usize>,
    /// One emptied chunk kept for the next, so steady traffic allocates none.
    spare: Option<Vec<u8>>,
}

/// Bytes per queue chunk: a batch of 512 typical spans (~240 KB) spans four.
const QUEUE_CHUNK: usize = 64 * 1024;
/// Free bytes below which the next span starts a new chunk, so that a span (typically
/// ~470 bytes, bounded by the attribute limits) rarely grows a chunk past its capacity.
const SPAN_ROOM: usize = 4 * 1024;

impl SpanQueue {
    fn len(&self) -> usize {
        self.lens.len()
    }

    fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let full = self
            .chunks
            .back()
            .is_none_or(|(c, _)| c.capacity() - c.len() < SPAN_ROOM);
        if full {
            let chunk = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(QUEUE_CHUNK));
            self.chunks.push_back((chunk, 0));
        }
        if let Some((chunk, count)) = self.chunks.back_mut() {
            let start = chunk.len();
            encode(chunk);
            *count += 1;
            self.lens.push_back(chunk.len() - start);
        }
    }

    /// Hand the first `n` spans' bytes to `batch` (one run per chunk) and remove them.
    fn take(&mut self, n: usize, batch: impl FnOnce(&[&[u8]]) -> Vec<u8>) -> Vec<u8> {
        // Per chunk, front first: (bytes, spans) taken from it.
        let mut plan: Vec<(usize, usize)> = Vec::new();
        let mut lens = self.lens.iter();
        let mut left = n.min(self.lens.len());
        for (_, count) in &self.chunks {
            if left == 0 {
                break;
            }
            let k = left.min(*count);
            plan.push((lens.by_ref().take(k).sum(), k));
            left -= k;
        }
        let parts: Vec<&[u8]> = plan
            .iter()
            .zip(&self.chunks)
            .enumerate()
            .map(|(i, (&(bytes, _), (chunk, _)))| {
                let start = if i == 0 { self.head } else { 0 };
                chunk.get(start..start + bytes).unwrap_or_default()
            })
            .collect();
        let body = batch(&parts);
        let taken: usize = plan.iter().map(|&(_, k)| k).sum();
        self.lens.drain(..taken.min(self.lens.len()));
        for (bytes, k) in plan {
            self.consume_front(bytes, k);
        }
        body
    }

    /// Mark `bytes` (`spans` spans) of the front chunk as taken; recycle it once empty.
    fn consume_front(&mut self, bytes: usize, spans: usize) {
        let Some((_, count)) = self.chunks.front_mut() else {
            return;
        };
        *count = count.saturating_sub(spans);
        if *count > 0 {
            self.head += bytes;
            return;
        }
        self.head = 0;
        if let Some((mut chunk, _)) = self.chunks.pop_front() {
            // A chunk a huge span grew is let go rather than kept.
            if chunk.capacity() <= 2 * QUEUE_CHUNK {
                chunk.clear();
                self.spare = Some(chunk);
            }
        }
    }
}

/// The export state machine; see the module docs.
#[derive(Debug)]
pub struct Exporter {
    cfg: ExportConfig,
    /// Queued spans, each already encoded (`otlp::encode_span`): its wire size in memory.
    queue: SpanQueue,
    /// In flight or waiting for retry; oldest first. Never longer than `max_in_flight`.
    batches: Vec<Batch>,
    next_id: u64,
    /// Start of the current flush interval: last batch formed, or last time the queue was seen empty.
    window_start_ns: u64,
    force_flush: bool,
    stats: ExporterStats,
}

impl Exporter {
    /// Creates an exporter. Zero limits are raised to 1 so it can never stall (the plugin
    /// configuration reader clamps them already and says so; this is the exporter's own guard).
    pub fn new(mut cfg: ExportConfig) -> Self {
        cfg.max_queue_spans = cfg.max_queue_spans.max(1);
        cfg.max_batch_spans = cfg.max_batch_spans.max(1);
        cfg.max_in_flight = cfg.max_in_flight.max(1);
        cfg.flush_interval_ms = cfg.flush_interval_ms.max(1);
        cfg.max_backoff_ms = cfg.max_backoff_ms.max(cfg.initial_backoff_ms);
        Exporter {
            cfg,
            queue: SpanQueue::default(),
            batches: Vec::new(),
            next_id: 1,
            window_start_ns: 0,
            force_flush: false,
            stats: ExporterStats::default(),
        }
    }

    /// The effective configuration.
    pub fn config(&self) -> &ExportConfig {
        &self.cfg
    }

    /// Counters and gauges.
    pub fn stats(&self) -> &ExporterStats {
        &self.stats
    }

    /// For the glue's own counters (`spans_created`, `dropped_sampled_out`).
    pub fn stats_mut(&mut self) -> &mut ExporterStats {
        &mut self.stats
    }

    /// Spans queued, not yet in a batch.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// A full batch is queued and may be sent now (a free in-flight slot): the glue then
    /// exports without waiting for its timer, so under load the queue holds about one batch
    /// instead of a timer period's spans.
    pub fn full_batch_ready(&self) -> bool {
        self.full_batch_queued() && self.slot_free()
    }

    fn full_batch_queued(&self) -> bool {
        self.queue.len() >= self.cfg.max_batch_spans
    }

    /// Fewer than `max_in_flight` batches held: a new one may be made.
    fn slot_free(&self) -> bool {
        self.batches.len() < self.cfg.max_in_flight
    }

    /// Batches held (in flight or waiting for a retry).
    pub fn pending_batches(&self) -> usize {
        self.batches.len()
    }

    /// Enqueues a finished span, encoded now (O(span size)): the queue then holds bytes,
    /// not a tree of small allocations.
    pub fn push(&mut self, span: Span) -> Result<(), DropReason> {
        self.push_encoded(|buf| crate::otlp::write_encoded_span(buf, &span))
    }

    /// Enqueues a span encoded straight from its borrowed view: the per-request path, with
    /// no allocation once the queue buffer has grown to its working size.
    pub fn push_view(&mut self, span: &SpanView<'_>) -> Result<(), DropReason> {
        self.push_encoded(|buf| write_span_view(buf, span))
    }

    /// `encode` appends one span's `ScopeSpans.spans` field to the queue buffer.
    fn push_encoded(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(), DropReason> {
        if self.queue.len() >= self.cfg.max_queue_spans {
            self.stats.dropped_queue_full += 1;
            return Err(DropReason::QueueFull);
        }
        self.queue.push(encode);
        self.stats.spans_enqueued += 1;
        self.stats.queue_depth = self.queue.len() as u64;
        Ok(())
    }

    /// Makes the next polls send everything queued without waiting for the interval
    /// (e.g. on VM shutdown), still within `max_in_flight`.
    pub fn flush(&mut self) {
        self.force_flush = !self.queue.is_empty();
    }

    /// Returns the next batch to send now, if any: first a due retry, then a new batch when
    /// `max_batch_spans` are queued or the flush interval has passed, only while fewer than
    /// `max_in_flight` batches are held. Call in a loop until `None`.
    pub fn poll(
        &mut self,
        now_ns: u64,
        resource: &Resource,
        scope: &Scope,
    ) -> Option<OutgoingBatch<'_>> {
        if let Some(pos) = self.batches.iter().position(|b| is_due(b, now_ns)) {
            if let Some(b) = self.batches.get_mut(pos) {
                b.state = BatchState::InFlight;
                b.attempts = b.attempts.saturating_add(1);
            }
            self.stats.batches_sent += 1;
            refresh_batch_gauges(&mut self.stats, &self.batches);
            return self.batches.get(pos).map(outgoing);
        }

        if self.queue.is_empty() {
            self.window_start_ns = now_ns;
            self.force_flush = false;
            return None;
        }
        if !self.slot_free() || !self.new_batch_due(now_ns) {
            return None;
        }

        let n = self.queue.len().min(self.cfg.max_batch_spans);
        let body = self.queue.take(n, |parts| {
            encode_export_request_from(resource, scope, parts)
        });
        self.window_start_ns = now_ns;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.batches.push(Batch {
            id,
            body,
            span_count: n,
            attempts: 1,
            state: BatchState::InFlight,
        });
        self.stats.batches_sent += 1;
        self.stats.queue_depth = self.queue.len() as u64;
        refresh_batch_gauges(&mut self.stats, &self.batches);
        self.batches.last().map(outgoing)
    }

    /// Records the result of the call-out for batch `id`; see [`ResultDisposition`].
    pub fn on_result(
        &mut self,
        id: u64,
        outcome: ExportOutcome<'_>,
        now_ns: u64,
    ) -> ResultDisposition {
        let Some(pos) = self
            .batches
            .iter()
            .position(|b| b.id == id && b.state == BatchState::InFlight)
        else {
            return ResultDisposition::UnknownBatch;
        };

        let failures = &mut self.stats.export_failures_by_cause;
        let (retryable, retry_after) = match outcome {
            ExportOutcome::Status(200..=299, _) => {
                let spans = self.remove_batch(pos);
                self.stats.spans_exported += spans as u64;
                return ResultDisposition::Exported { spans };
            }
            ExportOutcome::Status(429, ra) => {
                failures.status_429 += 1;
                (true, ra.and_then(parse_retry_after_secs))
            }
            ExportOutcome::Status(502..=504, ra) => {
                failures.status_5xx += 1;
                (true, ra.and_then(parse_retry_after_secs))
            }
            ExportOutcome::Status(400..=499, _) => {
                failures.status_4xx += 1;
                (false, None)
            }
            ExportOutcome::Status(500..=599, _) => {
                failures.status_5xx += 1;
                (false, None)
            }
            ExportOutcome::Status(_, _) => {
                failures.status_other += 1;
                (false, None)
            }
            ExportOutcome::CallFailed => {
                failures.call_failed += 1;
                (true, None)
            }
            ExportOutcome::Timeout => {
                failures.timeout += 1;
                (true, None)
            }
        };

        if !retryable {
            let spans = self.remove_batch(pos);
            self.stats.dropped_rejected += spans as u64;
            let status = match outcome {
                ExportOutcome::Status(s, _) => s,
                _ => 0,
            };
            return ResultDisposition::Dropped {
                cause: DropCause::Rejected(status),
                spans,
            };
        }

        let max_retries = self.cfg.max_retries;
        let delay_ms =
            self.backoff_ms(retry_after, self.batches.get(pos).map_or(1, |b| b.attempts));
        let Some(batch) = self.batches.get_mut(pos) else {
            return ResultDisposition::UnknownBatch;
        };
        let retries_done = batch.attempts.saturating_sub(1);
        if retries_done >= max_retries {
            let spans = self.remove_batch(pos);
            self.stats.dropped_export_failed += spans as u64;
            return ResultDisposition::Dropped {
                cause: DropCause::RetriesExhausted,
                spans,
            };
        }
        let at_ns = now_ns.saturating_add(delay_ms.saturating_mul(NANOS_PER_MILLI));
        batch.state = BatchState::WaitingRetry { at_ns };
        self.stats.retries += 1;
        refresh_batch_gauges(&mut self.stats, &self.batches);
        ResultDisposition::RetryScheduled {
            at_ns,
            retry: retries_done + 1,
        }
    }

    fn interval_ns(&self) -> u64 {
        self.cfg.flush_interval_ms.saturating_mul(NANOS_PER_MILLI)
    }

    fn new_batch_due(&self, now_ns: u64) -> bool {
        self.full_batch_queued()
            || self.force_flush
            || now_ns.saturating_sub(self.window_start_ns) >= self.interval_ns()
    }

    /// Delay before the retry following attempt number `attempts`: `Retry-After` if given,
    /// else `initial * 2^(attempts-1)`; capped at `max_backoff_ms`.
    fn backoff_ms(&self, retry_after_secs: Option<u64>, attempts: u32) -> u64 {
        let computed = || {
            let factor = 1u64
                .checked_shl(attempts.saturating_sub(1))
                .unwrap_or(u64::MAX);
            self.cfg.initial_backoff_ms.saturating_mul(factor)
        };
        let ms = match retry_after_secs {
            Some(s) => s.saturating_mul(NANOS_PER_SEC / NANOS_PER_MILLI),
            None => computed(),
        };
        ms.min(self.cfg.max_backoff_ms)
    }

    fn remove_batch(&mut self, pos: usize) -> usize {
        let spans = if pos < self.batches.len() {
            self.batches.remove(pos).span_count
        } else {
            0
        };
        refresh_batch_gauges(&mut self.stats, &self.batches);
        spans
    }
}

fn is_due(b: &Batch, now_ns: u64) -> bool {
    matches!(b.state, BatchState::WaitingRetry { at_ns } if at_ns <= now_ns)
}

fn outgoing(b: &Batch) -> OutgoingBatch<'_> {
    OutgoingBatch {
        id: b.id,
        body: &b.body,
        span_count: b.span_count,
        attempt: b.attempts,
    }
}

fn refresh_batch_gauges(stats: &mut ExporterStats, batches: &[Batch]) {
    let in_flight = batches
        .iter()
        .filter(|b| b.state == BatchState::InFlight)
        .count() as u64;
    stats.batches_in_flight = in_flight;
    stats.batches_retry_pending = batches.len() as u64 - in_flight;
}

/// Parses `Retry-After` as delay-seconds (RFC 9110 §10.2.3). HTTP-dates are not supported
/// (no clock to compare with here) and yield `None`, so the computed backoff applies.
pub fn parse_retry_after_secs(v: &[u8]) -> Option<u64> {
    let t = v.trim_ascii();
    if t.is_empty() || t.len() > MAX_RETRY_AFTER_DIGITS {
        return None;
    }
    t.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })
}

/// Body Envoy's router puts in the local 504 it answers when a call-out times out.
pub const ENVOY_TIMEOUT_BODY: &[u8] = b"upstream request timeout";
/// Start of the body of Envoy's local 503 when the collector could not be reached
/// (connection refused or reset before response headers).
pub const ENVOY_CONNECT_ERROR_BODY: &[u8] =
    b"upstream connect error or disconnect/reset before headers";
/// Body of Envoy's local 503 when the collector cluster has no healthy host.
pub const ENVOY_NO_HEALTHY_UPSTREAM_BODY: &[u8] = b"no healthy upstream";
/// Body bytes the glue needs to read to tell Envoy's local replies apart
/// (the longest of the bodies above).
pub const LOCAL_REPLY_PROBE_LEN: usize = 64;

/// The outcome of a call-out that got a response. Envoy reports its own failures to reach the
/// collector (connect error, no healthy host, timeout, a response its codec refused) as local
/// 502/503/504 replies rather than as failed calls; those are recognised by their fixed bodies (first
/// [`LOCAL_REPLY_PROBE_LEN`] bytes are enough) and counted as `call_failed` or `timeout`, so the
/// 5xx counter means "the collector answered 5xx". Both are retried like a 503 would be.
pub fn classify_response<'a>(
    status: u16,
    retry_after: Option<&'a [u8]>,
    body_prefix: &[u8],
) -> ExportOutcome<'a> {
    match status {
        504 if body_prefix == ENVOY_TIMEOUT_BODY => ExportOutcome::Timeout,
        // 502: the collector answered bytes Envoy's codec refused ("reset reason: protocol error").
        502 | 503 if body_prefix.starts_with(ENVOY_CONNECT_ERROR_BODY) => ExportOutcome::CallFailed,
        503 if body_prefix == ENVOY_NO_HEALTHY_UPSTREAM_BODY => ExportOutcome::CallFailed,
        _ => ExportOutcome::Status(status, retry_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = NANOS_PER_MILLI;
    /// Arbitrary epoch so that "time 0" is not special.
    const T0: u64 = 1_700_000_000 * NANOS_PER_SEC;

    /// Spans of varied sizes cross many chunks; every batch holds exactly the next spans in
    /// order, and an emptied queue keeps at most one spare chunk.
    #[test]
    fn span_queue_batches_across_chunks_in_order() {
        let mut q = SpanQueue::default();
        let mut expected = Vec::new();
        for i in 0..3000usize {
            let bytes: Vec<u8> = (0..(50 + i % 900)).map(|j| (i + j) as u8).collect();
            expected.push(bytes.clone());
            q.push(|buf| buf.extend_from_slice(&bytes));
        }
        assert!(q.chunks.len() > 20, "{} chunks", q.chunks.len());
        let mut next = 0;
        while !q.is_empty() {
            let n = 1 + next % 517;
            let body = q.take(n, |parts| parts.concat());
            let want: Vec<u8> = expected[next..(next + n).min(3000)].concat();
            assert_eq!(body, want, "batch starting at span {next}");
            next += n;
        }
        assert_eq!(next.min(3000), 3000);
        assert!(q.chunks.is_empty() && q.head == 0);
        assert!(q
            .spare
            .as_ref()
            .is_some_and(|c| c.is_empty() && c.capacity() <= 2 * QUEUE_CHUNK));
    }

    fn span(n: u8) -> Span {
        Span {
            trace_id: [n; 16],
            span_id: [n; 8],
            name: "s".into(),
            ..Span::default()
        }
    }

    fn cfg() -> ExportConfig {
        ExportConfig {
            max_queue_spans: 10,
            max_batch_spans: 3,
            flush_interval_ms: 1000,
            max_in_flight: 2,
            max_retries: 2,
            initial_backoff_ms: 200,
            max_backoff_ms: 1000,
            ..ExportConfig::default()
        }
    }

    /// A full batch is ready only with a free in-flight slot: what lets the glue export
    /// between ticks without ever holding more than `max_in_flight` batches.
    #[test]
    fn a_full_batch_is_ready_only_with_a_free_slot() {
        let c = ExportConfig {
            max_batch_spans: 4,
            max_in_flight: 1,
            ..cfg()
        };
        let mut ex = Exporter::new(c);
        let (res, scope) = (Resource::default(), Scope::default());
        (0..3).for_each(|k| assert_eq!(ex.push(span(k)), Ok(())));
        assert!(!ex.full_batch_ready(), "3 of 4 spans");
        assert_eq!(ex.push(span(3)), Ok(()));
        assert!(ex.full_batch_ready(), "4 of 4 spans, no batch held");
        assert!(ex.poll(T0, &res, &scope).is_some());
        (0..4).for_each(|k| assert_eq!(ex.push(span(k)), Ok(())));
        assert!(
            !ex.full_batch_ready(),
            "a full batch but the one slot is taken"
        );
    }

    /// One step of a scenario; times are milliseconds after `T0`.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Push n spans, all accepted.
        Push(usize),
        /// Push n spans, all refused with QueueFull.
        PushFull(usize),
        /// Poll once; expect a batch of this many spans (and its attempt number) or none.
        Poll(u64, Option<(usize, u32)>),
        /// Result for the i-th batch handed out (retries re-use the id).
        Done(usize, ExportOutcome<'static>, u64, ResultDisposition),
        /// Check stats.
        Stats(fn(&ExporterStats)),
        /// Force a flush.
        Flush,
    }
    use Step::*;

    fn run(name: &str, cfg: ExportConfig, steps: &[Step]) {
        let mut ex = Exporter::new(cfg);
        let (res, scope) = (Resource::default(), Scope::default());
        let mut ids: Vec<u64> = Vec::new();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        // Start the first flush window at T0.
        assert!(ex.poll(T0, &res, &scope).is_none(), "{name}: empty poll");
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Push(n) => (0..n)
                    .for_each(|k| assert_eq!(ex.push(span(k as u8)), Ok(()), "{name} step {i}")),
                PushFull(n) => (0..n).for_each(|k| {
                    assert_eq!(
                        ex.push(span(k as u8)),
                        Err(DropReason::QueueFull),
                        "{name} step {i}"
                    )
                }),
                Poll(t, want) => {
                    let got = ex
                        .poll(T0 + t * MS, &res, &scope)
                        .map(|b| (b.id, b.span_count, b.attempt, b.body.to_vec()));
                    assert_eq!(got.as_ref().map(|g| (g.1, g.2)), want, "{name} step {i}");
                    if let Some((id, _, attempt, body)) = got {
                        assert!(!body.is_empty(), "{name} step {i}");
                        if attempt == 1 {
                            ids.push(id);
                            bodies.push(body);
                        } else {
                            // A retry re-sends the very same bytes.
                            let first = ids.iter().position(|x| *x == id).unwrap();
                            assert_eq!(bodies[first], body, "{name} step {i}");
                        }
                    }
                }
                Done(nth, outcome, t, want) => {
                    let got = ex.on_result(ids[nth], outcome, T0 + t * MS);
                    assert_eq!(got, want, "{name} step {i}");
                }
                Stats(check) => check(ex.stats()),
                Flush => ex.flush(),
            }
            // Invariants after every step: the memory bound.
            assert!(
                ex.queue_len() <= ex.config().max_queue_spans,
                "{name} step {i}"
            );
            assert!(
                ex.pending_batches() <= ex.config().max_in_flight,
                "{name} step {i}"
            );
            assert_eq!(
                ex.stats().queue_depth,
                ex.queue_len() as u64,
                "{name} step {i}"
            );
            assert_eq!(
                ex.stats().batches_in_flight + ex.stats().batches_retry_pending,
                ex.pending_batches() as u64,
                "{name} step {i}"
            );
        }
    }

    const OK: ExportOutcome<'static> = ExportOutcome::Status(200, None);
    const UNAVAILABLE: ExportOutcome<'static> = ExportOutcome::Status(503, None);

    fn exported(spans: usize) -> ResultDisposition {
        ResultDisposition::Exported { spans }
    }
    fn retry(at_ms: u64, retry: u32) -> ResultDisposition {
        ResultDisposition::RetryScheduled {
            at_ns: T0 + at_ms * MS,
            retry,
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn batch_full_is_sent_at_once() {
        run(
            "batch_full",
            cfg(),
            &[
                Push(2),
                Poll(10, None),
                Push(2),
                Poll(10, Some((3, 1))),
                Poll(10, None),
                Done(0, OK, 20, exported(3)),
                Stats(|s| {
                    assert_eq!(s.spans_enqueued, 4);
                    assert_eq!(s.spans_exported, 3);
                    assert_eq!(s.queue_depth, 1);
                    assert_eq!(s.batches_in_flight, 0);
                }),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn timer_flushes_partial_batch() {
        run(
            "timer",
            cfg(),
            &[
                Push(1),
                Poll(999, None),
                Poll(1000, Some((1, 1))),
                // Window restarts at the flush.
                Push(1),
                Poll(1999, None),
                Poll(2000, Some((1, 1))),
                Done(0, OK, 2001, exported(1)),
                Done(1, OK, 2001, exported(1)),
                // Idle: an empty poll restarts the window.
                Poll(5000, None),
                Push(1),
                Poll(5999, None),
                Poll(6000, Some((1, 1))),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn max_in_flight_is_respected() {
        run(
            "in_flight",
            cfg(),
            &[
                Push(9),
                Poll(0, Some((3, 1))),
                Poll(0, Some((3, 1))),
                Poll(0, None),
                // No wakeup: only a result can make progress.
                Stats(|s| assert_eq!(s.batches_in_flight, 2)),
                Done(1, OK, 5, exported(3)),
                Poll(5, Some((3, 1))),
                Poll(5, None),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn unavailable_then_ok_is_delivered_once() {
        run(
            "503_then_200",
            cfg(),
            &[
                Push(3),
                Poll(0, Some((3, 1))),
                Done(0, UNAVAILABLE, 10, retry(210, 1)),
                // A late duplicate callback for a batch not in flight is ignored.
                Done(0, OK, 11, ResultDisposition::UnknownBatch),
                Poll(209, None),
                Poll(210, Some((3, 2))),
                Done(0, OK, 220, exported(3)),
                Done(0, OK, 221, ResultDisposition::UnknownBatch),
                Stats(|s| {
                    assert_eq!(s.spans_exported, 3);
                    assert_eq!(s.retries, 1);
                    assert_eq!(s.batches_sent, 2);
                    assert_eq!(s.export_failures_by_cause.status_5xx, 1);
                    assert_eq!(s.dropped_export_failed + s.dropped_rejected, 0);
                }),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn retry_after_is_honoured_and_capped() {
        run(
            "retry_after",
            cfg(),
            &[
                Push(3),
                Poll(0, Some((3, 1))),
                Done(
                    0,
                    ExportOutcome::Status(429, Some(b" 0 ")),
                    10,
                    retry(10, 1),
                ),
                Poll(10, Some((3, 2))),
                // 7 s > max_backoff (1 s): capped.
                Done(
                    0,
                    ExportOutcome::Status(503, Some(b"7")),
                    20,
                    retry(1020, 2),
                ),
                Poll(1020, Some((3, 3))),
                // Retries exhausted (max_retries = 2).
                Done(
                    0,
                    ExportOutcome::Status(429, Some(b"1")),
                    1030,
                    ResultDisposition::Dropped {
                        cause: DropCause::RetriesExhausted,
                        spans: 3,
                    },
                ),
                Stats(|s| {
                    assert_eq!(s.export_failures_by_cause.status_429, 2);
                    assert_eq!(s.export_failures_by_cause.status_5xx, 1);
                    assert_eq!(s.dropped_export_failed, 3);
                    assert_eq!(s.retries, 2);
                }),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn exponential_backoff_until_exhausted() {
        let cfg = ExportConfig {
            max_retries: 4,
            ..cfg()
        };
        run(
            "backoff",
            cfg,
            &[
                Push(1),
                Poll(1000, Some((1, 1))),
                Done(0, ExportOutcome::CallFailed, 1000, retry(1200, 1)),
                Poll(1200, Some((1, 2))),
                Done(0, ExportOutcome::Timeout, 1200, retry(1600, 2)),
                Poll(1600, Some((1, 3))),
                Done(0, ExportOutcome::Status(502, None), 1600, retry(2400, 3)),
                Poll(2400, Some((1, 4))),
                // 1600 ms capped to max_backoff 1000 ms.
                Done(
                    0,
                    ExportOutcome::Status(504, Some(b"Wed, 21 Oct 2015 07:28:00 GMT")),
                    2400,
                    retry(3400, 4),
                ),
                Poll(3400, Some((1, 5))),
                Done(
                    0,
                    UNAVAILABLE,
                    3400,
                    ResultDisposition::Dropped {
                        cause: DropCause::RetriesExhausted,
                        spans: 1,
                    },
                ),
                Stats(|s| {
                    let f = s.export_failures_by_cause;
                    assert_eq!((f.call_failed, f.timeout, f.status_5xx), (1, 1, 3));
                    assert_eq!(s.dropped_export_failed, 1);
                    assert_eq!(s.spans_exported, 0);
                }),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn non_retryable_statuses_drop_the_batch() {
        #[rustfmt::skip]
        type Counter = fn(&ExportFailures) -> u64;
        let table: [(u16, Counter); 6] = [
            (400, |f| f.status_4xx),
            (401, |f| f.status_4xx),
            (413, |f| f.status_4xx),
            (500, |f| f.status_5xx),
            (501, |f| f.status_5xx),
            (302, |f| f.status_other),
        ];
        for (status, counter) in table {
            let mut ex = Exporter::new(cfg());
            ex.push(span(1)).unwrap();
            ex.flush();
            let id = ex
                .poll(T0, &Resource::default(), &Scope::default())
                .unwrap()
                .id;
            assert_eq!(
                ex.on_result(id, ExportOutcome::Status(status, Some(b"1")), T0),
                ResultDisposition::Dropped {
                    cause: DropCause::Rejected(status),
                    spans: 1
                },
                "{status}"
            );
            assert_eq!(ex.stats().dropped_rejected, 1, "{status}");
            assert_eq!(counter(&ex.stats().export_failures_by_cause), 1, "{status}");
            assert_eq!(ex.stats().retries, 0, "{status}");
            assert_eq!(ex.pending_batches(), 0, "{status}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn queue_full_drops_are_counted() {
        run(
            "queue_full",
            cfg(),
            &[
                Push(10),
                PushFull(3),
                Stats(|s| {
                    assert_eq!(s.spans_enqueued, 10);
                    assert_eq!(s.dropped_queue_full, 3);
                }),
                Poll(0, Some((3, 1))),
                Push(3),
                PushFull(1),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn memory_stays_bounded_while_collector_is_down() {
        // Both slots wait for retries: no new batch is encoded, the queue fills, then drops.
        run(
            "memory_bound",
            cfg(),
            &[
                Push(10),
                Poll(0, Some((3, 1))),
                Poll(0, Some((3, 1))),
                Done(0, UNAVAILABLE, 0, retry(200, 1)),
                Done(1, UNAVAILABLE, 0, retry(200, 1)),
                Poll(100, None),
                Push(6),
                PushFull(5),
                Poll(200, Some((3, 2))),
                Poll(200, Some((3, 2))),
                Poll(200, None),
                Stats(|s| {
                    assert_eq!(s.queue_depth, 10);
                    assert_eq!(s.batches_in_flight, 2);
                    assert_eq!(s.dropped_queue_full, 5);
                }),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn flush_sends_partial_batches_now() {
        run(
            "flush",
            cfg(),
            &[
                Push(4),
                Poll(1, Some((3, 1))),
                Poll(2, None),
                Flush,
                Poll(2, Some((1, 1))),
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn retry_after_parsing() {
        #[rustfmt::skip]
        let table: [(&[u8], Option<u64>); 9] = [
            (b"0", Some(0)), (b"120", Some(120)), (b" 5\t", Some(5)),
            (b"", None), (b"-1", None), (b"1.5", None), (b"12345678901", None),
            (b"Wed, 21 Oct 2015 07:28:00 GMT", None), (b"9999999999", Some(9_999_999_999)),
        ];
        for (input, want) in table {
            assert_eq!(parse_retry_after_secs(input), want, "{input:?}");
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn config_defaults_and_zero_limits() {
        let c: ExportConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ExportConfig::default());
        assert_eq!(
            (
                c.max_queue_spans,
                c.max_batch_spans,
                c.flush_interval_ms,
                c.max_in_flight
            ),
            (8192, 512, 1000, 4)
        );
        assert_eq!(
            (c.max_retries, c.initial_backoff_ms, c.max_backoff_ms),
            (5, 200, 30_000)
        );
        assert!(serde_json::from_str::<ExportConfig>(r#"{"max_batch":1}"#).is_err());

        // Zero limits never stall the exporter (the plugin configuration reader clamps them
        // with a logged issue; this is the exporter's own guard).
        #[rustfmt::skip]
        let table = [
            r#"{"max_batch_spans": 100}"#,
            r#"{"max_queue_spans": 0}"#,
            r#"{"max_batch_spans": 0}"#,
            r#"{"max_in_flight": 0}"#,
            r#"{"flush_interval_ms": 0}"#,
            r#"{"initial_backoff_ms": 0}"#,
            r#"{"initial_backoff_ms": 5000, "max_backoff_ms": 10}"#,
        ];
        for json in table {
            let c: ExportConfig = serde_json::from_str(json).unwrap();
            let mut ex = Exporter::new(c);
            ex.push(span(1)).unwrap();
            ex.flush();
            assert!(
                ex.poll(T0, &Resource::default(), &Scope::default())
                    .is_some(),
                "{json}"
            );
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn envoy_local_replies_are_not_collector_statuses() {
        let connect = b"upstream connect error or disconnect/reset before headers. reset reason: remote connecti";
        #[rustfmt::skip]
        let table: [(u16, &[u8], ExportOutcome<'static>); 10] = [
            (504, b"upstream request timeout", ExportOutcome::Timeout),
            (503, &connect[..LOCAL_REPLY_PROBE_LEN], ExportOutcome::CallFailed),
            // A collector answering garbage: Envoy's codec error comes back as a local 502.
            (502, &connect[..LOCAL_REPLY_PROBE_LEN], ExportOutcome::CallFailed),
            (502, b"bad gateway", ExportOutcome::Status(502, None)),
            (503, b"no healthy upstream", ExportOutcome::CallFailed),
            (503, b"", ExportOutcome::Status(503, None)),
            (503, b"collector overloaded", ExportOutcome::Status(503, None)),
            (504, b"gateway timeout", ExportOutcome::Status(504, None)),
            (500, b"upstream request timeout", ExportOutcome::Status(500, None)),
            (200, b"", ExportOutcome::Status(200, None)),
        ];
        for (status, body, want) in table {
            assert_eq!(
                classify_response(status, None, body),
                want,
                "{status} {body:?}"
            );
        }
        assert!(ENVOY_CONNECT_ERROR_BODY.len() <= LOCAL_REPLY_PROBE_LEN);
        assert_eq!(
            classify_response(503, Some(b"3"), b""),
            ExportOutcome::Status(503, Some(b"3".as_slice()))
        );
    }
}
