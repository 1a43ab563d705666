//! Rendering a [`Report`]: a terminal table ([`render_text`]) and a self-contained HTML
//! page with the service graph as inline SVG ([`render_html`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::graph::ServiceGraph;
use crate::impact::{Affected, Baseline, Report, Suspect, SuspectKind, Verdict};
use crate::model::Deployment;
use crate::stats::Percentiles;

// ANSI SGR sequences.
const RED: &str = "\x1b[1;31m";
const ORANGE: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn ms(x: f64) -> String {
    format!("{x:.1} ms")
}

fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

fn kind_label(k: SuspectKind) -> &'static str {
    match k {
        SuspectKind::Errors => "errors",
        SuspectKind::Latency => "latency",
        SuspectKind::ErrorsAndLatency => "errors+latency",
    }
}

fn baseline_label(b: &Baseline) -> String {
    let list = |d: &[Deployment]| {
        d.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match b {
        Baseline::OtherVersions { deployments } => {
            format!("other versions ({})", list(deployments))
        }
        Baseline::BaselineWindow { deployments } => {
            format!("baseline window ({})", list(deployments))
        }
    }
}

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
    let secs = report.window.end_ns.saturating_sub(report.window.start_ns) as f64 / 1e9;
    let _ = writeln!(
        out,
        "{} {} spans, {} traces, {secs:.0} s of traffic{}",
        paint(BOLD, "meshwake impact:"),
        report.spans,
        report.traces,
        report
            .window
            .baseline_end_ns
            .map(|b| format!(", baseline before {b} ns"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "tests: own errors: {}; self time: {}; p < {}, >= {} requests per side\n",
        report.error_test, report.latency_test, report.options.alpha, report.options.min_samples
    );

    if report.suspects.is_empty() {
        let _ = writeln!(
            out,
            "{}\n",
            paint(
                BOLD,
                "No suspect deployment: no significant regression of own errors or self time."
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
            "   own error rate {} -> {} ({:+.1} pp{}), {}, p = {}; {} of its errors are its own",
            pct(e.baseline.own_error_rate),
            pct(e.candidate.own_error_rate),
            100.0 * e.own_rate_delta,
            e.own_rate_ratio.map(|r| format!(", x{r:.1}")).unwrap_or_default(),
            e.test,
            p_value(e.p_value),
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
            "   self time p95 {} -> {} (x{:.1}, {:+.1} ms), {}, p = {}",
            ms(l.baseline.self_time_ms.p95),
            ms(l.candidate.self_time_ms.p95),
            l.self_p95_ratio,
            l.self_p95_delta_ms,
            l.test,
            p_value(l.p_value)
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

fn affected_cells(a: &Affected) -> Vec<String> {
    let regressed = match (a.error_regressed, a.latency_regressed) {
        (true, true) => "errors+latency",
        (true, false) => "errors",
        (false, true) => "latency",
        (false, false) => "-",
    };
    let list = |v: &[Deployment]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let explained = if a.explained_by.is_empty() {
        "-".to_owned()
    } else {
        a.explained_by
            .iter()
            .map(|o| format!("{} ({})", o.deployment, o.errors))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        a.deployment.to_string(),
        a.requests.to_string(),
        a.errors.to_string(),
        a.own_errors.to_string(),
        regressed.to_owned(),
        if a.blamed_on.is_empty() {
            "-".to_owned()
        } else {
            format!("{} ({} max)", list(&a.blamed_on), pct(a.max_share))
        },
        explained,
    ]
}

// ---- HTML ----

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

// Layout of the graph, in SVG user units.
const NODE_W: f64 = 200.0;
const NODE_H: f64 = 54.0;
const COL_GAP: f64 = 110.0;
const ROW_GAP: f64 = 34.0;
const MARGIN: f64 = 30.0;

/// Fill colour of a node: suspects red, affected orange (darker = larger share hurt), healthy grey.
fn node_fill(verdict: Verdict, share: f64) -> String {
    match verdict {
        Verdict::Suspect => "#d62728".to_owned(),
        Verdict::Affected => {
            // Interpolate #fdd0a2 (light) -> #e6550d (dark) by the share of requests hurt.
            let t = share.clamp(0.0, 1.0);
            let mix =
                |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
            format!(
                "#{:02x}{:02x}{:02x}",
                mix(0xfd, 0xe6),
                mix(0xd0, 0x55),
                mix(0xa2, 0x0d)
            )
        }
        Verdict::Healthy => "#c7c7c7".to_owned(),
    }
}

fn svg_graph(report: &Report, graph: &ServiceGraph) -> String {
    let verdicts: BTreeMap<&Deployment, Verdict> = report
        .deployments
        .iter()
        .map(|d| (&d.deployment, d.verdict))
        .collect();
    let mut shares: BTreeMap<&Deployment, f64> = BTreeMap::new();
    for a in &report.affected {
        shares.insert(&a.deployment, a.max_share);
    }
    for s in &report.suspects {
        shares.insert(&s.deployment, 1.0);
    }
    // Columns by depth from the edge; rows in node order.
    let mut pos: BTreeMap<&Deployment, (f64, f64)> = BTreeMap::new();
    let mut rows_in_col: BTreeMap<u32, usize> = BTreeMap::new();
    for n in &graph.nodes {
        let row = rows_in_col.entry(n.depth).or_insert(0);
        let x = MARGIN + f64::from(n.depth) * (NODE_W + COL_GAP);
        let y = MARGIN + *row as f64 * (NODE_H + ROW_GAP);
        *row += 1;
        pos.insert(&n.deployment, (x, y));
    }
    let cols = rows_in_col.keys().max().map_or(1, |m| m + 1);
    let rows = rows_in_col.values().max().copied().unwrap_or(1);
    let width =
        2.0 * MARGIN + f64::from(cols) * NODE_W + f64::from(cols.saturating_sub(1)) * COL_GAP;
    let height = 2.0 * MARGIN + rows as f64 * NODE_H + rows.saturating_sub(1) as f64 * ROW_GAP;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="service graph">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>"##
    );
    for e in &graph.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(&e.from), pos.get(&e.to)) else {
            continue;
        };
        let (sx, sy) = (x1 + NODE_W, y1 + NODE_H / 2.0);
        let (tx, ty) = (x2, y2 + NODE_H / 2.0);
        // Forward edges are straight; back or same-column edges loop over the top.
        let d = if tx > sx {
            format!("M{sx:.1},{sy:.1} L{tx:.1},{ty:.1}")
        } else {
            let top = y1.min(y2) - ROW_GAP / 1.5;
            format!(
                "M{:.1},{:.1} C{:.1},{top:.1} {:.1},{top:.1} {:.1},{:.1}",
                x1 + NODE_W / 2.0,
                y1,
                x1 + NODE_W / 2.0,
                x2 + NODE_W / 2.0,
                x2 + NODE_W / 2.0,
                y2
            )
        };
        let err_share = if e.calls == 0 {
            0.0
        } else {
            e.errors as f64 / e.calls as f64
        };
        let stroke = if err_share >= 0.05 { "#d62728" } else { "#888" };
        let label = if e.errors > 0 {
            format!("{} calls, {} err", e.calls, e.errors)
        } else {
            format!("{} calls", e.calls)
        };
        let (lx, ly) = ((sx + tx) / 2.0, (sy + ty) / 2.0 - 6.0);
        let _ = writeln!(
            svg,
            r#"<g class="edge" data-from="{}" data-to="{}"><path d="{d}" fill="none" stroke="{stroke}" stroke-width="{:.1}" marker-end="url(#arrow)"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" class="edge-label">{}</text></g>"#,
            esc(&e.from.to_string()),
            esc(&e.to.to_string()),
            1.0 + (e.calls as f64).log10().max(0.0),
            esc(&label)
        );
    }
    for n in &graph.nodes {
        let Some(&(x, y)) = pos.get(&n.deployment) else {
            continue;
        };
        let verdict = verdicts
            .get(&n.deployment)
            .copied()
            .unwrap_or(Verdict::Healthy);
        let fill = node_fill(verdict, shares.get(&n.deployment).copied().unwrap_or(0.0));
        let text = if verdict == Verdict::Suspect {
            "#fff"
        } else {
            "#222"
        };
        let name = esc(&n.deployment.to_string());
        let detail = if n.requests == 0 {
            "no spans of its own".to_owned()
        } else {
            format!(
                "{} req, {} err",
                n.requests,
                pct(n.errors as f64 / n.requests as f64)
            )
        };
        let verdict_name = match verdict {
            Verdict::Suspect => "suspect",
            Verdict::Affected => "affected",
            Verdict::Healthy => "healthy",
        };
        let _ = writeln!(
            svg,
            r##"<g class="node" data-deployment="{name}" data-verdict="{verdict_name}" transform="translate({x:.1},{y:.1})"><title>{name}: {verdict_name}, {detail}</title><rect width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" stroke="#555"/><text x="10" y="22" fill="{text}" class="name">{name}</text><text x="10" y="42" fill="{text}" class="detail">{}</text></g>"##,
            esc(&detail)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

const CSS: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; } h3 { font-size: 16px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.suspect-card { border-left: 5px solid #d62728; padding: 4px 16px; margin: 12px 0; background: #fff7f7; }
.verdict-suspect { color: #d62728; font-weight: 600; } .verdict-affected { color: #e6550d; } .verdict-healthy { color: #888; }
.graph-wrap { overflow-x: auto; border: 1px solid #eee; padding: 8px; }
svg.graph text { font: 12px system-ui, sans-serif; } svg.graph text.name { font-weight: 600; font-size: 13px; }
svg.graph text.edge-label { fill: #444; font-size: 11px; }
.legend span { display: inline-block; width: 12px; height: 12px; border-radius: 3px; margin: 0 4px 0 12px; vertical-align: middle; }
.muted { color: #777; }
"#;

/// Renders the report as one self-contained HTML page (inline CSS and SVG, no external
/// assets). Every graph node is `<g class="node" data-deployment="service@version"
/// data-verdict="suspect|affected|healthy">`.
pub fn render_html(report: &Report, graph: &ServiceGraph) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meshwake impact report</title><style>{CSS}</style></head><body>\n<h1>meshwake impact report</h1>\n<p class=\"muted\">{} spans, {} traces. Own errors: {}; self time: {}; p &lt; {}, at least {} requests per side.</p>\n",
        report.spans,
        report.traces,
        esc(&report.error_test),
        esc(&report.latency_test),
        report.options.alpha,
        report.options.min_samples
    );
    let verdict = match report.suspects.first() {
        Some(s) => format!(
            "Most likely culprit: <strong class=\"verdict-suspect\">{}</strong> ({}).",
            esc(&s.deployment.to_string()),
            kind_label(s.kind)
        ),
        None => "No suspect deployment: no significant regression of own errors or self time."
            .to_owned(),
    };
    let _ = writeln!(h, "<p>{verdict}</p>");
    let _ = writeln!(
        h,
        "<h2>Service graph</h2>\n<p class=\"legend\">Columns: call depth (every caller left of its callees).<span style=\"background:#d62728\"></span>suspect<span style=\"background:#e6550d\"></span>affected (darker = larger share hurt)<span style=\"background:#c7c7c7\"></span>healthy</p>\n<div class=\"graph-wrap\">{}</div>",
        svg_graph(report, graph)
    );

    if !report.suspects.is_empty() {
        h.push_str("<h2>Suspects</h2>\n");
    }
    for s in &report.suspects {
        suspect_html(&mut h, s);
    }
    if !report.affected.is_empty() {
        h.push_str("<h2>Affected, not blamed</h2>\n<table><tr><th>deployment</th><th>requests</th><th>errors</th><th>own errors</th><th>regressed</th><th>hurt by</th><th>errors explained by</th></tr>\n");
        for a in &report.affected {
            let cells = affected_cells(a);
            h.push_str("<tr>");
            for (i, c) in cells.iter().enumerate() {
                let class = if (1..=3).contains(&i) {
                    " class=\"num\""
                } else {
                    ""
                };
                let _ = write!(h, "<td{class}>{}</td>", esc(c));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Deployments (current window)</h2>\n<table><tr><th>deployment</th><th>verdict</th><th>requests</th><th>errors</th><th>own errors</th><th>p50</th><th>p95</th><th>p99</th><th>self p95</th><th>compared with</th></tr>\n");
    for d in &report.deployments {
        let (label, class) = match d.verdict {
            Verdict::Suspect => ("suspect", "verdict-suspect"),
            Verdict::Affected => ("affected", "verdict-affected"),
            Verdict::Healthy => ("healthy", "verdict-healthy"),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"{class}\">{label}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&d.deployment.to_string()),
            d.requests,
            d.errors,
            d.own_errors,
            ms(d.latency_ms.p50),
            ms(d.latency_ms.p95),
            ms(d.latency_ms.p99),
            ms(d.self_time_ms.p95),
            esc(&d.baseline.as_ref().map_or_else(|| "(nothing comparable)".to_owned(), baseline_label))
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

fn suspect_html(h: &mut String, s: &Suspect) {
    let _ = writeln!(
        h,
        "<div class=\"suspect-card\"><h3>#{} {} <span class=\"muted\">[{}] score {:.2}</span></h3>\n<p>Compared with {}.</p>",
        s.rank,
        esc(&s.deployment.to_string()),
        kind_label(s.kind),
        s.score,
        esc(&baseline_label(&s.baseline))
    );
    if let Some(e) = &s.errors {
        let _ = writeln!(
            h,
            "<table><tr><th>errors</th><th>requests</th><th>errors</th><th>own errors</th><th>error rate</th><th>own error rate</th></tr>\n<tr><td>suspect</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n<tr><td>baseline</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></table>\n<p>Own error rate {:+.1} percentage points{}; {}: p = {}. {} of its errors are its own.</p>",
            e.candidate.requests, e.candidate.errors, e.candidate.own_errors, pct(e.candidate.error_rate), pct(e.candidate.own_error_rate),
            e.baseline.requests, e.baseline.errors, e.baseline.own_errors, pct(e.baseline.error_rate), pct(e.baseline.own_error_rate),
            100.0 * e.own_rate_delta,
            e.own_rate_ratio.map(|r| format!(" (x{r:.1})")).unwrap_or_default(),
            esc(&e.test),
            p_value(e.p_value),
            pct(e.own_share)
        );
    }
    if let Some(l) = &s.latency {
        let row = |name: &str, side: &crate::impact::LatencySide| {
            format!(
                "<tr><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                side.requests, ms(side.latency_ms.p50), ms(side.latency_ms.p95), ms(side.latency_ms.p99), ms(side.self_time_ms.p50), ms(side.self_time_ms.p95)
            )
        };
        let _ = writeln!(
            h,
            "<table><tr><th>latency</th><th>requests</th><th>p50</th><th>p95</th><th>p99</th><th>self p50</th><th>self p95</th></tr>\n{}\n{}</table>\n<p>Self-time p95 x{:.1} ({:+.1} ms); {}: p = {}.</p>",
            row("suspect", &l.candidate),
            row("baseline", &l.baseline),
            l.self_p95_ratio,
            l.self_p95_delta_ms,
            esc(&l.test),
            p_value(l.p_value)
        );
    }
    let br = &s.blast_radius;
    let _ = writeln!(h, "<p>Blast radius: {} bad requests.</p>", br.bad_requests);
    if !br.upstream.is_empty() {
        h.push_str("<table><tr><th>hops</th><th>caller</th><th>affected</th><th>share</th><th>failed</th><th>slowed</th></tr>\n");
        for u in &br.upstream {
            let _ = writeln!(
                h,
                "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                u.hops,
                esc(&u.deployment.to_string()),
                u.affected,
                u.total,
                pct(u.share),
                u.failed,
                u.slowed
            );
        }
        h.push_str("</table>\n");
    }
    if !br.edge_routes.is_empty() {
        h.push_str("<table><tr><th>edge route</th><th>affected</th><th>share</th><th>failed</th><th>slowed</th></tr>\n");
        for r in &br.edge_routes {
            let _ = writeln!(
                h,
                "<tr><td>{} {}</td><td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&r.service),
                esc(&r.route),
                r.affected,
                r.total,
                pct(r.share),
                r.failed,
                r.slowed
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impact::analyze;
    use crate::options::AnalysisOptions;
    use crate::synth::{Mesh, Version};

    fn scenario() -> (Vec<crate::model::SpanRecord>, Report) {
        let mut mesh = Mesh::chain(3);
        mesh.services[3].versions = vec![
            Version::new("v1", 0.8),
            Version::new("v2", 0.2).erroring(0.3),
        ];
        // Make one service a canary pair so that the graph has more nodes than services.
        mesh.services[1].versions = vec![Version::new("v1", 0.5), Version::new("v2", 0.5)];
        let spans = mesh.generate(1000, 60_000.0, 9);
        let report = analyze(&spans, &AnalysisOptions::default());
        (spans, report)
    }

    #[test]
    fn html_has_one_node_per_deployment() {
        let (spans, report) = scenario();
        let graph = ServiceGraph::from_spans(&spans);
        let html = render_html(&report, &graph);
        let deployments = ["s0@v1", "s1@v1", "s1@v2", "s2@v1", "s3@v1", "s3@v2"];
        assert_eq!(graph.nodes.len(), deployments.len());
        assert_eq!(html.matches("class=\"node\"").count(), deployments.len());
        for d in deployments {
            assert_eq!(
                html.matches(&format!("data-deployment=\"{d}\"")).count(),
                1,
                "{d}"
            );
        }
        assert!(html.contains("data-deployment=\"s3@v2\" data-verdict=\"suspect\""));
        assert!(html.contains("data-deployment=\"s3@v1\" data-verdict=\"healthy\""));
        // Self-contained: no external assets.
        assert!(!html.contains("src=") && !html.contains("href=\"http"));
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        // Edges carry call volumes; depth lays s0 left of s1.
        assert!(html.contains("data-from=\"s2@v1\" data-to=\"s3@v2\""));
        let depth = |d: &str| {
            graph
                .nodes
                .iter()
                .find(|n| n.deployment.to_string() == d)
                .unwrap()
                .depth
        };
        assert_eq!((depth("s0@v1"), depth("s1@v2"), depth("s3@v2")), (0, 1, 3));
        let e = graph
            .edges
            .iter()
            .find(|e| e.from.to_string() == "s0@v1" && e.to.to_string() == "s1@v1")
            .unwrap();
        assert!(e.calls > 400 && e.calls < 600, "{e:?}");
    }

    #[test]
    fn html_escapes_names() {
        let (mut spans, _) = scenario();
        for s in &mut spans {
            if s.service == "s0" {
                s.service = "<b>\"x\"&".into();
            }
        }
        let report = analyze(&spans, &AnalysisOptions::default());
        let html = render_html(&report, &ServiceGraph::from_spans(&spans));
        assert!(!html.contains("<b>\"x\""));
        assert!(html.contains("&lt;b&gt;&quot;x&quot;&amp;@v1"));
    }

    #[test]
    fn text_names_the_culprit_and_colours_only_when_asked() {
        let (_, report) = scenario();
        let plain = render_text(&report, false);
        assert!(plain.contains("#1 s3@v2  [errors]"), "{plain}");
        assert!(plain.contains("Fisher's exact test"));
        assert!(plain.contains("s0 /checkout"));
        assert!(plain.contains("AFFECTED, NOT BLAMED"));
        assert!(!plain.contains('\x1b'));
        let colored = render_text(&report, true);
        assert!(colored.contains(RED) && colored.contains(RESET));
        let empty = render_text(&analyze(&[], &AnalysisOptions::default()), true);
        assert!(empty.contains("No suspect deployment"));
    }
}
