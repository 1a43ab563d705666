//! Collector faults, through a real Envoy (FAIL_CLOSED): the collector absent, refusing
//! connections, resetting them, answering 500/503/429 with `Retry-After`, answering after
//! 10 s, answering garbage, disappearing mid-batch and coming back.
//!
//! In every case: application traffic keeps its success rate and its latency (compared with
//! a healthy-collector baseline on the same Envoy: the export is never on the request path),
//! the span queue stays within `export.max_queue_spans` (gauge `queue_depth`, and the VM's
//! memory does not grow with the backlog), every dropped span is counted with its reason,
//! and export resumes by itself once the collector is healthy again.
use meshwake_semconv::stat;
#[path = "support/collector.rs"]
mod collector;

use collector::{Collector, Mode};
use meshwake_tests::{free_port, http, Envoy, EnvoyOptions, Response, Server};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Small queue and batches so a few dozen requests overflow it; fast retries.
const QUEUE: u64 = 20;

/// An Envoy whose filter exports to `collector_port`; `export` overrides the test defaults.
fn start_envoy(collector_port: u16, export: &[(&str, u64)]) -> (Envoy, Server) {
    let upstream = Server::start(|_| Response::new(200).with_body("ok"));
    let mut e: BTreeMap<&str, u64> = BTreeMap::from([
        ("flush_interval_ms", 50),
        ("max_queue_spans", QUEUE),
        ("max_batch_spans", 5),
        ("max_in_flight", 2),
        ("max_retries", 2),
        ("initial_backoff_ms", 50),
        ("max_backoff_ms", 200),
        ("timeout_ms", 1000),
    ]);
    e.extend(export.iter().copied());
    let cfg = serde_json::json!({
        "role": "inbound",
        "identity": {"service": "faults", "version": "v1"},
        "export": e,
    });
    let envoy = Envoy::start(
        EnvoyOptions::default()
            .name("collector-faults")
            .plugin_config(cfg.to_string())
            .var("UPSTREAM_PORT", upstream.port())
            .var("OTLP_PORT", collector_port),
    );
    (envoy, upstream)
}

fn get(c: &BTreeMap<String, u64>, k: &str) -> u64 {
    c.get(k).copied().unwrap_or(0)
}

/// Latencies of a run of requests, and the largest queue depth / VM memory seen meanwhile.
struct Run {
    ok: usize,
    total: usize,
    latencies: Vec<Duration>,
    max_queue: u64,
    max_memory: u64,
}

impl Run {
    fn p(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// `n` requests, one at a time, sampling the gauges every few. Paced (a few ms apart) when
/// `paced`, so a healthy collector keeps the small queue from overflowing: the filter sends
/// from its 50 ms timer, and more than 20 spans per tick would overflow it.
fn drive(envoy: &Envoy, n: usize, tag: &str, paced: bool) -> Run {
    let mut run = Run {
        ok: 0,
        total: n,
        latencies: vec![],
        max_queue: 0,
        max_memory: 0,
    };
    for i in 0..n {
        let t = Instant::now();
        let r = http::request(envoy.listen_port(), "GET", &format!("/{tag}/{i}"), &[], b"");
        run.latencies.push(t.elapsed());
        if paced {
            std::thread::sleep(Duration::from_millis(4));
        }
        if r.is_ok_and(|r| r.status == 200) {
            run.ok += 1;
        }
        if i % 5 == 0 {
            let c = envoy.meshwake_counters_now();
            run.max_queue = run.max_queue.max(get(&c, stat::EXPORT_QUEUE_DEPTH));
            run.max_memory = run.max_memory.max(get(&c, stat::VM_MEMORY_BYTES));
        }
    }
    run
}

/// A fault scenario on a fresh Envoy:
/// 1. baseline with a healthy collector;
/// 2. `n` requests under the fault: none fails, latency like the baseline, queue ≤ cap;
/// 3. every span created is accounted for: exported, dropped for a full queue, or dropped
///    after failed exports, by reason;
/// 4. healthy again: new spans are exported without any action.
fn scenario(fault: Mode, export: &[(&str, u64)], n: usize) -> (BTreeMap<String, u64>, Collector) {
    let collector = Collector::start(Mode::Ok);
    let (mut envoy, upstream) = start_envoy(collector.port, export);
    let timeout_ms = export
        .iter()
        .find(|(k, _)| *k == "timeout_ms")
        .map_or(1000, |(_, v)| *v);
    let base = drive(&envoy, 30, "baseline", true);
    assert_eq!(base.ok, base.total, "baseline requests failed");
    meshwake_tests::wait_for(10, "baseline spans exported", || {
        (collector.spans_received() == 30).then_some(())
    });

    collector.set(fault.clone());
    let run = drive(&envoy, n, "fault", false);
    assert_eq!(run.ok, run.total, "{fault:?}: application requests failed");
    assert_eq!(upstream.requests().len(), 30 + n);
    let slack = Duration::from_millis(50);
    assert!(
        run.p(0.5) <= base.p(0.5) * 3 + slack && run.p(0.9) <= base.p(0.9) * 3 + slack * 2,
        "{fault:?}: latency p50 {:?} p90 {:?} vs baseline p50 {:?} p90 {:?}",
        run.p(0.5),
        run.p(0.9),
        base.p(0.5),
        base.p(0.9)
    );
    // The export is never on the request path: no request waits for the collector.
    assert!(
        run.p(1.0) < Duration::from_millis(timeout_ms.max(1000)),
        "{fault:?}: slowest request {:?}",
        run.p(1.0)
    );
    assert!(
        run.max_queue <= QUEUE,
        "{fault:?}: queue depth {} > {QUEUE}",
        run.max_queue
    );
    envoy.assert_alive();

    // Let the failing batches run out of retries, then check the books.
    let c = meshwake_tests::wait_for(20, "every span exported or dropped", || {
        let c = envoy.meshwake_counters();
        let done = get(&c, stat::SPANS_EXPORTED)
            + get(&c, stat::SPANS_DROPPED_QUEUE_FULL)
            + get(&c, stat::SPANS_DROPPED_EXPORT_FAILED)
            + get(&c, stat::SPANS_DROPPED_REJECTED);
        (get(&c, stat::SPANS_CREATED) == (30 + n) as u64
            && done == (30 + n) as u64
            && get(&c, stat::EXPORT_QUEUE_DEPTH) == 0
            && get(&c, stat::EXPORT_BATCHES_IN_FLIGHT) == 0)
            .then_some(c)
    });
    // A collector that rejects a batch at once (500: not retried) frees its export slot as
    // soon as it answers, so whether the queue overflows depends on the machine's pace (a
    // fresh-clone CI run on a busy box did not), not on the filter. Every other fault holds
    // batches (retries with backoff, timeouts): the queue must fill and drop.
    if !matches!(fault, Mode::Status(500, _)) {
        assert!(
            get(&c, stat::SPANS_DROPPED_QUEUE_FULL) > 0,
            "{fault:?}: {n} spans under a dead collector must overflow a queue of {QUEUE}: {c:?}"
        );
    }
    // The VM's memory does not grow with the backlog (the queue is bounded).
    assert!(
        run.max_memory <= base.max_memory + 1024 * 1024,
        "{fault:?}: VM memory grew from {} to {}",
        base.max_memory,
        run.max_memory
    );

    // Healthy again: export resumes on its own.
    collector.set(Mode::Ok);
    let healed = Instant::now();
    let after = drive(&envoy, 10, "healed", true);
    assert_eq!(after.ok, after.total);
    meshwake_tests::wait_for(10, "export resumed", || {
        (collector.spans_received_since(healed) >= 10).then_some(())
    });
    let end = envoy.meshwake_counters();
    assert!(get(&end, stat::SPANS_EXPORTED) >= get(&c, stat::SPANS_EXPORTED) + 10);
    eprintln!(
        "{fault:?}: {n} requests ok, p50 {:?} (baseline {:?}), max queue {}, memory {} -> {} bytes; counters {c:?}",
        run.p(0.5), base.p(0.5), run.max_queue, base.max_memory, run.max_memory
    );
    (c, collector)
}

fn failures(c: &BTreeMap<String, u64>) -> BTreeMap<&str, u64> {
    [
        "call_failed",
        "timeout",
        "status_5xx",
        "status_4xx",
        "status_429",
        "status_other",
    ]
    .into_iter()
    .map(|k| (k, get(c, &format!("export.failures_{k}"))))
    .filter(|(_, v)| *v > 0)
    .collect()
}

#[test]
fn collector_refusing_connections() {
    let (c, _) = scenario(Mode::Down, &[], 60);
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["call_failed"],
        "{c:?}"
    );
    assert!(
        get(&c, stat::SPANS_DROPPED_EXPORT_FAILED) > 0 && get(&c, stat::EXPORT_RETRIES) > 0,
        "{c:?}"
    );
}

#[test]
fn collector_absent_from_the_start() {
    // Never listened on: the first export already fails; nothing is exported.
    let (envoy, _up) = start_envoy(free_port(), &[]);
    let run = drive(&envoy, 60, "absent", false);
    assert_eq!(run.ok, 60);
    assert!(run.max_queue <= QUEUE);
    let c = meshwake_tests::wait_for(15, "all spans dropped", || {
        let c = envoy.meshwake_counters();
        (get(&c, stat::SPANS_DROPPED_QUEUE_FULL) + get(&c, stat::SPANS_DROPPED_EXPORT_FAILED) == 60)
            .then_some(c)
    });
    assert_eq!(get(&c, stat::SPANS_EXPORTED), 0);
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["call_failed"],
        "{c:?}"
    );
}

#[test]
fn collector_resetting_connections_mid_batch() {
    let (c, collector) = scenario(Mode::Reset, &[], 60);
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["call_failed"],
        "{c:?}"
    );
    assert!(get(&c, stat::SPANS_DROPPED_EXPORT_FAILED) > 0, "{c:?}");
    assert!(
        collector.calls().iter().any(|(_, s, _)| *s == 0),
        "the collector saw requests it reset"
    );
}

#[test]
fn collector_answering_500_drops_without_retry() {
    // 500 is not retryable in OTLP/HTTP: the batch is dropped at once, counted as rejected.
    let (c, _) = scenario(Mode::Status(500, vec![]), &[], 60);
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["status_5xx"],
        "{c:?}"
    );
    assert!(get(&c, stat::SPANS_DROPPED_REJECTED) > 0, "{c:?}");
    assert_eq!(get(&c, stat::SPANS_DROPPED_EXPORT_FAILED), 0, "{c:?}");
}

#[test]
fn collector_answering_503_retries_then_drops() {
    let (c, _) = scenario(Mode::Status(503, vec![]), &[], 60);
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["status_5xx"],
        "{c:?}"
    );
    assert!(
        get(&c, stat::EXPORT_RETRIES) > 0 && get(&c, stat::SPANS_DROPPED_EXPORT_FAILED) > 0,
        "{c:?}"
    );
}

#[test]
fn collector_answering_429_with_retry_after_is_honoured() {
    let ra = vec![("retry-after".to_string(), "1".to_string())];
    // max_backoff_ms 2000: a 1 s Retry-After fits under the cap and must be waited for.
    let (c, collector) = scenario(Mode::Status(429, ra), &[("max_backoff_ms", 2000)], 40);
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["status_429"],
        "{c:?}"
    );
    assert!(get(&c, stat::EXPORT_RETRIES) > 0, "{c:?}");
    // Each batch's attempts (same body bytes) are spaced by the server's Retry-After (1 s),
    // not by the 50 ms backoff the filter would use on its own.
    let mut by_batch: BTreeMap<u64, Vec<Instant>> = BTreeMap::new();
    for (t, _, h) in collector.calls().into_iter().filter(|(_, s, _)| *s == 429) {
        by_batch.entry(h).or_default().push(t);
    }
    let gaps: Vec<Duration> = by_batch
        .values()
        .flat_map(|ts| ts.windows(2).map(|w| w[1] - w[0]))
        .collect();
    assert!(!gaps.is_empty(), "no batch was retried: {by_batch:?}");
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(900)),
        "Retry-After: 1 not honoured, retry gaps {gaps:?}"
    );
}

#[test]
fn collector_answering_after_10_seconds_times_out() {
    // export.timeout_ms 500 keeps the test short; the collector answers after 10 s.
    let (c, _) = scenario(
        Mode::Slow(Duration::from_secs(10)),
        &[("timeout_ms", 500)],
        60,
    );
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["timeout"],
        "{c:?}"
    );
    assert!(get(&c, stat::SPANS_DROPPED_EXPORT_FAILED) > 0, "{c:?}");
}

#[test]
fn collector_answering_garbage() {
    let (c, _) = scenario(Mode::Garbage, &[], 60);
    // Envoy's codec refuses the bytes and answers the call-out with its own 503: a failed call.
    assert_eq!(
        failures(&c).keys().copied().collect::<Vec<_>>(),
        ["call_failed"],
        "{c:?}"
    );
    assert!(get(&c, stat::SPANS_DROPPED_EXPORT_FAILED) > 0, "{c:?}");
}

#[test]
fn collector_disappearing_and_coming_back_loses_only_what_overflowed() {
    // Down for a moment while batches are in flight, then back on the same port: batches
    // waiting to retry get through once it returns (retries outlast the outage).
    let collector = Collector::start(Mode::Ok);
    let (envoy, _up) = start_envoy(
        collector.port,
        &[
            ("initial_backoff_ms", 300),
            ("max_backoff_ms", 1000),
            ("max_retries", 5),
        ],
    );
    let before = drive(&envoy, 10, "up", true);
    assert_eq!(before.ok, 10);
    collector.set(Mode::Down);
    let down = drive(&envoy, 8, "down", true);
    assert_eq!(down.ok, 8);
    std::thread::sleep(Duration::from_millis(150));
    collector.set(Mode::Ok);
    let up = drive(&envoy, 10, "back", true);
    assert_eq!(up.ok, 10);
    let c = meshwake_tests::wait_for(15, "everything exported", || {
        let c = envoy.meshwake_counters();
        (get(&c, stat::SPANS_EXPORTED)
            + get(&c, stat::SPANS_DROPPED_EXPORT_FAILED)
            + get(&c, stat::SPANS_DROPPED_QUEUE_FULL)
            == 28
            && get(&c, stat::EXPORT_QUEUE_DEPTH) == 0
            && get(&c, stat::EXPORT_BATCHES_IN_FLIGHT) == 0)
            .then_some(c)
    });
    // Nothing overflowed and the retries outlived the outage: every span arrived, once.
    assert_eq!(get(&c, stat::SPANS_EXPORTED), 28, "{c:?}");
    assert_eq!(collector.spans_received(), 28);
    assert!(
        get(&c, stat::EXPORT_FAILURES_CALL_FAILED) > 0 && get(&c, stat::EXPORT_RETRIES) > 0,
        "{c:?}"
    );
}
