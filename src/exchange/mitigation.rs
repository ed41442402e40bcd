//! Interim mitigations as data with a lifecycle: for each mitigation the catalogue declares
//! (the EOMT rules for CVE-2021-26855, the OWA outbound rule for CVE-2026-42897, their EEMS ids),
//! whether it is needed on this server, in place (by the Emergency Mitigation service or by its
//! URL Rewrite rules), and whether it may come off. Also whether the Emergency Mitigation service
//! exists on the server's CU and can still receive new mitigations.

use std::collections::BTreeSet;

use jiff::civil::Date;
use serde::Serialize;

use super::catalogue::{Catalogue, FamilyEntry, Level, Mitigation, Removal};
use super::ids::Cve;

/// What the host's facts say about mitigations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MitigationFacts {
    /// Names of the IIS URL Rewrite rules present (inbound on the Default Web Site, outbound on
    /// its /owa application).
    pub rules: BTreeSet<String>,
    /// The Emergency Mitigation service, when the facts read it.
    pub eems: Option<EemsFacts>,
}

/// The Emergency Mitigation service's state on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EemsFacts {
    /// The MSExchangeMitigation service exists.
    pub present: bool,
    pub running: bool,
    /// `Get-OrganizationConfig` MitigationsEnabled and `Get-ExchangeServer` MitigationsEnabled.
    pub enabled: bool,
    /// `MitigationsApplied` of `Get-ExchangeServer`: EEMS ids.
    pub applied: Vec<String>,
    /// `MitigationsBlocked`: EEMS ids.
    pub blocked: Vec<String>,
}

/// One mitigation's state on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MitigationState {
    pub id: String,
    pub eems_id: Option<String>,
    pub title: String,
    /// The CVEs it covers that are open by build on this server.
    pub covers_open: BTreeSet<Cve>,
    /// In place: by `eems`, by `rules`, or not at all (`none`); `unknown` without facts.
    pub applied: Applied,
    /// Its URL Rewrite rules are all present.
    pub rules_present: bool,
    /// It may be removed now (the catalogue allows it and nothing it covers is open).
    pub removable: bool,
    /// salve should apply it: it covers an open CVE and is not in place.
    pub needed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    Eems,
    Rules,
    None,
    Unknown,
}

/// The Emergency Mitigation service on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EemsStatus {
    /// The server's CU ships the service.
    pub available: bool,
    /// It can still receive new mitigations (after the cut-off: only with the required SU).
    pub receives_new: bool,
    /// Service present, running and enabled, when the facts read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    pub detail: String,
}

/// The EEMS status of a server of `entry` on `level` whose installed SUs are `installed`.
pub fn eems_status(
    cat: &Catalogue,
    entry: &FamilyEntry,
    level: &Level,
    installed: usize,
    facts: Option<&MitigationFacts>,
    today: Date,
) -> EemsStatus {
    let active = facts
        .and_then(|f| f.eems.as_ref())
        .map(|e| e.present && e.running && e.enabled);
    let first = cat.eems.first_cu.get(&entry.family);
    let first_index = first.and_then(|cu| entry.levels.iter().position(|l| &l.cu == cu));
    let here = entry.levels.iter().position(|l| std::ptr::eq(l, level));
    let available = matches!((first_index, here), (Some(f), Some(h)) if h >= f);
    if !available {
        return EemsStatus {
            available,
            receives_new: false,
            active,
            detail: match first {
                Some(cu) => format!(
                    "{} {} has no Emergency Mitigation service (it ships from {cu})",
                    entry.family, level.cu
                ),
                None => format!("{} has no Emergency Mitigation service", entry.family),
            },
        };
    }
    let cutoff = &cat.eems.new_mitigations_need;
    let has_cutoff_su = level
        .updates
        .iter()
        .position(|u| u.su == cutoff.su)
        .is_some_and(|i| i < installed);
    let receives_new = today < cutoff.from || has_cutoff_su;
    let detail = if receives_new {
        "the Emergency Mitigation service can receive new mitigations".to_owned()
    } else {
        format!(
            "since {} the Emergency Mitigation service accepts new mitigations only with the {} \
             update or later; this server cannot validate new ones: apply mitigations by their rules",
            cutoff.from, cutoff.su
        )
    };
    EemsStatus {
        available,
        receives_new,
        active,
        detail,
    }
}

/// The state of every catalogue mitigation relevant to a server: those covering a CVE the
/// family is affected by.
pub fn mitigation_states(
    cat: &Catalogue,
    entry: &FamilyEntry,
    open_by_build: &BTreeSet<Cve>,
    facts: Option<&MitigationFacts>,
) -> Vec<MitigationState> {
    cat.mitigations
        .iter()
        .filter(|m| !m.cves.is_disjoint(entry.affected()))
        .map(|m| state_of(m, open_by_build, facts))
        .filter(|s| {
            !s.covers_open.is_empty() || s.applied != Applied::None && s.applied != Applied::Unknown
        })
        .collect()
}

fn state_of(
    m: &Mitigation,
    open: &BTreeSet<Cve>,
    facts: Option<&MitigationFacts>,
) -> MitigationState {
    let covers_open: BTreeSet<Cve> = m.cves.intersection(open).copied().collect();
    let rules_present = facts.is_some_and(|f| all_rules_present(m, f));
    let applied = facts.map_or(Applied::Unknown, |f| applied(m, f));
    let removable = m.remove == Removal::AfterFix && covers_open.is_empty();
    let needed = !covers_open.is_empty() && applied == Applied::None;
    let detail = match (applied, covers_open.is_empty()) {
        (Applied::Eems, _) => format!(
            "applied by the Emergency Mitigation service ({})",
            m.eems_id.as_deref().unwrap_or("?")
        ),
        (Applied::Rules, _) => "its URL Rewrite rules are in place".to_owned(),
        (Applied::None, false) => {
            "not in place: the server is exposed until it is applied or the fix installed"
                .to_owned()
        }
        (Applied::None, true) => "not in place and not needed".to_owned(),
        (Applied::Unknown, _) => "not read (no facts)".to_owned(),
    };
    let detail = match (m.remove, applied) {
        (Removal::Keep, Applied::Eems | Applied::Rules) if covers_open.is_empty() => {
            format!(
                "{detail}; keep it: {}",
                m.note
                    .as_deref()
                    .unwrap_or("Microsoft asks to keep it after the fix")
            )
        }
        _ => detail,
    };
    MitigationState {
        id: m.id.clone(),
        eems_id: m.eems_id.clone(),
        title: m.title.clone(),
        covers_open,
        applied,
        rules_present,
        removable,
        needed,
        detail,
    }
}

/// How `m` is in place on a server with these facts: by the Emergency Mitigation service (its
/// EEMS id applied, any revision), by its URL Rewrite rules (all present), or not at all.
pub fn applied(m: &Mitigation, facts: &MitigationFacts) -> Applied {
    let by_eems = facts
        .eems
        .as_ref()
        .zip(m.eems_id.as_deref())
        .is_some_and(|(e, id)| e.applied.iter().any(|a| same_eems_id(a, id)));
    if by_eems {
        Applied::Eems
    } else if all_rules_present(m, facts) {
        Applied::Rules
    } else {
        Applied::None
    }
}

fn all_rules_present(m: &Mitigation, facts: &MitigationFacts) -> bool {
    m.rules.iter().all(|r| facts.rules.contains(&r.name))
}

/// EEMS reports mitigations as `M2.1.0` or with a suffix (`M2.1.x` revisions): the same
/// mitigation when the major.minor part matches.
pub fn same_eems_id(reported: &str, declared: &str) -> bool {
    let stem = |s: &str| {
        s.rsplit_once('.')
            .map_or(s.to_owned(), |(a, _)| a.to_owned())
    };
    reported.eq_ignore_ascii_case(declared) || stem(reported).eq_ignore_ascii_case(&stem(declared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eems_revisions_count_as_the_same_mitigation() {
        assert!(same_eems_id("M2.1.0", "M2.1.0"));
        assert!(same_eems_id("M2.1.1", "M2.1.0"));
        assert!(!same_eems_id("M1.1.0", "M2.1.0"));
    }
}
