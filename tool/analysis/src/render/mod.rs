//! Rendering a [`Report`]: a terminal table ([`render_text`], `text.rs`) and a self-contained
//! HTML page ([`render_html`], `html.rs`) with the service graph as inline SVG (`svg.rs`).
//! This file holds what both outputs format the same way.

use crate::impact::{Affected, Baseline, SuspectKind};
use crate::model::Deployment;

mod html;
mod svg;
mod text;

#[cfg(test)]
mod tests;

pub use html::render_html;
pub use text::render_text;

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

/// Escapes text for HTML and SVG markup.
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
