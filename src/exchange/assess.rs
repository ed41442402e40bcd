//! Assess one Exchange build: its family, CU and SU, which CVEs are still open (by build, and
//! by configuration the fixes depend on), its support state, the interim mitigations that apply,
//! and the shortest supported path to the newest SU its line can take ([`super::path`]).
//!
//! Which CVEs are open (the rule CSS-Exchange HealthChecker applies, documented in
//! `catalogue.yaml`): a CVE the family is affected by is fixed when a catalogued build at or
//! below this one, on the same number line, fixes it and is either on this build's own CU (SUs
//! are cumulative within a CU) or a CU/RU level (a newer CU contains every earlier fix).
//!
//! How a build is placed:
//! - Its **level** is the highest catalogued CU (2010: RU) of its family accepted at or below it;
//!   the **installed SU** is the highest update of that level accepted at or below it (an SU's
//!   aliases count, for the 2016 CU8/CU9 KB5000871 discrepancy).
//! - **Exact**: the build is the level's base build, an update build or an alias.
//! - **Between** two catalogued builds of one level (e.g. an interim update on top of an SU):
//!   `known`, assessed exactly as the highest catalogued build below it.
//! - **Beyond** the level's last catalogued build but with the same `major.minor.build` (a later
//!   SU of that CU): `known: false`; the CU is known and, SUs being cumulative, it has at least
//!   every fix of the CU's last catalogued SU. A path is still planned.
//! - Anything else is **unknown** (`known: false`): the open CVEs follow the rule from the
//!   nearest CU below, no path is planned, and the notes say the answer is unknown.
//!
//! Within the discrepancy range (2016 CU8 15.1.1415.8–.9, CU9 15.1.1466.13–.15) the SU is taken
//! as installed, unless a list of installed KBs is given and lacks it.

use std::collections::BTreeSet;

use jiff::civil::Date;
use serde::Serialize;

use super::build::{Build, Family};
use super::catalogue::{Catalogue, FamilyEntry, Move};
use super::dotnet::DotNet;
use super::ids::{Cve, Kb};
use super::mitigation::{
    EemsStatus, MitigationFacts, MitigationState, eems_status, mitigation_states,
};
use super::path::{Path, Route, Standing, Step, plan};
use super::protection::{HostConfig, Protection, ProtectionState, judge, judge_need};
use super::support::{SupportState, support_state};

/// Facts about the server beyond its build, when known.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// SU KBs listed in the installed-updates registry (confirms the discrepancy cases).
    pub installed_kbs: Option<Vec<Kb>>,
    /// The installed .NET Framework version (drives .NET steps on the path).
    pub dotnet: Option<DotNet>,
    /// The configuration fixes depend on (features, SettingOverrides).
    pub config: Option<HostConfig>,
    /// Mitigation rules and the Emergency Mitigation service's state.
    pub mitigations: Option<MitigationFacts>,
    /// The day the support state is judged on; the catalogue's `as_of` when not given.
    pub today: Option<Date>,
}

/// Everything salve concludes about one build.
#[derive(Debug, Serialize)]
pub struct Assessment {
    pub build: Build,
    pub family: Option<Family>,
    /// CU label (`CU19`, `SP1`, `SP3 RU31`), `None` when the CU is not known.
    pub cu: Option<String>,
    /// KB of the highest SU installed on the CU, `None` when none.
    pub su_kb: Option<Kb>,
    /// Label of the highest update installed on the CU (`Jun26SU`), `None` when none.
    pub su: Option<String>,
    /// The build is in the catalogue or between catalogued builds of one CU.
    pub known: bool,
    /// The build is exactly a catalogued build.
    pub exact: bool,
    /// CVEs still open, sorted: open by build, plus those whose protection is off.
    pub open_cves: BTreeSet<Cve>,
    /// The subset of `open_cves` that an update would close.
    pub open_by_build: BTreeSet<Cve>,
    /// Open CVEs that an applied mitigation covers meanwhile.
    pub mitigated_cves: BTreeSet<Cve>,
    pub proxylogon_vulnerable: bool,
    pub proxyshell_vulnerable: bool,
    /// Microsoft named the CU as supported for KB5000871 when it shipped.
    pub mar21_supported: bool,
    /// Fixes (or missing fixes) whose protection depends on configuration.
    pub protections: Vec<Protection>,
    pub support: Option<SupportState>,
    /// Where the server goes next when its line ends (e.g. Exchange 2019 → SE in place).
    pub successor: Option<String>,
    pub mitigations: Vec<MitigationState>,
    pub eems: Option<EemsStatus>,
    pub route: Route,
    pub path: Path,
    /// The path as one line, e.g. `2016 CU17 → CU21 (needs .NET 4.8) → KB5004779`.
    pub path_display: String,
    /// An SU for the current CU that narrows exposure while a CU upgrade is pending.
    pub stopgap: Option<Step>,
    pub notes: Vec<String>,
    pub catalogue_version: String,
    pub catalogue_as_of: Date,
}

/// How the build sits in the catalogue.
enum Placement<'c> {
    /// On a catalogued level: exact, between catalogued builds, or beyond the last one on the
    /// same base (`known: false`).
    Level {
        standing: Standing<'c>,
        exact: bool,
        known: bool,
    },
    /// Not a build of any catalogued level (a later CU, or below the first): the nearest level
    /// below it, if any, for the open-CVE rule.
    Unknown {
        entry: &'c FamilyEntry,
        nearest: Option<Standing<'c>>,
    },
    /// No family salve handles, or one the catalogue lacks.
    NoFamily,
}

/// Assess `build` against the catalogue.
pub fn assess(cat: &Catalogue, build: Build, facts: &Facts) -> Assessment {
    let mut notes = Vec::new();
    let family = build.family();
    let today = facts.today.unwrap_or(cat.as_of);
    let placement = place(cat, build, facts, &mut notes);
    let mut out = Assessment {
        build,
        family,
        cu: None,
        su_kb: None,
        su: None,
        known: false,
        exact: false,
        open_cves: BTreeSet::new(),
        open_by_build: BTreeSet::new(),
        mitigated_cves: BTreeSet::new(),
        proxylogon_vulnerable: false,
        proxyshell_vulnerable: false,
        mar21_supported: false,
        protections: Vec::new(),
        support: None,
        successor: None,
        mitigations: Vec::new(),
        eems: None,
        route: Route::None,
        path: Path::default(),
        path_display: String::new(),
        stopgap: None,
        notes: Vec::new(),
        catalogue_version: cat.version.clone(),
        catalogue_as_of: cat.as_of,
    };
    let (entry, standing, on_level) = match placement {
        Placement::Level {
            standing,
            exact,
            known,
        } => {
            out.known = known;
            out.exact = exact;
            if !known {
                notes.push(format!(
                    "{build} is later than every catalogued {} build (catalogue {}); assessed \
                     as {} with all its catalogued SUs: CVEs fixed after the catalogue's date \
                     are not known",
                    standing.label(),
                    cat.version,
                    standing.label()
                ));
            }
            (standing.entry, Some(standing), true)
        }
        Placement::Unknown { entry, nearest } => {
            notes.push(format!(
                "{build} is not in the build catalogue (version {}, data as of {}): the answer \
                 is unknown; CVEs are counted from {} and no path is planned",
                cat.version,
                cat.as_of,
                nearest.map_or_else(
                    || "no catalogued build".to_owned(),
                    |s| format!("the nearest CU below it ({})", s.label())
                )
            ));
            out.route = Route::Unknown;
            (entry, nearest, false)
        }
        Placement::NoFamily => {
            out.route = Route::Unknown;
            out.path.start = build.to_string();
            notes.push(format!(
                "{build} is not an Exchange 2010, 2013, 2016, 2019 or SE build: the answer is unknown"
            ));
            out.path_display = out.path.to_string();
            out.notes = notes;
            return out;
        }
    };
    let installed = standing.map_or(&[][..], |s| {
        &s.level().updates[..s.installed.map_or(0, |i| i + 1)]
    });
    let mut fixed: BTreeSet<Cve> = cat
        .levels_at_or_below(build)
        .flat_map(|l| l.fixes.iter().copied())
        .collect();
    fixed.extend(installed.iter().flat_map(|u| u.fixes.iter().copied()));
    let open_by_build: BTreeSet<Cve> = entry.affected().difference(&fixed).copied().collect();

    // Configuration: fixes that also need a setting, and CVEs no build fixes.
    let host = facts.config.as_ref();
    for cve in fixed.intersection(entry.affected()) {
        if let Some(need) = cat.need(*cve) {
            out.protections.push(judge_need(*cve, need, host));
        }
    }
    for unfixed in &entry.unfixed {
        out.protections.push(judge(
            unfixed.cve,
            super::catalogue::NeedMode::MustEnable,
            unfixed.check,
            &unfixed.what,
            &[],
            host,
        ));
    }
    let unfixed_by_build: BTreeSet<Cve> = entry.unfixed.iter().map(|u| u.cve).collect();
    let protected_by_config: BTreeSet<Cve> = out
        .protections
        .iter()
        .filter(|p| p.state == ProtectionState::On && unfixed_by_build.contains(&p.cve))
        .map(|p| p.cve)
        .collect();
    out.open_cves = open_by_build
        .difference(&protected_by_config)
        .copied()
        .collect();
    out.open_cves.extend(
        out.protections
            .iter()
            .filter(|p| p.state == ProtectionState::Off)
            .map(|p| p.cve),
    );
    out.open_by_build = open_by_build
        .difference(&unfixed_by_build)
        .copied()
        .collect();

    out.support = Some(support_state(
        entry,
        standing.map(|s| s.level().cu.as_str()),
        today,
    ));
    out.successor = successor(cat, entry, standing);
    if let Some(note) = &entry.note {
        notes.push(note.clone());
    }
    out.mitigations = mitigation_states(cat, entry, &out.open_by_build, facts.mitigations.as_ref());
    out.mitigated_cves = out
        .mitigations
        .iter()
        .filter(|m| {
            matches!(
                m.applied,
                super::mitigation::Applied::Eems | super::mitigation::Applied::Rules
            )
        })
        .flat_map(|m| m.covers_open.iter().copied())
        .collect();

    if let Some(standing) = standing.filter(|_| on_level) {
        let level = standing.level();
        out.cu = Some(level.cu.clone());
        out.su_kb = installed.last().and_then(|u| u.kb);
        out.su = installed.last().map(|u| u.su.clone());
        out.mar21_supported = level.mar21_supported;
        out.eems = Some(eems_status(
            cat,
            entry,
            level,
            installed.len(),
            facts.mitigations.as_ref(),
            today,
        ));
        if let Some(su) = installed.last().filter(|u| u.stopgap) {
            notes.push(format!(
                "{} on {} is an older-CU stop-gap for the ProxyLogon CVEs; other fixes for \
                 this CU may be missing, and only a supported CU gets further SUs",
                su.name(),
                level.cu
            ));
        }
        let planned = plan(cat, standing, &out.open_by_build, facts.dotnet);
        out.route = planned.route;
        out.path = planned.path;
        out.stopgap = planned.stopgap;
        notes.extend(planned.notes);
    } else {
        out.path.start = format!("{} {build}", entry.family.short());
    }
    let unverified: Vec<String> = out
        .open_by_build
        .iter()
        .filter(|c| fix_unverified(entry, **c))
        .map(Cve::to_string)
        .collect();
    if !unverified.is_empty() {
        notes.push(format!(
            "which update fixes {} is inferred (no KB page or CVE record confirms it)",
            unverified.join(", ")
        ));
    }
    let exposed = |set: &BTreeSet<Cve>| !out.open_cves.is_disjoint(set);
    out.proxylogon_vulnerable = matches!(
        family,
        Some(Family::Exchange2013 | Family::Exchange2016 | Family::Exchange2019)
    ) && exposed(&cat.proxylogon);
    out.proxyshell_vulnerable = exposed(&cat.proxyshell);
    out.path_display = out.path.to_string();
    out.notes = notes;
    out
}

/// The update that would fix `cve` in `entry` has `fixes` marked unverified.
fn fix_unverified(entry: &FamilyEntry, cve: Cve) -> bool {
    entry
        .levels
        .iter()
        .flat_map(|l| &l.updates)
        .filter(|u| u.fixes.contains(&cve))
        .any(|u| u.unverified.iter().any(|f| f == "fixes"))
}

/// Where the server goes when its line ends, for people.
fn successor(
    cat: &Catalogue,
    entry: &FamilyEntry,
    standing: Option<Standing<'_>>,
) -> Option<String> {
    let next = entry.successor.as_ref()?;
    let target = cat
        .family(next.family)
        .and_then(FamilyEntry::newest)
        .map_or_else(
            || next.family.to_string(),
            |l| format!("{} {}", next.family, l.cu),
        );
    let ready = standing.is_some_and(|s| next.from_cus.contains(&s.level().cu));
    let from = next.from_cus.join(" or ");
    Some(match (next.how, ready) {
        (Move::InPlace, true) => {
            format!("in-place upgrade to {target} (Setup of {target} over this server)")
        }
        (Move::InPlace, false) => format!(
            "reach {} {from} first, then upgrade in place to {target}",
            entry.family
        ),
        (Move::SideBySide, true) => format!(
            "move to {target} side by side: install new servers, move mailboxes, remove this one"
        ),
        (Move::SideBySide, false) => format!(
            "reach {} {from} first (needed to coexist with {target}), then move side by side",
            entry.family
        ),
    })
}

/// Place the build on a level of its family (see the module docs).
fn place<'c>(
    cat: &'c Catalogue,
    build: Build,
    facts: &Facts,
    notes: &mut Vec<String>,
) -> Placement<'c> {
    let Some(entry) = build.family().and_then(|f| cat.family(f)) else {
        return Placement::NoFamily;
    };
    let Some(index) = entry
        .levels
        .iter()
        .rposition(|l| l.accepted_from() <= build)
    else {
        return Placement::Unknown {
            entry,
            nearest: None,
        };
    };
    let level = &entry.levels[index];
    let mut installed = level
        .updates
        .iter()
        .rposition(|u| u.accepted_from() <= build);
    if let Some(i) = installed {
        let su = &level.updates[i];
        if build < su.build {
            // Only an alias puts the build here: the discrepancy case.
            let name = su.name();
            let listed = match (&facts.installed_kbs, su.kb) {
                (Some(kbs), Some(kb)) => Some(kbs.contains(&kb)),
                _ => None,
            };
            notes.push(match listed {
                Some(true) => format!(
                    "{build}: sources disagree on {name}'s build for {} ({} or {build}); the \
                     installed updates list {name}, so it is installed",
                    level.cu, su.build
                ),
                Some(false) => format!(
                    "{build}: sources disagree on {name}'s build for {} ({} or {build}); the \
                     installed updates do not list {name}, so it is taken as missing",
                    level.cu, su.build
                ),
                None => format!(
                    "{build}: sources disagree on {name}'s build for {} ({} or {build}); taken \
                     as installed (confirm with the installed-updates list)",
                    level.cu, su.build
                ),
            });
            if listed == Some(false) {
                installed = i.checked_sub(1);
            }
        }
    }
    let standing = Standing {
        entry,
        level: index,
        installed,
    };
    let exact = build == level.build
        || level.aliases.contains(&build)
        || level.updates.iter().any(|u| u.is_exactly(build));
    if exact || build <= level.last_build() {
        Placement::Level {
            standing,
            exact,
            known: true,
        }
    } else if build.same_base(&level.build) {
        Placement::Level {
            standing,
            exact: false,
            known: false,
        }
    } else {
        Placement::Unknown {
            entry,
            nearest: Some(standing),
        }
    }
}
