//! Calibration of the verdicts on synthetic meshes: how often a noise-only run names a
//! suspect (false alarms) and how often a real regression of a given size is found (power).
//! `examples/synth_check.rs` runs both and writes `docs/verdict-power.md`; `make test` runs
//! a shortened version (`scripts/test.d/verdicts.sh`).

use std::fmt::Write as _;

use crate::impact::{analyze, Report};
use crate::model::SpanRecord;
use crate::options::AnalysisOptions;
use crate::synth::{Latency, Mesh, Rng, Service, Version, T0};

const NS_PER_S: f64 = 1e9;

/// One synthetic run: a mesh, its traffic and the moment of its (first) rollout.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The simulated mesh.
    pub mesh: Mesh,
    /// Edge requests.
    pub requests: usize,
    /// Length of the run, ms (traffic is evenly spread).
    pub duration_ms: f64,
    /// First rollout (Unix ns): the known baseline end.
    pub rollout_ns: u64,
    /// Deployments (service versions) in the run.
    pub deployments: usize,
    /// `service@version` of the injected regression, if any.
    pub culprit: Option<String>,
    /// Seed of the traffic.
    pub seed: u64,
}

impl Scenario {
    /// The spans of the run.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.mesh
            .generate(self.requests, self.duration_ms, self.seed)
    }

    /// Default options, with the baseline end known (`true`) or left to inference.
    pub fn options(&self, known_baseline: bool) -> AnalysisOptions {
        AnalysisOptions {
            baseline_end_ns: known_baseline.then_some(self.rollout_ns),
            ..AnalysisOptions::default()
        }
    }
}

fn svc(name: String, self_ms: f64) -> Service {
    Service {
        route: format!("/api/{name}"),
        name,
        versions: vec![Version::new("v1", 1.0)],
        calls: Vec::new(),
        self_ms,
        instrumented: true,
    }
}

/// A random tree of `n` services (each called by one of the few before it), log-normal
/// self times with medians between 2 and 40 ms, calls made with probability 0.3..1.
fn random_tree(n: usize, rng: &mut Rng) -> Mesh {
    let mut mesh = Mesh::chain(0);
    mesh.latency = Latency::LogNormal(rng.range(0.3, 0.7));
    mesh.base_error = 0.01;
    mesh.services.clear();
    mesh.call_prob = vec![1.0];
    for i in 0..n {
        let median = rng.range(2f64.ln(), 40f64.ln()).exp();
        mesh.services.push(svc(format!("svc{i}"), median));
        if i > 0 {
            let parent = i - 1 - rng.int(0, (i - 1).min(3));
            if let Some(p) = mesh.services.get_mut(parent) {
                p.calls.push(i);
            }
            mesh.call_prob.push(rng.range(0.3, 1.0));
        }
    }
    if let Some(edge) = mesh.services.first_mut() {
        edge.route = "/".into();
    }
    mesh
}

/// A noise-only run of realistic size: 8–30 services, 10–50 deployments, 1% error floor,
/// log-normal latency, 10–50 req/s for 1–3 minutes before and 1–3 minutes after the first
/// of several rollouts (canaries of 10–50% or full rollouts) of versions identical to
/// the ones they replace. Some services run two stable versions throughout.
pub fn noise_scenario(seed: u64) -> Scenario {
    let mut rng = Rng::new(seed ^ 0x005e_ed0f_ca11_b7a7);
    let n = rng.int(8, 30);
    let mut mesh = random_tree(n, &mut rng);
    let rate = rng.range(10.0, 50.0);
    let before_s = rng.range(60.0, 180.0);
    let after_s = rng.range(60.0, 180.0);
    let rollout_ns = T0 + (before_s * NS_PER_S) as u64;
    let rollouts = rng.int(2, (n / 3).max(2));
    let mut deployments = n;
    for _ in 0..rollouts {
        let Some(s) = mesh.services.get_mut(rng.int(0, n - 1)) else {
            continue;
        };
        if s.versions.len() > 1 {
            continue;
        }
        // Rollouts spread over the first 20 s after the first one.
        let at = rollout_ns + (rng.range(0.0, 20.0) * NS_PER_S) as u64;
        s.versions = if rng.chance(0.3) {
            vec![
                Version::new("v1", 1.0).live(0, at),
                Version::new("v2", 1.0).live(at, u64::MAX),
            ]
        } else {
            let share = rng.range(0.1, 0.5);
            vec![
                Version::new("v1", 1.0 - share),
                Version::new("v2", share).live(at, u64::MAX),
            ]
        };
        deployments += 1;
    }
    for s in mesh.services.iter_mut() {
        if s.versions.len() == 1 && deployments < 50 && rng.chance(0.15) {
            s.versions = vec![Version::new("v1", 0.5), Version::new("v1b", 0.5)];
            deployments += 1;
        }
    }
    let duration_s = before_s + after_s;
    Scenario {
        mesh,
        requests: (rate * duration_s) as usize,
        duration_ms: duration_s * 1000.0,
        rollout_ns,
        deployments,
        culprit: None,
        seed,
    }
}

/// True when the report names any suspect.
pub fn any_suspect(r: &Report) -> bool {
    !r.suspects.is_empty()
}

/// Result of [`false_alarms`].
#[derive(Debug, Clone, Default)]
pub struct NoiseSummary {
    /// Runs analysed.
    pub runs: usize,
    /// Runs with at least one suspect.
    pub runs_with_suspect: usize,
    /// Suspects over all runs.
    pub suspects: usize,
    /// Deployments over all runs.
    pub deployments: usize,
    /// Spans over all runs.
    pub spans: usize,
    /// A few of the false suspects, `seed: deployment (kind)`.
    pub examples: Vec<String>,
}

impl NoiseSummary {
    /// Share of runs with any suspect.
    pub fn rate(&self) -> f64 {
        self.runs_with_suspect as f64 / self.runs.max(1) as f64
    }

    fn add(&mut self, other: NoiseSummary) {
        self.runs += other.runs;
        self.runs_with_suspect += other.runs_with_suspect;
        self.suspects += other.suspects;
        self.deployments += other.deployments;
        self.spans += other.spans;
        self.examples.extend(other.examples);
    }
}

/// Runs `runs` noise-only scenarios (seeds `first_seed..`) on `threads` threads.
pub fn false_alarms(
    runs: usize,
    first_seed: u64,
    known_baseline: bool,
    threads: usize,
) -> NoiseSummary {
    let threads = threads.clamp(1, 16);
    let parts: Vec<NoiseSummary> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut sum = NoiseSummary::default();
                    for i in (t..runs).step_by(threads) {
                        let seed = first_seed + i as u64;
                        let sc = noise_scenario(seed);
                        let spans = sc.spans();
                        let r = analyze(&spans, &sc.options(known_baseline));
                        sum.runs += 1;
                        sum.deployments += sc.deployments;
                        sum.spans += spans.len();
                        sum.suspects += r.suspects.len();
                        if any_suspect(&r) {
                            sum.runs_with_suspect += 1;
                            for s in r.suspects.iter().take(2) {
                                sum.examples
                                    .push(format!("seed {seed}: {} ({:?})", s.deployment, s.kind));
                            }
                        }
                    }
                    sum
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut total = NoiseSummary::default();
    for p in parts {
        total.add(p);
    }
    total
}

/// The regression injected in a power scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Own-error rate raised by this much (absolute: 0.02 = +2 points over the 1% floor).
    ErrorDelta(f64),
    /// Own (self) time multiplied by this.
    LatencyRatio(f64),
    /// This many ms more on the way into the canary (network, proxy), before its span.
    WireMs(f64),
}

impl Effect {
    fn label(self) -> String {
        match self {
            Effect::ErrorDelta(d) => format!("errors +{:.1} pt", 100.0 * d),
            Effect::LatencyRatio(r) => format!("self time ×{r}"),
            Effect::WireMs(ms) => format!("+{ms} ms into it"),
        }
    }
}

/// A power cell: effect, canary share, requests/s reaching the service, seconds per side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// The regression.
    pub effect: Effect,
    /// Share of the service's traffic on the canary (1.0: a full rollout).
    pub share: f64,
    /// Requests per second to the service.
    pub rate: f64,
    /// Seconds of baseline and of current window (each).
    pub seconds: f64,
}

/// A 6-service mesh (edge → 3 levels) whose service `svc2` (6 ms median self time,
/// log-normal σ 0.5) rolls out a canary with `cell.effect` at the half of the run.
pub fn power_scenario(cell: Cell, seed: u64) -> Scenario {
    let mut rng = Rng::new(0xc0ff_ee00 ^ seed);
    let mut mesh = random_tree(6, &mut rng);
    mesh.latency = Latency::LogNormal(0.5);
    mesh.call_prob = vec![1.0; 6];
    for (i, s) in mesh.services.iter_mut().enumerate() {
        s.calls.retain(|&c| c != 2);
        if i == 1 {
            s.calls.insert(0, 2);
        }
    }
    if let Some(first) = mesh.services.first_mut() {
        if !first.calls.contains(&1) {
            first.calls.insert(0, 1);
        }
    }
    for s in mesh.services.iter_mut().skip(1) {
        s.calls.retain(|&c| c != 1);
    }
    let rollout_ns = T0 + (cell.seconds * NS_PER_S) as u64;
    mesh.fault_start_ns = rollout_ns;
    let canary = match cell.effect {
        Effect::ErrorDelta(d) => Version::new("v2", cell.share).erroring(d),
        Effect::LatencyRatio(r) => Version::new("v2", cell.share).times(r),
        Effect::WireMs(ms) => Version::new("v2", cell.share).wire_delay(ms),
    }
    .live(rollout_ns, u64::MAX);
    if let Some(target) = mesh.services.get_mut(2) {
        target.self_ms = 6.0;
        let stable_until = if cell.share >= 1.0 {
            rollout_ns
        } else {
            u64::MAX
        };
        target.versions = vec![
            Version::new("v1", 1.0 - cell.share.min(0.999)).live(0, stable_until),
            canary,
        ];
    }
    let duration_s = 2.0 * cell.seconds;
    Scenario {
        mesh,
        requests: (cell.rate * duration_s).round() as usize,
        duration_ms: duration_s * 1000.0,
        rollout_ns,
        deployments: 7,
        culprit: Some("svc2@v2".into()),
        seed,
    }
}

/// Detection rate of a cell: share of `trials` runs whose first suspect is the culprit.
pub fn detection_rate(cell: Cell, trials: usize, first_seed: u64, known_baseline: bool) -> f64 {
    let mut found = 0;
    for i in 0..trials {
        let sc = power_scenario(cell, first_seed + i as u64);
        let r = analyze(&sc.spans(), &sc.options(known_baseline));
        let first = r.suspects.first().map(|s| s.deployment.to_string());
        if first.is_some() && first == sc.culprit {
            found += 1;
        }
    }
    found as f64 / trials.max(1) as f64
}

/// The cells of the power table: each effect kind against share and traffic.
pub fn power_cells(full: bool) -> Vec<Cell> {
    let effects: Vec<Effect> = if full {
        vec![
            Effect::ErrorDelta(0.01),
            Effect::ErrorDelta(0.02),
            Effect::ErrorDelta(0.05),
            Effect::ErrorDelta(0.10),
            Effect::LatencyRatio(1.2),
            Effect::LatencyRatio(1.5),
            Effect::LatencyRatio(2.0),
            Effect::LatencyRatio(3.0),
            Effect::LatencyRatio(10.0),
            Effect::WireMs(5.0),
            Effect::WireMs(20.0),
        ]
    } else {
        vec![
            Effect::ErrorDelta(0.05),
            Effect::LatencyRatio(3.0),
            Effect::WireMs(20.0),
        ]
    };
    let shares: &[f64] = if full { &[0.1, 0.3, 0.5, 1.0] } else { &[0.3] };
    let rates: &[f64] = if full {
        &[0.2, 2.0, 10.0, 40.0]
    } else {
        &[40.0]
    };
    let mut cells = Vec::new();
    for &effect in &effects {
        for &share in shares {
            for &rate in rates {
                cells.push(Cell {
                    effect,
                    share,
                    rate,
                    seconds: 60.0,
                });
            }
        }
    }
    cells
}

/// Power over `cells`, `trials` runs each, on `threads` threads: (cell, detection rate).
pub fn power(
    cells: &[Cell],
    trials: usize,
    known_baseline: bool,
    threads: usize,
) -> Vec<(Cell, f64)> {
    let threads = threads.clamp(1, 16);
    let mut out: Vec<(usize, Cell, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..cells.len())
                        .step_by(threads)
                        .filter_map(|i| {
                            let cell = *cells.get(i)?;
                            let seed = 1000 * i as u64;
                            Some((i, cell, detection_rate(cell, trials, seed, known_baseline)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    out.sort_by_key(|x| x.0);
    out.into_iter().map(|(_, c, p)| (c, p)).collect()
}

/// The power table as Markdown: one row per effect, one column per (share, traffic).
pub fn power_markdown(results: &[(Cell, f64)], trials: usize) -> String {
    let mut cols: Vec<(f64, f64)> = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    for (c, _) in results {
        if !cols.contains(&(c.share, c.rate)) {
            cols.push((c.share, c.rate));
        }
        let label = c.effect.label();
        if !rows.contains(&label) {
            rows.push(label);
        }
    }
    let mut md = String::from("| regression (canary of svc2, 6 ms) |");
    for (share, rate) in &cols {
        let _ = write!(md, " {:.0}% @ {rate} req/s |", 100.0 * share);
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(cols.len()));
    md.push('\n');
    for label in &rows {
        let _ = write!(md, "| {label} |");
        for col in &cols {
            let rate = results
                .iter()
                .find(|(c, _)| c.effect.label() == *label && (c.share, c.rate) == *col)
                .map(|x| x.1);
            match rate {
                Some(p) => {
                    let _ = write!(md, " {:.0}% |", 100.0 * p);
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\n{trials} runs per cell; 60 s before and 60 s after the rollout; a cell counts a run when the canary is suspect #1."
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_scenarios_have_realistic_size() {
        for seed in 0..50 {
            let sc = noise_scenario(seed);
            assert!((10..=50).contains(&sc.deployments), "{}", sc.deployments);
            assert!(sc.requests >= 1200, "{}", sc.requests);
            let rolled = sc
                .mesh
                .services
                .iter()
                .filter(|s| s.versions.iter().any(|v| v.name == "v2"))
                .count();
            assert!(rolled >= 1, "seed {seed}");
        }
    }
}
