//! Head sampling: ParentBased { root: TraceIdRatioBased }, deterministic on the trace id
//! exactly as OpenTelemetry's `TraceIdRatioBased`, so every hop of a trace agrees.
//!
//! <https://opentelemetry.io/docs/specs/otel/trace/sdk/#traceidratiobased>

use serde::{Deserialize, Serialize};

use crate::b3::B3Sampling;
use crate::propagator::Extracted;
use crate::types::{SpanContext, SpanId, TraceFlags, TraceId};

/// A sampler: the parent's decision when there is one, else a ratio on the trace id.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sampler {
    /// Keep the parent's sampled flag; roots sampled by [`trace_id_ratio`].
    ParentBasedRatio {
        /// Fraction of root traces sampled, `0.0..=1.0`.
        ratio: f64,
    },
    /// Ignore parents; always [`trace_id_ratio`].
    TraceIdRatio {
        /// Fraction of traces sampled, `0.0..=1.0`.
        ratio: f64,
    },
}

impl Default for Sampler {
    /// Parent-based, sample every root.
    fn default() -> Self {
        Self::ParentBasedRatio { ratio: 1.0 }
    }
}

/// OpenTelemetry `TraceIdRatioBased`: `ratio >= 1` always, `<= 0` (or NaN) never, else
/// sampled iff `(low 64 bits of the trace id, big-endian) >> 1 < ratio * 2^63`.
pub fn trace_id_ratio(ratio: f64, trace_id: &TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    // `as` saturates; the product is < 2^63 here.
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    (trace_id.low_u64() >> 1) < bound
}

impl Sampler {
    /// Whether to record the span. `forced` (B3 debug, an operator override) always samples.
    pub fn should_sample(
        &self,
        parent: Option<&SpanContext>,
        trace_id: &TraceId,
        forced: bool,
    ) -> bool {
        if forced {
            return true;
        }
        match (self, parent) {
            (Self::ParentBasedRatio { .. }, Some(p)) => p.is_sampled(),
            (Self::ParentBasedRatio { ratio } | Self::TraceIdRatio { ratio }, _) => {
                trace_id_ratio(*ratio, trace_id)
            }
        }
    }

    /// The decision for a request, from what [`crate::extract`] found: B3 debug forces,
    /// a deferred B3 context counts as no parent, a B3 sampling-only header
    /// (`b3: 0`/`1`) decides when there is no context.
    pub fn decide(&self, extracted: &Extracted, trace_id: &TraceId) -> bool {
        match &extracted.context {
            Some(c) if c.debug => true,
            Some(c) if !c.deferred => self.should_sample(Some(&c.span_context), trace_id, false),
            _ => match extracted.sampling_hint {
                Some(B3Sampling::Debug | B3Sampling::Accept) => true,
                Some(B3Sampling::Deny) => {
                    matches!(self, Self::TraceIdRatio { .. })
                        && self.should_sample(None, trace_id, false)
                }
                None => self.should_sample(None, trace_id, false),
            },
        }
    }

    /// The decision for one proxy hop, whose parent is one of: the extracted context, a
    /// context recovered for an app that dropped its trace headers (`recovered`, its flags),
    /// or none. `forced` (an operator's force header) always samples.
    ///
    /// Without any parent, a B3 sampling-only header (`b3: 0`/`1`/`d`) decides as the
    /// caller asked, for both samplers: the caller's decision is all this hop knows.
    pub fn decide_hop(
        &self,
        extracted: &Extracted,
        recovered: Option<TraceFlags>,
        trace_id: &TraceId,
        forced: bool,
    ) -> bool {
        if forced {
            return true;
        }
        if extracted.context.is_some() {
            return self.decide(extracted, trace_id);
        }
        if let Some(flags) = recovered {
            // Only the flags matter to the parent-based decision; the span id is a stand-in.
            let parent = SpanContext::new(*trace_id, SpanId([1; 8]), flags);
            return self.should_sample(Some(&parent), trace_id, false);
        }
        match extracted.sampling_hint {
            Some(hint) => hint.is_sampled(),
            None => self.should_sample(None, trace_id, false),
        }
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples on purpose
mod tests {
    use super::*;
    use crate::propagator::{extract, PropagationConfig};

    fn tid(low: u64) -> TraceId {
        let mut t = TraceId::from_u64(low);
        t.0[0] = 0xab; // high bits must not matter
        t
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn ratio_table() {
        #[rustfmt::skip]
        let cases: &[(f64, u64, bool)] = &[
            // ratio, low 64 bits, sampled
            (1.0,  u64::MAX,             true),
            (2.0,  u64::MAX,             true),
            (0.0,  0,                    false),
            (-1.0, 0,                    false),
            (f64::NAN, 0,                false),
            (0.5,  0,                    true),
            // bound = 2^62: rnd = low >> 1
            (0.5,  (1 << 63) - 2,        true),  // rnd = 2^62 - 1
            (0.5,  1 << 63,              false), // rnd = 2^62
            (0.25, (1 << 62) - 1,        true),  // rnd = 2^61 - 1
            (0.25, 1 << 62,              false), // rnd = 2^61
            (1e-9, 0,                    true),
            (1e-9, 1 << 40,              false),
        ];
        for (ratio, low, expected) in cases {
            assert_eq!(
                trace_id_ratio(*ratio, &tid(*low)),
                *expected,
                "{ratio} {low:#x}"
            );
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn ratio_is_roughly_the_ratio() {
        // low 64 bits spread evenly (bucket midpoints): the sampled share is the ratio.
        let n = 10_000u64;
        let step = u64::MAX / n;
        let sampled = (0..n)
            .filter(|i| trace_id_ratio(0.3, &tid(i * step + step / 2)))
            .count();
        assert_eq!(sampled, 3000);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn parent_based_table() {
        let parent = |sampled: bool| {
            SpanContext::new(
                tid(1),
                SpanId([1; 8]),
                TraceFlags::default().with_sampled(sampled),
            )
        };
        let never = Sampler::ParentBasedRatio { ratio: 0.0 };
        let always = Sampler::ParentBasedRatio { ratio: 1.0 };
        let flat_never = Sampler::TraceIdRatio { ratio: 0.0 };
        #[rustfmt::skip]
        let cases: Vec<(Sampler, Option<SpanContext>, bool, bool)> = vec![
            // sampler, parent, forced -> sampled
            (never,      Some(parent(true)),  false, true),
            (always,     Some(parent(false)), false, false),
            (never,      None,                false, false),
            (always,     None,                false, true),
            (never,      None,                true,  true),
            (always,     Some(parent(false)), true,  true),
            (flat_never, Some(parent(true)),  false, false),
            (Sampler::default(), None,        false, true),
        ];
        for (s, p, forced, expected) in cases {
            assert_eq!(
                s.should_sample(p.as_ref(), &tid(1), forced),
                expected,
                "{s:?} {p:?} {forced}"
            );
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decide_from_headers() {
        let cfg = PropagationConfig::default();
        let never = Sampler::ParentBasedRatio { ratio: 0.0 };
        let always = Sampler::ParentBasedRatio { ratio: 1.0 };
        let t = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1";
        #[rustfmt::skip]
        let cases: Vec<(Sampler, Vec<(&str, String)>, bool)> = vec![
            (never,  vec![("b3", format!("{t}-d"))], true),
            (never,  vec![("b3", format!("{t}-1"))], true),
            (always, vec![("b3", format!("{t}-0"))], false),
            (always, vec![("b3", t.to_string())], true),
            (never,  vec![("b3", t.to_string())], false),
            (never,  vec![("b3", "1".into())], true),
            (always, vec![("b3", "0".into())], false),
            (always, vec![], true),
            (never,  vec![], false),
        ];
        for (s, h, expected) in cases {
            let ex = extract(&cfg, &h);
            assert_eq!(s.decide(&ex, &tid(5)), expected, "{s:?} {h:?}");
        }
        let s: Sampler =
            serde_json::from_str(r#"{"type":"parent_based_ratio","ratio":0.25}"#).unwrap();
        assert_eq!(s, Sampler::ParentBasedRatio { ratio: 0.25 });
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decide_hop_table() {
        let cfg = PropagationConfig::default();
        let never = Sampler::ParentBasedRatio { ratio: 0.0 };
        let always = Sampler::ParentBasedRatio { ratio: 1.0 };
        let flat_always = Sampler::TraceIdRatio { ratio: 1.0 };
        let sampled = Some(TraceFlags::default().with_sampled(true));
        let unsampled = Some(TraceFlags::default());
        let tp = "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01";
        #[rustfmt::skip]
        let cases: Vec<(Sampler, Vec<(&str, &str)>, Option<TraceFlags>, bool, bool)> = vec![
            // sampler, headers, recovered flags, forced -> sampled
            (never,       vec![],                    None,      true,  true),
            (never,       vec![("traceparent", tp)], None,      false, true),
            (never,       vec![],                    sampled,   false, true),
            (always,      vec![],                    unsampled, false, false),
            (flat_always, vec![],                    unsampled, false, true),
            (never,       vec![("b3", "1")],         None,      false, true),
            (flat_always, vec![("b3", "0")],         None,      false, false),
            (always,      vec![],                    None,      false, true),
            (never,       vec![],                    None,      false, false),
        ];
        for (s, h, recovered, forced, expected) in cases {
            let ex = extract(&cfg, &h);
            assert_eq!(
                s.decide_hop(&ex, recovered, &tid(5), forced),
                expected,
                "{s:?} {h:?} {recovered:?} {forced}"
            );
        }
    }
}
