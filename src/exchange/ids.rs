//! Identifiers that appear in the catalogue and on servers: Microsoft KB article numbers
//! ([`Kb`], e.g. `KB5000871`) and CVE ids ([`Cve`], e.g. `CVE-2021-26855`). Both are parsed into
//! numbers so they compare and sort correctly, and display in their canonical spelling.

use std::fmt;
use std::str::FromStr;

/// A Microsoft Knowledge Base article number. Parses `KB5000871`, `kb5000871` and `5000871`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kb(pub u32);

/// Why a KB number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a KB number (expected e.g. KB5000871)")]
pub struct KbParseError(String);

impl FromStr for Kb {
    type Err = KbParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("KB")
            .or_else(|| s.strip_prefix("kb"))
            .or_else(|| s.strip_prefix("Kb"))
            .unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KbParseError(s.to_owned()));
        }
        digits
            .parse()
            .map(Kb)
            .map_err(|_| KbParseError(s.to_owned()))
    }
}

impl fmt::Display for Kb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KB{}", self.0)
    }
}

/// A CVE id such as `CVE-2021-26855`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cve {
    pub year: u16,
    pub number: u32,
}

/// Why a CVE id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a CVE id (expected e.g. CVE-2021-26855)")]
pub struct CveParseError(String);

impl FromStr for Cve {
    type Err = CveParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CveParseError(s.to_owned());
        let rest = s.strip_prefix("CVE-").ok_or_else(bad)?;
        let (year, number) = rest.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if year.len() != 4 || !digits(year) || number.len() < 4 || !digits(number) {
            return Err(bad());
        }
        Ok(Cve {
            year: year.parse().map_err(|_| bad())?,
            number: number.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for Cve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CVE-{}-{:04}", self.year, self.number)
    }
}

/// Serde as the display string, parsed back with `FromStr`.
macro_rules! serde_as_string {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_string!(Kb);
serde_as_string!(Cve);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_accepts_common_spellings() {
        assert_eq!("KB5000871".parse(), Ok(Kb(5000871)));
        assert_eq!("kb5000871".parse(), Ok(Kb(5000871)));
        assert_eq!("5000871".parse(), Ok(Kb(5000871)));
        assert_eq!(Kb(5000871).to_string(), "KB5000871");
        assert!("KB".parse::<Kb>().is_err());
        assert!("KB50008x1".parse::<Kb>().is_err());
        assert!("KB-5000871".parse::<Kb>().is_err());
    }

    #[test]
    fn cve_parses_sorts_and_displays() {
        let a: Cve = "CVE-2021-26855".parse().unwrap();
        let b: Cve = "CVE-2021-31207".parse().unwrap();
        let c: Cve = "CVE-2020-0688".parse().unwrap();
        assert_eq!(a.to_string(), "CVE-2021-26855");
        assert_eq!(c.to_string(), "CVE-2020-0688");
        assert!(c < a && a < b);
        for bad in [
            "CVE-21-1234",
            "cve-2021-26855",
            "CVE-2021-12",
            "CVE-2021",
            "X",
        ] {
            assert!(bad.parse::<Cve>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trips_as_strings() {
        let kb: Kb = serde_json::from_str("\"KB5003435\"").unwrap();
        assert_eq!(serde_json::to_string(&kb).unwrap(), "\"KB5003435\"");
        let cve: Cve = serde_json::from_str("\"CVE-2021-34473\"").unwrap();
        assert_eq!(serde_json::to_string(&cve).unwrap(), "\"CVE-2021-34473\"");
        assert!(serde_json::from_str::<Cve>("\"nope\"").is_err());
    }
}
