//! A backend's health (SPEC §3.5): passive ejection with a half-open trial,
//! and the verdict of the active check. Read and updated with atomics only,
//! so the request path takes no lock; every method takes the clock as `now`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use crate::config::BackendConfig;

/// What `/backends` shows as `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Available,
    Ejected,
    Unhealthy,
    HalfOpen,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Available => "available",
            State::Ejected => "ejected",
            State::Unhealthy => "unhealthy",
            State::HalfOpen => "half_open",
        }
    }
}

/// The last active check: when it ran and what it found (`ok`, `status-503`,
/// `connect`, `timeout`, `reset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub at: SystemTime,
    pub result: String,
}

/// One backend's health, shared by every route and snapshot that uses a
/// backend of that name. Instants are kept as nanoseconds since `base`, plus
/// one, so that 0 means "none".
#[derive(Debug)]
pub struct Health {
    name: String,
    base: Instant,
    /// `outlier.consecutive_failures`; 0: ejection off.
    threshold: AtomicU32,
    ejection_nanos: AtomicU64,
    max_ejection_nanos: AtomicU64,
    /// How long a half-open trial may run before another one is admitted
    /// (the trial's request may have been abandoned).
    trial_lease_nanos: AtomicU64,
    unhealthy_after: AtomicU32,
    healthy_after: AtomicU32,
    /// Gateway failures in a row.
    failures: AtomicU32,
    /// Ejections since the last success: the next one lasts `ejection × 2^streak`.
    streak: AtomicU32,
    /// Every ejection since the backend's name first appeared.
    ejections: AtomicU64,
    /// End of the current ejection; 0: not ejected. Past it: half-open.
    ejected_until: AtomicU64,
    /// Start of the running half-open trial; 0: none.
    trial: AtomicU64,
    unhealthy: AtomicBool,
    check_failures: AtomicU32,
    check_successes: AtomicU32,
    last_check: Mutex<Option<Check>>,
}

impl Health {
    pub fn new(config: &BackendConfig, now: Instant) -> Health {
        let health = Health {
            name: config.name.clone(),
            base: now,
            threshold: AtomicU32::new(0),
            ejection_nanos: AtomicU64::new(0),
            max_ejection_nanos: AtomicU64::new(0),
            trial_lease_nanos: AtomicU64::new(0),
            unhealthy_after: AtomicU32::new(0),
            healthy_after: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            streak: AtomicU32::new(0),
            ejections: AtomicU64::new(0),
            ejected_until: AtomicU64::new(0),
            trial: AtomicU64::new(0),
            unhealthy: AtomicBool::new(false),
            check_failures: AtomicU32::new(0),
            check_successes: AtomicU32::new(0),
            last_check: Mutex::new(None),
        };
        health.configure(config);
        health
    }

    /// Applies (possibly changed) settings after a reload, keeping the state.
    /// Without a `[health]` section the backend can no longer be unhealthy.
    pub fn configure(&self, config: &BackendConfig) {
        let outlier = &config.outlier;
        self.threshold
            .store(outlier.consecutive_failures, Ordering::Relaxed);
        self.ejection_nanos
            .store(nanos(outlier.ejection), Ordering::Relaxed);
        self.max_ejection_nanos
            .store(nanos(outlier.max_ejection), Ordering::Relaxed);
        self.trial_lease_nanos.store(
            nanos(config.connect_timeout + config.timeout),
            Ordering::Relaxed,
        );
        if outlier.consecutive_failures == 0 {
            self.close();
        }
        match &config.health {
            Some(check) => {
                self.unhealthy_after
                    .store(check.unhealthy_after.max(1), Ordering::Relaxed);
                self.healthy_after
                    .store(check.healthy_after.max(1), Ordering::Relaxed);
            }
            None => {
                if self.unhealthy.swap(false, Ordering::AcqRel) {
                    info!(backend = %self.name, "backend no longer health-checked: available");
                }
                self.check_failures.store(0, Ordering::Relaxed);
                self.check_successes.store(0, Ordering::Relaxed);
            }
        }
    }

    fn ticks(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.base)).saturating_add(1)
    }

    /// Whether a request that picked this backend may try it. While
    /// half-open, admits one trial at a time (a trial older than the
    /// backend's connect timeout plus timeout no longer holds the slot).
    pub fn admit(&self, now: Instant) -> bool {
        if self.unhealthy.load(Ordering::Acquire) {
            return false;
        }
        let until = self.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let t = self.ticks(now);
        if t < until {
            return false;
        }
        let trial = self.trial.load(Ordering::Acquire);
        let lease = self.trial_lease_nanos.load(Ordering::Relaxed);
        if trial != 0 && t < trial.saturating_add(lease) {
            return false;
        }
        self.trial
            .compare_exchange(trial, t, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the backend is available now: neither ejected (half-open
    /// counts as available) nor unhealthy. Admits nothing.
    pub fn available(&self, now: Instant) -> bool {
        matches!(self.state(now), State::Available | State::HalfOpen)
    }

    /// Records an attempt's outcome: `false` for a gateway failure (connect,
    /// timeout, reset, 502/503/504).
    pub fn record(&self, success: bool, now: Instant) {
        if success {
            self.succeeded();
        } else {
            self.failed(now);
        }
    }

    fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.ejected_until.load(Ordering::Acquire) != 0
            || self.streak.load(Ordering::Relaxed) != 0
        {
            self.close();
        }
    }

    /// Ends any ejection and the streak of ejections.
    fn close(&self) {
        self.streak.store(0, Ordering::Relaxed);
        self.trial.store(0, Ordering::Release);
        if self.ejected_until.swap(0, Ordering::AcqRel) != 0 {
            info!(backend = %self.name, "backend back: ejection ended");
        }
    }

    fn failed(&self, now: Instant) {
        let threshold = self.threshold.load(Ordering::Relaxed);
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if threshold == 0 {
            return;
        }
        let t = self.ticks(now);
        let until = self.ejected_until.load(Ordering::Acquire);
        let due = if until == 0 {
            failures >= threshold
        } else {
            // Ejected: a late failure changes nothing; half-open: the trial failed.
            t >= until
        };
        if due {
            self.eject(until, t);
        }
    }

    /// Ejects (again) unless another thread did since `until` was read.
    fn eject(&self, until: u64, t: u64) {
        let streak = self.streak.load(Ordering::Relaxed);
        let first = self.ejection_nanos.load(Ordering::Relaxed);
        let max = self.max_ejection_nanos.load(Ordering::Relaxed);
        let length = first
            .saturating_mul(1u64.checked_shl(streak).unwrap_or(u64::MAX))
            .min(max.max(first));
        let next = t.saturating_add(length);
        if self
            .ejected_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        self.streak.fetch_add(1, Ordering::Relaxed);
        self.trial.store(0, Ordering::Release);
        self.failures.store(0, Ordering::Relaxed);
        let ejections = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        warn!(
            backend = %self.name,
            ejection = ?Duration::from_nanos(length),
            ejections,
            "backend ejected after gateway failures"
        );
    }

    /// Records an active check's result.
    pub fn record_check(&self, ok: bool, result: String, at: SystemTime) {
        *self.last_check.lock().unwrap_or_else(|e| e.into_inner()) = Some(Check { at, result });
        if ok {
            self.check_failures.store(0, Ordering::Relaxed);
            let good = self.check_successes.fetch_add(1, Ordering::Relaxed) + 1;
            if good >= self.healthy_after.load(Ordering::Relaxed)
                && self.unhealthy.swap(false, Ordering::AcqRel)
            {
                info!(backend = %self.name, checks = good, "backend healthy again");
            }
        } else {
            self.check_successes.store(0, Ordering::Relaxed);
            let bad = self.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if bad >= self.unhealthy_after.load(Ordering::Relaxed)
                && !self.unhealthy.swap(true, Ordering::AcqRel)
            {
                warn!(backend = %self.name, checks = bad, "backend unhealthy: health checks failed");
            }
        }
    }

    pub fn state(&self, now: Instant) -> State {
        if self.unhealthy.load(Ordering::Acquire) {
            return State::Unhealthy;
        }
        match self.ejected_until.load(Ordering::Acquire) {
            0 => State::Available,
            until if self.ticks(now) < until => State::Ejected,
            _ => State::HalfOpen,
        }
    }

    /// The end of the current ejection as wall-clock time (`now` and `wall`
    /// being the same moment), while ejected.
    pub fn ejected_until(&self, now: Instant, wall: SystemTime) -> Option<SystemTime> {
        let until = self.ejected_until.load(Ordering::Acquire);
        let t = self.ticks(now);
        (until > t).then(|| wall + Duration::from_nanos(until - t))
    }

    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn last_check(&self) -> Option<Check> {
        self.last_check
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
