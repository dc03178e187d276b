//! What is counted about a route's traffic, outliving a snapshot: created by
//! the snapshot for each route, fed by the request path and telemetry, read
//! by the admin API and the metrics.
//!
//! - [`RouteCounters`]: answers by side, for `/routes`;
//! - [`window`]: the live statistics over a sliding window (SPEC §3.6);
//! - [`verdict`]: whether those statistics trip the rollback.

pub(crate) mod verdict;
pub(crate) mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
            next_verdict_ms: AtomicU64::new(0),
        }
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
