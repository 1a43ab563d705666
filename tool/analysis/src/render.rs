//! Rendering a [`Report`]: terminal text and a self-contained HTML page.
use crate::graph::ServiceGraph;
use crate::impact::Report;

/// Renders the report as a terminal table.
pub fn render_text(_report: &Report, _color: bool) -> String {
    String::new()
}

/// Renders the report as HTML.
pub fn render_html(_report: &Report, _graph: &ServiceGraph) -> String {
    String::new()
}
