//! A sliding window of attempts, failures and time to response head: a ring
//! of slots, each with its counters and a fixed-bucket latency histogram,
//! updated with atomics only.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Latency buckets: `[0, 128µs)`, then four per power of two up to 2²⁶ µs
/// (about 67 s), then everything above. A bucket spans at most a quarter
/// of an octave, so an estimated percentile is within about 20% of the truth.
pub(crate) const LATENCY_BUCKETS: usize = 78;

/// The smallest latency with its own bucket, as a power of two of µs.
const FIRST_OCTAVE: u32 = 7;

/// At most this many slots: a window longer than 60 s has slots of several
/// seconds.
const MAX_SLOTS: u64 = 60;

/// One side's (legacy's or new's) statistics over a sliding window.
///
/// The slots are allocated on the first record, so a route that gets no
/// traffic costs a few words. At a slot's turn-over a count made at the same
/// instant may be lost; the window is a guide for verdicts, not a ledger.
#[derive(Debug)]
pub struct Window {
    /// Seconds per slot.
    slot_secs: u64,
    slots: OnceLock<Box<[Slot]>>,
    len: usize,
    /// Slot numbers count from here.
    origin: Instant,
}

#[derive(Debug)]
struct Slot {
    /// The slot number (plus one) whose counts this holds; 0: none.
    epoch: AtomicU64,
    attempts: AtomicU32,
    failures: AtomicU32,
    latency: [AtomicU32; LATENCY_BUCKETS],
}

/// What a window held at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub attempts: u64,
    pub failures: u64,
    /// Answers (attempts with a response head) per latency bucket.
    latency: [u64; LATENCY_BUCKETS],
}

impl Window {
    /// A window of `length` (at least a second), slots counted from `origin`.
    pub fn new(length: Duration, origin: Instant) -> Window {
        let (slot_secs, len) = shape(length);
        Window {
            slot_secs,
            slots: OnceLock::new(),
            len,
            origin,
        }
    }

    /// The span it covers: its length rounded up to whole slots.
    pub fn length(&self) -> Duration {
        Duration::from_secs(self.slot_secs * self.len as u64)
    }

    /// The span a window of `length` covers.
    pub fn length_for(length: Duration) -> Duration {
        let (slot_secs, len) = shape(length);
        Duration::from_secs(slot_secs * len as u64)
    }

    /// Counts one attempt at `now`; `latency` is its time to response head,
    /// `None` when no answer came (connect error, timeout, reset).
    pub fn record(&self, now: Instant, failed: bool, latency: Option<Duration>) {
        let Some(slot) = self.slot(now) else { return };
        slot.attempts.fetch_add(1, Ordering::Relaxed);
        if failed {
            slot.failures.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(latency) = latency {
            slot.latency[bucket_of(latency)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failure of an attempt already recorded: an answer cut off
    /// after its head.
    pub fn add_failure(&self, now: Instant) {
        if let Some(slot) = self.slot(now) {
            slot.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts of the slots within the window at `now`.
    pub fn summary(&self, now: Instant) -> Summary {
        let mut summary = Summary::default();
        let Some(slots) = self.slots.get() else {
            return summary;
        };
        let current = self.epoch_at(now);
        let oldest = current.saturating_sub(self.len as u64 - 1).max(1);
        for slot in slots.iter() {
            let epoch = slot.epoch.load(Ordering::Acquire);
            if !(oldest..=current).contains(&epoch) {
                continue;
            }
            summary.attempts += u64::from(slot.attempts.load(Ordering::Relaxed));
            summary.failures += u64::from(slot.failures.load(Ordering::Relaxed));
            for (sum, n) in summary.latency.iter_mut().zip(&slot.latency) {
                *sum += u64::from(n.load(Ordering::Relaxed));
            }
        }
        // An amended failure may land in a later slot than its attempt.
        summary.failures = summary.failures.min(summary.attempts);
        summary
    }

    /// Each slot within the window at `now` that holds counts, as (slot
    /// number, its counts), the current one included. Read by the fleet
    /// link once a second, never by a request.
    pub(crate) fn slot_summaries(&self, now: Instant) -> Vec<(u64, Summary)> {
        let Some(slots) = self.slots.get() else {
            return Vec::new();
        };
        let current = self.epoch_at(now);
        let oldest = current.saturating_sub(self.len as u64 - 1).max(1);
        let mut out = Vec::new();
        for slot in slots.iter() {
            let epoch = slot.epoch.load(Ordering::Acquire);
            if !(oldest..=current).contains(&epoch) {
                continue;
            }
            let mut summary = Summary {
                attempts: u64::from(slot.attempts.load(Ordering::Relaxed)),
                failures: u64::from(slot.failures.load(Ordering::Relaxed)),
                ..Summary::default()
            };
            for (sum, n) in summary.latency.iter_mut().zip(&slot.latency) {
                *sum = u64::from(n.load(Ordering::Relaxed));
            }
            if summary != Summary::default() {
                out.push((epoch, summary));
            }
        }
        out
    }

    /// Seconds per slot.
    pub(crate) fn slot_secs(&self) -> u64 {
        self.slot_secs
    }

    /// Slots in the window.
    pub(crate) fn slot_count(&self) -> usize {
        self.len
    }

    /// Forgets everything: the verdict starts afresh.
    pub fn clear(&self) {
        if let Some(slots) = self.slots.get() {
            for slot in slots.iter() {
                slot.epoch.store(0, Ordering::Release);
            }
        }
    }

    fn epoch_at(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / self.slot_secs + 1
    }

    /// The slot for `now`, emptied first when it last held an older slot;
    /// `None` when it already holds a newer one (`now` is stale).
    fn slot(&self, now: Instant) -> Option<&Slot> {
        let epoch = self.epoch_at(now);
        let slots = self
            .slots
            .get_or_init(|| (0..self.len).map(|_| Slot::default()).collect());
        let slot = &slots[(epoch % self.len as u64) as usize];
        let seen = slot.epoch.load(Ordering::Acquire);
        if seen > epoch {
            return None;
        }
        if seen < epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.attempts.store(0, Ordering::Relaxed);
            slot.failures.store(0, Ordering::Relaxed);
            for n in &slot.latency {
                n.store(0, Ordering::Relaxed);
            }
        }
        Some(slot)
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            epoch: AtomicU64::new(0),
            attempts: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            attempts: 0,
            failures: 0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

impl Summary {
    /// Answers per latency bucket (see [`LATENCY_BUCKETS`]).
    pub(crate) fn latency(&self) -> &[u64; LATENCY_BUCKETS] {
        &self.latency
    }

    pub(crate) fn latency_mut(&mut self) -> &mut [u64; LATENCY_BUCKETS] {
        &mut self.latency
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: &Summary) {
        self.attempts += other.attempts;
        self.failures += other.failures;
        for (sum, n) in self.latency.iter_mut().zip(&other.latency) {
            *sum += n;
        }
    }

    /// What these counts have more than `base` (0 where they have less: a
    /// slot cleared and refilled since `base` was taken).
    pub(crate) fn minus(&self, base: &Summary) -> Summary {
        let mut delta = Summary {
            attempts: self.attempts.saturating_sub(base.attempts),
            failures: self.failures.saturating_sub(base.failures),
            ..Summary::default()
        };
        for ((d, n), b) in delta
            .latency
            .iter_mut()
            .zip(&self.latency)
            .zip(&base.latency)
        {
            *d = n.saturating_sub(*b);
        }
        delta
    }

    /// Percent of attempts that failed; 0 without attempts.
    pub fn error_rate(&self) -> f64 {
        if self.attempts == 0 {
            return 0.0;
        }
        self.failures as f64 * 100.0 / self.attempts as f64
    }

    /// The `q` quantile (`0.0..=1.0`) of the time to response head,
    /// interpolated within its bucket; `None` without answers.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut below = 0;
        for (index, &count) in self.latency.iter().enumerate() {
            if below + count >= rank {
                let (low, high) = bounds(index);
                let within = (rank - below) as f64 / count as f64;
                let micros = low as f64 + (high - low) as f64 * within;
                return Some(Duration::from_nanos((micros * 1000.0) as u64));
            }
            below += count;
        }
        None
    }
}

/// Seconds per slot and the number of slots of a window of `length`.
fn shape(length: Duration) -> (u64, usize) {
    let secs = length.as_secs().max(1);
    let slot_secs = secs.div_ceil(MAX_SLOTS);
    (slot_secs, secs.div_ceil(slot_secs) as usize)
}

/// The bucket of a latency (see [`LATENCY_BUCKETS`]).
fn bucket_of(latency: Duration) -> usize {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    if micros < 1 << FIRST_OCTAVE {
        return 0;
    }
    let octave = 63 - micros.leading_zeros();
    let quarter = (micros >> (octave - 2)) & 3;
    let index = 1 + (octave - FIRST_OCTAVE) as usize * 4 + quarter as usize;
    index.min(LATENCY_BUCKETS - 1)
}

/// A bucket's range in µs; the last one is open, so it is its lower bound.
fn bounds(index: usize) -> (u64, u64) {
    if index == 0 {
        return (0, 1 << FIRST_OCTAVE);
    }
    let octave = FIRST_OCTAVE + ((index - 1) / 4) as u32;
    let quarter = ((index - 1) % 4) as u64;
    let low = (4 + quarter) << (octave - 2);
    if index == LATENCY_BUCKETS - 1 {
        return (low, low);
    }
    (low, (5 + quarter) << (octave - 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn buckets_tile_the_range() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_micros(127)), 0);
        assert_eq!(bucket_of(Duration::from_micros(128)), 1);
        for index in 1..LATENCY_BUCKETS - 1 {
            let (low, high) = bounds(index);
            assert_eq!(bounds(index - 1).1, low, "bucket {index}");
            assert_eq!(bucket_of(Duration::from_micros(low)), index);
            assert_eq!(bucket_of(Duration::from_micros(high - 1)), index);
        }
        assert_eq!(bucket_of(secs(3600)), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn counts_and_error_rate() {
        let origin = Instant::now();
        let w = Window::new(secs(60), origin);
        for i in 0..40 {
            w.record(origin + ms(i * 10), i % 8 == 0, Some(ms(5)));
        }
        let s = w.summary(origin + secs(1));
        assert_eq!((s.attempts, s.failures), (40, 5));
        assert_eq!(s.error_rate(), 12.5);
        assert_eq!(
            Window::new(secs(60), origin).summary(origin).error_rate(),
            0.0
        );
    }

    #[test]
    fn old_slots_expire() {
        let origin = Instant::now();
        let w = Window::new(secs(10), origin);
        w.record(origin, true, None);
        w.record(origin + secs(5), false, Some(ms(1)));
        let at = |t| {
            let s = w.summary(origin + secs(t));
            (s.attempts, s.failures)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(9), (2, 1));
        // The first slot (second 0) leaves the 10 s window at second 10.
        assert_eq!(at(10), (1, 0));
        assert_eq!(at(14), (1, 0));
        assert_eq!(at(15), (0, 0));
        // A slot reused 10 s later holds only the new counts.
        w.record(origin + secs(20), false, None);
        assert_eq!(at(20), (1, 0));
    }

    #[test]
    fn a_stale_instant_is_not_counted_in_a_newer_slot() {
        let origin = Instant::now();
        let w = Window::new(secs(10), origin);
        w.record(origin + secs(10), false, None);
        w.record(origin, true, None);
        let s = w.summary(origin + secs(10));
        assert_eq!((s.attempts, s.failures), (1, 0));
    }

    #[test]
    fn long_windows_use_wider_slots() {
        let origin = Instant::now();
        let w = Window::new(secs(600), origin);
        assert_eq!(w.length(), secs(600));
        w.record(origin, false, None);
        assert_eq!(w.summary(origin + secs(599)).attempts, 1);
        assert_eq!(w.summary(origin + secs(600)).attempts, 0);
        assert_eq!(Window::new(ms(300), origin).length(), secs(1));
    }

    #[test]
    fn clear_forgets() {
        let origin = Instant::now();
        let w = Window::new(secs(60), origin);
        w.record(origin, true, Some(ms(3)));
        w.clear();
        assert_eq!(w.summary(origin).attempts, 0);
        assert_eq!(w.summary(origin).percentile(0.5), None);
        w.record(origin, false, None);
        assert_eq!(w.summary(origin).attempts, 1);
    }

    /// Each estimate is within the quarter-octave bucket of the true value.
    #[test]
    fn percentiles_of_known_samples() {
        let origin = Instant::now();
        let w = Window::new(secs(60), origin);
        for n in 1..=100 {
            w.record(origin, false, Some(ms(n)));
        }
        let s = w.summary(origin);
        for (q, truth) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = s.percentile(q).unwrap().as_secs_f64() * 1000.0;
            assert!(
                (got - truth).abs() / truth < 0.1,
                "p{} = {got} ms, want about {truth}",
                q * 100.0
            );
        }
        // All the same: every percentile is in that value's bucket.
        let w = Window::new(secs(60), origin);
        for _ in 0..50 {
            w.record(origin, false, Some(ms(700)));
        }
        let (low, high) = bounds(bucket_of(ms(700)));
        for q in [0.5, 0.95, 0.99] {
            let got = w.summary(origin).percentile(q).unwrap().as_micros() as u64;
            assert!((low..=high).contains(&got), "{got} not in {low}..={high}");
        }
        // One slow answer in 100 moves p99, not p95.
        let w = Window::new(secs(60), origin);
        for _ in 0..99 {
            w.record(origin, false, Some(ms(10)));
        }
        w.record(origin, false, Some(secs(2)));
        let s = w.summary(origin);
        assert!(s.percentile(0.95).unwrap() < ms(13));
        assert!(s.percentile(0.99).unwrap() < ms(13));
        assert!(s.percentile(1.0).unwrap() > ms(1500));
    }

    #[test]
    fn failures_without_answers_have_no_latency() {
        let origin = Instant::now();
        let w = Window::new(secs(60), origin);
        w.record(origin, true, None);
        w.add_failure(origin);
        w.record(origin, false, None);
        let s = w.summary(origin);
        assert_eq!((s.attempts, s.failures), (2, 2));
        assert_eq!(s.percentile(0.95), None);
    }
}
