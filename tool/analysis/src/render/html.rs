//! The HTML page: inline CSS and SVG, no external assets.

use std::fmt::Write as _;

use super::svg::svg_graph;
use super::{
    affected_cells, baseline_label, esc, health_warning, kind_label, method_line, ms, p_value, pct,
    time_into_line, window_lines,
};
use crate::graph::ServiceGraph;
use crate::impact::{Report, Suspect, Verdict};
use crate::timeline::Timeline;

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
.timeline { display: flex; flex-wrap: wrap; gap: 16px; margin: 8px 0 16px; }
"#;

/// Renders the report as one self-contained HTML page (inline CSS and SVG, no external
/// assets). Every graph node is `<g class="node" data-deployment="service@version"
/// data-verdict="suspect|affected|healthy">`; every suspect's timeline is a
/// `<div class="timeline" data-suspect="service@version">` of two charts.
pub fn render_html(report: &Report, graph: &ServiceGraph, timeline: &Timeline) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>meshwake impact report</title><style>{CSS}</style></head><body>\n<h1>meshwake impact report</h1>\n",
    );
    if let Some(w) = health_warning(report) {
        let _ = writeln!(
            h,
            "<p class=\"verdict-suspect\"><strong>{}</strong></p>",
            esc(&w)
        );
    }
    let mut facts = vec![format!("{} spans, {} traces", report.spans, report.traces)];
    facts.extend(window_lines(report));
    facts.push(method_line(report));
    for line in facts {
        let _ = writeln!(h, "<p class=\"muted\">{}</p>", esc(&line));
    }
    let verdict = match report.suspects.first() {
        Some(s) => format!(
            "Most likely culprit: <strong class=\"verdict-suspect\">{}</strong> ({}).",
            esc(&s.deployment.to_string()),
            kind_label(s.kind)
        ),
        None => "No suspect deployment: no significant regression of own errors, self time or time into a deployment."
            .to_owned(),
    };
    let _ = writeln!(h, "<p>{verdict}</p>");
    let _ = writeln!(
        h,
        "<h2>Service graph</h2>\n<p class=\"legend\">Columns: call depth (every caller left of its callees).<span style=\"background:#d62728\"></span>suspect<span style=\"background:#e6550d\"></span>affected (darker = larger share hurt)<span style=\"background:#c7c7c7\"></span>healthy</p>\n<div class=\"graph-wrap\">{}</div>",
        svg_graph(report, graph)
    );

    if !timeline.suspects.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Timeline</h2>\n<p class=\"legend\">Each suspect (red) against its baseline (grey), per {:.0} s; dashed lines mark the rollout and later events.</p>\n{}",
            timeline.bucket_ns as f64 / 1e9,
            timeline.svg()
        );
    }
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
            "<table><tr><th>errors</th><th>requests</th><th>errors</th><th>own errors</th><th>error rate</th><th>own error rate</th></tr>\n<tr><td>suspect</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n<tr><td>baseline</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr></table>\n<p>Own error rate {:+.1} percentage points{}; {}: p = {}, corrected q = {}. {} of its errors are its own.</p>",
            e.candidate.requests, e.candidate.errors, e.candidate.own_errors, pct(e.candidate.error_rate), pct(e.candidate.own_error_rate),
            e.baseline.requests, e.baseline.errors, e.baseline.own_errors, pct(e.baseline.error_rate), pct(e.baseline.own_error_rate),
            100.0 * e.own_rate_delta,
            e.own_rate_ratio.map(|r| format!(" (x{r:.1})")).unwrap_or_default(),
            esc(&e.test),
            p_value(e.p_value),
            p_value(e.q_value),
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
            "<table><tr><th>latency</th><th>requests</th><th>p50</th><th>p95</th><th>p99</th><th>self p50</th><th>self p95</th></tr>\n{}\n{}</table>\n<p>Self-time p50 x{:.1}, p95 x{:.1} ({:+.1} ms); {}: p = {}, corrected q = {}.</p>",
            row("suspect", &l.candidate),
            row("baseline", &l.baseline),
            l.self_p50_ratio,
            l.self_p95_ratio,
            l.self_p95_delta_ms,
            esc(&l.test),
            p_value(l.p_value),
            p_value(l.q_value)
        );
    }
    if let Some(line) = time_into_line(s) {
        let _ = writeln!(h, "<p>{}.</p>", esc(&line));
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
