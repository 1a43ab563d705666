//! Rendering tests on a synthetic mesh with a bad canary.

use super::text::{RED, RESET};
use super::{render_html, render_text};
use crate::graph::ServiceGraph;
use crate::impact::{analyze, Report};
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
    let html = render_html(
        &report,
        &graph,
        &crate::Timeline::build(&report, &spans, &[]),
    );
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
    let html = render_html(
        &report,
        &ServiceGraph::from_spans(&spans),
        &crate::Timeline::build(&report, &spans, &[]),
    );
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
