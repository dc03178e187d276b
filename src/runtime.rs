//! Runtime state an operator relies on (SPEC §3.6): a route's rollback trip
//! and weight override, a flag's override. Kept by name across reloads, and
//! across restarts through [`crate::state_file`].
//!
//! The request path reads atomics only ([`RouteState::runtime`]); the small
//! mutexes hold what the admin API shows (times, reasons) and are taken only
//! when the state changes or is shown.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::sync::Notify;

use crate::route::RouteRuntime;

/// Rings on every change of runtime state made on this proxy: the
/// `state_file` writer and the fleet link each wait on their own bell.
/// A change applied from the fleet rings only the writer's, so it is not
/// sent back to the fleet.
#[derive(Debug, Default)]
pub struct StateChanged {
    pub saver: Notify,
    pub fleet: Notify,
}

impl StateChanged {
    /// A change made here: saved, and sent to the fleet.
    pub fn notify_one(&self) {
        self.saver.notify_one();
        self.fleet.notify_one();
    }
}

/// `weight_override` when there is none.
const NO_OVERRIDE: u32 = u32::MAX;

/// A route's trip and override.
#[derive(Debug)]
pub struct RouteState {
    tripped: AtomicBool,
    weight_override: AtomicU32,
    /// Trips since start, for `strangler_rollbacks_total`.
    trips: AtomicU64,
    shown: Mutex<Shown>,
}

/// What the admin API shows beside the atomics.
#[derive(Debug, Default)]
struct Shown {
    override_set_at: Option<SystemTime>,
    trip: Option<Trip>,
}

/// Why and when a route tripped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    pub reason: String,
    pub since: SystemTime,
}

/// An override of a route's weight or a flag's value, and when it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override<T> {
    pub value: T,
    pub set_at: SystemTime,
}

impl Default for RouteState {
    fn default() -> Self {
        RouteState {
            tripped: AtomicBool::new(false),
            weight_override: AtomicU32::new(NO_OVERRIDE),
            trips: AtomicU64::new(0),
            shown: Mutex::default(),
        }
    }
}

impl RouteState {
    /// The decision's view, with the route's flag's state.
    pub fn runtime(&self, flag: Option<&FlagState>) -> RouteRuntime {
        let weight = self.weight_override.load(Ordering::Relaxed);
        RouteRuntime {
            tripped: self.tripped.load(Ordering::Relaxed),
            weight_override: u16::try_from(weight).ok(),
            flag_override: flag.and_then(FlagState::value),
        }
    }

    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }

    /// Trips the route; false when it already was (the first caller wins).
    pub fn trip(&self, trip: Trip) -> bool {
        let mut shown = self.shown();
        if self.tripped.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.trips.fetch_add(1, Ordering::Relaxed);
        shown.trip = Some(trip);
        true
    }

    /// Restores a trip read back from the state file (not counted again).
    pub fn restore_trip(&self, trip: Trip) {
        let mut shown = self.shown();
        self.tripped.store(true, Ordering::Release);
        shown.trip = Some(trip);
    }

    /// Ends the trip; the trip it ended, `None` when it was not tripped.
    pub fn resume(&self) -> Option<Trip> {
        let mut shown = self.shown();
        if !self.tripped.swap(false, Ordering::AcqRel) {
            return None;
        }
        shown.trip.take()
    }

    pub fn trip_info(&self) -> Option<Trip> {
        self.shown().trip.clone()
    }

    /// Trips since start.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Sets the weight override, in basis points.
    pub fn set_override(&self, weight_bp: u16, at: SystemTime) {
        let mut shown = self.shown();
        self.weight_override
            .store(u32::from(weight_bp), Ordering::Release);
        shown.override_set_at = Some(at);
    }

    /// Clears the override; the one cleared, if any.
    pub fn clear_override(&self) -> Option<Override<u16>> {
        let mut shown = self.shown();
        let weight = self.weight_override.swap(NO_OVERRIDE, Ordering::AcqRel);
        let set_at = shown.override_set_at.take()?;
        Some(Override {
            value: u16::try_from(weight).ok()?,
            set_at,
        })
    }

    pub fn override_info(&self) -> Option<Override<u16>> {
        let shown = self.shown();
        let value = u16::try_from(self.weight_override.load(Ordering::Acquire)).ok()?;
        Some(Override {
            value,
            set_at: shown.override_set_at?,
        })
    }

    fn shown(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A flag's override.
#[derive(Debug, Default)]
pub struct FlagState {
    /// 0: none; 1: false; 2: true.
    value: AtomicU8,
    set_at: Mutex<Option<SystemTime>>,
}

impl FlagState {
    /// The overriding value, if any.
    pub fn value(&self) -> Option<bool> {
        match self.value.load(Ordering::Relaxed) {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }

    pub fn set(&self, value: bool, at: SystemTime) {
        let mut set_at = self.set_at.lock().unwrap_or_else(|e| e.into_inner());
        self.value.store(1 + u8::from(value), Ordering::Release);
        *set_at = Some(at);
    }

    /// Clears the override; the one cleared, if any.
    pub fn clear(&self) -> Option<Override<bool>> {
        let mut set_at = self.set_at.lock().unwrap_or_else(|e| e.into_inner());
        let value = self.value();
        self.value.store(0, Ordering::Release);
        Some(Override {
            value: value?,
            set_at: set_at.take()?,
        })
    }

    pub fn override_info(&self) -> Option<Override<bool>> {
        let set_at = self.set_at.lock().unwrap_or_else(|e| e.into_inner());
        Some(Override {
            value: self.value()?,
            set_at: (*set_at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_trips_once_until_resumed() {
        let state = RouteState::default();
        let at = SystemTime::UNIX_EPOCH;
        let trip = |reason: &str| Trip {
            reason: reason.into(),
            since: at,
        };
        assert!(!state.runtime(None).tripped);
        assert!(state.trip(trip("first")));
        assert!(!state.trip(trip("second")));
        assert!(state.runtime(None).tripped);
        assert_eq!(state.trip_info(), Some(trip("first")));
        assert_eq!(state.trips(), 1);
        assert_eq!(state.resume(), Some(trip("first")));
        assert_eq!(state.resume(), None);
        assert!(!state.runtime(None).tripped);
    }

    #[test]
    fn overrides_are_read_by_the_decision() {
        let (state, flag) = (RouteState::default(), FlagState::default());
        let at = SystemTime::UNIX_EPOCH;
        assert_eq!(state.runtime(Some(&flag)), RouteRuntime::default());
        state.set_override(0, at);
        flag.set(false, at);
        let runtime = state.runtime(Some(&flag));
        assert_eq!(runtime.weight_override, Some(0));
        assert_eq!(runtime.flag_override, Some(false));
        assert_eq!(
            state.clear_override(),
            Some(Override {
                value: 0,
                set_at: at
            })
        );
        assert_eq!(state.clear_override(), None);
        assert_eq!(
            flag.clear(),
            Some(Override {
                value: false,
                set_at: at
            })
        );
        assert_eq!(state.runtime(Some(&flag)), RouteRuntime::default());
    }
}
