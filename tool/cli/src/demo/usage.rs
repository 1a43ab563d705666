//! Did the demo saturate the machine? CPU time of every process it started (from
//! `/proc/PID/stat`) and of the whole machine (`/proc/stat`) over the traffic phase, and the
//! load generator's lag. A saturated mesh answers slowly and fails for reasons that have
//! nothing to do with the rollout: the analysis would then see noise, so the demo says so and
//! suggests a lower rate.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::load::{LoadStats, LATE};

/// Machine busy above this share of all cores during traffic: saturated.
const BUSY_LIMIT: f64 = 0.90;
/// More than this share of requests sent late: the generator fell behind.
const LATE_LIMIT: f64 = 0.02;
/// Fewer than this share of the due requests sent: the generator fell behind.
const SENT_LIMIT: f64 = 0.95;
/// A busy machine counts as saturated by the demo when its processes are this share of it.
const DEMO_SHARE_LIMIT: f64 = 0.5;

/// CPU time so far: per child (name → ticks), this process, the machine (busy, total ticks).
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    procs: BTreeMap<String, u64>,
    own: u64,
    machine: Option<(u64, u64)>,
}

/// Clock ticks per second of `/proc` CPU times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, in ticks (fields 14 and 15, after the parenthesised name).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// (busy, total) ticks of all cores since boot, from the first line of `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Takes a sample for the children `pids` (name, pid).
pub fn sample(pids: &[(String, u32)]) -> Sample {
    Sample {
        at: Instant::now(),
        procs: pids
            .iter()
            .filter_map(|(n, p)| Some((n.clone(), process_ticks(&p.to_string())?)))
            .collect(),
        own: process_ticks("self").unwrap_or(0),
        machine: machine_ticks(),
    }
}

/// What the traffic phase cost, and whether it saturated the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Wall-clock seconds between the samples.
    pub seconds: f64,
    /// CPU per group of processes (envoy sidecars, apps, edge, collector, generator), in
    /// cores (1.0 = one core busy the whole time), and the number of processes in it.
    pub groups: Vec<(String, usize, f64)>,
    /// The busiest single process and its cores.
    pub busiest: Option<(String, f64)>,
    /// Share of all cores busy (every process on the machine, not only the demo's).
    pub machine_busy: Option<f64>,
    /// Cores on the machine.
    pub cores: usize,
    /// Requests due, sent, sent late; the largest lag.
    pub due: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests sent more than [`LATE`] after their due time.
    pub late: u64,
    /// Largest lag of a request behind its due time.
    pub max_lag: Duration,
    /// Requests per second asked for.
    pub rate: f64,
}

/// The group a child belongs to, from its name (`envoy ratings@v2`, `app ratings@v2`...).
fn group_of(name: &str) -> &'static str {
    if name == "envoy edge" {
        "edge Envoy"
    } else if name.starts_with("envoy ") {
        "sidecar Envoys"
    } else if name.starts_with("app ") {
        "demo services"
    } else if name == "collector" {
        "collector"
    } else {
        "other"
    }
}

/// Compares two samples: CPU per group, the machine, the generator's lag.
pub fn measure(before: &Sample, after: &Sample, stats: &LoadStats, rate: f64) -> Usage {
    let seconds = after.at.duration_since(before.at).as_secs_f64().max(0.001);
    let cores_of = |ticks: u64| ticks as f64 / ticks_per_sec() / seconds;
    let mut groups: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    let mut busiest: Option<(String, f64)> = None;
    for (name, end) in &after.procs {
        let start = before.procs.get(name).copied().unwrap_or(0);
        let c = cores_of(end.saturating_sub(start));
        let g = groups.entry(group_of(name)).or_default();
        g.0 += 1;
        g.1 += c;
        if busiest.as_ref().is_none_or(|(_, b)| c > *b) {
            busiest = Some((name.clone(), c));
        }
    }
    let own = cores_of(after.own.saturating_sub(before.own));
    let mut groups: Vec<(String, usize, f64)> = groups
        .into_iter()
        .map(|(g, (n, c))| (g.to_owned(), n, c))
        .collect();
    groups.push(("load generator (meshwake demo)".into(), 1, own));
    groups.sort_by(|a, b| b.2.total_cmp(&a.2));
    let machine_busy = match (before.machine, after.machine) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64)
        }
        _ => None,
    };
    Usage {
        seconds,
        groups,
        busiest,
        machine_busy,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        due: (rate * seconds).floor() as u64,
        sent: stats.done.load(Ordering::Relaxed),
        late: stats.late.load(Ordering::Relaxed),
        max_lag: Duration::from_micros(stats.max_lag_us.load(Ordering::Relaxed)),
        rate,
    }
}

impl Usage {
    /// Why the run saturated the machine, if it did (empty: it did not).
    pub fn saturation(&self) -> Vec<String> {
        let mut why = Vec::new();
        // A machine kept busy by others starves the mesh too, but lowering the demo's rate
        // would not help: that case is a note ([`Usage::busy_with_others`]), not saturation.
        if let Some(busy) = self.machine_busy.filter(|b| *b > BUSY_LIMIT) {
            if self.demo_share_of_busy() >= DEMO_SHARE_LIMIT {
                why.push(format!(
                    "the machine was {:.0}% busy ({} cores), {:.0}% of it the demo's processes",
                    100.0 * busy,
                    self.cores,
                    100.0 * self.demo_share_of_busy()
                ));
            }
        }
        let late_share = self.late as f64 / self.sent.max(1) as f64;
        if late_share > LATE_LIMIT {
            why.push(format!(
                "the load generator sent {:.1}% of the requests more than {} ms late (at most {} ms)",
                100.0 * late_share,
                LATE.as_millis(),
                self.max_lag.as_millis()
            ));
        }
        if self.due > 0 && (self.sent as f64) < SENT_LIMIT * self.due as f64 {
            why.push(format!(
                "it sent {} of {} requests due",
                self.sent, self.due
            ));
        }
        why
    }

    /// Cores the demo's processes used, all groups together.
    pub fn demo_cores(&self) -> f64 {
        self.groups.iter().map(|(_, _, c)| c).sum()
    }

    /// Share of the machine's busy time that was the demo's.
    fn demo_share_of_busy(&self) -> f64 {
        let busy_cores = self.machine_busy.unwrap_or(0.0) * self.cores as f64;
        if busy_cores <= 0.0 {
            return 0.0;
        }
        (self.demo_cores() / busy_cores).min(1.0)
    }

    /// The machine was nearly full, mostly with other processes than the demo's: latencies
    /// are noisier than the topology says, whatever the demo's rate.
    pub fn busy_with_others(&self) -> Option<String> {
        let busy = self.machine_busy.filter(|b| *b > BUSY_LIMIT)?;
        (self.demo_share_of_busy() < DEMO_SHARE_LIMIT).then(|| {
            format!(
                "note: the machine was {:.0}% busy, mostly with other processes (the demo's used {:.2} of {} cores): latencies are noisier than the topology says",
                100.0 * busy,
                self.demo_cores(),
                self.cores
            )
        })
    }

    /// A rate that should fit: the one asked, scaled to what the machine and the generator
    /// managed, with a margin.
    pub fn suggested_rate(&self) -> f64 {
        let busy = self.machine_busy.unwrap_or(0.0).max(0.01);
        let by_cpu = (BUSY_LIMIT * 0.8 / busy).min(1.0);
        let by_sent = if self.due > 0 {
            (self.sent as f64 / self.due as f64) * 0.8
        } else {
            1.0
        };
        let by_lag = if self.late > 0 { 0.7 } else { 1.0 };
        (self.rate * by_cpu.min(by_sent).min(by_lag))
            .floor()
            .max(1.0)
    }

    /// One line per group and the verdict, for the terminal.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "CPU during {:.0} s of traffic (1.00 = one core busy):",
            self.seconds
        )];
        for (g, n, c) in &self.groups {
            let each = if *n > 1 {
                format!(" ({n} processes, {:.3} each)", c / *n as f64)
            } else {
                String::new()
            };
            out.push(format!("  {c:>6.2}  {g}{each}"));
        }
        if let Some((name, c)) = &self.busiest {
            out.push(format!("  busiest process: {name} ({c:.2})"));
        }
        if let Some(b) = self.machine_busy {
            out.push(format!(
                "  machine: {:.0}% of {} cores busy (every process counted)",
                100.0 * b,
                self.cores
            ));
        }
        out.extend(self.busy_with_others());
        out.push(format!(
            "load generator: {} of {} requests due sent, {} more than {} ms late (largest lag {} ms)",
            self.sent,
            self.due,
            self.late,
            LATE.as_millis(),
            self.max_lag.as_millis()
        ));
        out
    }

    /// The numbers, for `run.json`.
    pub fn to_json(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|(g, n, c)| json!({ "group": g, "processes": n, "cores": c }))
            .collect();
        let why = self.saturation();
        json!({
            "traffic_seconds": self.seconds,
            "cpu_cores_by_group": groups,
            "busiest": self.busiest.as_ref().map(|(n, c)| json!({ "process": n, "cores": c })),
            "machine_busy": self.machine_busy,
            "demo_cores": self.demo_cores(),
            "cores": self.cores,
            "requests_due": self.due,
            "requests_sent": self.sent,
            "requests_late": self.late,
            "max_lag_ms": self.max_lag.as_millis() as u64,
            "rate_per_sec": self.rate,
            "saturated": !why.is_empty(),
            "saturation": why,
            "suggested_rate_per_sec": (!why.is_empty()).then(|| self.suggested_rate()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_ticks_are_read() {
        // Burn a little CPU so the count is not zero on a fast machine.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(process_ticks("self").is_some());
        let (busy, total) = machine_ticks().unwrap();
        assert!(busy <= total && total > 0);
    }

    fn usage(busy: f64, sent: u64, late: u64) -> Usage {
        Usage {
            seconds: 10.0,
            groups: vec![("sidecar Envoys".into(), 10, 1.5)],
            busiest: None,
            machine_busy: Some(busy),
            cores: 2,
            due: 200,
            sent,
            late,
            max_lag: Duration::from_millis(if late > 0 { 900 } else { 3 }),
            rate: 20.0,
        }
    }

    #[test]
    fn saturation_is_reported_with_a_lower_rate() {
        assert!(usage(0.5, 200, 0).saturation().is_empty());
        let busy = usage(0.99, 200, 0);
        assert_eq!(busy.saturation().len(), 1, "{:?}", busy.saturation());
        assert!(busy.suggested_rate() < 20.0 && busy.suggested_rate() >= 10.0);
        let behind = usage(0.6, 120, 60);
        assert_eq!(behind.saturation().len(), 2, "{:?}", behind.saturation());
        assert!(behind.suggested_rate() <= 10.0);
        assert_eq!(behind.to_json()["saturated"], true);
        // Busy because of others: a note, not saturation.
        let mut others = usage(0.99, 200, 0);
        others.groups = vec![("sidecar Envoys".into(), 10, 0.2)];
        assert!(others.saturation().is_empty());
        assert!(others
            .busy_with_others()
            .unwrap()
            .contains("other processes"));
        assert!(busy.busy_with_others().is_none());
    }

    #[test]
    fn groups_by_process_kind() {
        assert_eq!(group_of("envoy edge"), "edge Envoy");
        assert_eq!(group_of("envoy ratings@v2"), "sidecar Envoys");
        assert_eq!(group_of("app ratings@v2"), "demo services");
        assert_eq!(group_of("collector"), "collector");
    }
}
