//! The span export queue against an arbitrary collector: pushes, polls and results (any
//! status, `Retry-After` bytes, failures, late/duplicate callbacks) at arbitrary times.
//! Never panics; memory stays bounded by the configured queue and in-flight limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meshwake_telemetry::{ExportConfig, ExportOutcome, Exporter, Resource, Scope, Span};

#[derive(arbitrary::Arbitrary, Debug)]
enum Op {
    Push(u8),
    Poll(u16),
    Result { batch: u8, status: Option<u16>, retry_after: Option<Vec<u8>>, timeout: bool },
    Flush,
}

#[derive(arbitrary::Arbitrary, Debug)]
struct Input {
    queue: u8,
    batch: u8,
    in_flight: u8,
    retries: u8,
    ops: Vec<Op>,
}

fuzz_target!(|i: Input| {
    let cfg = ExportConfig {
        max_queue_spans: usize::from(i.queue % 16) + 1,
        max_batch_spans: usize::from(i.batch % 8) + 1,
        flush_interval_ms: 10,
        max_in_flight: usize::from(i.in_flight % 4) + 1,
        max_retries: u32::from(i.retries % 4),
        initial_backoff_ms: 5,
        max_backoff_ms: 100,
        ..ExportConfig::default()
    };
    let mut ex = Exporter::new(cfg.clone());
    let (resource, scope) = (Resource::default(), Scope::default());
    let mut now: u64 = 1_000_000_000;
    let mut sent: Vec<u64> = Vec::new();
    for op in i.ops {
        match op {
            Op::Push(n) => {
                let mut s = Span::default();
                s.name = format!("s{n}").into();
                let _ = ex.push(s);
            }
            Op::Poll(ms) => {
                now = now.saturating_add(u64::from(ms) * 1_000_000);
                while let Some(b) = ex.poll(now, &resource, &scope) {
                    assert!(b.span_count <= cfg.max_batch_spans);
                    sent.push(b.id);
                }
            }
            Op::Result { batch, status, retry_after, timeout } => {
                let id = sent.get(usize::from(batch) % sent.len().max(1)).copied().unwrap_or(u64::from(batch));
                let outcome = match (status, timeout) {
                    (Some(s), _) => ExportOutcome::Status(s, retry_after.as_deref()),
                    (None, true) => ExportOutcome::Timeout,
                    (None, false) => ExportOutcome::CallFailed,
                };
                let _ = ex.on_result(id, outcome, now);
            }
            Op::Flush => ex.flush(),
        }
        assert!(ex.queue_len() <= cfg.max_queue_spans);
        assert!(ex.pending_batches() <= cfg.max_in_flight);
        let st = ex.stats();
        assert_eq!(st.queue_depth, ex.queue_len() as u64);
    }
});
