//! The filter's per-request hot path, natively, for instruction counts under callgrind:
//! header-map decoding, `Engine::on_request`, `remember`, `on_response`, `finish`, the
//! metric label-set lookup, and OTLP encoding (spans queued and encoded in batches of 512,
//! as the exporter does). Host calls are not included (they are Envoy's cost, measured by
//! the Envoy benchmark).
//!
//! Usage: `hotpath <requests> [full|propagation]`. The benchmark runs it under callgrind
//! twice (N and 2N requests) and divides the difference by N, so setup cost cancels out.
use meshwake_core::headers::encode_map;
use meshwake_core::{Completion, HostFacts, Role};
use meshwake_telemetry::cardinality::LabelCache;
use meshwake_trace_context::IdGenerator;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts heap allocations (and reallocations), so the report can say how many the hot
/// path makes per request: in the wasm module each is a trip through the guest's allocator.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct NoNode;
impl meshwake_identity::NodeMetadata for NoNode {
    fn get(&self, _path: &[&str]) -> Option<String> {
        None
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "full".into());
    let raw = if mode == "propagation" {
        r#"{"role":"inbound","identity":{"service":"bench","version":"v1","namespace":"bench","exchange":false},"spans":{"enabled":false},"metrics":{"enabled":false},"context_recovery":{"enabled":false}}"#
    } else {
        r#"{"role":"inbound","identity":{"service":"bench","version":"v1","namespace":"bench"}}"#
    };
    // The glue's configuration step, as the module runs it (issues ignored here).
    let host = HostFacts {
        node: &NoNode,
        listener_direction: None,
        filter_version: "0.1.0",
        propagation_only: false,
    };
    let setup = meshwake_core::setup(raw.as_bytes(), &host);
    let mut labels: LabelCache<u32> = setup.label_cache();
    let mut exporter = setup.exporter;
    let engine = setup.engine;
    let metrics_on = engine.config().metrics.enabled;
    let spans_on = engine.config().spans.enabled;
    let mut ids = IdGenerator::new([7u8; 32]);
    let mut text = meshwake_core::StreamEndText::default();
    let mut remember = meshwake_core::RememberBuf::default();
    let mut spares: Vec<meshwake_core::Spare> = Vec::new();
    // What the benchmark's loader sends and Envoy adds.
    let req = encode_map(&[
        (":authority", "bench"),
        (":path", "/api/v1/items/12345"),
        (":method", "GET"),
        (":scheme", "http"),
        ("user-agent", "meshwake-bench/1"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "6c0b3f0e-6a57-4d8e-9a0e-1c1f2a3b4c5d"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]);
    let resp = encode_map(&[
        (":status", "200"),
        ("content-length", "2"),
        ("content-type", "text/plain"),
        ("date", "Tue, 25 Nov 2025 16:00:00 GMT"),
        ("server", "envoy"),
    ]);
    let mut now = 1_700_000_000_000_000_000u64;
    let mut bytes_out = 0usize;
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..n {
        now += 50_000;
        let h = meshwake_core::headers::HeaderMap::decode(&req);
        let mut recall = |_: &str, _: &[u8]| None;
        // As the wasm glue does: buffers of an earlier request reused, recovery entries
        // built in reused buffers.
        let spare = spares.pop().unwrap_or_default();
        let (mut state, edits) =
            engine.on_request_reusing(Role::Inbound, &h, now, &mut ids, &mut recall, spare);
        black_box(&edits);
        engine.remember_each(&state, &mut remember, |k, v| {
            black_box((k, v));
        });
        let rh = if engine.reads_response_headers(Role::Inbound) {
            meshwake_core::headers::HeaderMap::decode(&resp)
        } else {
            meshwake_core::headers::HeaderMap::default()
        };
        black_box(engine.on_response(&mut state, &rh, now + 20_000));
        // As the glue does: with spans and metrics off there is nothing to finish.
        if !spans_on && !metrics_on {
            spares.push(state.into_spare());
            continue;
        }
        // What the glue reads at stream end for this configuration.
        let reads = engine.stream_end_reads(&state);
        let c = Completion {
            end_ns: now + 30_000,
            status: 200,
            response_flags: meshwake_core::envoy::response_flags(0),
            grpc_status: None,
            request_bytes: reads.sizes.then_some(180),
            response_bytes: reads.sizes.then_some(120),
            protocol: if reads.protocol {
                "HTTP/1.1".into()
            } else {
                String::new()
            },
            upstream_cluster: reads.upstream.then(|| "inbound|8080||".into()),
            upstream_host: reads.upstream.then(|| "127.0.0.1:8080".into()),
            upstream_workload_meta: None,
        };
        // As the wasm glue does: the span encoded straight into the queue, labels borrowed.
        let end_labels = engine.stream_end(&mut state, &c, &mut text, |span| {
            let _ = exporter.push_view(span);
        });
        if metrics_on {
            let _ = black_box(labels.get_or_insert_ref(&end_labels, |_, _| Ok::<u32, ()>(1)));
        }
        spares.push(state.into_spare());
        // The exporter's batches: acknowledge at once so the queue never fills.
        while let Some(b) = exporter.poll(now, engine.resource(), engine.scope()) {
            bytes_out += b.body.len();
            let id = b.id;
            exporter.on_result(
                id,
                meshwake_telemetry::ExportOutcome::Status(200, None),
                now,
            );
        }
        if i % 512 == 511 {
            exporter.flush();
        }
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    eprintln!(
        "hotpath: {n} requests ({mode}), {bytes_out} OTLP bytes, {} spans exported, {:.2} allocations/request",
        exporter.stats().spans_exported,
        allocations as f64 / n.max(1) as f64
    );
}
