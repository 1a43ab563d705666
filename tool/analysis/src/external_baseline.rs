//! A baseline from another source than the window under test: yesterday's traffic, a
//! fault-free run, a longer history for low-traffic services (`meshwake impact
//! --baseline-db / --baseline-otlp-json`).

use crate::impact::{analyze, Report};
use crate::model::SpanRecord;
use crate::options::AnalysisOptions;

/// Analyses `current` against `baseline` (spans of any time, even later ones): the baseline
/// spans are moved to end just before the first current span, their trace ids kept apart,
/// and the split set there. The report's window is the current spans' one.
pub fn analyze_with_baseline(
    current: &[SpanRecord],
    baseline: &[SpanRecord],
    opts: &AnalysisOptions,
) -> Report {
    let Some(start) = current.iter().map(|s| s.start_ns).min() else {
        return analyze(current, opts);
    };
    if baseline.is_empty() {
        return analyze(current, opts);
    }
    let base_end = baseline
        .iter()
        .map(|s| s.end_ns.max(s.start_ns))
        .max()
        .unwrap_or(0);
    // Shift so that the latest baseline span ends 1 ns before the window under test.
    let shift = base_end.saturating_add(1).saturating_sub(start);
    let mut merged: Vec<SpanRecord> = baseline
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.start_ns = s.start_ns.saturating_sub(shift);
            s.end_ns = s.end_ns.saturating_sub(shift);
            // The same trace may be in both sources (the same store): keep them apart.
            s.trace_id.insert_str(0, "baseline:");
            s
        })
        .collect();
    merged.extend_from_slice(current);
    let opts = AnalysisOptions {
        baseline_end_ns: Some(start),
        ..opts.clone()
    };
    let mut report = analyze(&merged, &opts);
    report.window.start_ns = start;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Mesh, Version};

    #[test]
    fn a_canary_is_judged_against_an_external_baseline() {
        // Baseline: yesterday, only v1. Current: v1 and a bad v2, run later.
        let mut mesh = Mesh::chain(2);
        let yesterday = mesh.generate(1200, 60_000.0, 1);
        mesh.services[2].versions = vec![
            Version::new("v1", 0.7),
            Version::new("v2", 0.3).erroring(0.3),
        ];
        let mut today = mesh.generate(1200, 60_000.0, 2);
        for s in &mut today {
            s.start_ns += 86_400_000_000_000;
            s.end_ns += 86_400_000_000_000;
        }
        let r = analyze_with_baseline(&today, &yesterday, &AnalysisOptions::default());
        let names: Vec<String> = r
            .suspects
            .iter()
            .map(|s| s.deployment.to_string())
            .collect();
        assert_eq!(names, ["s2@v2"]);
        assert_eq!(
            r.window.start_ns,
            today.iter().map(|s| s.start_ns).min().unwrap()
        );
        assert_eq!(r.window.baseline_end_ns, Some(r.window.start_ns));
    }
}
