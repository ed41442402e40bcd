//! Exchange build numbers and product families.
//!
//! A [`Build`] is four unsigned integers (`major.minor.build.revision`), compared as a tuple and
//! never as text. It parses both the short form Microsoft publishes (`15.1.2176.9`) and the
//! zero-padded long form some file-version strings carry (`15.01.2176.009`); both are the same
//! build. It always displays (and serialises) in the short form.
//!
//! [`Family`] is the product a build belongs to. Exchange 2019 and Subscription Edition share
//! `15.2`, so the third number is the only discriminator there.

use std::fmt;
use std::str::FromStr;

/// An exact Exchange build, e.g. `15.2.858.5`. `Ord` is the ordering of the 4-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Build {
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub revision: u32,
}

/// First build number of Exchange Server Subscription Edition within `15.2` (SE RTM is
/// 15.2.2562.17); every `15.2` build below it is Exchange 2019.
pub const SE_FIRST_BUILD: u32 = 2562;

impl Build {
    pub const fn new(major: u32, minor: u32, build: u32, revision: u32) -> Self {
        Self {
            major,
            minor,
            build,
            revision,
        }
    }

    /// The build as a tuple, for callers that want to compare parts explicitly.
    pub const fn as_tuple(&self) -> (u32, u32, u32, u32) {
        (self.major, self.minor, self.build, self.revision)
    }

    /// The product family, or `None` for versions salve does not handle (Exchange 2007 and
    /// older, or numbers that are no Exchange version at all).
    pub fn family(&self) -> Option<Family> {
        match (self.major, self.minor) {
            (14, _) => Some(Family::Exchange2010),
            (15, 0) => Some(Family::Exchange2013),
            (15, 1) => Some(Family::Exchange2016),
            (15, 2) if self.build < SE_FIRST_BUILD => Some(Family::Exchange2019),
            (15, 2) => Some(Family::SubscriptionEdition),
            _ => None,
        }
    }

    /// True when both builds have the same `major.minor.build` (the revision alone differs), as
    /// the SUs of one CU have.
    pub fn same_base(&self, other: &Build) -> bool {
        (self.major, self.minor, self.build) == (other.major, other.minor, other.build)
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.build, self.revision
        )
    }
}

/// Why a build string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildParseError {
    #[error("expected four dot-separated numbers such as 15.2.858.5, found {found} part(s)")]
    PartCount { found: usize },
    #[error("part {position} is empty")]
    EmptyPart { position: usize },
    #[error("part {position} `{part}` is not a decimal number")]
    NotANumber { position: usize, part: String },
    #[error("part {position} `{part}` is too large")]
    TooLarge { position: usize, part: String },
}

impl FromStr for Build {
    type Err = BuildParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 4 {
            return Err(BuildParseError::PartCount { found: parts.len() });
        }
        let mut numbers = [0u32; 4];
        for (i, (part, slot)) in parts.iter().zip(numbers.iter_mut()).enumerate() {
            *slot = parse_part(i + 1, part)?;
        }
        let [major, minor, build, revision] = numbers;
        Ok(Build::new(major, minor, build, revision))
    }
}

fn parse_part(position: usize, part: &str) -> Result<u32, BuildParseError> {
    if part.is_empty() {
        return Err(BuildParseError::EmptyPart { position });
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BuildParseError::NotANumber {
            position,
            part: part.to_owned(),
        });
    }
    // Only ASCII digits remain, so the one possible failure is overflow.
    part.parse().map_err(|_| BuildParseError::TooLarge {
        position,
        part: part.to_owned(),
    })
}

impl serde::Serialize for Build {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Build {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("invalid build `{text}`: {e}")))
    }
}

/// An Exchange product family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
pub enum Family {
    #[serde(rename = "Exchange 2010")]
    Exchange2010,
    #[serde(rename = "Exchange 2013")]
    Exchange2013,
    #[serde(rename = "Exchange 2016")]
    Exchange2016,
    #[serde(rename = "Exchange 2019")]
    Exchange2019,
    #[serde(rename = "Exchange SE")]
    SubscriptionEdition,
}

impl Family {
    /// Full name, e.g. `Exchange 2016`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Exchange2010 => "Exchange 2010",
            Family::Exchange2013 => "Exchange 2013",
            Family::Exchange2016 => "Exchange 2016",
            Family::Exchange2019 => "Exchange 2019",
            Family::SubscriptionEdition => "Exchange SE",
        }
    }

    /// Short name used in paths, e.g. `2016` or `SE`.
    pub fn short(self) -> &'static str {
        match self {
            Family::Exchange2010 => "2010",
            Family::Exchange2013 => "2013",
            Family::Exchange2016 => "2016",
            Family::Exchange2019 => "2019",
            Family::SubscriptionEdition => "SE",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Family {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &str) -> Build {
        s.parse().unwrap()
    }

    #[test]
    fn parses_short_and_long_forms_as_the_same_build() {
        assert_eq!(b("15.2.858.5"), Build::new(15, 2, 858, 5));
        assert_eq!(b("15.02.0858.005"), b("15.2.858.5"));
        assert_eq!(b("15.01.2176.009").to_string(), "15.1.2176.9");
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert_eq!(
            "15.2.858".parse::<Build>(),
            Err(BuildParseError::PartCount { found: 3 })
        );
        assert_eq!(
            "15.2..5".parse::<Build>(),
            Err(BuildParseError::EmptyPart { position: 3 })
        );
        assert!(matches!(
            "15.2.x.5".parse::<Build>(),
            Err(BuildParseError::NotANumber { position: 3, .. })
        ));
        assert!(matches!(
            "15.2.858.+5".parse::<Build>(),
            Err(BuildParseError::NotANumber { position: 4, .. })
        ));
        assert!(matches!(
            " 15.2.858.5".parse::<Build>(),
            Err(BuildParseError::NotANumber { position: 1, .. })
        ));
        assert!(matches!(
            "15.2.99999999999.5".parse::<Build>(),
            Err(BuildParseError::TooLarge { position: 3, .. })
        ));
        assert!("".parse::<Build>().is_err());
    }

    #[test]
    fn compares_numerically_not_as_text() {
        assert!(b("15.2.1118.7") > b("15.2.922.7"));
        assert!(b("15.1.2176.14") > b("15.1.2176.9"));
    }

    #[test]
    fn detects_families() {
        assert_eq!(b("14.3.513.0").family(), Some(Family::Exchange2010));
        assert_eq!(b("15.0.1497.2").family(), Some(Family::Exchange2013));
        assert_eq!(b("15.1.2308.8").family(), Some(Family::Exchange2016));
        assert_eq!(b("15.2.2561.99").family(), Some(Family::Exchange2019));
        assert_eq!(
            b("15.2.2562.17").family(),
            Some(Family::SubscriptionEdition)
        );
        assert_eq!(b("8.3.517.0").family(), None);
        assert_eq!(b("15.3.1.1").family(), None);
    }

    #[test]
    fn serde_uses_the_short_string_form() {
        let json = serde_json::to_string(&b("15.01.2176.009")).unwrap();
        assert_eq!(json, "\"15.1.2176.9\"");
        let back: Build = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b("15.1.2176.9"));
        let err = serde_json::from_str::<Build>("\"15.1\"").unwrap_err();
        assert!(err.to_string().contains("invalid build `15.1`"), "{err}");
    }

    fn pad(n: u32, width: usize) -> String {
        format!("{n:0width$}")
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(a: u32, m: u32, c: u32, r: u32) {
            let build = Build::new(a, m, c, r);
            prop_assert_eq!(build.to_string().parse::<Build>(), Ok(build));
        }

        #[test]
        fn long_and_short_forms_are_equal(
            a in 0u32..100, m in 0u32..100, c in 0u32..100_000, r in 0u32..10_000,
            w in 0usize..6,
        ) {
            let short = format!("{a}.{m}.{c}.{r}");
            let long = format!("{}.{}.{}.{}", pad(a, 2), pad(m, 2), pad(c, 4 + w), pad(r, 3 + w));
            prop_assert_eq!(short.parse::<Build>(), long.parse::<Build>());
        }

        #[test]
        fn ordering_is_tuple_ordering(
            x in any::<(u32, u32, u32, u32)>(), y in any::<(u32, u32, u32, u32)>(),
        ) {
            let bx = Build::new(x.0, x.1, x.2, x.3);
            let by = Build::new(y.0, y.1, y.2, y.3);
            prop_assert_eq!(bx.cmp(&by), x.cmp(&y));
            prop_assert_eq!(bx.as_tuple(), x);
        }
    }
}
