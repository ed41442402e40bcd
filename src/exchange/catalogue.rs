//! The build/CVE catalogue: every Exchange 2010 SP3 rollup, every 2013, 2016 and 2019 CU and
//! SU, and Subscription Edition, with release date, KB, the CVEs each build fixes, the
//! configuration some fixes also need, support and ESU dates, the .NET versions each CU supports,
//! the interim mitigations Microsoft ships (EOMT / EEMS) and Setup's licence-switch rule.
//!
//! The data lives in `catalogue.yaml` next to this file, is compiled into the binary as the
//! floor, and is parsed once at first use ([`catalogue`]); `salve catalogue update` may install a
//! newer signed copy, which the command layer hands over with [`activate`] before anything reads
//! the catalogue. Parsing also checks the data (order, families, CVE ids, every affected CVE
//! fixed by the newest build or explained), so a bad edit fails the
//! `compiled_in_catalogue_loads` test rather than a user's run, and a bad update is refused.
//!
//! Shape: a family has *levels* (a CU, or an update rollup for Exchange 2010: what Setup or a
//! rollup installs) and each level has *updates* (its SUs and HUs, which only install on that
//! level, each containing the earlier ones).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::build::{Build, Family};
use super::dotnet::DotNet;
use super::ids::{Cve, Kb};
use super::released::Released;

/// The catalogue data as compiled into the binary.
pub const COMPILED_IN_YAML: &str = include_str!("catalogue.yaml");

/// The parsed, checked catalogue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// `<date of the newest source snapshot>.<revision>`, bumped whenever the data changes.
    pub version: String,
    /// The date of the newest source the data reflects.
    pub as_of: Date,
    /// The ProxyLogon CVEs.
    pub proxylogon: BTreeSet<Cve>,
    /// The ProxyShell CVEs.
    pub proxyshell: BTreeSet<Cve>,
    /// Which licence switch Setup takes for a CU.
    pub licence_switch: LicenceRule,
    /// Where the Emergency Mitigation service exists and what it needs.
    pub eems: Eems,
    /// Interim mitigations (EOMT rules, EEMS mitigations).
    pub mitigations: Vec<Mitigation>,
    families: Vec<FamilyEntry>,
    /// Each CVE's configuration requirement, gathered from every `needs` (filled by `check`).
    #[serde(skip)]
    needs_by_cve: BTreeMap<Cve, Need>,
}

/// The Exchange Emergency Mitigation service's facts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eems {
    /// The first CU of each family that ships the service.
    pub first_cu: BTreeMap<Family, String>,
    /// From `from`, the service accepts new mitigations only on servers with SU `su` or later.
    pub new_mitigations_need: EemsCutoff,
}

/// See [`Eems::new_mitigations_need`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EemsCutoff {
    pub from: Date,
    /// The SU label, e.g. `Jun26SU`.
    pub su: String,
}

/// An interim mitigation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Mitigation {
    /// salve's id, e.g. `eomt-cve-2026-42897`.
    pub id: String,
    /// The Emergency Mitigation service's id for the same mitigation, e.g. `M2.1.0`.
    #[serde(default)]
    pub eems_id: Option<String>,
    pub title: String,
    pub cves: BTreeSet<Cve>,
    /// The URL Rewrite rules that prove it is in place.
    pub rules: Vec<RewriteRule>,
    pub remove: Removal,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub src: Vec<String>,
}

/// One IIS URL Rewrite rule of a mitigation.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RewriteRule {
    pub name: String,
    pub direction: Direction,
}

/// Inbound rules sit on the Default Web Site, outbound rules on its `/owa` application.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// When a mitigation may come off.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// Once every CVE it covers is fixed by build.
    AfterFix,
    /// Never on salve's initiative: Microsoft asks to keep it after the SU.
    Keep,
}

/// The catalogue's builds of one product family.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyEntry {
    pub family: Family,
    pub support: Support,
    /// The line a server of this family moves to, and how.
    #[serde(default)]
    pub successor: Option<Successor>,
    /// CVEs the family is affected by that no build of it fixes.
    #[serde(default)]
    pub unfixed: Vec<Unfixed>,
    #[serde(default)]
    pub note: Option<String>,
    /// Oldest first.
    pub levels: Vec<Level>,
    /// Every CVE the family is affected by: what its builds fix, plus `unfixed` (filled by
    /// `check`).
    #[serde(skip)]
    affected: BTreeSet<Cve>,
}

/// Lifecycle dates of a family.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Support {
    #[serde(default)]
    pub mainstream_end: Option<Released>,
    /// The last day of extended support; `None` under the modern lifecycle.
    #[serde(default)]
    pub extended_end: Option<Date>,
    /// Paid Extended Security Update periods after `extended_end`.
    #[serde(default)]
    pub esu: Vec<Esu>,
    /// Modern lifecycle: only the newest CU is supported.
    #[serde(default)]
    pub newest_cu_only: bool,
}

/// One ESU period.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Esu {
    pub period: u8,
    pub from: Date,
    pub to: Date,
    /// The CUs whose SUs the period covers.
    pub cus: Vec<String>,
    #[serde(default)]
    pub unverified: Vec<String>,
}

/// Where a family's servers go next.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Successor {
    pub family: Family,
    pub how: Move,
    /// The CUs the move starts from.
    pub from_cus: Vec<String>,
}

/// How a server reaches its successor line.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Move {
    /// Setup of the new line over the installed one, like a CU.
    InPlace,
    /// A new server, mailboxes moved, the old one removed.
    SideBySide,
}

/// A CVE with no build fix in a family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unfixed {
    pub cve: Cve,
    /// The configuration that protects instead.
    pub check: Check,
    pub what: String,
}

/// How a level is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum LevelKind {
    /// A cumulative update (or baseline: RTM, 2013 SP1, 2010 SP3), installed by Setup.
    #[serde(rename = "CU")]
    Cu,
    /// An Exchange 2010 update rollup.
    #[serde(rename = "RU")]
    Ru,
}

/// What kind of update an [`Update`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum UpdateKind {
    /// A security update.
    #[serde(rename = "SU")]
    Su,
    /// A hotfix update (may also carry security fixes).
    #[serde(rename = "HU")]
    Hu,
}

/// A CU (or 2010 RU): the base build a family's SUs are made for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Label such as `CU19`, `SP1` (2013 CU4), `RTM`, `SP3` or `SP3 RU31`.
    pub cu: String,
    pub kind: LevelKind,
    pub build: Build,
    pub released: Released,
    #[serde(default)]
    pub kb: Option<Kb>,
    /// Another label of the same CU (2013 SP1 is CU4).
    #[serde(default)]
    pub alias: Option<String>,
    /// .NET versions supported with this CU; empty when the matrix does not cover it.
    #[serde(default)]
    pub dotnet: Vec<DotNet>,
    /// What this CU's `/PrepareSchema` and `/PrepareAD` leave in Active Directory
    /// (CSS-Exchange's table); `None` where the source has no value.
    #[serde(default)]
    pub ad: Option<AdLevel>,
    /// CVEs fixed in this level's base build but not in the previous CU's base build.
    #[serde(default)]
    pub fixes: BTreeSet<Cve>,
    #[serde(default)]
    pub needs: Vec<Need>,
    /// Microsoft named this CU as supported for KB5000871 when it shipped (2021-03-02).
    #[serde(default)]
    pub mar21_supported: bool,
    /// Other builds that sources give for this same level.
    #[serde(default)]
    pub aliases: Vec<Build>,
    #[serde(default)]
    pub advisories: Vec<String>,
    /// This level's SUs and HUs, oldest first.
    #[serde(default)]
    pub updates: Vec<Update>,
    /// Fields no primary source confirms.
    #[serde(default)]
    pub unverified: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub src: Vec<String>,
}

/// A CU's Active Directory versions: the schema's `ms-Exch-Schema-Version-Pt` `rangeUpper`
/// and the organisation container's `objectVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdLevel {
    pub schema: u32,
    pub org: u32,
}

/// A security or hotfix update for one level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Label in CSS-Exchange style, e.g. `Jun26SU`, `Nov24SUv2`, `Apr25HU`.
    pub su: String,
    pub kind: UpdateKind,
    pub build: Build,
    pub released: Released,
    #[serde(default)]
    pub kb: Option<Kb>,
    /// CVEs fixed by reaching this build (earlier SUs' fixes are not repeated).
    #[serde(default)]
    pub fixes: BTreeSet<Cve>,
    #[serde(default)]
    pub needs: Vec<Need>,
    /// An older-CU SU that Microsoft shipped only as a stop-gap for the ProxyLogon CVEs.
    #[serde(default)]
    pub stopgap: bool,
    /// Other builds that sources give for this same SU (accepted as equivalent).
    #[serde(default)]
    pub aliases: Vec<Build>,
    #[serde(default)]
    pub advisories: Vec<String>,
    #[serde(default)]
    pub unverified: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub src: Vec<String>,
}

/// Configuration a fix also needs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Need {
    pub cves: BTreeSet<Cve>,
    pub mode: NeedMode,
    pub check: Check,
    /// For `check: setting_override`: the `Component\Section\Parameter` names that must not be
    /// set to False.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// For people.
    pub what: String,
}

/// How a fix depends on configuration.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NeedMode {
    /// A feature has to be switched on.
    MustEnable,
    /// On by default with the build, but a SettingOverride or switch can turn it off.
    MustNotDisable,
    /// An Active Directory preparation step is needed.
    AdPrep,
}

/// What salve reads on the host to decide a [`Need`].
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    ExtendedProtection,
    SerializedDataSigning,
    DedicatedHybridApp,
    PrepareSchema,
    PrepareAllDomains,
    SettingOverride,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ExtendedProtection => "extended_protection",
            Check::SerializedDataSigning => "serialized_data_signing",
            Check::DedicatedHybridApp => "dedicated_hybrid_app",
            Check::PrepareSchema => "prepare_schema",
            Check::PrepareAllDomains => "prepare_all_domains",
            Check::SettingOverride => "setting_override",
        }
    }
}

/// Setup's licence-acceptance switch rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceRule {
    /// The switch CUs released up to `plain_until` accept.
    pub plain: String,
    pub plain_until: Date,
    /// The switches later CUs require (one of them).
    pub diagnostic_data: Vec<String>,
}

/// The licence switch(es) for one CU's Setup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "rule", content = "switches", rename_all = "snake_case")]
pub enum LicenceSwitch {
    /// Exactly this switch.
    Plain(String),
    /// One of these (diagnostic data on or off): an operator's choice.
    DiagnosticData(Vec<String>),
}

impl Update {
    /// The lowest build accepted as this SU (its build or a lower alias).
    pub fn accepted_from(&self) -> Build {
        lowest(self.build, &self.aliases)
    }

    /// True when the build is this SU's build or one of its aliases.
    pub fn is_exactly(&self, build: Build) -> bool {
        self.build == build || self.aliases.contains(&build)
    }

    /// The KB, or the update's label where Microsoft published none.
    pub fn name(&self) -> String {
        self.kb.map_or_else(|| self.su.clone(), |kb| kb.to_string())
    }
}

impl Level {
    /// The lowest build accepted as this level (its build or a lower alias).
    pub fn accepted_from(&self) -> Build {
        lowest(self.build, &self.aliases)
    }

    /// The highest catalogued build of this level (its last update, or the base build).
    pub fn last_build(&self) -> Build {
        self.updates.last().map_or(self.build, |u| u.build)
    }

    /// Every CVE fixed by this level's updates.
    pub fn fixed_by_updates(&self) -> BTreeSet<Cve> {
        self.updates
            .iter()
            .flat_map(|u| u.fixes.iter().copied())
            .collect()
    }

    /// The first security update of this level with this label (e.g. `Jun26SU`).
    pub fn update_labelled(&self, su: &str) -> Option<&Update> {
        self.updates.iter().find(|u| u.su == su)
    }
}

fn lowest(build: Build, aliases: &[Build]) -> Build {
    aliases.iter().copied().fold(build, Build::min)
}

impl FamilyEntry {
    /// The newest level of the family: the target of every CU upgrade.
    pub fn newest(&self) -> Option<&Level> {
        self.levels.last()
    }

    /// Every CVE the family is affected by.
    pub fn affected(&self) -> &BTreeSet<Cve> {
        &self.affected
    }

    /// The level with this label.
    pub fn level(&self, cu: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.cu == cu)
    }

    /// Every catalogued build of the family (levels, their aliases, updates and theirs).
    pub fn builds(&self) -> impl Iterator<Item = Build> + '_ {
        self.levels.iter().flat_map(|l| {
            std::iter::once(l.build)
                .chain(l.aliases.iter().copied())
                .chain(
                    l.updates
                        .iter()
                        .flat_map(|u| std::iter::once(u.build).chain(u.aliases.iter().copied())),
                )
        })
    }
}

/// Why catalogue data is unusable (a bug in `catalogue.yaml`, caught by tests, or a bad update).
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the build catalogue does not parse")]
    Parse(#[source] marked_yaml::FromYamlError),
    #[error("the build catalogue is inconsistent")]
    Invalid(#[from] Inconsistency),
}

/// What makes catalogue data inconsistent; `level` names the offending level as
/// `family CU (build)`.
#[derive(Debug, thiserror::Error)]
pub enum Inconsistency {
    #[error("`version` is empty")]
    NoVersion,
    #[error("{family} appears twice")]
    DuplicateFamily { family: Family },
    #[error("{level}: build is not of this family")]
    WrongFamily { level: String },
    #[error("{level}: levels must be in ascending build order")]
    NotAscending { level: String },
    #[error(
        "{level}: update {su} must follow the earlier builds of its CU and share its major.minor.build"
    )]
    SuOutOfPlace { level: String, su: Build },
    #[error("{level}: `needs` names {cve}, which that build does not list in `fixes`")]
    NeedsUnfixedCve { level: String, cve: Cve },
    #[error(
        "{family}: {cves} affect the family but the newest level {cu} does not fix them; fix the data or list them under `unfixed`"
    )]
    NewestMissesCves {
        family: Family,
        cu: String,
        cves: String,
    },
    #[error("{family}: `{field}` names {cu}, which is not a level of the family")]
    UnknownCu {
        family: Family,
        field: &'static str,
        cu: String,
    },
    #[error("mitigation `{id}` lists no rule or no CVE")]
    EmptyMitigation { id: String },
}

/// The catalogue in use: one handed to [`activate`] (a verified update), else the compiled-in
/// one, parsed and checked on first use.
pub fn catalogue() -> Result<&'static Catalogue, &'static CatalogueError> {
    if let Some(active) = ACTIVE.get() {
        return Ok(active);
    }
    compiled_in()
}

/// The catalogue compiled into this binary.
pub fn compiled_in() -> Result<&'static Catalogue, &'static CatalogueError> {
    static COMPILED: OnceLock<Result<Catalogue, CatalogueError>> = OnceLock::new();
    COMPILED
        .get_or_init(|| Catalogue::parse(COMPILED_IN_YAML))
        .as_ref()
}

static ACTIVE: OnceLock<Catalogue> = OnceLock::new();

/// Make `cat` the catalogue [`catalogue`] returns for the rest of the process. Only the first
/// call counts (later ones return the catalogue back); call it before anything reads the
/// catalogue.
pub fn activate(cat: Catalogue) -> Result<(), Box<Catalogue>> {
    ACTIVE.set(cat).map_err(Box::new)
}

impl Catalogue {
    /// Parse and check catalogue data.
    pub fn parse(yaml: &str) -> Result<Catalogue, CatalogueError> {
        let mut catalogue: Catalogue =
            marked_yaml::from_yaml(0, yaml).map_err(CatalogueError::Parse)?;
        catalogue.check()?;
        Ok(catalogue)
    }

    /// The entry for a family, if the catalogue has one.
    pub fn family(&self, family: Family) -> Option<&FamilyEntry> {
        self.families.iter().find(|f| f.family == family)
    }

    /// Every family entry, oldest family first.
    pub fn families(&self) -> &[FamilyEntry] {
        &self.families
    }

    /// The configuration a CVE's fix also needs, if any.
    pub fn need(&self, cve: Cve) -> Option<&Need> {
        self.needs_by_cve.get(&cve)
    }

    /// The mitigations that cover a CVE.
    pub fn mitigations_for(&self, cve: Cve) -> impl Iterator<Item = &Mitigation> {
        self.mitigations
            .iter()
            .filter(move |m| m.cves.contains(&cve))
    }

    /// Every level (of any family) on the number line of `build` (same major.minor: Exchange SE
    /// continues the 2019 numbering) accepted at or below it.
    pub fn levels_at_or_below(&self, build: Build) -> impl Iterator<Item = &Level> {
        self.families
            .iter()
            .flat_map(|f| &f.levels)
            .filter(move |l| {
                l.build.major == build.major
                    && l.build.minor == build.minor
                    && l.accepted_from() <= build
            })
    }

    /// Number of catalogued builds (levels and updates, without aliases).
    pub fn build_count(&self) -> usize {
        self.families
            .iter()
            .flat_map(|f| &f.levels)
            .map(|l| 1 + l.updates.len())
            .sum()
    }

    /// The licence switch Setup needs for this level.
    pub fn licence_switch(&self, level: &Level) -> LicenceSwitch {
        let rule = &self.licence_switch;
        if level.released.last_day() <= rule.plain_until {
            LicenceSwitch::Plain(rule.plain.clone())
        } else {
            LicenceSwitch::DiagnosticData(rule.diagnostic_data.clone())
        }
    }

    /// Consistency checks (the message names the offending build), and the derived tables.
    fn check(&mut self) -> Result<(), Inconsistency> {
        if self.version.trim().is_empty() {
            return Err(Inconsistency::NoVersion);
        }
        for m in &self.mitigations {
            if m.rules.is_empty() || m.cves.is_empty() {
                return Err(Inconsistency::EmptyMitigation { id: m.id.clone() });
            }
        }
        let mut seen = BTreeSet::new();
        for entry in &mut self.families {
            if !seen.insert(entry.family) {
                return Err(Inconsistency::DuplicateFamily {
                    family: entry.family,
                });
            }
            check_family(entry)?;
            entry.affected = entry
                .levels
                .iter()
                .flat_map(|l| {
                    l.fixes
                        .iter()
                        .chain(l.fixed_by_updates().iter())
                        .copied()
                        .collect::<Vec<_>>()
                })
                .chain(entry.unfixed.iter().map(|u| u.cve))
                .collect();
            if let Some(newest) = entry.newest() {
                let mut fixed: BTreeSet<Cve> = entry
                    .levels
                    .iter()
                    .flat_map(|l| l.fixes.iter().copied())
                    .collect();
                fixed.extend(newest.fixed_by_updates());
                fixed.extend(entry.unfixed.iter().map(|u| u.cve));
                let missing: Vec<String> = entry
                    .affected
                    .difference(&fixed)
                    .map(Cve::to_string)
                    .collect();
                if !missing.is_empty() {
                    return Err(Inconsistency::NewestMissesCves {
                        family: entry.family,
                        cu: newest.cu.clone(),
                        cves: missing.join(", "),
                    });
                }
            }
        }
        let needs = self.families.iter().flat_map(|f| &f.levels).flat_map(|l| {
            l.needs
                .iter()
                .chain(l.updates.iter().flat_map(|u| &u.needs))
        });
        for need in needs {
            for cve in &need.cves {
                self.needs_by_cve
                    .entry(*cve)
                    .or_insert_with(|| need.clone());
            }
        }
        Ok(())
    }
}

/// The per-family checks of [`Catalogue::check`].
fn check_family(entry: &FamilyEntry) -> Result<(), Inconsistency> {
    let family = entry.family;
    let mut previous: Option<Build> = None;
    for level in &entry.levels {
        let here = format!("{family} {} ({})", level.cu, level.build);
        if level.build.family() != Some(family) {
            return Err(Inconsistency::WrongFamily { level: here });
        }
        if previous.is_some_and(|p| p >= level.accepted_from()) {
            return Err(Inconsistency::NotAscending { level: here });
        }
        let mut last = level.build;
        for update in &level.updates {
            if update.accepted_from() <= last || !update.build.same_base(&level.build) {
                return Err(Inconsistency::SuOutOfPlace {
                    level: here,
                    su: update.build,
                });
            }
            last = update.build;
        }
        let fixes_and_needs = std::iter::once((&level.fixes, &level.needs))
            .chain(level.updates.iter().map(|u| (&u.fixes, &u.needs)));
        for (fixes, needs) in fixes_and_needs {
            if let Some(cve) = needs
                .iter()
                .flat_map(|n| &n.cves)
                .find(|c| !fixes.contains(c))
            {
                return Err(Inconsistency::NeedsUnfixedCve {
                    level: here,
                    cve: *cve,
                });
            }
        }
        previous = Some(level.last_build());
    }
    let named = entry
        .support
        .esu
        .iter()
        .flat_map(|e| e.cus.iter().map(|cu| ("esu", cu)))
        .chain(
            entry
                .successor
                .iter()
                .flat_map(|s| s.from_cus.iter().map(|cu| ("successor", cu))),
        );
    for (field, cu) in named {
        if entry.level(cu).is_none() {
            return Err(Inconsistency::UnknownCu {
                family,
                field,
                cu: cu.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_in_catalogue_loads() {
        let cat = compiled_in().unwrap();
        assert_eq!(cat.version, "2026-08-20.1");
        assert_eq!(cat.proxylogon.len(), 4);
        assert_eq!(cat.proxyshell.len(), 3);
        let count = |f| {
            let e = cat.family(f).unwrap();
            e.levels.iter().map(|l| 1 + l.updates.len()).sum::<usize>()
        };
        // The reference table's entries per product.
        assert_eq!(count(Family::Exchange2010), 34);
        assert_eq!(count(Family::Exchange2013), 72);
        assert_eq!(count(Family::Exchange2016), 120);
        assert_eq!(count(Family::Exchange2019), 115);
        assert_eq!(count(Family::SubscriptionEdition), 10);
        assert_eq!(cat.build_count(), 351);
    }

    #[test]
    fn records_the_facts_the_planner_relies_on() {
        let cat = compiled_in().unwrap();
        let e2016 = cat.family(Family::Exchange2016).unwrap();
        let cu19 = e2016.level("CU19").unwrap();
        assert!(cu19.mar21_supported);
        assert_eq!(cu19.dotnet, vec![DotNet::V4_8]);
        let cu8 = e2016.level("CU8").unwrap();
        let mar21 = cu8.update_labelled("Mar21SU").unwrap();
        assert_eq!(mar21.accepted_from(), "15.1.1415.8".parse().unwrap());
        assert!(mar21.stopgap && !cu8.mar21_supported);
        let supported: Vec<String> = cat
            .families()
            .iter()
            .flat_map(|f| f.levels.iter().map(move |l| (f.family, l)))
            .filter(|(_, l)| l.mar21_supported)
            .map(|(f, l)| format!("{} {}", f.short(), l.cu))
            .collect();
        assert_eq!(
            supported,
            [
                "2013 CU23",
                "2016 CU18",
                "2016 CU19",
                "2019 CU7",
                "2019 CU8"
            ]
        );
        let se = cat.family(Family::SubscriptionEdition).unwrap();
        assert!(se.affected().contains(&"CVE-2026-42897".parse().unwrap()));
        let e2013 = cat.family(Family::Exchange2013).unwrap();
        assert!(
            !e2013
                .affected()
                .contains(&"CVE-2026-42897".parse().unwrap())
        );
        let e2010 = cat.family(Family::Exchange2010).unwrap();
        assert_eq!(e2010.affected().len(), 1);
        assert_eq!(
            cat.need("CVE-2025-25005".parse().unwrap())
                .unwrap()
                .overrides,
            ["OAuth\\AppIdBasedAudienceValidation\\Enabled"]
        );
        let m: Vec<&str> = cat
            .mitigations_for("CVE-2026-42897".parse().unwrap())
            .map(|m| m.eems_id.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(m, ["M2.1.0"]);
    }

    #[test]
    fn licence_switch_changes_after_june_2021() {
        let cat = compiled_in().unwrap();
        let level = |f, cu| cat.family(f).unwrap().level(cu).unwrap();
        assert_eq!(
            cat.licence_switch(level(Family::Exchange2019, "CU10")),
            LicenceSwitch::Plain("/IAcceptExchangeServerLicenseTerms".into())
        );
        let LicenceSwitch::DiagnosticData(switches) =
            cat.licence_switch(level(Family::SubscriptionEdition, "RTM"))
        else {
            panic!("SE takes the diagnostic-data switches");
        };
        assert_eq!(switches.len(), 2);
        assert!(switches.iter().all(|s| s.contains("_DiagnosticData")));
    }

    #[test]
    fn rejects_inconsistent_data() {
        let head = "version: t\nas_of: 2026-01-01\nproxylogon: [CVE-2021-26855]\nproxyshell: []\n\
                    licence_switch: {plain: x, plain_until: 2021-06-30, diagnostic_data: []}\n\
                    eems: {first_cu: {}, new_mitigations_need: {from: 2026-07-01, su: Jun26SU}}\n\
                    mitigations: []\n";
        let family = |name: &str, levels: &str| {
            format!("{head}families:\n  - family: {name}\n    support: {{}}\n    levels:\n{levels}")
        };
        let error =
            |yaml: String| crate::error_chain::one_line(&Catalogue::parse(&yaml).unwrap_err());
        let err = error(family(
            "Exchange 2019",
            "      - {cu: CU2, kind: CU, build: 15.2.397.3, released: 2019-06-18}\n      \
             - {cu: CU1, kind: CU, build: 15.2.330.5, released: 2019-02-12}\n",
        ));
        assert!(err.contains("ascending build order"), "{err}");
        let err = error(family(
            "Exchange 2016",
            "      - {cu: CU1, kind: CU, build: 15.2.330.5, released: 2019-02-12}\n",
        ));
        assert!(err.contains("not of this family"), "{err}");
        let err = error(family(
            "Exchange 2019",
            "      - {cu: CU1, kind: CU, build: 15.2.330.5, released: 2019-02-12, updates: [\
             {su: Mar21SU, kind: SU, build: 15.2.330.11, released: 2021-03, fixes: [CVE-2021-26855]}]}\n      \
             - {cu: CU2, kind: CU, build: 15.2.397.3, released: 2019-06}\n",
        ));
        assert!(
            err.contains("does not fix them") && err.contains("CVE-2021-26855"),
            "{err}"
        );
        let err = error(family(
            "Exchange 2019",
            "      - {cu: CU1, kind: CU, build: 15.2.330.5, released: 2019-02-12, fixes: [], \
             needs: [{cves: [CVE-2021-26855], mode: ad_prep, check: prepare_schema, what: x}]}\n",
        ));
        assert!(err.contains("does not list in `fixes`"), "{err}");
        let err = error(format!("{head}families: []\nextra: 1\n"));
        assert!(err.contains("does not parse"), "{err}");
    }
}
