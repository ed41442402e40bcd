//! The lab's own table of Exchange builds: the CUs and SUs a simulated host can run or be
//! updated to, with the facts the simulation needs (KB, .NET minimum, license switch).
//!
//! This is deliberately separate from salve's catalogue (`salve::exchange`): the lab plays the
//! servers, and a test double that shared the code under test could not catch its mistakes.
//! Figures come from the build-numbers page (see the domain reference §2 and §4.1).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A build as four integers, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Build(pub [u32; 4]);

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// Text that is not a four-part build number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a build number like 15.2.858.5")]
pub struct BadBuild(pub String);

impl FromStr for Build {
    type Err = BadBuild;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<u32> = s
            .trim()
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| BadBuild(s.to_string()))?;
        let four: [u32; 4] = parts.try_into().map_err(|_| BadBuild(s.to_string()))?;
        Ok(Build(four))
    }
}

impl Serialize for Build {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Build {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Product family, derived from the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ex2010,
    Ex2013,
    Ex2016,
    Ex2019,
    Se,
}

impl Family {
    pub fn of(build: Build) -> Option<Family> {
        match build.0 {
            [14, ..] => Some(Family::Ex2010),
            [15, 0, ..] => Some(Family::Ex2013),
            [15, 1, ..] => Some(Family::Ex2016),
            [15, 2, b, _] if b < 2562 => Some(Family::Ex2019),
            [15, 2, ..] => Some(Family::Se),
            _ => None,
        }
    }

    /// Product name as Setup and the Uninstall entries spell it.
    pub fn product_name(self) -> &'static str {
        match self {
            Family::Ex2010 => "Exchange 2010",
            Family::Ex2013 => "Exchange 2013",
            Family::Ex2016 => "Exchange 2016",
            Family::Ex2019 => "Exchange 2019",
            Family::Se => "Exchange Server SE",
        }
    }

    /// Name in Setup's start line (`Starting Microsoft Exchange Server 2019 Setup`).
    pub fn setup_name(self) -> &'static str {
        match self {
            Family::Ex2010 => "2010",
            Family::Ex2013 => "2013",
            Family::Ex2016 => "2016",
            Family::Ex2019 => "2019",
            Family::Se => "Subscription Edition",
        }
    }
}

/// A cumulative update (or RTM/SP) base build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CuInfo {
    pub label: &'static str,
    pub build: Build,
    pub kb: Option<&'static str>,
    /// Minimum .NET Framework `Release` value Setup accepts for this CU.
    pub dotnet_min: u32,
    /// From the September 2021 CUs the license switch must name the diagnostic data choice.
    pub diagnostic_data_switch: bool,
}

/// A security update for one CU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuInfo {
    /// The CU base build the SU belongs to.
    pub cu: Build,
    pub build: Build,
    pub kb: &'static str,
}

const NET_462: u32 = 394802;
const NET_471: u32 = 461308;
const NET_472: u32 = 461808;
const NET_48: u32 = 528040;

const fn b(a: u32, m: u32, c: u32, d: u32) -> Build {
    Build([a, m, c, d])
}

const fn cu(
    label: &'static str,
    build: Build,
    kb: Option<&'static str>,
    dotnet_min: u32,
) -> CuInfo {
    CuInfo {
        label,
        build,
        kb,
        dotnet_min,
        diagnostic_data_switch: false,
    }
}

const fn cu_dd(label: &'static str, build: Build, kb: Option<&'static str>) -> CuInfo {
    CuInfo {
        label,
        build,
        kb,
        dotnet_min: NET_48,
        diagnostic_data_switch: true,
    }
}

const fn su(cu: Build, build: Build, kb: &'static str) -> SuInfo {
    SuInfo { cu, build, kb }
}

/// CUs the lab knows, by family, oldest first.
pub static CUS: &[CuInfo] = &[
    cu("SP3 RU31", b(14, 3, 509, 0), None, NET_471),
    cu("SP3 RU32", b(14, 3, 513, 0), Some("KB5000978"), NET_471),
    cu("SP1", b(15, 0, 847, 32), None, NET_471),
    cu("CU21", b(15, 0, 1395, 4), Some("KB4099855"), NET_471),
    cu("CU22", b(15, 0, 1473, 3), Some("KB4345836"), NET_471),
    cu("CU23", b(15, 0, 1497, 2), Some("KB4489622"), NET_472),
    cu("CU8", b(15, 1, 1415, 2), Some("KB4035145"), NET_462),
    cu("CU12", b(15, 1, 1713, 5), Some("KB4471392"), NET_471),
    cu("CU14", b(15, 1, 1847, 3), Some("KB4514140"), NET_472),
    cu("CU17", b(15, 1, 2044, 4), Some("KB4556414"), NET_48),
    cu("CU18", b(15, 1, 2106, 2), Some("KB4571788"), NET_48),
    cu("CU19", b(15, 1, 2176, 2), Some("KB4588884"), NET_48),
    cu("CU20", b(15, 1, 2242, 4), Some("KB4602569"), NET_48),
    cu("CU21", b(15, 1, 2308, 8), Some("KB5003611"), NET_48),
    cu_dd("CU22", b(15, 1, 2375, 7), Some("KB5005333")),
    cu_dd("CU23", b(15, 1, 2507, 6), Some("KB5011155")),
    cu("RTM", b(15, 2, 221, 12), None, NET_472),
    cu("CU6", b(15, 2, 659, 4), Some("KB4556415"), NET_48),
    cu("CU7", b(15, 2, 721, 2), Some("KB4571787"), NET_48),
    cu("CU8", b(15, 2, 792, 3), Some("KB4588885"), NET_48),
    cu("CU9", b(15, 2, 858, 5), Some("KB4602570"), NET_48),
    cu("CU10", b(15, 2, 922, 7), Some("KB5003612"), NET_48),
    cu_dd("CU11", b(15, 2, 986, 5), Some("KB5005334")),
    cu_dd("CU14", b(15, 2, 1544, 4), Some("KB5035606")),
    cu_dd("CU15", b(15, 2, 1748, 10), Some("KB5042461")),
    cu_dd("RTM", b(15, 2, 2562, 17), None),
];

/// SUs the lab knows: March, April, May and July 2021 for the 2021 CUs above; March 2023 for
/// 2013 CU23; August 2025 to August 2026 for the lines Microsoft still served in 2026 (2016 CU23,
/// 2019 CU14 and CU15, SE RTM), hotfix updates included.
pub static SUS: &[SuInfo] = &[
    su(b(15, 0, 847, 32), b(15, 0, 847, 64), "KB5000871"),
    su(b(15, 0, 1395, 4), b(15, 0, 1395, 12), "KB5000871"),
    su(b(15, 0, 1473, 3), b(15, 0, 1473, 6), "KB5000871"),
    su(b(15, 0, 1497, 2), b(15, 0, 1497, 12), "KB5000871"),
    su(b(15, 0, 1497, 2), b(15, 0, 1497, 15), "KB5001779"),
    su(b(15, 0, 1497, 2), b(15, 0, 1497, 18), "KB5003435"),
    su(b(15, 0, 1497, 2), b(15, 0, 1497, 23), "KB5004778"),
    su(b(15, 1, 2044, 4), b(15, 1, 2044, 13), "KB5000871"),
    su(b(15, 1, 2106, 2), b(15, 1, 2106, 13), "KB5000871"),
    su(b(15, 1, 2176, 2), b(15, 1, 2176, 9), "KB5000871"),
    su(b(15, 1, 2176, 2), b(15, 1, 2176, 12), "KB5001779"),
    su(b(15, 1, 2176, 2), b(15, 1, 2176, 14), "KB5003435"),
    su(b(15, 1, 2242, 4), b(15, 1, 2242, 8), "KB5001779"),
    su(b(15, 1, 2242, 4), b(15, 1, 2242, 10), "KB5003435"),
    su(b(15, 1, 2242, 4), b(15, 1, 2242, 12), "KB5004779"),
    su(b(15, 1, 2308, 8), b(15, 1, 2308, 14), "KB5004779"),
    su(b(15, 2, 221, 12), b(15, 2, 221, 18), "KB5000871"),
    su(b(15, 2, 659, 4), b(15, 2, 659, 12), "KB5000871"),
    su(b(15, 2, 721, 2), b(15, 2, 721, 13), "KB5000871"),
    su(b(15, 2, 792, 3), b(15, 2, 792, 10), "KB5000871"),
    su(b(15, 2, 792, 3), b(15, 2, 792, 13), "KB5001779"),
    su(b(15, 2, 792, 3), b(15, 2, 792, 15), "KB5003435"),
    su(b(15, 2, 858, 5), b(15, 2, 858, 10), "KB5001779"),
    su(b(15, 2, 858, 5), b(15, 2, 858, 12), "KB5003435"),
    su(b(15, 2, 858, 5), b(15, 2, 858, 15), "KB5004780"),
    su(b(15, 2, 922, 7), b(15, 2, 922, 13), "KB5004780"),
    su(b(15, 0, 1497, 2), b(15, 0, 1497, 48), "KB5024296"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 58), "KB5063223"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 59), "KB5066370"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 61), "KB5066369"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 63), "KB5071873"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 66), "KB5074995"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 69), "KB5094144"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 71), "KB5103215"),
    su(b(15, 1, 2507, 6), b(15, 1, 2507, 72), "KB5121576"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 33), "KB5063222"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 34), "KB5066371"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 36), "KB5066368"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 37), "KB5071874"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 39), "KB5074994"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 41), "KB5094142"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 43), "KB5103214"),
    su(b(15, 2, 1544, 4), b(15, 2, 1544, 44), "KB5121575"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 36), "KB5063221"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 37), "KB5066372"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 39), "KB5066367"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 42), "KB5071875"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 43), "KB5074993"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 46), "KB5094140"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 48), "KB5103213"),
    su(b(15, 2, 1748, 10), b(15, 2, 1748, 49), "KB5121574"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 20), "KB5063224"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 27), "KB5066373"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 29), "KB5066366"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 35), "KB5071876"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 37), "KB5074992"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 41), "KB5081755"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 43), "KB5094139"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 45), "KB5103212"),
    su(b(15, 2, 2562, 17), b(15, 2, 2562, 46), "KB5121573"),
];

/// The CU a build belongs to: same family and same build number, highest base not above it.
pub fn cu_of(build: Build) -> Option<&'static CuInfo> {
    CUS.iter()
        .filter(|c| c.build.0[..3] == build.0[..3] && c.build <= build)
        .max_by_key(|c| c.build)
}

/// What each known CU's `/PrepareSchema` and `/PrepareAD` leave in Active Directory (schema
/// `rangeUpper`, organisation `objectVersion`), from CSS-Exchange's table.
static AD_VERSIONS: &[(Build, u32, u32)] = &[
    (b(15, 0, 847, 32), 15292, 15844),
    (b(15, 0, 1395, 4), 15312, 16130),
    (b(15, 0, 1473, 3), 15312, 16131),
    (b(15, 0, 1497, 2), 15312, 16133),
    (b(15, 1, 1415, 2), 15332, 16213),
    (b(15, 1, 1713, 5), 15332, 16215),
    (b(15, 1, 1847, 3), 15332, 16217),
    (b(15, 1, 2044, 4), 15332, 16217),
    (b(15, 1, 2106, 2), 15332, 16218),
    (b(15, 1, 2176, 2), 15333, 16219),
    (b(15, 1, 2242, 4), 15333, 16220),
    (b(15, 1, 2308, 8), 15334, 16221),
    (b(15, 1, 2375, 7), 15334, 16222),
    (b(15, 1, 2507, 6), 15334, 16223),
    (b(15, 2, 221, 12), 17000, 16751),
    (b(15, 2, 659, 4), 17001, 16754),
    (b(15, 2, 721, 2), 17001, 16755),
    (b(15, 2, 792, 3), 17002, 16756),
    (b(15, 2, 858, 5), 17002, 16757),
    (b(15, 2, 922, 7), 17003, 16758),
    (b(15, 2, 986, 5), 17003, 16759),
    (b(15, 2, 1544, 4), 17003, 16762),
    (b(15, 2, 1748, 10), 17003, 16763),
    (b(15, 2, 2562, 17), 17003, 16763),
];

/// The schema and organisation versions Setup of the CU at `cu` writes.
pub fn ad_versions(cu: Build) -> Option<(u32, u32)> {
    AD_VERSIONS
        .iter()
        .find(|(b, _, _)| *b == cu)
        .map(|&(_, schema, org)| (schema, org))
}

/// A known CU with exactly this base build.
pub fn cu_exact(build: Build) -> Option<&'static CuInfo> {
    CUS.iter().find(|c| c.build == build)
}

/// A known SU with exactly this build.
pub fn su_exact(build: Build) -> Option<&'static SuInfo> {
    SUS.iter().find(|s| s.build == build)
}

/// The SUs installed on a host at this build: every SU of its CU up to the build (cumulative).
pub fn sus_up_to(build: Build) -> impl Iterator<Item = &'static SuInfo> {
    SUS.iter()
        .filter(move |s| s.build.0[..3] == build.0[..3] && s.build <= build)
}

/// `Security Update for Exchange Server 2019 Cumulative Update 8 (KB5000871)`.
pub fn su_display_name(su: &SuInfo) -> String {
    let product = Family::of(su.build).map_or("Exchange", Family::product_name);
    let year = product.trim_start_matches("Exchange ");
    let cu = cu_exact(su.cu).map_or("", |c| c.label);
    let level = match cu.strip_prefix("CU") {
        Some(n) => format!("Cumulative Update {n}"),
        None if cu == "SP1" => "Service Pack 1".to_string(),
        None => cu.to_string(),
    };
    format!(
        "Security Update for Exchange Server {year} {level} ({})",
        su.kb
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Build {
        s.parse().unwrap()
    }

    #[test]
    fn builds_compare_numerically() {
        assert!(p("15.2.858.10") > p("15.2.858.5"));
        assert_eq!(p(" 15.2.792.3 ").to_string(), "15.2.792.3");
        assert!("15.2.792".parse::<Build>().is_err());
        assert!("15.x.1.1".parse::<Build>().is_err());
    }

    #[test]
    fn families_and_cus() {
        assert_eq!(Family::of(p("15.2.2562.17")), Some(Family::Se));
        assert_eq!(Family::of(p("15.2.858.5")), Some(Family::Ex2019));
        assert_eq!(cu_of(p("15.2.792.13")).unwrap().label, "CU8");
        assert_eq!(cu_of(p("15.1.2176.14")).unwrap().label, "CU19");
        assert_eq!(sus_up_to(p("15.2.792.13")).count(), 2);
        assert_eq!(cu_of(p("15.2.1544.36")).unwrap().label, "CU14");
        assert_eq!(cu_of(p("15.2.2562.43")).unwrap().label, "RTM");
        assert_eq!(sus_up_to(p("15.2.2562.43")).count(), 7);
        assert_eq!(
            su_display_name(su_exact(p("15.2.792.10")).unwrap()),
            "Security Update for Exchange Server 2019 Cumulative Update 8 (KB5000871)"
        );
    }

    #[test]
    fn every_su_belongs_to_a_known_cu() {
        for s in SUS {
            assert!(cu_exact(s.cu).is_some(), "{}", s.build);
            assert_eq!(s.cu.0[..3], s.build.0[..3]);
        }
    }
}
