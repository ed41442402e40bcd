//! Active Directory preparation, once per forest. A CU can raise the schema version
//! (`ms-Exch-Schema-Version-Pt` `rangeUpper`) and the organisation's `objectVersion`; Setup
//! needs them at the CU's values before it upgrades a server, and an account without Schema
//! and Enterprise Admins rights cannot raise them. The facts read the forest's versions; the
//! catalogue has each CU's (CSS-Exchange's table). When a CU on the path is ahead of the
//! forest, the path gets one step before its first CU: `/PrepareSchema` and `/PrepareAD` with
//! the media of the path's newest CU (AD prepared for a newer CU serves the older ones).
//!
//! The step is planned and approved like any other, and runs detached under the host's
//! `become` account ([`super::super::detached`]), like Setup. Once one server has run it, every
//! other server's facts show the forest prepared and the step is gone from their paths; the
//! forest's key ([`lock_key`], held in the run's exclusive store: this process's, or the queue
//! database's across runners) makes a second server that reached the same step at the same
//! moment wait, re-read its facts and find it done.

use crate::contract::{AdVersions, FactsAnswer};
use crate::exchange::catalogue::{AdLevel, Catalogue};
use crate::exchange::path::{Step, StepKind};

use super::resolve::level_at;

/// Whether the forest has not reached `level`'s versions.
pub(super) fn behind(forest: &AdVersions, level: AdLevel) -> bool {
    forest.schema < level.schema || forest.org < level.org
}

/// `steps` with the AD preparation step before the first CU, when the forest (read by the
/// facts) is behind the path's newest CU; unchanged when the forest is unknown or prepared.
pub(super) fn with_preparation(
    cat: &Catalogue,
    facts: &FactsAnswer,
    steps: Vec<Step>,
) -> Vec<Step> {
    let Some(forest) = &facts.ad else {
        return steps;
    };
    let Some(first) = steps.iter().position(|s| s.kind == StepKind::Cu) else {
        return steps;
    };
    let newest = steps
        .iter()
        .filter(|s| s.kind == StepKind::Cu)
        .filter_map(|s| s.target.and_then(|t| level_at(cat, t)))
        .filter_map(|l| l.ad.map(|ad| (l, ad)))
        .max_by_key(|(l, _)| l.build);
    let Some((level, ad)) = newest.filter(|(_, ad)| behind(forest, *ad)) else {
        return steps;
    };
    let step = Step {
        kind: StepKind::PrepareAd,
        label: format!("AD preparation for {}", level.cu),
        target: Some(level.build),
        kb: level.kb,
        dotnet: None,
        requires_dotnet: Vec::new(),
        requires_build: None,
        licence_switch: Some(cat.licence_switch(level)),
        reason: format!(
            "forest {} is at schema {} / organisation {}, {} needs {} / {}: /PrepareSchema and \
             /PrepareAD run once for the forest, from this server, before its first CU",
            forest.forest, forest.schema, forest.org, level.cu, ad.schema, ad.org
        ),
        prerequisite: "the become account in Schema Admins and Enterprise Admins; AD \
                       replication before the other servers' CUs"
            .to_string(),
    };
    let mut steps = steps;
    steps.insert(first, step);
    steps
}

/// The exclusive key a server of `forest` holds while it decides on and runs its AD
/// preparation.
pub(super) fn lock_key(forest: &str) -> String {
    format!("adprep:{forest}")
}

#[cfg(test)]
mod tests {
    use super::super::super::exchange_script::testing::facts;
    use super::*;
    use crate::exchange::assess::{Facts, assess};
    use crate::exchange::catalogue::catalogue;

    fn path_of(build: &str) -> Vec<Step> {
        let cat = catalogue().unwrap();
        assess(cat, build.parse().unwrap(), &Facts::default())
            .path
            .steps
    }

    #[test]
    fn one_preparation_before_the_first_cu_for_the_newest_cu_and_none_once_prepared() {
        let cat = catalogue().unwrap();
        let steps = path_of("15.2.792.3");
        let cus = steps.iter().filter(|s| s.kind == StepKind::Cu).count();
        assert!(cus >= 1, "{steps:?}");
        let behind_forest = FactsAnswer {
            ad: Some(AdVersions {
                forest: "DC=contoso,DC=com".into(),
                schema: 17002,
                org: 16756,
            }),
            ..facts("15.2.792.3")
        };
        let with = with_preparation(cat, &behind_forest, steps.clone());
        assert_eq!(with.len(), steps.len() + 1);
        let first_cu = with.iter().position(|s| s.kind == StepKind::Cu).unwrap();
        assert_eq!(with[first_cu - 1].kind, StepKind::PrepareAd);
        assert_eq!(with[first_cu - 1].label, "AD preparation for CU15");
        assert!(
            with[first_cu - 1]
                .reason
                .contains("17002 / organisation 16756")
        );
        let prepared = FactsAnswer {
            ad: Some(AdVersions {
                forest: "DC=contoso,DC=com".into(),
                schema: 17003,
                org: 16763,
            }),
            ..facts("15.2.792.3")
        };
        assert_eq!(with_preparation(cat, &prepared, steps.clone()), steps);
        assert_eq!(
            with_preparation(cat, &facts("15.2.792.3"), steps.clone()),
            steps
        );
    }
}
