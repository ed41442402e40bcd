//! Maintenance windows: recurring periods, in a named time zone, when hosts may be changed.
//!
//! Syntax (one window; `-`, `–` or `—` between start and end; day names in English, full or
//! three letters, any case; times `HH:MM`, 24-hour; the time zone is an IANA name or `UTC`):
//!
//! - `Sat 22:00-Sun 04:00 Europe/Brussels`: weekly, from Saturday 22:00 to Sunday 04:00;
//! - `Sat 22:00-04:00 Europe/Brussels`: weekly, ending the same day or, if the end is not
//!   after the start, the next day;
//! - `daily 01:00-05:00 UTC`: every day (crossing midnight if the end is not after the start).
//!
//! Times are wall-clock times in the window's zone, so a window keeps its local hours across
//! daylight-saving changes: `Sat 22:00-Sun 04:00 Europe/Brussels` lasts 5 hours on the night
//! clocks go forward and 7 on the night they go back. A start or end that falls in a skipped
//! hour moves to the first instant after it; one in a repeated hour takes the first of the two.
//!
//! A host's windows come from the variable `salve_maintenance_window` (a string, or a list of
//! strings for several windows), set on a tenant, group or host like any variable, and read
//! when the inventory is loaded ([`crate::model::HostSettings`]). [`Schedule::can_start`] decides whether a host whose work is
//! estimated to take a given time may start now: only if the window it is in has that much
//! time left; otherwise it is deferred to the next window long enough.

use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan as _};

/// How far ahead to look for the next window: two weeks, so a weekly window is seen twice
/// (once may be shortened by a daylight-saving change).
const LOOKAHEAD_DAYS: i32 = 15;

/// Why a window could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("maintenance window `{text}`: {problem}")]
    Parse { text: String, problem: String },
}

/// Which days a window opens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Days {
    Every,
    On(Weekday),
}

/// One recurring window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    text: String,
    days: Days,
    start: Time,
    end: Time,
    /// Days from the start date to the end date (0 to 7).
    end_offset: i8,
    tz: TimeZone,
}

/// One concrete opening of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Occurrence {
    start: Timestamp,
    end: Timestamp,
}

impl Occurrence {
    fn contains(&self, ts: Timestamp) -> bool {
        self.start <= ts && ts < self.end
    }

    fn length(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Window {
    type Err = WindowError;

    fn from_str(text: &str) -> Result<Window, WindowError> {
        Window::parse(text)
    }
}

impl Window {
    /// Parse one window (syntax in the module docs).
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let fail = |problem: String| WindowError::Parse {
            text: text.to_string(),
            problem,
        };
        let normal = text.trim().replace(['–', '—'], "-");
        let (body, zone) = normal
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| fail("expected `DAY HH:MM-DAY HH:MM ZONE`".into()))?;
        if parse_time(zone).is_ok() {
            return Err(fail(
                "no time zone; end with one, e.g. `UTC` or `Europe/Brussels`".into(),
            ));
        }
        let tz = TimeZone::get(zone).map_err(|_| {
            fail(format!(
                "unknown time zone `{zone}` (use an IANA name such as `Europe/Brussels`, or `UTC`)"
            ))
        })?;
        let (from, to) = body
            .split_once('-')
            .ok_or_else(|| fail("expected a start and an end separated by `-`".into()))?;
        let (from_day, start) = day_and_time(from).map_err(|e| fail(e.to_string()))?;
        let (to_day, end) = day_and_time(to).map_err(|e| fail(e.to_string()))?;
        let crosses = end <= start;
        let (days, end_offset) = match (from_day, to_day) {
            (None, _) => return Err(fail("start with a day name or `daily`".into())),
            (Some(Days::Every), None) => (Days::Every, i8::from(crosses)),
            (Some(Days::Every), Some(_)) => {
                return Err(fail("a `daily` window ends at a time, not on a day".into()));
            }
            (Some(Days::On(day)), None) => (Days::On(day), i8::from(crosses)),
            (Some(Days::On(day)), Some(Days::On(to_day))) => {
                let offset =
                    (to_day.to_monday_zero_offset() - day.to_monday_zero_offset()).rem_euclid(7);
                if offset == 0 && crosses {
                    return Err(fail(
                        "ends before it starts on the same day; give the end day".into(),
                    ));
                }
                (Days::On(day), offset)
            }
            (Some(Days::On(_)), Some(Days::Every)) => {
                return Err(fail("`daily` can only start a window".into()));
            }
        };
        if matches!(days, Days::Every) && start == end {
            return Err(fail("starts and ends at the same time".into()));
        }
        Ok(Window {
            text: text.trim().to_string(),
            days,
            start,
            end,
            end_offset,
            tz,
        })
    }

    /// The occurrences that start within `LOOKAHEAD_DAYS` before or after `ts`'s local date,
    /// in order.
    fn occurrences(&self, ts: Timestamp) -> Vec<Occurrence> {
        let today = ts.to_zoned_datetime(self.tz.clone()).date();
        (-8..=LOOKAHEAD_DAYS)
            .filter_map(|k| today.checked_add(k.days()).ok())
            .filter(|d| match self.days {
                Days::Every => true,
                Days::On(day) => d.weekday() == day,
            })
            .filter_map(|d| self.occurrence(d))
            .collect()
    }

    fn occurrence(&self, date: Date) -> Option<Occurrence> {
        let end_date = date.checked_add(i32::from(self.end_offset).days()).ok()?;
        let at = |d: Date, t: Time| {
            self.tz
                .to_ambiguous_timestamp(d.to_datetime(t))
                .compatible()
        };
        let start = at(date, self.start).ok()?;
        let end = at(end_date, self.end).ok()?;
        (start < end).then_some(Occurrence { start, end })
    }

    fn current(&self, ts: Timestamp) -> Option<Occurrence> {
        self.occurrences(ts).into_iter().find(|o| o.contains(ts))
    }

    /// Is `ts` inside the window?
    pub fn contains(&self, ts: Timestamp) -> bool {
        self.current(ts).is_some()
    }

    /// Time left in the window at `ts`, if `ts` is inside it.
    pub fn remaining(&self, ts: Timestamp) -> Option<Duration> {
        self.current(ts)
            .and_then(|o| Duration::try_from(o.end.duration_since(ts)).ok())
    }

    /// When the window next opens after `ts` (strictly after: a window open at `ts` gives
    /// its next opening).
    pub fn next_start(&self, ts: Timestamp) -> Option<Timestamp> {
        self.occurrences(ts)
            .into_iter()
            .map(|o| o.start)
            .find(|s| *s > ts)
    }
}

/// What a host may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Start,
    /// Not now; the next window long enough opens at `next`.
    Defer {
        reason: String,
        next: Timestamp,
    },
    /// No window in the next two weeks is long enough for the estimate.
    NeverFits {
        reason: String,
    },
}

/// A host's windows: it may be worked on while any of them is open.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub windows: Vec<Window>,
}

impl Schedule {
    /// The IANA name of the first window's time zone (the one a report shows times in), if
    /// it has one.
    pub fn time_zone(&self) -> Option<&str> {
        self.windows.first().and_then(|w| w.tz.iana_name())
    }

    pub fn contains(&self, ts: Timestamp) -> bool {
        self.windows.iter().any(|w| w.contains(ts))
    }

    /// The most time left in any window open at `ts`.
    pub fn remaining(&self, ts: Timestamp) -> Option<Duration> {
        self.windows.iter().filter_map(|w| w.remaining(ts)).max()
    }

    /// The earliest opening of any window after `ts`.
    pub fn next_start(&self, ts: Timestamp) -> Option<Timestamp> {
        self.windows.iter().filter_map(|w| w.next_start(ts)).min()
    }

    /// The openings of all the windows that have not ended at `ts`, in order, as far ahead as
    /// [`Schedule::can_start`] looks (two weeks): what a queued item may be claimed in.
    pub fn openings(&self, ts: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let mut all: Vec<_> = self
            .windows
            .iter()
            .flat_map(|w| w.occurrences(ts))
            .filter(|o| o.end > ts)
            .map(|o| (o.start, o.end))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// May work estimated at `estimated` start at `ts`? Only inside a window with at least
    /// that much time left; otherwise it waits for the next opening long enough.
    pub fn can_start(&self, ts: Timestamp, estimated: Duration) -> Decision {
        let left = self.remaining(ts);
        if left.is_some_and(|left| left >= estimated) {
            return Decision::Start;
        }
        let needed = SignedDuration::try_from(estimated).unwrap_or(SignedDuration::MAX);
        let next = self
            .windows
            .iter()
            .flat_map(|w| w.occurrences(ts))
            .filter(|o| o.start > ts && o.length() >= needed)
            .map(|o| o.start)
            .min();
        let names = self
            .windows
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let reason = match left {
            Some(left) => format!(
                "needs about {}, only {} left in {names}",
                human(estimated),
                human(left)
            ),
            None => format!("outside the maintenance window {names}"),
        };
        match next {
            Some(next) => Decision::Defer { reason, next },
            None => Decision::NeverFits {
                reason: format!(
                    "needs about {}, longer than any opening of {names}",
                    human(estimated)
                ),
            },
        }
    }
}

/// Minutes-precision durations: `5h 00m`, `45m`.
fn human(d: Duration) -> String {
    let minutes = d.as_secs().div_ceil(60);
    if minutes >= 60 {
        format!("{}h {:02}m", minutes / 60, minutes % 60)
    } else {
        format!("{minutes}m")
    }
}

/// Why one end of a window (`DAY HH:MM`) cannot be read.
#[derive(Debug, thiserror::Error)]
enum EndError {
    #[error("`{0}` is not `DAY HH:MM` or `HH:MM`")]
    Shape(String),
    #[error(
        "`{word}` is not a day name{}",
        suggestion.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
    )]
    Day {
        word: String,
        suggestion: Option<String>,
    },
    #[error("`{0}` is not a time (HH:MM, 00:00 to 23:59)")]
    Time(String),
}

/// `DAY HH:MM`, `daily HH:MM` or `HH:MM`.
fn day_and_time(part: &str) -> Result<(Option<Days>, Time), EndError> {
    let mut words = part.split_whitespace();
    let (day, time) = match (words.next(), words.next(), words.next()) {
        (Some(time), None, None) => (None, time),
        (Some(day), Some(time), None) => (Some(parse_day(day)?), time),
        _ => return Err(EndError::Shape(part.trim().to_string())),
    };
    Ok((day, parse_time(time)?))
}

fn parse_day(word: &str) -> Result<Days, EndError> {
    let day = match word.to_ascii_lowercase().as_str() {
        "daily" => return Ok(Days::Every),
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tues" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => {
            let names = ["daily", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            return Err(EndError::Day {
                word: word.to_string(),
                suggestion: crate::diag::did_you_mean(&word.to_ascii_lowercase(), names),
            });
        }
    };
    Ok(Days::On(day))
}

fn parse_time(word: &str) -> Result<Time, EndError> {
    let bad = || EndError::Time(word.to_string());
    let (h, m) = word.split_once(':').ok_or_else(bad)?;
    if m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}
