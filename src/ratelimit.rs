//! `[routes.rate_limit]` (SPEC §3.8): a token bucket per key, `burst` tokens
//! refilled at `rps` per second.
//!
//! A bucket untouched for `burst / rps` seconds is full again, exactly as if
//! it had never existed, so dropping it loses nothing: that is how memory
//! stays bounded under many distinct keys. The map is swept when it has
//! doubled since the last sweep, so the cost is amortised over inserts and
//! no background task is needed. The limiter outlives a snapshot: a reload
//! hands it to the route that keeps its name, and the route's current
//! `rps`/`burst` apply to its buckets from then on.
//!
//! A crate such as `governor` was not used: its keyed limiters fix the quota
//! at construction (a reload that changes `rps` would lose every bucket),
//! and its eviction (`retain_recent`) must be driven from outside.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// Keys (per route) below which the map is never swept.
const MIN_SWEEP: usize = 1024;

/// The buckets of one route (public only for the benches, through
/// `bench_support`).
#[derive(Debug, Default)]
pub struct RateLimiter {
    state: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_key: HashMap<Box<[u8]>, Bucket>,
    /// The map's size after the last sweep.
    swept_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket at `now`; `Err(wait)` when it is
    /// empty, with the time until one is back.
    pub fn take(&self, config: &RateLimitConfig, key: &[u8], now: Instant) -> Result<(), Duration> {
        let burst = f64::from(config.burst);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.by_key.len() >= MIN_SWEEP.max(state.swept_at * 2) {
            let full_after = Duration::from_secs_f64(burst / config.rps);
            state
                .by_key
                .retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            state.swept_at = state.by_key.len();
        }
        let bucket = match state.by_key.get_mut(key) {
            Some(bucket) => bucket,
            None => state.by_key.entry(key.into()).or_insert(Bucket {
                tokens: burst,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * config.rps).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / config.rps))
        }
    }

    /// Buckets held now (for tests and the memory bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map(|s| s.by_key.len()).unwrap_or(0)
    }
}

/// `Retry-After` in whole seconds, at least 1 (SPEC §3.8).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateKey;

    fn config(rps: f64, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            rps,
            burst,
            key: RateKey::Route,
        }
    }

    #[test]
    fn a_bucket_holds_burst_then_refills_at_rps() {
        let limiter = RateLimiter::default();
        let c = config(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(&c, b"k", t0).is_ok());
        }
        let wait = limiter.take(&c, b"k", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        assert!(
            limiter
                .take(&c, b"k", t0 + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            limiter
                .take(&c, b"k", t0 + Duration::from_millis(500))
                .is_err()
        );
        // Another key has its own bucket.
        assert!(limiter.take(&c, b"other", t0).is_ok());
        // Long idle: full again, never more than burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.take(&c, b"k", later).is_ok());
        }
        assert!(limiter.take(&c, b"k", later).is_err());
    }

    #[test]
    fn slow_rates_wait_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
        let limiter = RateLimiter::default();
        let c = config(0.1, 1);
        let t0 = Instant::now();
        assert!(limiter.take(&c, b"k", t0).is_ok());
        let wait = limiter.take(&c, b"k", t0).unwrap_err();
        assert_eq!(retry_after_secs(wait), 10);
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let limiter = RateLimiter::default();
        let c = config(100.0, 10);
        let t0 = Instant::now();
        // 100,000 distinct keys, one a millisecond: a bucket is full again
        // after 100 ms, so at most about 100 of them are worth keeping.
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            assert!(limiter.take(&c, &i.to_be_bytes(), now).is_ok());
        }
        assert!(
            limiter.len() <= 2 * MIN_SWEEP,
            "{} buckets held",
            limiter.len()
        );
    }
}
