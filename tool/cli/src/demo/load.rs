//! User traffic at the edge: an open-loop schedule (request `i` is due at `start + i / rate`),
//! served by a fixed pool of threads, so the rate is bounded and a slow mesh lowers it
//! instead of piling up requests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Timeout of one edge request (longer than Envoy's route timeout, so Envoy answers first).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Counters shared by the load threads and the progress display.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// Requests answered (any status) or failed.
    pub done: AtomicU64,
    /// Answers with status >= 500, or no answer at all.
    pub errors: AtomicU64,
    /// Requests sent more than [`LATE`] after they were due: the generator fell behind (all
    /// its threads busy waiting on a slow mesh, or no CPU for it).
    pub late: AtomicU64,
    /// Largest delay between due and sent, µs.
    pub max_lag_us: AtomicU64,
}

/// A request sent this much after its due time counts as late.
pub const LATE: Duration = Duration::from_millis(100);

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// `http://127.0.0.1:<edge port>`.
    pub base_url: String,
    /// Paths, repeated according to their weights: request `i` gets `paths[i % len]`.
    pub paths: Vec<String>,
    /// Requests per second.
    pub rate: f64,
    /// Threads (requests in flight at most).
    pub concurrency: usize,
    /// How long.
    pub duration: Duration,
}

/// Spreads weighted routes over a short cycle (largest-remainder interleaving), so every
/// second of traffic has the configured mix.
pub fn interleave(routes: &[(String, u32)]) -> Vec<String> {
    let total: u32 = routes.iter().map(|(_, w)| *w).sum();
    let mut credit: Vec<i64> = vec![0; routes.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, (_, w)) in credit.iter_mut().zip(routes) {
            *c += i64::from(*w);
        }
        let best = credit
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        if let (Some(i), Some(c)) = (best, best.and_then(|i| credit.get_mut(i))) {
            *c -= i64::from(total);
            if let Some((p, _)) = routes.get(i) {
                out.push(p.clone());
            }
        }
    }
    out
}

/// Starts the load threads; they end after `plan.duration` or when `stop` is set.
pub fn start(plan: LoadPlan, stop: Arc<AtomicBool>, stats: Arc<LoadStats>) -> Vec<JoinHandle<()>> {
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .max_idle_connections_per_host(plan.concurrency)
        .build()
        .into();
    (0..plan.concurrency)
        .map(|_| {
            let (plan, next, stop, stats, agent) = (
                plan.clone(),
                next.clone(),
                stop.clone(),
                stats.clone(),
                agent.clone(),
            );
            std::thread::spawn(move || worker(&plan, &next, &stop, &stats, &agent, start))
        })
        .collect()
}

fn worker(
    plan: &LoadPlan,
    next: &AtomicU64,
    stop: &AtomicBool,
    stats: &LoadStats,
    agent: &ureq::Agent,
    start: Instant,
) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        if due.duration_since(start) >= plan.duration {
            return;
        }
        // Sleep in short steps so Ctrl-C is honoured quickly.
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((due - Instant::now()).min(Duration::from_millis(100)));
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let lag = Instant::now().saturating_duration_since(due);
        if lag > LATE {
            stats.late.fetch_add(1, Ordering::Relaxed);
        }
        let lag_us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        stats.max_lag_us.fetch_max(lag_us, Ordering::Relaxed);
        let len = plan.paths.len().max(1) as u64;
        let path = plan
            .paths
            .get(usize::try_from(i % len).unwrap_or(0))
            .map_or("/", String::as_str);
        let failed = match agent.get(&format!("{}{path}", plan.base_url)).call() {
            Ok(mut resp) => {
                // Read the body so the connection is reused.
                let _ = resp.body_mut().read_to_vec();
                resp.status().as_u16() >= 500
            }
            Err(_) => true,
        };
        stats.done.fetch_add(1, Ordering::Relaxed);
        if failed {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    #[test]
    fn interleave_respects_weights() {
        let r = |v: &[(&str, u32)]| interleave(&v.iter().map(|(p, w)| (p.to_string(), *w)).collect::<Vec<_>>());
        assert_eq!(r(&[("/a", 1)]), ["/a"]);
        assert_eq!(r(&[("/a", 2), ("/b", 1)]), ["/a", "/b", "/a"]);
        assert_eq!(r(&[("/a", 1), ("/b", 1)]), ["/a", "/b"]);
        assert_eq!(r(&[("/a", 3), ("/b", 0)]), ["/a", "/a", "/a"]);
        let mix = r(&[("/a", 5), ("/b", 3), ("/c", 2)]);
        assert_eq!(mix.len(), 10);
        assert_eq!(mix.iter().filter(|p| *p == "/b").count(), 3);
        assert!(r(&[]).is_empty());
    }
}
