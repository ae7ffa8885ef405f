//! The engine clock. Everything time-dependent asks it. In `system` mode it is the wall
//! clock; in `manual` mode time stands still until `advance` moves it, so a notebook is
//! deterministic. Mode and manual time persist in `<workspace>/clock.json`.
//!
//! One `Clock` with a mode, rather than swapping `dyn Clock` objects: the mode changes at run
//! time and services hold the clock for their whole life, so they must see the switch.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::Result;
use crate::service_err;
use crate::workspace::{Workspace, read_json, write_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    System,
    Manual,
}

impl std::fmt::Display for ClockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClockMode::System => "system",
            ClockMode::Manual => "manual",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClockState {
    mode: ClockMode,
    /// The frozen time while in manual mode.
    manual_time: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct Clock {
    path: PathBuf,
    state: Mutex<ClockState>,
    /// Bumped whenever the manual time moves or the mode changes, so time-driven services
    /// (buffer flushes, schedules) can react to `%clock advance`.
    ticks: watch::Sender<DateTime<Utc>>,
}

/// How often a system-clock wait reports progress.
const WAIT_PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl Clock {
    pub fn open(workspace: &Workspace) -> Result<Self> {
        let path = workspace.root().join("clock.json");
        let state = read_json(&path)?
            .unwrap_or(ClockState { mode: ClockMode::System, manual_time: None });
        let now = now_of(&state);
        Ok(Self { path, state: Mutex::new(state), ticks: watch::Sender::new(now) })
    }

    /// The engine's current time.
    pub fn now(&self) -> DateTime<Utc> {
        now_of(&self.lock())
    }

    pub fn mode(&self) -> ClockMode {
        self.lock().mode
    }

    /// Freezes time at `at` (default: now, to the whole second) and switches to manual mode.
    pub fn set_manual(&self, at: Option<DateTime<Utc>>) -> Result<DateTime<Utc>> {
        let at = at.unwrap_or_else(|| {
            let now = self.now();
            DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
        });
        self.update(ClockState { mode: ClockMode::Manual, manual_time: Some(at) })?;
        Ok(at)
    }

    /// Returns to the wall clock.
    pub fn set_system(&self) -> Result<DateTime<Utc>> {
        self.update(ClockState { mode: ClockMode::System, manual_time: None })?;
        Ok(Utc::now())
    }

    /// Moves manual time forward; refused on the system clock, which nobody can advance.
    pub fn advance(&self, by: Duration) -> Result<DateTime<Utc>> {
        let state = self.lock().clone();
        let Some(time) = state.manual_time.filter(|_| state.mode == ClockMode::Manual) else {
            return Err(service_err!(InvalidClockMode, "the clock is in system mode and cannot be advanced")
                .with_hint("switch with `%clock manual`, or let time pass with `%clock wait`"));
        };
        let delta = chrono::Duration::from_std(by)
            .map_err(|_| service_err!(InvalidArgument, "{by:?} is too long to advance by"))?;
        let to = time.checked_add_signed(delta).ok_or_else(|| service_err!(InvalidArgument, "advancing by {by:?} goes past the last date there is"))?;
        self.update(ClockState { mode: ClockMode::Manual, manual_time: Some(to) })?;
        Ok(to)
    }

    /// Lets `duration` of engine time pass: advances a manual clock at once, or sleeps on the
    /// system clock, calling `progress(elapsed)` now and then. Cancel by dropping the future.
    pub async fn wait(
        &self,
        duration: Duration,
        mut progress: impl FnMut(Duration),
    ) -> Result<DateTime<Utc>> {
        if self.mode() == ClockMode::Manual {
            return self.advance(duration);
        }
        let start = tokio::time::Instant::now();
        let end = start + duration;
        loop {
            let now = tokio::time::Instant::now();
            tokio::time::sleep_until((now + WAIT_PROGRESS_EVERY).min(end)).await;
            let now = tokio::time::Instant::now();
            if now >= end {
                break;
            }
            progress(now - start);
        }
        Ok(self.now())
    }

    /// A receiver that changes whenever the clock is switched or advanced.
    pub fn subscribe(&self) -> watch::Receiver<DateTime<Utc>> {
        self.ticks.subscribe()
    }

    fn update(&self, next: ClockState) -> Result<()> {
        let mut state = self.lock();
        write_json(&self.path, &next)?;
        *state = next;
        let now = now_of(&state);
        drop(state);
        self.ticks.send_replace(now);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn now_of(state: &ClockState) -> DateTime<Utc> {
    match (state.mode, state.manual_time) {
        (ClockMode::Manual, Some(t)) => t,
        _ => Utc::now(),
    }
}

/// RFC 3339 in UTC with a `Z`; a fraction (to the millisecond, no trailing zeros) only when
/// the time has one.
pub fn format_time(t: DateTime<Utc>) -> String {
    let text = t.to_rfc3339_opts(SecondsFormat::Millis, true);
    match text.strip_suffix("Z").and_then(|s| s.rsplit_once('.')) {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() { format!("{whole}Z") } else { format!("{whole}.{fraction}Z") }
        }
        None => text,
    }
}

/// Parses a time as users type it: RFC 3339 (`2026-01-01T00:00:00Z`), a naive UTC date-time
/// (`2026-01-01 12:00`, `2026-01-01T12:00:00`), or a date (`2026-01-01`, midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_default());
    }
    Err(service_err!(InvalidArgument, "cannot read {text:?} as a time")
        .with_hint("use RFC 3339 UTC, e.g. 2026-01-01T00:00:00Z"))
}

/// Parses a duration as users type it: `90s`, `1m30s`, `2h`, `500ms`, `1.5s`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if let Some(secs) = text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok())
        && secs.is_finite() && secs >= 0.0 {
            // `1e300s` is a number of seconds no duration holds: an error, not a panic.
            return Duration::try_from_secs_f64(secs).map_err(|_| service_err!(InvalidArgument, "{text:?} is longer than any duration"));
        }
    humantime::parse_duration(text).map_err(|_| {
        service_err!(InvalidArgument, "cannot read {text:?} as a duration")
            .with_hint("write durations like 90s, 1m30s, 2h, 500ms")
    })
}

/// Formats a duration compactly (`1m 30s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let d = if d.as_millis() >= 1000 { Duration::from_secs(d.as_secs()) } else { Duration::from_millis(d.as_millis() as u64) };
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> (tempfile::TempDir, Workspace, Clock) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path().to_path_buf()).unwrap();
        let clock = Clock::open(&ws).unwrap();
        (dir, ws, clock)
    }

    #[test]
    fn manual_time_stands_still_advances_and_persists() {
        let (_dir, ws, clock) = clock();
        let t0 = parse_time("2026-01-01T00:00:00Z").unwrap();
        clock.set_manual(Some(t0)).unwrap();
        assert_eq!(clock.now(), t0);
        let t1 = clock.advance(parse_duration("90s").unwrap()).unwrap();
        assert_eq!(format_time(t1), "2026-01-01T00:01:30Z");
        let reopened = Clock::open(&ws).unwrap();
        assert_eq!(reopened.mode(), ClockMode::Manual);
        assert_eq!(reopened.now(), t1);
    }

    #[test]
    fn system_clock_cannot_be_advanced() {
        let (_dir, _ws, clock) = clock();
        let err = clock.advance(Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.code(), "InvalidClockMode");
    }

    #[tokio::test(start_paused = true)]
    async fn system_wait_sleeps_and_reports_progress() {
        let (_dir, _ws, clock) = clock();
        let mut reports = 0;
        let start = tokio::time::Instant::now();
        clock.wait(Duration::from_secs(1), |_| reports += 1).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(reports, 3);
    }

    #[tokio::test]
    async fn manual_wait_advances_instantly_and_notifies() {
        let (_dir, _ws, clock) = clock();
        let t0 = clock.set_manual(Some(parse_time("2026-01-01").unwrap())).unwrap();
        let mut ticks = clock.subscribe();
        let t1 = clock.wait(Duration::from_secs(60), |_| panic!("no progress in manual mode")).await.unwrap();
        assert_eq!(t1 - t0, chrono::Duration::seconds(60));
        assert!(ticks.has_changed().unwrap());
        assert_eq!(*ticks.borrow_and_update(), t1);
    }

    #[test]
    fn parses_what_users_type() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("nope").unwrap_err().code(), "InvalidArgument");
        assert_eq!(format_time(parse_time("2026-01-01 12:30").unwrap()), "2026-01-01T12:30:00Z");
        assert_eq!(format_time(parse_time("2026-01-01T00:00:00.250+01:00").unwrap()), "2025-12-31T23:00:00.25Z");
        assert_eq!(format_time(parse_time("2026-01-01T00:00:00.000123Z").unwrap()), "2026-01-01T00:00:00Z");
    }
}
