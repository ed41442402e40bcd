//! Maintenance windows with a fixed clock: parsing (both dashes, daily, errors), membership,
//! time left, next opening, daylight-saving changes in Europe/Brussels, the start-or-defer
//! decision, and reading `salve_maintenance_window` from host variables.

use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;
use salve::model::{HostSettings, SettingError};
use salve::schedule::{Decision, Schedule, Window, WindowError};
use serde_json::json;

/// The windows in `vars`, read as the inventory loader reads them; the first error if any.
fn schedule(
    vars: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<Schedule>, SettingError> {
    HostSettings::read("ex01", vars)
        .map(|s| s.schedule)
        .map_err(|mut errors| errors.remove(0))
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

#[test]
fn en_dash_and_hyphen_mean_the_same() {
    let a = Window::parse("Sat 22:00–Sun 04:00 Europe/Brussels").unwrap();
    let b = Window::parse("saturday 22:00 - SUN 04:00 Europe/Brussels").unwrap();
    // 2024-06-08 is a Saturday; Brussels is UTC+2 in summer.
    for ts in [
        "2024-06-08T19:59:59Z",
        "2024-06-08T20:00:00Z",
        "2024-06-09T01:59:59Z",
        "2024-06-09T02:00:00Z",
    ] {
        assert_eq!(a.contains(at(ts)), b.contains(at(ts)), "{ts}");
    }
    assert!(!a.contains(at("2024-06-08T19:59:59Z")));
    assert!(a.contains(at("2024-06-08T20:00:00Z")));
    assert!(a.contains(at("2024-06-09T01:59:59Z")));
    assert!(
        !a.contains(at("2024-06-09T02:00:00Z")),
        "the end is exclusive"
    );
}

#[test]
fn remaining_and_next_start() {
    let w = Window::parse("Sat 22:00-Sun 04:00 Europe/Brussels").unwrap();
    assert_eq!(
        w.remaining(at("2024-06-09T00:30:00Z")),
        Some(Duration::from_secs(5400))
    );
    assert_eq!(w.remaining(at("2024-06-10T00:30:00Z")), None);
    // From Monday, the next opening is Saturday 22:00 local.
    assert_eq!(
        w.next_start(at("2024-06-10T12:00:00Z")),
        Some(at("2024-06-15T20:00:00Z"))
    );
    // From inside a window, the next opening is the following week's.
    assert_eq!(
        w.next_start(at("2024-06-08T21:00:00Z")),
        Some(at("2024-06-15T20:00:00Z"))
    );
}

#[test]
fn daily_windows_and_crossing_midnight() {
    let w = Window::parse("daily 01:00-05:00 UTC").unwrap();
    assert!(w.contains(at("2024-01-03T01:00:00Z")));
    assert!(!w.contains(at("2024-01-03T05:00:00Z")));
    assert_eq!(
        w.next_start(at("2024-01-03T06:00:00Z")),
        Some(at("2024-01-04T01:00:00Z"))
    );
    let night = Window::parse("daily 22:00-02:00 UTC").unwrap();
    assert!(night.contains(at("2024-01-03T23:00:00Z")));
    assert!(night.contains(at("2024-01-04T01:59:00Z")));
    assert!(!night.contains(at("2024-01-04T02:00:00Z")));
    let same_day = Window::parse("Tue 20:00-23:00 UTC").unwrap();
    assert!(
        same_day.contains(at("2024-01-02T21:00:00Z")),
        "2024-01-02 is a Tuesday"
    );
    let shorthand = Window::parse("Sat 22:00-04:00 UTC").unwrap();
    assert!(
        shorthand.contains(at("2024-01-07T03:00:00Z")),
        "ends on Sunday morning"
    );
}

#[test]
fn windows_keep_local_hours_across_daylight_saving_changes() {
    let w = Window::parse("Sat 22:00–Sun 04:00 Europe/Brussels").unwrap();
    // Clocks go forward on Sunday 2024-03-31 at 02:00: 22:00 CET to 04:00 CEST is 5 hours.
    let start = at("2024-03-30T21:00:00Z");
    assert!(w.contains(start));
    assert_eq!(w.remaining(start), Some(hours(5)));
    assert!(
        !w.contains(at("2024-03-31T02:00:00Z")),
        "04:00 CEST is 02:00 UTC"
    );
    // Clocks go back on Sunday 2024-10-27 at 03:00: 22:00 CEST to 04:00 CET is 7 hours.
    let start = at("2024-10-26T20:00:00Z");
    assert_eq!(w.remaining(start), Some(hours(7)));
    assert!(w.contains(at("2024-10-27T02:59:00Z")));
    assert!(!w.contains(at("2024-10-27T03:00:00Z")));
    // A job of 5.5 hours fits the autumn night but not the spring one.
    let schedule = Schedule { windows: vec![w] };
    let job = Duration::from_secs(5 * 3600 + 1800);
    assert_eq!(
        schedule.can_start(at("2024-10-26T20:00:00Z"), job),
        Decision::Start
    );
    match schedule.can_start(at("2024-03-30T21:00:00Z"), job) {
        Decision::Defer { reason, next } => {
            assert_eq!(
                next,
                at("2024-04-06T20:00:00Z"),
                "next Saturday, now in CEST"
            );
            assert!(
                reason.contains("needs about 5h 30m, only 5h 00m left"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn work_that_would_overrun_the_window_waits() {
    let schedule = Schedule {
        windows: vec![Window::parse("daily 01:00-05:00 UTC").unwrap()],
    };
    assert_eq!(
        schedule.can_start(at("2024-01-03T01:00:00Z"), hours(4)),
        Decision::Start
    );
    assert_eq!(
        schedule.can_start(at("2024-01-03T02:00:00Z"), hours(3)),
        Decision::Start,
        "exactly enough time left"
    );
    let Decision::Defer { reason, next } = schedule.can_start(at("2024-01-03T02:00:01Z"), hours(3))
    else {
        panic!()
    };
    assert_eq!(next, at("2024-01-04T01:00:00Z"));
    assert!(
        reason.contains("left in `daily 01:00-05:00 UTC`"),
        "{reason}"
    );
    let Decision::Defer { reason, .. } = schedule.can_start(at("2024-01-03T12:00:00Z"), hours(1))
    else {
        panic!()
    };
    assert!(
        reason.starts_with("outside the maintenance window"),
        "{reason}"
    );
    assert!(matches!(
        schedule.can_start(at("2024-01-03T12:00:00Z"), hours(5)),
        Decision::NeverFits { .. }
    ));
}

#[test]
fn several_windows_take_the_best() {
    let schedule = schedule(
        json!({"salve_maintenance_window": ["daily 01:00-02:00 UTC", "Sun 00:00-06:00 UTC"]})
            .as_object()
            .unwrap(),
    )
    .unwrap()
    .unwrap();
    // Sunday 2024-01-07 01:30: the daily window has 30 minutes left, Sunday's 4.5 hours.
    assert_eq!(
        schedule.remaining(at("2024-01-07T01:30:00Z")),
        Some(Duration::from_secs(16200))
    );
    assert_eq!(
        schedule.can_start(at("2024-01-07T01:30:00Z"), hours(2)),
        Decision::Start
    );
    assert_eq!(
        schedule.next_start(at("2024-01-07T03:00:00Z")),
        Some(at("2024-01-08T01:00:00Z"))
    );
}

#[test]
fn openings_list_every_window_not_yet_ended_in_order() {
    let schedule = schedule(
        json!({"salve_maintenance_window": ["daily 01:00-02:00 UTC", "Sun 00:00-06:00 UTC"]})
            .as_object()
            .unwrap(),
    )
    .unwrap()
    .unwrap();
    // Sunday 2024-01-07 01:30: both windows are open; the daily one ends first.
    let openings = schedule.openings(at("2024-01-07T01:30:00Z"));
    assert_eq!(
        openings[..3],
        [
            (at("2024-01-07T00:00:00Z"), at("2024-01-07T06:00:00Z")),
            (at("2024-01-07T01:00:00Z"), at("2024-01-07T02:00:00Z")),
            (at("2024-01-08T01:00:00Z"), at("2024-01-08T02:00:00Z")),
        ]
    );
    assert!(
        openings.windows(2).all(|w| w[0] < w[1]),
        "sorted, no repeats"
    );
    assert!(openings.iter().all(|o| o.1 > at("2024-01-07T01:30:00Z")));
    // Two weeks ahead: 15 or so daily openings and two or three Sundays.
    assert!((16..=19).contains(&openings.len()), "{}", openings.len());
}

#[test]
fn errors_name_the_problem_the_variable_and_the_value() {
    let problem = |text: &str| {
        let WindowError::Parse { problem, .. } = Window::parse(text).unwrap_err();
        problem
    };
    assert!(problem("Sat 22:00-Sun 04:00").contains("no time zone"));
    assert!(
        problem("Sat 22:00-Sun 04:00 Mars/Olympus").contains("unknown time zone `Mars/Olympus`")
    );
    assert!(problem("Frid 22:00-Sun 04:00 UTC").contains("did you mean `fri`?"));
    assert!(problem("Sat 25:00-Sun 04:00 UTC").contains("`25:00` is not a time"));
    assert!(problem("daily 01:00-Sun 04:00 UTC").contains("daily"));
    assert!(problem("Sat 22:00-Sat 04:00 UTC").contains("give the end day"));
    assert!(problem("22:00-04:00 UTC").contains("day name or `daily`"));

    let err = schedule(
        json!({"salve_maintenance_window": ["daily 01:00-05:00 UTC", "Sat 9pm-Sun 04:00 UTC"]})
            .as_object()
            .unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `salve_maintenance_window[1]` = \"Sat 9pm-Sun 04:00 UTC\": `9pm` is not a time (HH:MM, 00:00 to 23:59)"
    );
    let err = schedule(json!({"salve_maintenance_window": 5}).as_object().unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("variable `salve_maintenance_window` = 5: expected a window"),
        "{err}"
    );
    assert!(schedule(json!({"salve_maintenance_window": []}).as_object().unwrap()).is_err());
    assert_eq!(schedule(json!({"other": 1}).as_object().unwrap()), Ok(None));
}

proptest! {
    /// Any weekly window opens at its start, is open just before its end, and is closed at it.
    #[test]
    fn weekly_windows_contain_their_own_span(
        from in 0usize..7, to in 0usize..7,
        (sh, sm) in (0i8..24, 0i8..60), (eh, em) in (0i8..24, 0i8..60),
    ) {
        let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        prop_assume!(!(from == to && (eh, em) <= (sh, sm)));
        let text = format!("{} {sh:02}:{sm:02}-{} {eh:02}:{em:02} UTC", days[from], days[to]);
        let w = Window::parse(&text).unwrap();
        // 2024-01-01 is a Monday.
        let start = at(&format!("2024-01-{:02}T{sh:02}:{sm:02}:00Z", from + 1));
        prop_assert!(w.contains(start), "{}", text);
        let len = w.remaining(start).unwrap();
        let end = start.checked_add(jiff::SignedDuration::try_from(len).unwrap()).unwrap();
        prop_assert!(!w.contains(end), "{}", text);
        prop_assert!(w.contains(end.checked_sub(jiff::SignedDuration::from_secs(1)).unwrap()));
    }
}
