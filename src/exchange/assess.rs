//! Assess one Exchange build: its family, CU and SU, which tracked CVEs are still open, whether
//! it is ProxyLogon/ProxyShell-vulnerable, and the shortest supported path to fixed ([`super::path`]).
//!
//! How a build is placed (CSS-Exchange's algorithm, made strict):
//! - Its **level** is the highest catalogued CU (2010: RU) of its family whose base build is at
//!   or below it; the **installed SU** is the highest SU of that level accepted at or below it
//!   (an SU's aliases count, for the 2016 CU8/CU9 KB5000871 discrepancy).
//! - **Exact**: the build is the level's base build, an SU build or an alias.
//! - **Between** two catalogued builds of one level (e.g. an interim update on top of an SU):
//!   `known`, assessed exactly as the highest catalogued build below it.
//! - **Beyond** the level's last catalogued build but with the same `major.minor.build` (a later
//!   SU of that CU): `known: false`; the CU is known and, SUs being cumulative, it has at least
//!   every fix of the CU's last catalogued SU.
//! - Anything else is **unknown** (`known: false`, no CU): a CVE counts as closed only if a
//!   catalogued level at or below the build already includes its fix, so old unknown builds are
//!   reported vulnerable and new ones (later CUs, which are cumulative) are not.
//!
//! Within the discrepancy range (2016 CU8 15.1.1415.8–.9, CU9 15.1.1466.13–.15) the SU is taken
//! as installed, unless a list of installed KBs is given and lacks it.

use std::collections::BTreeSet;

use serde::Serialize;

use super::build::{Build, Family};
use super::catalogue::{Catalogue, FamilyEntry};
use super::dotnet::DotNet;
use super::ids::{Cve, Kb};
use super::path::{Path, Route, Standing, Step, plan};

/// Facts about the server beyond its build, when known.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// SU KBs listed in the installed-updates registry (confirms the discrepancy cases).
    pub installed_kbs: Option<Vec<Kb>>,
    /// The installed .NET Framework version (drives .NET steps on the path).
    pub dotnet: Option<DotNet>,
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
    /// The build is in the catalogue or between catalogued builds of one CU.
    pub known: bool,
    /// The build is exactly a catalogued build.
    pub exact: bool,
    /// Tracked CVEs still open, sorted.
    pub open_cves: BTreeSet<Cve>,
    pub proxylogon_vulnerable: bool,
    pub proxyshell_vulnerable: bool,
    /// Microsoft named the CU as supported for KB5000871 when it shipped.
    pub mar21_supported: bool,
    pub route: Route,
    pub path: Path,
    /// The path as one line, e.g. `2016 CU17 → CU21 (needs .NET 4.8) → KB5004779`.
    pub path_display: String,
    /// An SU for the current CU that narrows exposure while a CU upgrade is pending.
    pub stopgap: Option<Step>,
    pub notes: Vec<String>,
    pub catalogue_version: String,
}

/// How the build sits in the catalogue.
enum Placement<'c> {
    /// On a catalogued level: exact, between catalogued builds, or beyond the last one.
    Level {
        standing: Standing<'c>,
        exact: bool,
        known: bool,
    },
    /// Not on any catalogued level of its (known) family.
    Unknown(&'c FamilyEntry),
    /// No family salve handles, or one the catalogue lacks.
    NoFamily,
}

/// Assess `build` against the catalogue.
pub fn assess(cat: &Catalogue, build: Build, facts: &Facts) -> Assessment {
    let mut notes = Vec::new();
    let family = build.family();
    let placement = place(cat, build, facts, &mut notes);
    let mut out = Assessment {
        build,
        family,
        cu: None,
        su_kb: None,
        known: false,
        exact: false,
        open_cves: BTreeSet::new(),
        proxylogon_vulnerable: false,
        proxyshell_vulnerable: false,
        mar21_supported: false,
        route: Route::None,
        path: Path::default(),
        path_display: String::new(),
        stopgap: None,
        notes: Vec::new(),
        catalogue_version: cat.version.clone(),
    };
    match placement {
        Placement::Level {
            standing,
            exact,
            known,
        } => {
            let level = standing.level();
            let installed = &level.updates[..standing.installed.map_or(0, |i| i + 1)];
            let mut fixed = level.includes.clone();
            fixed.extend(installed.iter().flat_map(|u| u.fixes.iter().copied()));
            out.open_cves = standing.entry.cves.difference(&fixed).copied().collect();
            out.cu = Some(level.cu.clone());
            out.su_kb = installed.last().map(|u| u.kb);
            out.known = known;
            out.exact = exact;
            out.mar21_supported = level.mar21_supported;
            if !known {
                notes.push(format!(
                    "{build} is later than every catalogued {} build (catalogue {}); assessed \
                     as {} with all its catalogued SUs",
                    standing.label(),
                    cat.version,
                    standing.label()
                ));
            }
            if let Some(su) = installed.last().filter(|u| u.stopgap) {
                notes.push(format!(
                    "{} on {} is an older-CU stop-gap for the ProxyLogon CVEs; other fixes for \
                     this CU may be missing, and only a supported CU gets further SUs",
                    su.kb, level.cu
                ));
            }
            if level.includes_unverified() && !level.includes.is_empty() {
                notes.push(format!(
                    "the fixes counted for {} itself are inferred, not confirmed by Microsoft",
                    level.cu
                ));
            }
            let planned = plan(cat, standing, &out.open_cves, facts.dotnet);
            out.route = planned.route;
            out.path = planned.path;
            out.stopgap = planned.stopgap;
            notes.extend(planned.notes);
        }
        Placement::Unknown(entry) => {
            let fixed: BTreeSet<Cve> = entry
                .levels
                .iter()
                .take_while(|l| l.build <= build)
                .flat_map(|l| l.includes.iter().copied())
                .collect();
            out.open_cves = entry.cves.difference(&fixed).copied().collect();
            out.route = if out.open_cves.is_empty() {
                Route::None
            } else {
                Route::Unknown
            };
            out.path.start = format!("{} {build}", entry.family.short());
            notes.push(format!(
                "{build} is not in the build catalogue (version {}): CU and SU unknown, no path \
                 planned; a CVE counts as closed only when an older catalogued CU already \
                 includes its fix",
                cat.version
            ));
        }
        Placement::NoFamily => {
            out.route = Route::Unknown;
            out.path.start = build.to_string();
            notes.push(format!(
                "{build} is not an Exchange 2010, 2013, 2016, 2019 or SE build"
            ));
        }
    }
    let exposed = |set: &BTreeSet<Cve>| !out.open_cves.is_disjoint(set);
    out.proxylogon_vulnerable = matches!(
        family,
        Some(Family::Exchange2013 | Family::Exchange2016 | Family::Exchange2019)
    ) && exposed(&cat.proxylogon);
    out.proxyshell_vulnerable = exposed(&cat.proxyshell);
    match family {
        Some(Family::Exchange2010) => notes.push(
            "Exchange 2010 is exposed only to CVE-2021-26857, and only with the Unified \
             Messaging role"
                .to_owned(),
        ),
        Some(Family::SubscriptionEdition) => notes.push(
            "Subscription Edition is not affected by the ProxyLogon/ProxyShell CVEs".to_owned(),
        ),
        _ => {}
    }
    out.path_display = out.path.to_string();
    out.notes = notes;
    out
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
    let Some(index) = entry.levels.iter().rposition(|l| l.build <= build) else {
        return Placement::Unknown(entry);
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
            let listed = facts.installed_kbs.as_ref().map(|kbs| kbs.contains(&su.kb));
            notes.push(match listed {
                Some(true) => format!(
                    "{build}: sources disagree on {}'s build for {} ({} or {}); the installed \
                     updates list {}, so it is installed",
                    su.kb, level.cu, su.build, build, su.kb
                ),
                Some(false) => format!(
                    "{build}: sources disagree on {}'s build for {} ({} or {}); the installed \
                     updates do not list {}, so it is taken as missing",
                    su.kb, level.cu, su.build, build, su.kb
                ),
                None => format!(
                    "{build}: sources disagree on {}'s build for {} ({} or {}); taken as \
                     installed (confirm with the installed-updates list)",
                    su.kb, level.cu, su.build, build
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
    let exact = build == level.build || level.updates.iter().any(|u| u.is_exactly(build));
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
        Placement::Unknown(entry)
    }
}
