//! The timeline of each suspect: its error rate and self-time p95 over time, next to those of
//! its baseline, with the rollout moment (and any other event) marked. Computed from the
//! spans ([`Timeline::build`]), serialised in the JSON report and drawn as inline SVG in
//! the HTML report ([`Timeline::svg`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::impact::{Baseline, Report};
use crate::model::{Deployment, Kind, SpanRecord};
use crate::stats::Percentiles;

/// Buckets per timeline: enough to see a step, few enough to read.
pub const BUCKETS: u64 = 40;
/// Shortest bucket: below a second, the demo's request rate leaves buckets empty.
pub const MIN_BUCKET_NS: u64 = 1_000_000_000;

const NS_PER_MS: f64 = 1_000_000.0;

/// One event to mark on every chart (the rollout, a rollback...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    /// When, Unix ns.
    pub at_ns: u64,
    /// What happened, e.g. `rollout` or `rollback payments@v2`.
    pub label: String,
}

/// What one side served in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Point {
    /// Requests (SERVER spans) that started in the bucket.
    pub requests: u64,
    /// Failed / requests; `None` without requests.
    pub error_rate: Option<f64>,
    /// Self-time p95 (duration minus outgoing calls), ms; `None` without requests.
    pub self_p95_ms: Option<f64>,
}

/// One bucket of a suspect's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Bucket start, Unix ns.
    pub start_ns: u64,
    /// The suspect.
    pub suspect: Point,
    /// Its baseline deployments, pooled.
    pub baseline: Point,
}

/// The series of one suspect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuspectTimeline {
    /// `service@version`.
    pub deployment: Deployment,
    /// What it is compared with (pooled in `baseline` points).
    pub baseline: Vec<Deployment>,
    /// Consecutive buckets from the timeline start.
    pub buckets: Vec<Bucket>,
}

/// Every suspect's series over the input's time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// First bucket start, Unix ns.
    pub start_ns: u64,
    /// Bucket length, ns.
    pub bucket_ns: u64,
    /// Events marked on the charts, in time order.
    pub markers: Vec<Marker>,
    /// One entry per suspect, in the report's order.
    pub suspects: Vec<SuspectTimeline>,
}

/// Facts about one request, as the timeline needs them.
struct Req {
    start_ns: u64,
    failed: bool,
    self_ms: f64,
}

/// Self time of each SERVER span: its duration minus the union of its outgoing calls
/// (CLIENT spans whose parent it is).
fn requests_by_deployment(spans: &[SpanRecord]) -> HashMap<Deployment, Vec<Req>> {
    let mut calls: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for s in spans.iter().filter(|s| s.kind == Kind::Client) {
        if let Some(p) = &s.parent_span_id {
            calls
                .entry(p.as_str())
                .or_default()
                .push((s.start_ns, s.end_ns));
        }
    }
    let mut out: HashMap<Deployment, Vec<Req>> = HashMap::new();
    for s in spans.iter().filter(|s| s.kind == Kind::Server) {
        let mut busy = calls.get(s.span_id.as_str()).cloned().unwrap_or_default();
        busy.sort_unstable();
        let (mut covered, mut reach) = (0u64, s.start_ns);
        for (a, b) in busy {
            let (a, b) = (a.max(reach), b.min(s.end_ns));
            if b > a {
                covered += b - a;
                reach = b;
            }
        }
        out.entry(s.deployment()).or_default().push(Req {
            start_ns: s.start_ns,
            failed: s.is_error || s.http_status.is_some_and(|c| c >= 500),
            self_ms: s.duration_ns().saturating_sub(covered) as f64 / NS_PER_MS,
        });
    }
    add_calls_without_server_span(spans, &mut out);
    out
}

/// A callee that left no SERVER span (not instrumented, crashed, refused) is seen only in its
/// callers' CLIENT spans: those stand for its requests, as the analysis blames it from them.
fn add_calls_without_server_span(spans: &[SpanRecord], out: &mut HashMap<Deployment, Vec<Req>>) {
    let answered: std::collections::HashSet<&str> = spans
        .iter()
        .filter(|s| s.kind == Kind::Server)
        .filter_map(|s| s.parent_span_id.as_deref())
        .collect();
    for s in spans.iter().filter(|s| s.kind == Kind::Client) {
        if answered.contains(s.span_id.as_str()) {
            continue;
        }
        let Some(callee) = s.peer_deployment() else {
            continue;
        };
        out.entry(callee).or_default().push(Req {
            start_ns: s.start_ns,
            failed: s.is_error || s.http_status.is_some_and(|c| c >= 500),
            self_ms: s.duration_ns() as f64 / NS_PER_MS,
        });
    }
}

/// The rollout moment: the report's baseline split when it has one, else the first request
/// of each suspect (the moment its version started to take traffic).
fn rollout_markers(report: &Report, by_dep: &HashMap<Deployment, Vec<Req>>) -> Vec<Marker> {
    if let Some(at_ns) = report.window.baseline_end_ns {
        return vec![Marker {
            at_ns,
            label: "rollout".into(),
        }];
    }
    report
        .suspects
        .iter()
        .filter_map(|s| {
            let first = by_dep
                .get(&s.deployment)?
                .iter()
                .map(|r| r.start_ns)
                .min()?;
            Some(Marker {
                at_ns: first,
                label: format!("{} starts", s.deployment),
            })
        })
        .collect()
}

fn point(reqs: &[&Req]) -> Point {
    if reqs.is_empty() {
        return Point::default();
    }
    let failed = reqs.iter().filter(|r| r.failed).count();
    let selfs: Vec<f64> = reqs.iter().map(|r| r.self_ms).collect();
    Point {
        requests: reqs.len() as u64,
        error_rate: Some(failed as f64 / reqs.len() as f64),
        self_p95_ms: Some(Percentiles::of(&selfs).p95),
    }
}

impl Timeline {
    /// The timelines of `report`'s suspects over `spans` (the spans it was computed from).
    /// The baseline split of the report, when there is one, is marked as `rollout`.
    pub fn build(report: &Report, spans: &[SpanRecord], extra: &[Marker]) -> Timeline {
        let start_ns = report.window.start_ns;
        let span_ns = report.window.end_ns.saturating_sub(start_ns);
        let bucket_ns = (span_ns / BUCKETS + 1).max(MIN_BUCKET_NS);
        let n = usize::try_from(span_ns / bucket_ns + 1).unwrap_or(1);
        let by_dep = requests_by_deployment(spans);
        let mut markers = rollout_markers(report, &by_dep);
        markers.extend(extra.iter().cloned());
        markers.sort_by_key(|m| m.at_ns);
        let bucket_of =
            |r: &Req| usize::try_from((r.start_ns.saturating_sub(start_ns)) / bucket_ns).ok();
        let split = |deps: &[&Deployment]| -> Vec<Vec<&Req>> {
            let mut b: Vec<Vec<&Req>> = (0..n).map(|_| Vec::new()).collect();
            for d in deps {
                for r in by_dep.get(*d).map_or(&[][..], Vec::as_slice) {
                    if let Some(slot) = bucket_of(r).and_then(|i| b.get_mut(i)) {
                        slot.push(r);
                    }
                }
            }
            b
        };
        let suspects = report
            .suspects
            .iter()
            .map(|s| {
                let baseline = match &s.baseline {
                    Baseline::OtherVersions { deployments }
                    | Baseline::BaselineWindow { deployments } => deployments.clone(),
                };
                let mine = split(&[&s.deployment]);
                let theirs = split(&baseline.iter().collect::<Vec<_>>());
                let buckets = mine
                    .iter()
                    .zip(&theirs)
                    .enumerate()
                    .map(|(i, (m, t))| Bucket {
                        start_ns: start_ns + i as u64 * bucket_ns,
                        suspect: point(m),
                        baseline: point(t),
                    })
                    .collect();
                SuspectTimeline {
                    deployment: s.deployment.clone(),
                    baseline,
                    buckets,
                }
            })
            .collect();
        Timeline {
            start_ns,
            bucket_ns,
            markers,
            suspects,
        }
    }

    /// Inline SVG, one row per suspect: error rate and self-time p95 charts.
    pub fn svg(&self) -> String {
        let mut out = String::new();
        for s in &self.suspects {
            let _ = write!(
                out,
                "<div class=\"timeline\" data-suspect=\"{}\">",
                esc(&s.deployment.to_string())
            );
            out.push_str(&self.chart(s, Metric::ErrorRate));
            out.push_str(&self.chart(s, Metric::SelfP95));
            out.push_str("</div>\n");
        }
        out
    }

    fn chart(&self, s: &SuspectTimeline, metric: Metric) -> String {
        let value = |p: &Point| match metric {
            Metric::ErrorRate => p.error_rate.map(|r| 100.0 * r),
            Metric::SelfP95 => p.self_p95_ms,
        };
        let top = s
            .buckets
            .iter()
            .flat_map(|b| [value(&b.suspect), value(&b.baseline)])
            .flatten()
            .fold(0.0_f64, f64::max)
            .max(metric.floor());
        let width_s = (s.buckets.len() as u64 * self.bucket_ns) as f64 / 1e9;
        let x = |ns: u64| {
            PAD_L + (ns.saturating_sub(self.start_ns) as f64 / 1e9) / width_s.max(1e-9) * PLOT_W
        };
        let y = |v: f64| PAD_T + PLOT_H - v / top * PLOT_H;
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg class=\"timeline-chart\" data-metric=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"{} of {} over time\">",
            metric.key(),
            metric.title(),
            esc(&s.deployment.to_string())
        );
        let _ = write!(
            svg,
            "<text x=\"{PAD_L}\" y=\"14\" class=\"tl-title\" font-size=\"12\" font-weight=\"600\">{} ({})</text>\
             <line x1=\"{PAD_L}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
             <line x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{b}\" stroke=\"#999\"/>\
             <text x=\"{lx}\" y=\"{t}\" class=\"tl-axis\" text-anchor=\"end\">{top:.0}</text>\
             <text x=\"{lx}\" y=\"{b}\" class=\"tl-axis\" text-anchor=\"end\">0</text>\
             <text x=\"{r}\" y=\"{bx}\" class=\"tl-axis\" text-anchor=\"end\">{width_s:.0} s</text>",
            metric.title(),
            metric.unit(),
            b = PAD_T + PLOT_H,
            r = PAD_L + PLOT_W,
            lx = PAD_L - 4.0,
            t = PAD_T + 4.0,
            bx = PAD_T + PLOT_H + 14.0,
        );
        // One text row per marker: labels of close events (rollout, rollback) do not overlap.
        for (row, m) in self.markers.iter().enumerate() {
            let mx = x(m.at_ns);
            let _ = write!(
                svg,
                "<line class=\"tl-marker\" x1=\"{mx:.1}\" y1=\"{PAD_T}\" x2=\"{mx:.1}\" y2=\"{b}\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty}\" class=\"tl-axis\">{}</text>",
                esc(&m.label),
                b = PAD_T + PLOT_H,
                tx = mx + 3.0,
                ty = PAD_T + 10.0 + 12.0 * row as f64,
            );
        }
        let half = self.bucket_ns / 2;
        for (series, color, pick) in [
            (
                "baseline",
                "#888888",
                (|b: &Bucket| b.baseline) as fn(&Bucket) -> Point,
            ),
            ("suspect", "#d62728", |b: &Bucket| b.suspect),
        ] {
            let points: Vec<String> = s
                .buckets
                .iter()
                .filter_map(|b| {
                    value(&pick(b)).map(|v| format!("{:.1},{:.1}", x(b.start_ns + half), y(v)))
                })
                .collect();
            let _ = write!(
                svg,
                "<polyline data-series=\"{series}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{lx}\" y=\"{ly}\" class=\"tl-axis\" fill=\"#d62728\">\u{25a0} {}</text>\
             <text x=\"{bx}\" y=\"{ly}\" class=\"tl-axis\" fill=\"#888888\">\u{25a0} baseline</text></svg>",
            esc(&s.deployment.to_string()),
            lx = PAD_L,
            ly = H - 4.0,
            bx = PAD_L + PLOT_W / 2.0,
        );
        svg
    }
}

const W: f64 = 380.0;
const H: f64 = 170.0;
const PAD_L: f64 = 40.0;
const PAD_T: f64 = 22.0;
const PLOT_W: f64 = 320.0;
const PLOT_H: f64 = 110.0;

#[derive(Clone, Copy)]
enum Metric {
    ErrorRate,
    SelfP95,
}

impl Metric {
    fn key(self) -> &'static str {
        match self {
            Metric::ErrorRate => "error_rate",
            Metric::SelfP95 => "self_p95_ms",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Metric::ErrorRate => "error rate",
            Metric::SelfP95 => "self-time p95",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Metric::ErrorRate => "%",
            Metric::SelfP95 => "ms",
        }
    }
    /// Smallest y range, so that noise near zero does not fill the chart.
    fn floor(self) -> f64 {
        match self {
            Metric::ErrorRate => 5.0,
            Metric::SelfP95 => 5.0,
        }
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Buckets of the timeline, by deployment, as a map (for tests and callers that look one up).
pub fn by_deployment(t: &Timeline) -> BTreeMap<&Deployment, &SuspectTimeline> {
    t.suspects.iter().map(|s| (&s.deployment, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::AnalysisOptions;
    use crate::synth::{Mesh, Version, T0};

    /// s2@v2 starts failing and slowing at the middle of the run.
    fn scenario() -> (Vec<SpanRecord>, Report, u64) {
        let mut mesh = Mesh::chain(3);
        let fault = T0 + 30_000_000_000;
        mesh.fault_start_ns = fault;
        mesh.services[2].versions = vec![
            Version::new("v1", 1.0),
            // Rolled out at the fault: an unchanged version is compared with its own past,
            // a newcomer with the versions it replaced.
            Version::new("v2", 1.0)
                .erroring(0.4)
                .slower(40.0)
                .live(fault, u64::MAX),
        ];
        let spans = mesh.generate(3000, 60_000.0, 3);
        let opts = AnalysisOptions {
            baseline_end_ns: Some(fault),
            ..AnalysisOptions::default()
        };
        let report = crate::analyze(&spans, &opts);
        (spans, report, fault)
    }

    #[test]
    fn series_step_up_after_the_rollout_for_the_suspect_only() {
        let (spans, report, fault) = scenario();
        let t = Timeline::build(
            &report,
            &spans,
            &[Marker {
                at_ns: fault + 5,
                label: "rollback".into(),
            }],
        );
        let s = by_deployment(&t)[&Deployment::new("s2", "v2")];
        assert!(s.baseline.contains(&Deployment::new("s2", "v1")));
        let (before, after): (Vec<&Bucket>, Vec<&Bucket>) = s
            .buckets
            .iter()
            .partition(|b| b.start_ns + t.bucket_ns <= fault);
        let mean = |bs: &[&Bucket], f: fn(&Bucket) -> Option<f64>| {
            let v: Vec<f64> = bs.iter().filter_map(|b| f(b)).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let err_after = mean(&after, |b| b.suspect.error_rate);
        assert!(err_after > 0.25, "{err_after}");
        assert!(mean(&before, |b| b.suspect.error_rate) < 0.05);
        assert!(mean(&after, |b| b.baseline.error_rate) < 0.05);
        assert!(
            mean(&after, |b| b.suspect.self_p95_ms)
                > mean(&after, |b| b.baseline.self_p95_ms) + 20.0
        );
        assert_eq!(
            t.markers
                .iter()
                .map(|m| m.label.as_str())
                .collect::<Vec<_>>(),
            ["rollout", "rollback"]
        );
        let total: u64 = s.buckets.iter().map(|b| b.suspect.requests).sum();
        let served = spans
            .iter()
            .filter(|x| x.kind == Kind::Server && x.deployment() == s.deployment)
            .count();
        assert_eq!(total, served as u64);
    }

    #[test]
    fn svg_draws_both_series_and_the_markers() {
        let (spans, report, _) = scenario();
        let svg = Timeline::build(&report, &spans, &[]).svg();
        assert_eq!(
            svg.matches("<div class=\"timeline\"").count(),
            report.suspects.len()
        );
        assert_eq!(
            svg.matches("class=\"timeline-chart\"").count(),
            2 * report.suspects.len()
        );
        assert!(
            svg.contains("data-series=\"suspect\"") && svg.contains("data-series=\"baseline\"")
        );
        assert!(svg.contains(">rollout</text>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
