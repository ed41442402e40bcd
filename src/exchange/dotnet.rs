//! .NET Framework 4.x versions as Exchange's supportability matrix names them.
//!
//! Windows records the installed version as a `Release` number under
//! `HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full`; each version has a minimum release
//! number, and the installed version is the highest whose minimum the value reaches.

use std::fmt;
use std::str::FromStr;

/// A .NET Framework 4.x version relevant to Exchange 2013–2019 (oldest first, so `Ord` is the
/// version order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DotNet {
    V4_6_2,
    V4_7_1,
    V4_7_2,
    V4_8,
    V4_8_1,
}

impl DotNet {
    /// Every known version, oldest first.
    pub const ALL: [DotNet; 5] = [
        DotNet::V4_6_2,
        DotNet::V4_7_1,
        DotNet::V4_7_2,
        DotNet::V4_8,
        DotNet::V4_8_1,
    ];

    /// The lowest `Release` registry value that means this version is installed.
    pub fn min_release(self) -> u32 {
        match self {
            DotNet::V4_6_2 => 394_802,
            DotNet::V4_7_1 => 461_308,
            DotNet::V4_7_2 => 461_808,
            DotNet::V4_8 => 528_040,
            DotNet::V4_8_1 => 533_320,
        }
    }

    /// The version a `Release` registry value stands for; `None` when it is older than 4.6.2.
    pub fn from_release(release: u32) -> Option<DotNet> {
        DotNet::ALL
            .into_iter()
            .rev()
            .find(|v| release >= v.min_release())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DotNet::V4_6_2 => "4.6.2",
            DotNet::V4_7_1 => "4.7.1",
            DotNet::V4_7_2 => "4.7.2",
            DotNet::V4_8 => "4.8",
            DotNet::V4_8_1 => "4.8.1",
        }
    }
}

impl fmt::Display for DotNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a .NET version was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a known .NET Framework version (expected 4.6.2, 4.7.1, 4.7.2, 4.8, 4.8.1 \
     or a Release registry number such as 528040)"
)]
pub struct DotNetParseError(String);

impl FromStr for DotNet {
    type Err = DotNetParseError;

    /// Accepts a version (`4.8`) or a `Release` registry number (`528040`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(v) = DotNet::ALL.into_iter().find(|v| v.as_str() == s) {
            return Ok(v);
        }
        s.parse::<u32>()
            .ok()
            .and_then(DotNet::from_release)
            .ok_or_else(|| DotNetParseError(s.to_owned()))
    }
}

impl serde::Serialize for DotNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for DotNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_numbers_map_to_versions() {
        assert_eq!(DotNet::from_release(528_040), Some(DotNet::V4_8));
        assert_eq!(DotNet::from_release(528_449), Some(DotNet::V4_8));
        assert_eq!(DotNet::from_release(461_814), Some(DotNet::V4_7_2));
        assert_eq!(DotNet::from_release(533_320), Some(DotNet::V4_8_1));
        assert_eq!(DotNet::from_release(394_801), None);
    }

    #[test]
    fn parses_versions_and_release_numbers() {
        assert_eq!("4.7.2".parse(), Ok(DotNet::V4_7_2));
        assert_eq!("461308".parse(), Ok(DotNet::V4_7_1));
        assert!("4.5".parse::<DotNet>().is_err());
        assert!("100".parse::<DotNet>().is_err());
        assert!(DotNet::V4_7_1 < DotNet::V4_8);
    }
}
