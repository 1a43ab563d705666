//! Deployments hurt but not blamed: in a suspect's blast radius, or whose total (not own)
//! errors or latency regressed, with where their explained errors came from.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::facts::Facts;
use super::report::{Affected, DeploymentSummary, Origin, Suspect};
use crate::model::Deployment;

pub(super) fn affected(
    facts: &Facts<'_>,
    suspects: &[Suspect],
    total_regressions: &BTreeMap<usize, (bool, bool)>,
    summaries: &[DeploymentSummary],
) -> Vec<Affected> {
    let blamed: HashSet<&Deployment> = suspects.iter().map(|s| &s.deployment).collect();
    let mut out = Vec::new();
    for sum in summaries {
        if blamed.contains(&sum.deployment) {
            continue;
        }
        let Some(dep) = facts.deps.iter().position(|d| *d == sum.deployment) else {
            continue;
        };
        let (error_regressed, latency_regressed) = total_regressions
            .get(&dep)
            .copied()
            .unwrap_or((false, false));
        let mut blamed_on = Vec::new();
        let mut max_share: f64 = 0.0;
        for s in suspects {
            if let Some(u) = s
                .blast_radius
                .upstream
                .iter()
                .find(|u| u.deployment == sum.deployment)
            {
                blamed_on.push(s.deployment.clone());
                max_share = max_share.max(u.share);
            }
        }
        if blamed_on.is_empty() && !error_regressed && !latency_regressed {
            continue;
        }
        let mut origins: BTreeMap<Deployment, u64> = BTreeMap::new();
        for r in facts
            .current_of(dep)
            .into_iter()
            .filter(|r| r.failed && !r.own_error)
        {
            let mut set = BTreeSet::new();
            facts.origins(r.span, 0, &mut set);
            for d in set {
                *origins.entry(d).or_default() += 1;
            }
        }
        let mut explained_by: Vec<Origin> = origins
            .into_iter()
            .map(|(deployment, errors)| Origin { deployment, errors })
            .collect();
        explained_by.sort_by(|a, b| {
            b.errors
                .cmp(&a.errors)
                .then_with(|| a.deployment.cmp(&b.deployment))
        });
        out.push(Affected {
            deployment: sum.deployment.clone(),
            requests: sum.requests,
            errors: sum.errors,
            own_errors: sum.own_errors,
            error_regressed,
            latency_regressed,
            blamed_on,
            max_share,
            explained_by,
        });
    }
    out.sort_by(|a, b| {
        b.max_share
            .total_cmp(&a.max_share)
            .then_with(|| a.deployment.cmp(&b.deployment))
    });
    out
}
