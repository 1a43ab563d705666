//! The terminal rendering: aligned tables, ANSI colours on request.

use std::fmt::Write as _;

use super::{
    affected_cells, baseline_label, health_warning, kind_label, method_line, ms, p_value, pct,
    time_into_line, window_lines,
};
use crate::impact::{Report, Suspect, Verdict};
use crate::stats::Percentiles;

// ANSI SGR sequences.
pub(super) const RED: &str = "\x1b[1;31m";
const ORANGE: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
pub(super) const RESET: &str = "\x1b[0m";

/// A plain table: rows of cells, left-aligned columns, optional colour per row.
struct Table {
    rows: Vec<(Vec<String>, Option<&'static str>)>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![(header.iter().map(|h| (*h).to_owned()).collect(), Some(BOLD))],
        }
    }
    fn row(&mut self, cells: Vec<String>, color: Option<&'static str>) {
        self.rows.push((cells, color));
    }
    fn render(&self, out: &mut String, indent: &str, color: bool) {
        let mut widths: Vec<usize> = Vec::new();
        for (cells, _) in &self.rows {
            for (i, c) in cells.iter().enumerate() {
                let w = c.chars().count();
                match widths.get_mut(i) {
                    Some(x) => *x = (*x).max(w),
                    None => widths.push(w),
                }
            }
        }
        for (cells, c) in &self.rows {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let w = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<w$}  ");
            }
            let line = line.trim_end();
            match c.filter(|_| color) {
                Some(code) => {
                    let _ = writeln!(out, "{indent}{code}{line}{RESET}");
                }
                None => {
                    let _ = writeln!(out, "{indent}{line}");
                }
            }
        }
    }
}

/// Renders the report as terminal text; `color` adds ANSI colours (suspects red,
/// affected orange, healthy dim).
pub fn render_text(report: &Report, color: bool) -> String {
    let mut out = String::new();
    let paint = |code: &str, s: &str| {
        if color {
            format!("{code}{s}{RESET}")
        } else {
            s.to_owned()
        }
    };
    let _ = writeln!(
        out,
        "{} {} spans, {} traces",
        paint(BOLD, "meshwake impact:"),
        report.spans,
        report.traces,
    );
    if let Some(w) = health_warning(report) {
        let _ = writeln!(out, "{}", paint(RED, &w));
    }
    for line in window_lines(report) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{}\n", method_line(report));

    if report.suspects.is_empty() {
        let _ = writeln!(
            out,
            "{}\n",
            paint(
                BOLD,
                "No suspect deployment: no significant regression of own errors, self time or time into a deployment."
            )
        );
    } else {
        let _ = writeln!(
            out,
            "{}",
            paint(BOLD, "SUSPECTS (most likely culprit first)")
        );
        for s in &report.suspects {
            suspect_text(&mut out, s, color);
        }
    }

    if !report.affected.is_empty() {
        let _ = writeln!(out, "{}", paint(BOLD, "AFFECTED, NOT BLAMED"));
        let mut t = Table::new(&[
            "deployment",
            "requests",
            "errors",
            "own",
            "regressed",
            "hurt by",
            "errors explained by",
        ]);
        for a in &report.affected {
            t.row(affected_cells(a), Some(ORANGE));
        }
        t.render(&mut out, "  ", color);
        out.push('\n');
    }

    let _ = writeln!(out, "{}", paint(BOLD, "DEPLOYMENTS (current window)"));
    let mut t = Table::new(&[
        "deployment",
        "verdict",
        "requests",
        "errors",
        "own errors",
        "p50",
        "p95",
        "p99",
        "self p95",
        "compared with",
    ]);
    for d in &report.deployments {
        let (verdict, c) = match d.verdict {
            Verdict::Suspect => ("SUSPECT", Some(RED)),
            Verdict::Affected => ("affected", Some(ORANGE)),
            Verdict::Healthy => ("healthy", Some(DIM)),
        };
        let rate = |k: u64| {
            if d.requests == 0 {
                0.0
            } else {
                k as f64 / d.requests as f64
            }
        };
        t.row(
            vec![
                d.deployment.to_string(),
                verdict.to_owned(),
                d.requests.to_string(),
                pct(rate(d.errors)),
                pct(rate(d.own_errors)),
                ms(d.latency_ms.p50),
                ms(d.latency_ms.p95),
                ms(d.latency_ms.p99),
                ms(d.self_time_ms.p95),
                d.baseline
                    .as_ref()
                    .map_or_else(|| "(nothing comparable)".to_owned(), baseline_label),
            ],
            c,
        );
    }
    t.render(&mut out, "  ", color);
    out
}

fn suspect_text(out: &mut String, s: &Suspect, color: bool) {
    let head = format!(
        "#{} {}  [{}]  score {:.2}",
        s.rank,
        s.deployment,
        kind_label(s.kind),
        s.score
    );
    let _ = writeln!(
        out,
        "{}",
        if color {
            format!("{RED}{head}{RESET}")
        } else {
            head
        }
    );
    let _ = writeln!(out, "   compared with {}", baseline_label(&s.baseline));
    if let Some(e) = &s.errors {
        let _ =
            writeln!(
            out,
            "   own error rate {} -> {} ({:+.1} pp{}), {}, p = {}, corrected q = {}; {} of its errors are its own",
            pct(e.baseline.own_error_rate),
            pct(e.candidate.own_error_rate),
            100.0 * e.own_rate_delta,
            e.own_rate_ratio.map(|r| format!(", x{r:.1}")).unwrap_or_default(),
            e.test,
            p_value(e.p_value),
            p_value(e.q_value),
            pct(e.own_share)
        );
        let _ = writeln!(
            out,
            "     suspect: {} own / {} errors / {} requests; baseline: {} / {} / {}",
            e.candidate.own_errors,
            e.candidate.errors,
            e.candidate.requests,
            e.baseline.own_errors,
            e.baseline.errors,
            e.baseline.requests
        );
    }
    if let Some(l) = &s.latency {
        let _ = writeln!(
            out,
            "   self time p50 {} -> {} (typical request x{:.1}, at least x{:.1} at 95% confidence), p95 {} -> {} (x{:.1}, {:+.1} ms), {}, p = {}, corrected q = {}",
            ms(l.baseline.self_time_ms.p50),
            ms(l.candidate.self_time_ms.p50),
            l.typical_ratio,
            l.typical_ratio_low,
            ms(l.baseline.self_time_ms.p95),
            ms(l.candidate.self_time_ms.p95),
            l.self_p95_ratio,
            l.self_p95_delta_ms,
            l.test,
            p_value(l.p_value),
            p_value(l.q_value)
        );
        let _ = writeln!(
            out,
            "     latency p50/p95/p99: suspect {} ({} req); baseline {} ({} req)",
            trio(&l.candidate.latency_ms),
            l.candidate.requests,
            trio(&l.baseline.latency_ms),
            l.baseline.requests
        );
    }
    if let Some(line) = time_into_line(s) {
        let _ = writeln!(out, "   {line}");
    }
    let br = &s.blast_radius;
    let _ = writeln!(out, "   blast radius: {} bad requests", br.bad_requests);
    if !br.upstream.is_empty() {
        let mut t = Table::new(&["hops", "caller", "affected", "share", "failed", "slowed"]);
        for u in &br.upstream {
            t.row(
                vec![
                    u.hops.to_string(),
                    u.deployment.to_string(),
                    format!("{}/{}", u.affected, u.total),
                    pct(u.share),
                    u.failed.to_string(),
                    u.slowed.to_string(),
                ],
                None,
            );
        }
        t.render(out, "     ", color);
    }
    if !br.edge_routes.is_empty() {
        let mut t = Table::new(&["edge route", "affected", "share", "failed", "slowed"]);
        for r in &br.edge_routes {
            t.row(
                vec![
                    format!("{} {}", r.service, r.route),
                    format!("{}/{}", r.affected, r.total),
                    pct(r.share),
                    r.failed.to_string(),
                    r.slowed.to_string(),
                ],
                None,
            );
        }
        t.render(out, "     ", color);
    }
    out.push('\n');
}

fn trio(p: &Percentiles) -> String {
    format!("{:.1}/{:.1}/{:.1} ms", p.p50, p.p95, p.p99)
}
