//! The build/CVE catalogue: every Exchange 2013/2016/2019 CU and SU of the ProxyLogon/ProxyShell
//! era, Exchange 2010 SP3 RU31/RU32 and Subscription Edition RTM, with release date, KB, the CVEs
//! each build fixes, the .NET versions each CU supports, and Setup's licence-switch rule.
//!
//! The data lives in `catalogue.yaml` next to this file, is compiled into the binary and parsed
//! once at first use ([`catalogue`]). Parsing also checks the data (order, families, CVE ids), so
//! a bad edit fails the `compiled_in_catalogue_loads` test rather than a user's run.
//!
//! Shape: a family has *levels* (a CU, or an update rollup for Exchange 2010: what Setup or a
//! rollup installs) and each level has *updates* (its SUs, which only install on that level).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use jiff::civil::Date;
use serde::Deserialize;

use super::build::{Build, Family};
use super::dotnet::DotNet;
use super::ids::{Cve, Kb};

/// The catalogue data as compiled into the binary.
const CATALOGUE_YAML: &str = include_str!("catalogue.yaml");

/// The parsed, checked catalogue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// `<date of the build-list snapshot>.<revision>`, bumped whenever the data changes.
    pub version: String,
    /// The ProxyLogon CVEs.
    pub proxylogon: BTreeSet<Cve>,
    /// The ProxyShell CVEs.
    pub proxyshell: BTreeSet<Cve>,
    /// Which licence switch Setup takes for a CU.
    pub licence_switch: LicenceRule,
    families: Vec<FamilyEntry>,
}

/// The catalogue's builds of one product family.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyEntry {
    pub family: Family,
    /// The tracked CVEs (ProxyLogon/ProxyShell) that apply to this family at all.
    pub cves: BTreeSet<Cve>,
    /// Oldest first.
    pub levels: Vec<Level>,
}

/// How a level is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum LevelKind {
    /// A cumulative update, installed by Setup.
    #[serde(rename = "CU")]
    Cu,
    /// An Exchange 2010 update rollup.
    #[serde(rename = "RU")]
    Ru,
}

/// A CU (or 2010 RU): the base build a family's SUs are made for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Label such as `CU19`, `SP1` (2013 CU4), `RTM` or `SP3 RU31`.
    pub cu: String,
    pub kind: LevelKind,
    pub build: Build,
    pub released: Date,
    #[serde(default)]
    pub kb: Option<Kb>,
    /// .NET versions supported with this CU; empty when the matrix does not cover it.
    #[serde(default)]
    pub dotnet: Vec<DotNet>,
    /// Tracked CVEs already fixed in this level's base build.
    #[serde(default)]
    pub includes: BTreeSet<Cve>,
    /// Microsoft named this CU as supported for KB5000871 when it shipped (2021-03-02).
    #[serde(default)]
    pub mar21_supported: bool,
    /// Each SU of this level contains every earlier SU of the same level.
    #[serde(default)]
    pub sus_cumulative: bool,
    /// This level's SUs, oldest first.
    #[serde(default)]
    pub updates: Vec<Update>,
    /// Fields no primary source confirms.
    #[serde(default)]
    pub unverified: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A security update for one level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    pub build: Build,
    pub released: Date,
    pub kb: Kb,
    /// CVEs fixed by reaching this build (earlier SUs' fixes are not repeated).
    pub fixes: BTreeSet<Cve>,
    /// An older-CU SU that Microsoft shipped only as a stop-gap for the ProxyLogon CVEs.
    #[serde(default)]
    pub stopgap: bool,
    /// Other builds that sources give for this same SU (accepted as equivalent).
    #[serde(default)]
    pub aliases: Vec<Build>,
    #[serde(default)]
    pub unverified: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
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
        self.aliases
            .iter()
            .copied()
            .chain([self.build])
            .min()
            .unwrap_or(self.build)
    }

    /// True when the build is this SU's build or one of its aliases.
    pub fn is_exactly(&self, build: Build) -> bool {
        self.build == build || self.aliases.contains(&build)
    }

    /// True when `fixes` is not confirmed by a primary source.
    pub fn fixes_unverified(&self) -> bool {
        self.unverified.iter().any(|f| f == "fixes")
    }
}

impl Level {
    /// The highest catalogued build of this level (its last SU, or the base build).
    pub fn last_build(&self) -> Build {
        self.updates.last().map_or(self.build, |u| u.build)
    }

    /// Every tracked CVE fixed once the level's last SU is installed.
    pub fn fixed_at_latest(&self) -> BTreeSet<Cve> {
        let mut fixed = self.includes.clone();
        for u in &self.updates {
            fixed.extend(u.fixes.iter().copied());
        }
        fixed
    }

    /// True when `includes` is not confirmed by a primary source.
    pub fn includes_unverified(&self) -> bool {
        self.unverified.iter().any(|f| f == "includes")
    }
}

impl FamilyEntry {
    /// The newest level of the family: the target of every CU upgrade.
    pub fn newest(&self) -> Option<&Level> {
        self.levels.last()
    }
}

/// Why the compiled-in catalogue is unusable (a bug in `catalogue.yaml`, caught by tests).
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the build catalogue does not parse: {0}")]
    Parse(#[source] marked_yaml::FromYamlError),
    #[error("the build catalogue is inconsistent: {0}")]
    Invalid(#[from] Inconsistency),
}

/// What makes catalogue data inconsistent; `level` names the offending level as
/// `family CU (build)`.
#[derive(Debug, thiserror::Error)]
pub enum Inconsistency {
    #[error("{family}: `cves` lists an untracked CVE")]
    UntrackedCve { family: Family },
    #[error("{level}: build is not of this family")]
    WrongFamily { level: String },
    #[error("{level}: levels must be in ascending build order")]
    NotAscending { level: String },
    #[error("{level}: `includes` lists a CVE outside `cves`")]
    IncludesUnknownCve { level: String },
    #[error("{level}: SUs present but `sus_cumulative` is not set")]
    SusNotCumulative { level: String },
    #[error(
        "{level}: SU {su} must follow the earlier builds of its CU and share its major.minor.build"
    )]
    SuOutOfPlace { level: String, su: Build },
    #[error("{family}: the newest level {cu} must fix every CVE in `cves`")]
    NewestMissesCves { family: Family, cu: String },
}

/// The compiled-in catalogue, parsed and checked on first use.
pub fn catalogue() -> Result<&'static Catalogue, &'static CatalogueError> {
    static CATALOGUE: OnceLock<Result<Catalogue, CatalogueError>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| Catalogue::parse(CATALOGUE_YAML))
        .as_ref()
}

impl Catalogue {
    /// Parse and check catalogue data.
    pub fn parse(yaml: &str) -> Result<Catalogue, CatalogueError> {
        let catalogue: Catalogue =
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

    /// Every tracked CVE (ProxyLogon and ProxyShell).
    pub fn tracked(&self) -> BTreeSet<Cve> {
        self.proxylogon.union(&self.proxyshell).copied().collect()
    }

    /// The licence switch Setup needs for this level.
    pub fn licence_switch(&self, level: &Level) -> LicenceSwitch {
        let rule = &self.licence_switch;
        if level.released <= rule.plain_until {
            LicenceSwitch::Plain(rule.plain.clone())
        } else {
            LicenceSwitch::DiagnosticData(rule.diagnostic_data.clone())
        }
    }

    /// Consistency checks; the message names the offending build.
    fn check(&self) -> Result<(), Inconsistency> {
        let tracked = self.tracked();
        for entry in &self.families {
            if !entry.cves.is_subset(&tracked) {
                return Err(Inconsistency::UntrackedCve {
                    family: entry.family,
                });
            }
            let mut previous: Option<Build> = None;
            for level in &entry.levels {
                let here = format!("{} {} ({})", entry.family, level.cu, level.build);
                if level.build.family() != Some(entry.family) {
                    return Err(Inconsistency::WrongFamily { level: here });
                }
                if previous.is_some_and(|p| p >= level.build) {
                    return Err(Inconsistency::NotAscending { level: here });
                }
                if !level.includes.is_subset(&entry.cves) {
                    return Err(Inconsistency::IncludesUnknownCve { level: here });
                }
                if !level.updates.is_empty() && !level.sus_cumulative {
                    // assess installs only the latest SU of a level; make the data say it may.
                    return Err(Inconsistency::SusNotCumulative { level: here });
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
                previous = Some(level.last_build());
            }
            if let Some(newest) = entry.newest()
                && !entry.cves.is_subset(&newest.fixed_at_latest())
            {
                return Err(Inconsistency::NewestMissesCves {
                    family: entry.family,
                    cu: newest.cu.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Build {
        s.parse().unwrap()
    }

    #[test]
    fn compiled_in_catalogue_loads() {
        let cat = catalogue().unwrap();
        assert!(!cat.version.is_empty());
        assert_eq!(cat.proxylogon.len(), 4);
        assert_eq!(cat.proxyshell.len(), 3);
        let count = |f| cat.family(f).unwrap().levels.len();
        assert_eq!(count(Family::Exchange2010), 2);
        assert_eq!(count(Family::Exchange2013), 24);
        assert_eq!(count(Family::Exchange2016), 22);
        assert_eq!(count(Family::Exchange2019), 11);
        assert_eq!(count(Family::SubscriptionEdition), 1);
        let builds: usize = cat
            .families()
            .iter()
            .flat_map(|f| &f.levels)
            .map(|l| 1 + l.updates.len())
            .sum();
        assert_eq!(builds, 2 + 31 + 40 + 26 + 1);
    }

    #[test]
    fn records_the_facts_the_planner_relies_on() {
        let cat = catalogue().unwrap();
        let e2016 = cat.family(Family::Exchange2016).unwrap();
        let cu19 = e2016.levels.iter().find(|l| l.cu == "CU19").unwrap();
        assert!(cu19.mar21_supported);
        assert_eq!(cu19.dotnet, vec![DotNet::V4_8]);
        assert_eq!(cu19.updates.last().unwrap().kb, Kb(5003435));
        let cu8 = e2016.levels.iter().find(|l| l.cu == "CU8").unwrap();
        assert_eq!(cu8.updates[0].accepted_from(), b("15.1.1415.8"));
        assert!(cu8.updates[0].stopgap && !cu8.mar21_supported);
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
    }

    #[test]
    fn licence_switch_changes_after_june_2021() {
        let cat = catalogue().unwrap();
        let newest = |f| cat.family(f).unwrap().newest().unwrap();
        assert_eq!(
            cat.licence_switch(newest(Family::Exchange2019)),
            LicenceSwitch::Plain("/IAcceptExchangeServerLicenseTerms".into())
        );
        let LicenceSwitch::DiagnosticData(switches) =
            cat.licence_switch(newest(Family::SubscriptionEdition))
        else {
            panic!("SE takes the diagnostic-data switches");
        };
        assert_eq!(switches.len(), 2);
        assert!(switches.iter().all(|s| s.contains("_DiagnosticData")));
    }

    #[test]
    fn rejects_inconsistent_data() {
        let head = "version: t\nproxylogon: [CVE-2021-26855]\nproxyshell: []\n\
                    licence_switch: {plain: x, plain_until: 2021-06-30, diagnostic_data: []}\n";
        let out_of_order = format!(
            "{head}families:\n  - family: Exchange 2019\n    cves: []\n    levels:\n      \
             - {{cu: CU2, kind: CU, build: 15.2.397.3, released: 2019-06-18}}\n      \
             - {{cu: CU1, kind: CU, build: 15.2.330.5, released: 2019-02-12}}\n"
        );
        let err = Catalogue::parse(&out_of_order).unwrap_err().to_string();
        assert!(err.contains("ascending build order"), "{err}");
        let wrong_family = format!(
            "{head}families:\n  - family: Exchange 2016\n    cves: []\n    levels:\n      \
             - {{cu: CU1, kind: CU, build: 15.2.330.5, released: 2019-02-12}}\n"
        );
        let err = Catalogue::parse(&wrong_family).unwrap_err().to_string();
        assert!(err.contains("not of this family"), "{err}");
        let unfixed = format!(
            "{head}families:\n  - family: Exchange 2019\n    cves: [CVE-2021-26855]\n    \
             levels:\n      - {{cu: CU1, kind: CU, build: 15.2.330.5, released: 2019-02-12}}\n"
        );
        let err = Catalogue::parse(&unfixed).unwrap_err().to_string();
        assert!(err.contains("must fix every CVE"), "{err}");
        let unknown_key = format!("{head}families: []\nextra: 1\n");
        let err = Catalogue::parse(&unknown_key).unwrap_err().to_string();
        assert!(err.contains("does not parse"), "{err}");
    }
}
