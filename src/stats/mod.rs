//! What is counted about a route's traffic, outliving a snapshot: created by
//! the snapshot for each route, fed by the request path and telemetry, read
//! by the admin API and the metrics.
//!
//! - [`RouteCounters`]: answers and attempts by side, for `/routes`;
//! - [`History`]: the last 15 minutes, one point a minute, for the status page;
//! - [`window`]: the live statistics over a sliding window (SPEC §3.6);
//! - [`verdict`]: whether those statistics trip the rollback;
//! - [`latency`] and [`metric_handles`]: a route's metric series, resolved
//!   once per snapshot.

pub(crate) mod latency;
pub(crate) mod metric_handles;
pub(crate) mod verdict;
pub(crate) mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::route::Target;
pub(crate) use window::{Summary, Window};

/// A label value shared by `Arc`, so recording a request clones, not allocates.
pub(crate) type Label = Arc<String>;

/// Per-route request counts for `/routes`: lock-free, kept across reloads for
/// routes that keep their name.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Answers from the route's legacy backend.
    pub legacy: AtomicU64,
    /// Answers from the route's new backend.
    pub new: AtomicU64,
    pub fallbacks: AtomicU64,
    /// Fallbacks by reason, in the order of [`FALLBACK_REASONS`].
    pub fallback_reasons: [AtomicU64; FALLBACK_REASONS.len()],
    /// Answers made by the proxy itself (413, 502, 504 ...).
    pub errors: AtomicU64,
    /// Attempts on the route's legacy backend, failed ones included.
    pub legacy_attempts: AtomicU64,
    /// Attempts on legacy that failed (a status in `on_status`, connect
    /// error, timeout, reset).
    pub legacy_failures: AtomicU64,
    /// Attempts on the route's new backend, including those whose request
    /// was then replayed to legacy.
    pub new_attempts: AtomicU64,
    /// Attempts on new that failed, counted before any fallback: an answer
    /// legacy gave afterwards does not hide them.
    pub new_failures: AtomicU64,
    /// Fallback warnings in the log, rate-limited (see [`LogLimiter`]).
    pub fallback_log: LogLimiter,
}

/// The reasons of a fallback, as metrics and `/routes` name them.
pub(crate) const FALLBACK_REASONS: [&str; 5] =
    ["status", "connect", "timeout", "reset", "unhealthy"];

impl RouteCounters {
    /// Counts a fallback for `reason` (one of [`FALLBACK_REASONS`]).
    pub fn count_fallback(&self, reason: &str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = FALLBACK_REASONS.iter().position(|r| *r == reason) {
            self.fallback_reasons[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lets one log line through per `period`, counting the ones it holds back
/// so the next line can say how many were suppressed. Lock-free.
#[derive(Debug, Default)]
pub struct LogLimiter {
    /// Milliseconds (since an arbitrary origin) when the last line was let through; 0: never.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// `Some(n)` when a line may be written now at `now_ms` (with `n` lines
    /// suppressed since the last one), `None` when it is held back and counted.
    /// `now_ms` must be greater than 0 and not decrease.
    pub fn admit(&self, now_ms: u64, period_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < period_ms {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match self
            .last_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Some(self.suppressed.swap(0, Ordering::Relaxed)),
            // Another thread let its line through at the same moment.
            Err(_) => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// One point of a route's history: what happened in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct MinutePoint {
    /// Seconds since the Unix epoch at the end of the minute.
    pub at: u64,
    /// Answers from legacy and from new in the minute.
    pub legacy: u64,
    pub new: u64,
    /// Attempts on new, and those that failed, in the minute.
    pub new_attempts: u64,
    pub new_failures: u64,
}

impl MinutePoint {
    /// Percent of the minute's answers that came from new; `None` with no answer.
    pub(crate) fn new_share(&self) -> Option<f64> {
        let total = self.legacy + self.new;
        (total > 0).then(|| self.new as f64 * 100.0 / total as f64)
    }

    /// Percent of the minute's attempts on new that failed; `None` with no attempt.
    pub(crate) fn error_rate(&self) -> Option<f64> {
        (self.new_attempts > 0).then(|| self.new_failures as f64 * 100.0 / self.new_attempts as f64)
    }
}

/// The totals a history point is the difference of.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    pub legacy: u64,
    pub new: u64,
    pub new_attempts: u64,
    pub new_failures: u64,
}

impl RouteCounters {
    pub fn totals(&self) -> Totals {
        Totals {
            legacy: self.legacy.load(Ordering::Relaxed),
            new: self.new.load(Ordering::Relaxed),
            new_attempts: self.new_attempts.load(Ordering::Relaxed),
            new_failures: self.new_failures.load(Ordering::Relaxed),
        }
    }
}

/// How many one-minute points a route's history keeps: 15 minutes.
pub(crate) const HISTORY_POINTS: usize = 15;

/// A route's last [`HISTORY_POINTS`] minutes, a ring buffer fed once a minute
/// by the history task from the route's counters (never by a request).
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    points: std::collections::VecDeque<MinutePoint>,
    /// The totals at the last tick; `None` before the first.
    last: Option<Totals>,
}

impl History {
    /// Records the minute ending at `at` from the counters' `totals` now; the
    /// oldest point goes when the ring is full. The first tick only sets the base.
    /// Counters that went down (cannot happen, but a reset would) count as 0.
    pub(crate) fn tick(&mut self, at: u64, totals: Totals) {
        if let Some(last) = self.last {
            if self.points.len() == HISTORY_POINTS {
                self.points.pop_front();
            }
            self.points.push_back(MinutePoint {
                at,
                legacy: totals.legacy.saturating_sub(last.legacy),
                new: totals.new.saturating_sub(last.new),
                new_attempts: totals.new_attempts.saturating_sub(last.new_attempts),
                new_failures: totals.new_failures.saturating_sub(last.new_failures),
            });
        }
        self.last = Some(totals);
    }

    /// Oldest first.
    pub(crate) fn points(&self) -> impl Iterator<Item = &MinutePoint> {
        self.points.iter()
    }
}

/// Every route's [`History`], by route name, so it survives reloads for
/// routes that keep their name. Locked once a minute by the history task and
/// when the status page is read; never on the request path.
#[derive(Debug, Default)]
pub(crate) struct Histories(std::sync::Mutex<std::collections::HashMap<String, History>>);

impl Histories {
    /// Closes the minute ending at `at` for every route in `routes`; routes
    /// not in it are forgotten.
    pub(crate) fn tick<'a>(&self, at: u64, routes: impl Iterator<Item = (&'a str, Totals)>) {
        let mut book = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = std::collections::HashMap::with_capacity(book.len());
        for (name, totals) in routes {
            let mut history = book.remove(name).unwrap_or_default();
            history.tick(at, totals);
            kept.insert(name.to_owned(), history);
        }
        *book = kept;
    }

    /// The route's closed minutes, oldest first, then the minute in progress
    /// (from `now_totals`, at `now`).
    pub(crate) fn points(&self, name: &str, now_totals: Totals, now: u64) -> Vec<MinutePoint> {
        let book = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(history) = book.get(name) else {
            return Vec::new();
        };
        let mut points: Vec<MinutePoint> = history.points().copied().collect();
        if let Some(last) = history.last {
            points.push(MinutePoint {
                at: now,
                legacy: now_totals.legacy.saturating_sub(last.legacy),
                new: now_totals.new.saturating_sub(last.new),
                new_attempts: now_totals.new_attempts.saturating_sub(last.new_attempts),
                new_failures: now_totals.new_failures.saturating_sub(last.new_failures),
            });
        }
        points
    }
}

/// The fleet's statistics of a route over its window (SPEC §3.10).
#[derive(Debug, Clone)]
pub(crate) struct FleetFigures {
    pub legacy: Summary,
    pub new: Summary,
    pub read_at: Instant,
}

/// Fleet figures older than this are not shown: the link is not reading.
const FLEET_FRESH: Duration = Duration::from_secs(3);

/// A healthy answer re-evaluates the verdict at most this often; a failure
/// or an answer slower than `max_p95` always does.
const VERDICT_EVERY: Duration = Duration::from_millis(100);

/// A route's live statistics: one window per side. Kept across reloads while
/// the route keeps its name and its window's length.
#[derive(Debug)]
pub struct RouteStats {
    pub legacy: Window,
    pub new: Window,
    origin: Instant,
    /// The wall-clock time of `origin`, so the fleet link can name a slot by
    /// the wall-clock second every proxy agrees on.
    pub(crate) origin_wall: SystemTime,
    /// With `fleet_statistics` and a connected Redis: the fleet's figures
    /// over the window, written once a second by the fleet link; `/routes`
    /// shows them and the fleet's verdict uses them.
    fleet: std::sync::Mutex<Option<FleetFigures>>,
    /// Milliseconds since `origin` of the next routine verdict.
    next_verdict_ms: AtomicU64,
}

impl RouteStats {
    pub fn new(window: Duration) -> RouteStats {
        let origin = Instant::now();
        RouteStats {
            legacy: Window::new(window, origin),
            new: Window::new(window, origin),
            origin,
            origin_wall: SystemTime::now(),
            fleet: std::sync::Mutex::new(None),
            next_verdict_ms: AtomicU64::new(0),
        }
    }

    /// The fleet's figures, when read within the last [`FLEET_FRESH`].
    pub(crate) fn fleet(&self) -> Option<FleetFigures> {
        let fleet = self.fleet.lock().unwrap_or_else(|e| e.into_inner());
        fleet
            .as_ref()
            .filter(|f| f.read_at.elapsed() <= FLEET_FRESH)
            .cloned()
    }

    /// Sets (or with `None`, forgets) the fleet's figures.
    pub(crate) fn set_fleet(&self, figures: Option<FleetFigures>) {
        *self.fleet.lock().unwrap_or_else(|e| e.into_inner()) = figures;
    }

    pub fn side(&self, target: Target) -> &Window {
        match target {
            Target::Legacy => &self.legacy,
            Target::New => &self.new,
        }
    }

    /// Whether a routine verdict is due at `now`; true for one caller per
    /// [`VERDICT_EVERY`].
    pub fn verdict_due(&self, now: Instant) -> bool {
        let now_ms = now.saturating_duration_since(self.origin).as_millis() as u64;
        let next = self.next_verdict_ms.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_verdict_ms
                .compare_exchange(
                    next,
                    now_ms + VERDICT_EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_lets_one_line_per_period_and_counts_the_rest() {
        let limiter = LogLimiter::default();
        assert_eq!(limiter.admit(1_000, 1_000), Some(0));
        assert_eq!(limiter.admit(1_001, 1_000), None);
        assert_eq!(limiter.admit(1_999, 1_000), None);
        assert_eq!(limiter.admit(2_000, 1_000), Some(2));
        assert_eq!(limiter.admit(5_000, 1_000), Some(0));
    }

    #[test]
    fn history_keeps_fifteen_minutes_of_differences() {
        let mut history = History::default();
        let totals = |n: u64| Totals {
            legacy: 3 * n,
            new: n,
            new_attempts: 2 * n,
            new_failures: n / 2,
        };
        history.tick(0, totals(0));
        assert_eq!(history.points().count(), 0);
        for minute in 1..=20 {
            history.tick(minute * 60, totals(minute * 10));
        }
        let points: Vec<_> = history.points().copied().collect();
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(points[0].at, 6 * 60);
        assert_eq!(points[14].at, 20 * 60);
        assert_eq!(points[14].new_share(), Some(25.0));
        assert_eq!(points[14].error_rate(), Some(25.0));
        assert_eq!(MinutePoint::default().new_share(), None);
    }
}
