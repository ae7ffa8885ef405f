//! Schedules, one parser for every scheduled thing (crawlers, Glue triggers): Glue's
//! six-field `cron(Minutes Hours Day-of-month Month Day-of-week Year)` in UTC, as the Glue
//! and EventBridge guides write them, and `rate(N minutes|hours|days)` — a Lakebook
//! convenience kept from before (Glue itself takes only `cron` for crawlers and triggers).
//!
//! The cron fields take numbers, `*`, lists `a,b`, ranges `a-b`, steps `a/n` and `*/n`,
//! month and weekday names (`JAN`, `MON`; Sunday is 1), `?` in one of the two day fields
//! (one of them must be `?`), `L` (the month's last day; `5L` its last Thursday), `15W` (the
//! weekday nearest the 15th; `LW` the last weekday) and `6#3` (the third Friday).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::error::Result;
use crate::service_err;

/// How far ahead a cron schedule is searched for its next firing.
const HORIZON_DAYS: i64 = 366 * 5;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Cron(Cron),
    Rate(std::time::Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    days: DayRule,
    months: BTreeSet<u32>,
    years: Option<BTreeSet<i32>>,
}

#[derive(Debug, Clone, PartialEq)]
enum DayRule {
    /// Days of the month (numbers, `L`, `NW`, `LW`).
    Month(Vec<MonthDay>),
    /// Days of the week, 1 = Sunday (numbers, `NL`, `N#K`).
    Week(Vec<WeekDay>),
    /// `*` in one field and `?` in the other: every day.
    Any,
}

#[derive(Debug, Clone, PartialEq)]
enum MonthDay {
    Day(u32),
    Last,
    NearestWeekday(u32),
    LastWeekday,
}

#[derive(Debug, Clone, PartialEq)]
enum WeekDay {
    Day(u32),
    Last(u32),
    Nth(u32, u32),
}

fn bad(text: &str, why: impl std::fmt::Display) -> crate::Error {
    service_err!(InvalidInputException, "cannot read the schedule {text:?}: {why}")
        .with_hint("Glue's schedules are cron(Minutes Hours Day-of-month Month Day-of-week Year) in UTC, e.g. \"cron(15 12 * * ? *)\" (12:15 every day) or \"cron(0 8 ? * MON-FRI *)\"; rate(N minutes|hours|days) works too")
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A number or a name (`JAN` = 1, `SUN` = 1).
fn value(text: &str, names: &[&str], min: u32, max: u32, whole: &str) -> Result<u32> {
    let upper = text.to_ascii_uppercase();
    let n = match names.iter().position(|n| *n == upper) {
        Some(i) => i as u32 + 1,
        None => text.parse::<u32>().map_err(|_| bad(whole, format!("{text:?} is not a number{}", if names.is_empty() { "" } else { " or a name" })))?,
    };
    if n < min || n > max {
        return Err(bad(whole, format!("{n} is outside {min}-{max}")));
    }
    Ok(n)
}

/// A field of numbers: `*`, lists, ranges, steps.
fn numbers(field: &str, names: &[&str], min: u32, max: u32, whole: &str) -> Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| bad(whole, format!("step {s:?} is not a number")))?.max(1)),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, names, min, max, whole)?, value(b, names, min, max, whole)?),
                None => {
                    let a = value(r, names, min, max, whole)?;
                    (a, if part.contains('/') { max } else { a })
                }
            },
        };
        if from > to {
            return Err(bad(whole, format!("the range {range} runs backwards")));
        }
        out.extend((from..=to).step_by(step as usize));
    }
    Ok(out)
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if let Some(inner) = trimmed.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            let (n, unit) = inner.trim().split_once(' ').ok_or_else(|| bad(text, "write rate(N minutes|hours|days)"))?;
            let n: u64 = n.parse().map_err(|_| bad(text, format!("{n:?} is not a number")))?;
            let seconds = match unit.trim() {
                "minute" | "minutes" => 60,
                "hour" | "hours" => 3600,
                "day" | "days" => 86_400,
                other => return Err(bad(text, format!("the unit {other:?} is not minutes, hours or days"))),
            };
            if n == 0 {
                return Err(bad(text, "the rate is 0"));
            }
            // A century at most: beyond it the next time is past what dates can hold.
            let every = n.checked_mul(seconds).filter(|s| *s <= 100 * 365 * 86_400).ok_or_else(|| bad(text, "the rate is longer than 100 years"))?;
            return Ok(Schedule::Rate(std::time::Duration::from_secs(every)));
        }
        let inner = trimmed.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')).ok_or_else(|| bad(text, "it is neither cron(…) nor rate(…)"))?;
        let fields: Vec<&str> = inner.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields[..] else {
            return Err(bad(text, format!("Glue's cron has six fields (Minutes Hours Day-of-month Month Day-of-week Year), not {}", fields.len())));
        };
        let days = match (dom, dow) {
            ("?", "?") => return Err(bad(text, "only one of Day-of-month and Day-of-week can be ?")),
            ("?", "*") | ("*", "?") => DayRule::Any,
            ("?", week) => DayRule::Week(week_days(week, text)?),
            (month_days, "?") => DayRule::Month(month_days_of(month_days, text)?),
            _ => return Err(bad(text, "one of Day-of-month and Day-of-week must be ? (Glue does not take both)")),
        };
        let years = match year {
            "*" => None,
            y => Some(numbers(y, &[], 1970, 2199, text)?.into_iter().map(|y| y as i32).collect()),
        };
        Ok(Schedule::Cron(Cron {
            minutes: numbers(minutes, &[], 0, 59, text)?,
            hours: numbers(hours, &[], 0, 23, text)?,
            days,
            months: numbers(month, &MONTHS, 1, 12, text)?,
            years,
        }))
    }

    /// The first moment strictly after `after` the schedule fires (None: never again). A
    /// rate fires every interval counted from `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate(every) => after.checked_add_signed(Duration::from_std(*every).ok()?),
            Schedule::Cron(cron) => cron.next_after(after),
        }
    }
}

fn month_days_of(field: &str, whole: &str) -> Result<Vec<MonthDay>> {
    let mut out = Vec::new();
    for part in field.split(',') {
        match part.to_ascii_uppercase().as_str() {
            "L" => out.push(MonthDay::Last),
            "LW" => out.push(MonthDay::LastWeekday),
            p if p.ends_with('W') => out.push(MonthDay::NearestWeekday(value(&p[..p.len() - 1], &[], 1, 31, whole)?)),
            _ => out.extend(numbers(part, &[], 1, 31, whole)?.into_iter().map(MonthDay::Day)),
        }
    }
    Ok(out)
}

fn week_days(field: &str, whole: &str) -> Result<Vec<WeekDay>> {
    let mut out = Vec::new();
    for part in field.split(',') {
        let upper = part.to_ascii_uppercase();
        if let Some((day, n)) = upper.split_once('#') {
            let n = n.parse::<u32>().ok().filter(|n| (1..=5).contains(n)).ok_or_else(|| bad(whole, format!("{part}: the week after # is 1-5")))?;
            out.push(WeekDay::Nth(value(day, &WEEKDAYS, 1, 7, whole)?, n));
        } else if upper.len() > 1 && upper.ends_with('L') {
            out.push(WeekDay::Last(value(&upper[..upper.len() - 1], &WEEKDAYS, 1, 7, whole)?));
        } else if upper == "L" {
            out.push(WeekDay::Day(7));
        } else {
            out.extend(numbers(part, &WEEKDAYS, 1, 7, whole)?.into_iter().map(WeekDay::Day));
        }
    }
    Ok(out)
}

fn last_day(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.pred_opt()).map_or(28, |d| d.day())
}

/// 1 = Sunday … 7 = Saturday.
fn weekday(date: NaiveDate) -> u32 {
    date.weekday().num_days_from_sunday() + 1
}

/// The weekday nearest `day` in the same month (Quartz's `W`).
fn nearest_weekday(year: i32, month: u32, day: u32) -> u32 {
    let last = last_day(year, month);
    let day = day.min(last);
    let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else { return day };
    match weekday(date) {
        7 if day == 1 => 3,        // Saturday the 1st → Monday the 3rd
        7 => day - 1,              // Saturday → Friday
        1 if day == last => day - 2, // Sunday the last → Friday
        1 => day + 1,              // Sunday → Monday
        _ => day,
    }
}

impl Cron {
    fn day_matches(&self, date: NaiveDate) -> bool {
        let (y, m, d) = (date.year(), date.month(), date.day());
        match &self.days {
            DayRule::Any => true,
            DayRule::Month(rules) => rules.iter().any(|r| match r {
                MonthDay::Day(n) => *n == d,
                MonthDay::Last => d == last_day(y, m),
                MonthDay::NearestWeekday(n) => d == nearest_weekday(y, m, *n),
                MonthDay::LastWeekday => d == nearest_weekday(y, m, last_day(y, m)),
            }),
            DayRule::Week(rules) => {
                let w = weekday(date);
                rules.iter().any(|r| match r {
                    WeekDay::Day(n) => *n == w,
                    WeekDay::Last(n) => *n == w && d + 7 > last_day(y, m),
                    WeekDay::Nth(n, k) => *n == w && (d - 1) / 7 + 1 == *k,
                })
            }
        }
    }

    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.date_naive();
        for offset in 0..HORIZON_DAYS {
            let date = start + Duration::days(offset);
            if self.years.as_ref().is_some_and(|y| !y.contains(&date.year())) || !self.months.contains(&date.month()) || !self.day_matches(date) {
                continue;
            }
            for &h in &self.hours {
                for &m in &self.minutes {
                    let at = Utc.from_utc_datetime(&date.and_hms_opt(h, m, 0)?);
                    if at > after {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

/// A schedule's next firing at or before `now`, counted from `since` (the last run, or the
/// creation): what is due.
pub fn due(schedule: &Schedule, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    schedule.next_after(since).is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule).unwrap().next_after(at(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn the_glue_guides_examples() {
        // "Time-based schedules for jobs and crawlers": 12:15 UTC every day.
        assert_eq!(next("cron(15 12 * * ? *)", "2026-12-04T13:00:00Z"), "2026-12-05T12:15:00+00:00");
        // Every day at 10:15 / 12:15 …: a list of hours.
        assert_eq!(next("cron(15 10,12 * * ? *)", "2026-12-04T10:15:00Z"), "2026-12-04T12:15:00+00:00");
        // 18:00 Monday to Friday.
        assert_eq!(next("cron(0 18 ? * MON-FRI *)", "2026-12-04T18:30:00Z"), "2026-12-07T18:00:00+00:00");
        // 08:00 on the first day of every month.
        assert_eq!(next("cron(0 8 1 * ? *)", "2026-12-04T00:00:00Z"), "2027-01-01T08:00:00+00:00");
        // Every 15 minutes.
        assert_eq!(next("cron(0/15 * * * ? *)", "2026-12-04T10:07:00Z"), "2026-12-04T10:15:00+00:00");
        // Every 10 minutes, Monday to Friday.
        assert_eq!(next("cron(0/10 * ? * MON-FRI *)", "2026-12-05T10:07:00Z"), "2026-12-07T00:00:00+00:00");
        // Every 5 minutes between 08:00 and 17:55, Monday to Friday.
        assert_eq!(next("cron(0/5 8-17 ? * MON-FRI *)", "2026-12-04T17:56:00Z"), "2026-12-07T08:00:00+00:00");
    }

    #[test]
    fn last_nearest_and_nth_days() {
        assert_eq!(next("cron(0 0 L * ? *)", "2026-02-01T00:00:00Z"), "2026-02-28T00:00:00+00:00");
        assert_eq!(next("cron(0 0 L * ? *)", "2028-02-01T00:00:00Z"), "2028-02-29T00:00:00+00:00");
        // The 15th of Nov 2026 is a Sunday: the nearest weekday is Monday the 16th.
        assert_eq!(next("cron(0 0 15W * ? *)", "2026-11-01T00:00:00Z"), "2026-11-16T00:00:00+00:00");
        // Last weekday of Jan 2027: the 31st is a Sunday → Friday the 29th.
        assert_eq!(next("cron(0 0 LW * ? *)", "2027-01-01T00:00:00Z"), "2027-01-29T00:00:00+00:00");
        // The third Friday of December 2026.
        assert_eq!(next("cron(0 0 ? * 6#3 *)", "2026-12-01T00:00:00Z"), "2026-12-18T00:00:00+00:00");
        // The last Thursday of December 2026.
        assert_eq!(next("cron(0 0 ? * 5L *)", "2026-12-01T00:00:00Z"), "2026-12-31T00:00:00+00:00");
        // A year field: only 2028.
        assert_eq!(next("cron(0 0 1 1 ? 2028)", "2026-12-01T00:00:00Z"), "2028-01-01T00:00:00+00:00");
        assert!(Schedule::parse("cron(0 0 1 1 ? 2026)").unwrap().next_after(at("2026-12-01T00:00:00Z")).is_none());
    }

    #[test]
    fn bad_schedules_say_why() {
        for (text, why) in [
            ("cron(0 12 * * *)", "six fields"),
            ("cron(0 12 * * MON *)", "must be ?"),
            ("cron(0 12 ? * ? *)", "only one"),
            ("cron(61 12 * * ? *)", "outside 0-59"),
            ("cron(0 12 * FOO ? *)", "not a number or a name"),
            ("rate(0 minutes)", "the rate is 0"),
            ("every hour", "neither"),
        ] {
            let e = Schedule::parse(text).unwrap_err();
            assert_eq!(e.code(), "InvalidInputException");
            assert!(e.message().contains(why), "{text}: {e}");
        }
        assert_eq!(Schedule::parse("rate(2 hours)").unwrap(), Schedule::Rate(std::time::Duration::from_secs(7200)));
    }

    #[test]
    fn due_counts_from_the_last_run() {
        let s = Schedule::parse("cron(0 * * * ? *)").unwrap();
        assert!(!due(&s, at("2026-12-04T10:00:00Z"), at("2026-12-04T10:59:00Z")));
        assert!(due(&s, at("2026-12-04T10:00:00Z"), at("2026-12-04T11:00:00Z")));
    }
}
