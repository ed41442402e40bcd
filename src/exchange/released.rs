//! A release date as the sources give it: a day (`2021-03-02`) or only a month (`2018-03`, for
//! most security updates before 2021). Ordered by the first day it can mean, so a month-only
//! date sorts before every day of that month.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;

/// A release date, day- or month-precise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Released {
    /// The first day the date can mean (the 1st for a month-only date).
    first_day: Date,
    /// The source gives the day, not only the month.
    day_precise: bool,
}

/// Why a release date was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a release date (expected YYYY-MM-DD or YYYY-MM)")]
pub struct ReleasedParseError(String);

impl Released {
    /// The first day the date can mean.
    pub fn first_day(self) -> Date {
        self.first_day
    }

    /// The last day the date can mean (the month's last day for a month-only date).
    pub fn last_day(self) -> Date {
        if self.day_precise {
            self.first_day
        } else {
            self.first_day.last_of_month()
        }
    }
}

impl From<Date> for Released {
    fn from(first_day: Date) -> Self {
        Released {
            first_day,
            day_precise: true,
        }
    }
}

impl FromStr for Released {
    type Err = ReleasedParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ReleasedParseError(s.to_owned());
        let well_formed = |n: usize| {
            s.len() == n
                && s.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        };
        if well_formed(10) {
            return s.parse::<Date>().map(Released::from).map_err(|_| bad());
        }
        if well_formed(7) {
            let first_day = format!("{s}-01").parse::<Date>().map_err(|_| bad())?;
            return Ok(Released {
                first_day,
                day_precise: false,
            });
        }
        Err(bad())
    }
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.day_precise {
            write!(f, "{}", self.first_day)
        } else {
            write!(f, "{}", self.first_day.strftime("%Y-%m"))
        }
    }
}

impl serde::Serialize for Released {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Released {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_days_and_months() {
        let day: Released = "2021-03-02".parse().unwrap();
        assert_eq!(day.to_string(), "2021-03-02");
        assert_eq!(day.last_day(), day.first_day());
        let month: Released = "2018-03".parse().unwrap();
        assert_eq!(month.to_string(), "2018-03");
        assert_eq!(month.last_day().to_string(), "2018-03-31");
        assert!(month < "2018-03-02".parse().unwrap());
        for bad in [
            "2018",
            "2018-3",
            "18-03-01",
            "2018-13",
            "2018-02-30",
            "2018/03/01",
        ] {
            assert!(bad.parse::<Released>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_parses_back_and_order_follows_the_calendar(
            y in 2000i16..2100, m in 1i8..=12, d in 1i8..=28, precise: bool,
            y2 in 2000i16..2100, m2 in 1i8..=12, d2 in 1i8..=28,
        ) {
            let text = if precise { format!("{y:04}-{m:02}-{d:02}") } else { format!("{y:04}-{m:02}") };
            let r: Released = text.parse().unwrap();
            prop_assert_eq!(r.to_string(), text);
            let other: Released = format!("{y2:04}-{m2:02}-{d2:02}").parse().unwrap();
            if r.first_day() != other.first_day() {
                prop_assert_eq!(r < other, r.first_day() < other.first_day());
            }
        }
    }
}
