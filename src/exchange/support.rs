//! Where a server stands in Microsoft's lifecycle on a given day: supported, receiving only paid
//! Extended Security Updates, or out of support since a date. Read from the catalogue's
//! per-family `support` dates (extended end, ESU periods and the CUs they cover, and the modern
//! lifecycle's "only the newest CU" rule for Subscription Edition).

use jiff::civil::Date;
use serde::Serialize;

use super::catalogue::FamilyEntry;

/// The support state of one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportState {
    pub state: State,
    /// Out of support since this day (the day after support ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Date>,
    /// ESU: the last day of the current period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Date>,
    /// One line for people.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Supported,
    /// Past the end of extended support; security updates reach ESU customers only.
    EsuOnly,
    OutOfSupport,
}

/// Today's date in UTC, the day support states are judged on.
pub fn today_utc() -> Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
}

/// The state of a server of `entry` on CU `cu` (if known) on `today`.
pub fn support_state(entry: &FamilyEntry, cu: Option<&str>, today: Date) -> SupportState {
    let family = entry.family;
    let support = &entry.support;
    let Some(end) = support.extended_end else {
        let newest = entry.newest().map(|l| l.cu.as_str());
        return match (support.newest_cu_only, cu, newest) {
            (true, Some(cu), Some(newest)) if cu != newest => SupportState {
                state: State::OutOfSupport,
                since: None,
                until: None,
                detail: format!(
                    "{family} {cu} is not the newest CU ({newest}); only the newest CU is supported"
                ),
            },
            _ => SupportState {
                state: State::Supported,
                since: None,
                until: None,
                detail: format!("{family} is supported (modern lifecycle)"),
            },
        };
    };
    if today <= end {
        return SupportState {
            state: State::Supported,
            since: None,
            until: None,
            detail: format!("{family} is supported until {end}"),
        };
    }
    let since = end.tomorrow().unwrap_or(end);
    let covers = |cus: &[String]| cu.is_some_and(|cu| cus.iter().any(|c| c == cu));
    if let Some(esu) = support
        .esu
        .iter()
        .find(|e| e.from <= today && today <= e.to && covers(&e.cus))
    {
        return SupportState {
            state: State::EsuOnly,
            since: Some(since),
            until: Some(esu.to),
            detail: format!(
                "{family} is out of support since {since}; ESU period {} (until {}) covers {}, \
                 for ESU customers only",
                esu.period,
                esu.to,
                cu.unwrap_or_default()
            ),
        };
    }
    let ended = support
        .esu
        .iter()
        .filter(|e| e.to < today && covers(&e.cus))
        .max_by_key(|e| e.to)
        .map(|e| format!("; its last ESU period ({}) ended on {}", e.period, e.to))
        .unwrap_or_default();
    SupportState {
        state: State::OutOfSupport,
        since: Some(since),
        until: None,
        detail: format!("{family} is out of support since {since}{ended}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::build::Family;
    use crate::exchange::catalogue::compiled_in;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn follows_extended_end_and_esu_periods() {
        let cat = compiled_in().unwrap();
        let e2019 = cat.family(Family::Exchange2019).unwrap();
        let at = |cu, day| support_state(e2019, Some(cu), d(day));
        assert_eq!(at("CU15", "2025-10-14").state, State::Supported);
        let esu = at("CU15", "2026-06-10");
        assert_eq!(esu.state, State::EsuOnly);
        assert_eq!(esu.until, Some(d("2026-10-31")));
        let old_cu = at("CU13", "2026-06-10");
        assert_eq!(old_cu.state, State::OutOfSupport);
        assert_eq!(old_cu.since, Some(d("2025-10-15")));
        let after = at("CU15", "2026-12-07");
        assert_eq!(after.state, State::OutOfSupport);
        assert!(
            after.detail.contains("ended on 2026-10-31"),
            "{}",
            after.detail
        );
        let e2013 = cat.family(Family::Exchange2013).unwrap();
        assert_eq!(
            support_state(e2013, Some("CU23"), d("2026-12-07")).since,
            Some(d("2023-04-12"))
        );
        let se = cat.family(Family::SubscriptionEdition).unwrap();
        assert_eq!(
            support_state(se, Some("RTM"), d("2026-12-07")).state,
            State::Supported
        );
    }
}
