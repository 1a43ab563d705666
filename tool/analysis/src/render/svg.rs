//! The service graph as inline SVG: one column per call depth, nodes coloured by verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{esc, pct};
use crate::graph::ServiceGraph;
use crate::impact::{Report, Verdict};
use crate::model::Deployment;

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

pub(super) fn svg_graph(report: &Report, graph: &ServiceGraph) -> String {
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
