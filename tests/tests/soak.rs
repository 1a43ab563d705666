//! The soak (`make soak`, `scripts/soak.sh`): mixed normal and hostile traffic through a real
//! Envoy (two workers, FAIL_CLOSED) for `SOAK_SECONDS` (default 600) while the collector
//! flaps every `SOAK_FLAP_SECONDS` (default 20) between healthy and a fault (down, 503,
//! reset, slow, garbage, 429). Reports requests, failures attributable to the filter (must be
//! 0), spans created/exported/dropped by reason, and the memory curve (the VMs' linear
//! memory, Envoy's heap and process RSS, sampled every `SOAK_SAMPLE_SECONDS`, default 5):
//! within `SOAK_VM_BUDGET_MIB` (default 16, all VMs) and flat after the first full cycle
//! through every collector fault. The report is also written to `target/soak-report.txt`.
//! Ignored by `cargo test`; run with `--ignored`.
use meshwake_semconv::{header, stat};
#[path = "support/collector.rs"]
mod collector;

use collector::{Collector, Mode};
use meshwake_tests::{http, Envoy, EnvoyOptions, Response, Server};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Hostile header sets, one picked per hostile request (see hostile.rs for the full table).
fn hostile(i: u64) -> Vec<(String, Vec<u8>)> {
    let h = |k: &str, v: Vec<u8>| vec![(k.to_string(), v)];
    let n = |count: usize, f: &dyn Fn(usize) -> String| {
        (0..count).map(f).collect::<Vec<_>>().join(",").into_bytes()
    };
    match i % 12 {
        0 => h(
            "traceparent",
            [b"00-\xff\xfe".as_slice(), &TP.as_bytes()[5..]].concat(),
        ),
        1 => h("traceparent", TP.to_uppercase().into_bytes()),
        2 => h(
            "traceparent",
            format!("cc-{}-{}", &TP[3..], "a".repeat(60 * 1024)).into_bytes(),
        ),
        3 => vec![
            ("traceparent".into(), TP.into()),
            ("tracestate".into(), n(3000, &|i| format!("k{i}=v"))),
        ],
        4 => vec![
            ("traceparent".into(), TP.into()),
            ("baggage".into(), n(5000, &|i| format!("k{i}=v"))),
        ],
        5 => h(header::PEER, b"1;s=\xff\xfe;v=v1".to_vec()),
        6 => h(header::LINEAGE, n(5000, &|i| format!("s{i}@v{i}"))),
        7 => (0..500)
            .map(|i| (format!("x-junk-{i}"), format!("v{i}").into_bytes()))
            .collect(),
        8 => vec![
            ("traceparent".into(), TP.into()),
            (
                "traceparent".into(),
                format!("00-{}-{}-01", "1".repeat(32), "2".repeat(16)).into(),
            ),
        ],
        9 => h("b3", b"zz-\xff-1".to_vec()),
        10 => h("x-request-id", vec![0xff; 60 * 1024]),
        _ => h("user-agent", vec![b'u'; 60 * 1024]),
    }
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    hostile: AtomicU64,
    /// Non-200 answers or transport errors: with FAIL_CLOSED, a dead or failing filter shows here.
    failures: AtomicU64,
    /// 200 without `x-meshwake`: the filter did not run.
    filter_absent: AtomicU64,
    slowest_ms: AtomicU64,
    examples: Mutex<Vec<String>>,
}

struct Sample {
    t: u64,
    requests: u64,
    vm_memory: u64,
    heap_allocated: u64,
    rss: u64,
    queue: u64,
    in_flight: u64,
}

fn envoy_rss(envoy: &Envoy) -> u64 {
    // The Envoy whose command line holds this run's config path.
    let cfg = envoy.dir.join("envoy.yaml").display().to_string();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&cfg) {
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
                return kb
                    .trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0)
                    * 1024;
            }
        }
    }
    0
}

fn sample(envoy: &Envoy, t0: Instant, tally: &Tally) -> Sample {
    let stats = envoy.stats();
    let stat = |k: &str| {
        stats
            .get(&format!("{}.meshwake.{k}", envoy.build.stat_namespace()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mem: serde_json::Value = serde_json::from_str(&envoy.admin("/memory")).unwrap_or_default();
    let num = |k: &str| {
        mem[k]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or(mem[k].as_u64())
            .unwrap_or(0)
    };
    Sample {
        t: t0.elapsed().as_secs(),
        requests: tally.requests.load(Ordering::Relaxed),
        vm_memory: stat(stat::VM_MEMORY_BYTES),
        heap_allocated: num("allocated"),
        rss: envoy_rss(envoy),
        queue: stat(stat::EXPORT_QUEUE_DEPTH),
        in_flight: stat(stat::EXPORT_BATCHES_IN_FLIGHT),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1048576.0)
}

#[test]
#[ignore = "long: run by `make soak` (scripts/soak.sh)"]
fn soak() {
    let secs = env_secs("SOAK_SECONDS", 600);
    let flap = env_secs("SOAK_FLAP_SECONDS", 20).max(1);
    let every = env_secs("SOAK_SAMPLE_SECONDS", 5).max(1);
    let rate = env_secs("SOAK_RPS", 200).max(1);

    let collector = Collector::start(Mode::Ok);
    let upstream = Server::start(|_| Response::new(200).with_body("ok"));
    let cfg = r#"{"role":"inbound","debug_header":true,"identity":{"service":"soak","version":"v1","namespace":"soak"},"export":{"flush_interval_ms":200,"max_queue_spans":2048,"max_batch_spans":256,"timeout_ms":2000,"max_retries":3,"initial_backoff_ms":200,"max_backoff_ms":5000}}"#;
    let mut opts = EnvoyOptions::default()
        .name("soak")
        .template("hostile.yaml.tmpl")
        .plugin_config(cfg)
        .var("UPSTREAM_PORT", upstream.port())
        .var("OTLP_PORT", collector.port);
    opts.concurrency = 2;
    let mut envoy = Envoy::start(opts);
    let port = envoy.listen_port();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    // Four clients sharing the target rate; every 4th request hostile.
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (tally, stop) = (tally.clone(), stop.clone());
            std::thread::spawn(move || {
                let period = Duration::from_secs_f64(4.0 / rate as f64);
                let mut next = Instant::now();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    i += 4;
                    let is_hostile = i % 4 == 1;
                    let headers = if is_hostile {
                        hostile(i / 4)
                    } else {
                        vec![("traceparent".into(), TP.into())]
                    };
                    let hdrs: Vec<(&str, &[u8])> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_slice()))
                        .collect();
                    let start = Instant::now();
                    let r = http::request(port, "GET", &format!("/soak/{}", i % 50), &hdrs, b"");
                    let ms = start.elapsed().as_millis() as u64;
                    tally.slowest_ms.fetch_max(ms, Ordering::Relaxed);
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    if is_hostile {
                        tally.hostile.fetch_add(1, Ordering::Relaxed);
                    }
                    let problem = match &r {
                        Ok(r) if r.status == 200 && r.header(header::DEBUG).is_some() => None,
                        Ok(r) if r.status == 200 => {
                            tally.filter_absent.fetch_add(1, Ordering::Relaxed);
                            Some("200 without x-meshwake".to_string())
                        }
                        Ok(r) => Some(format!("status {} {:?}", r.status, r.body_str())),
                        Err(e) => Some(format!("transport error {e}")),
                    };
                    if let Some(p) = problem {
                        tally.failures.fetch_add(1, Ordering::Relaxed);
                        let mut ex = tally.examples.lock().unwrap();
                        if ex.len() < 5 {
                            ex.push(format!("request {i} (hostile {is_hostile}): {p}"));
                        }
                    }
                    next += period;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    } else {
                        next = Instant::now();
                    }
                }
            })
        })
        .collect();

    // The collector flaps: healthy, a fault, healthy, the next fault...
    let faults = [
        Mode::Down,
        Mode::Status(503, vec![]),
        Mode::Reset,
        Mode::Slow(Duration::from_secs(10)),
        Mode::Garbage,
        Mode::Status(429, vec![("retry-after".into(), "2".into())]),
    ];
    let mut samples = Vec::new();
    let mut flaps = Vec::new();
    let mut phase = 0usize;
    let mut next_flap = flap;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(
            Duration::from_secs(every).min(Duration::from_secs(secs).saturating_sub(t0.elapsed())),
        );
        samples.push(sample(&envoy, t0, &tally));
        let t = t0.elapsed().as_secs();
        if t >= next_flap && t + 1 < secs {
            phase += 1;
            let mode = if phase % 2 == 1 {
                faults[(phase / 2) % faults.len()].clone()
            } else {
                Mode::Ok
            };
            flaps.push(format!("{t}s {mode:?}"));
            collector.set(mode);
            next_flap += flap;
        }
        envoy.assert_alive();
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    // Healthy at the end: what is still queued drains.
    collector.set(Mode::Ok);
    let drained = meshwake_tests::wait_for(30, "queue drained", || {
        let s = sample(&envoy, t0, &tally);
        (s.queue == 0 && s.in_flight == 0).then_some(s)
    });
    std::thread::sleep(Duration::from_secs(1));
    samples.push(drained);

    let stats = envoy.stats();
    let c = |k: &str| -> u64 {
        stats
            .get(&format!("{}.meshwake.{k}", envoy.build.stat_namespace()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let requests = tally.requests.load(Ordering::Relaxed);
    let failures = tally.failures.load(Ordering::Relaxed);
    // wasm: the VM's panic message in Envoy's log; native: the caught-panic line and counter.
    let panicked = envoy.log().contains("panic") || c(meshwake_core::self_stats::NATIVE_PANICS) > 0;

    // Memory: the VMs' linear memory only grows, to the high-water mark of the worst fault
    // (a slow collector holds the most). Warm-up is one full cycle through every fault; after
    // it, memory must be flat. Over the whole run it must stay within a budget (all VMs).
    let cycle = 2 * flap * faults.len() as u64;
    let full_cycles = secs / cycle.max(1);
    let warm = samples
        .iter()
        .find(|s| s.t >= cycle)
        .filter(|_| full_cycles >= 2)
        .unwrap_or(&samples[0]);
    let last = samples.last().unwrap();
    let peak = |f: fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    let vm_growth = last.vm_memory.saturating_sub(warm.vm_memory);
    let heap_growth = last.heap_allocated as i64 - warm.heap_allocated as i64;
    let budget = env_secs("SOAK_VM_BUDGET_MIB", 16) * 1048576;

    let mut r = String::new();
    let _ = writeln!(r, "meshwake soak: {:?} build, {secs} s, {rate} req/s target, 2 Envoy workers, FAIL_CLOSED, collector flapping every {flap} s", envoy.build);
    let _ = writeln!(
        r,
        "requests: {requests} ({} hostile), {:.0} req/s achieved, slowest {} ms",
        tally.hostile.load(Ordering::Relaxed),
        requests as f64 / secs as f64,
        tally.slowest_ms.load(Ordering::Relaxed)
    );
    let _ = writeln!(r, "failures attributable to the filter: {failures} (non-200 or no x-meshwake: {} without the header); panics: {}", tally.filter_absent.load(Ordering::Relaxed), if panicked { "YES" } else { "none" });
    for e in tally.examples.lock().unwrap().iter() {
        let _ = writeln!(r, "  {e}");
    }
    let _ = writeln!(
        r,
        "spans: created {}, exported {} (collector received {}), sampled out {}",
        c(stat::SPANS_CREATED),
        c(stat::SPANS_EXPORTED),
        collector.spans_received(),
        c(stat::SPANS_DROPPED_SAMPLED_OUT)
    );
    let _ = writeln!(
        r,
        "spans dropped: queue full {}, export failed after retries {}, rejected by collector {}",
        c(stat::SPANS_DROPPED_QUEUE_FULL),
        c(stat::SPANS_DROPPED_EXPORT_FAILED),
        c(stat::SPANS_DROPPED_REJECTED)
    );
    let _ = writeln!(r, "export failures by cause: call_failed {}, timeout {}, status_5xx {}, status_429 {}, status_4xx {}, other {}; retries {}; batches sent {}",
        c(stat::EXPORT_FAILURES_CALL_FAILED), c(stat::EXPORT_FAILURES_TIMEOUT), c(stat::EXPORT_FAILURES_STATUS_5XX), c(stat::EXPORT_FAILURES_STATUS_429), c(stat::EXPORT_FAILURES_STATUS_4XX), c(stat::EXPORT_FAILURES_STATUS_OTHER), c(stat::EXPORT_RETRIES), c(stat::EXPORT_BATCHES_SENT));
    let _ = writeln!(r, "rejected input (counters): context_invalid {}, peer_identity_malformed {}, lineage_rejected {}, lineage_truncated {}", c(stat::note::CONTEXT_INVALID), c(stat::note::PEER_IDENTITY_MALFORMED), c(stat::note::LINEAGE_REJECTED), c(stat::note::LINEAGE_TRUNCATED));
    let _ = writeln!(r, "collector phases: {}", flaps.join(", "));
    // Wasm: every stream's state dropped at its log callback (filters/wasm/src/dispatch.rs).
    let streams_active = envoy.meshwake_stat(stat::STREAMS_ACTIVE);
    let _ = writeln!(
        r,
        "stream states held after the traffic: {streams_active}; evicted: {}",
        c(stat::STREAMS_EVICTED)
    );
    let _ = writeln!(r, "memory (MiB) every {every} s: t, requests, VM linear memory, Envoy heap allocated, Envoy RSS, span queue");
    for s in &samples {
        let _ = writeln!(
            r,
            "  {:>5}s {:>8} {:>6} {:>7} {:>7} {:>5}",
            s.t,
            s.requests,
            mib(s.vm_memory),
            mib(s.heap_allocated),
            mib(s.rss),
            s.queue
        );
    }
    let _ = writeln!(r, "VM memory peak {} MiB (budget {} MiB, all VMs); {full_cycles} full collector cycles of {cycle} s", mib(peak(|s| s.vm_memory)), mib(budget));
    let _ = writeln!(r, "after warm-up ({} s): VM memory {} -> {} MiB (growth {} MiB, peak {}), Envoy heap {} -> {} MiB ({:+.1} MiB), RSS peak {} MiB",
        warm.t, mib(warm.vm_memory), mib(last.vm_memory), mib(vm_growth), mib(peak(|s| s.vm_memory)), mib(warm.heap_allocated), mib(last.heap_allocated), heap_growth as f64 / 1048576.0, mib(peak(|s| s.rss)));
    print!("{r}");
    let _ = std::fs::write(
        meshwake_tests::paths::root().join("target/soak-report.txt"),
        &r,
    );

    assert_eq!(failures, 0, "failures attributable to the filter");
    assert!(!panicked, "the filter panicked");
    // The native build has no VM memory to watch: Envoy's own heap is where a leak would show.
    assert!(
        heap_growth <= 2 * 1048576,
        "Envoy heap grew {:+.1} MiB after warm-up",
        heap_growth as f64 / 1048576.0
    );
    assert!(
        vm_growth <= 2 * 1048576,
        "VM memory grew {} MiB after warm-up",
        mib(vm_growth)
    );
    let dropped = c(stat::SPANS_DROPPED_QUEUE_FULL)
        + c(stat::SPANS_DROPPED_EXPORT_FAILED)
        + c(stat::SPANS_DROPPED_REJECTED);
    assert_eq!(
        c(stat::SPANS_CREATED),
        c(stat::SPANS_EXPORTED) + dropped,
        "every span exported or dropped with a reason"
    );
    assert_eq!(streams_active, 0, "stream states left after the traffic");
    assert_eq!(c(stat::STREAMS_EVICTED), 0, "stream states evicted");
    envoy.assert_alive();
}
