//! Fleet statistics (SPEC §3.10): each proxy adds its per-slot counts to
//! short-lived Redis hashes, one per route, side and wall-clock slot, and
//! reads the fleet's window back. The pure parts: keys, encoding, sums.
//!
//! A key is `{prefix}stats:{route}:{side}:{slot_secs}:{slot}`, where `slot`
//! is the wall-clock time of the slot's start divided by its length, so every
//! proxy adds the same second to the same hash. Its fields are `a`
//! (attempts), `f` (failures) and `l0` .. `l77` (answers per latency bucket,
//! see [`crate::stats::window::LATENCY_BUCKETS`]), each added with HINCRBY.

use crate::stats::Summary;

/// The hash of one slot of one side of a route.
pub(crate) fn key(prefix: &str, route: &str, side: &str, slot_secs: u64, slot: u64) -> String {
    format!("{prefix}stats:{route}:{side}:{slot_secs}:{slot}")
}

/// The wall-clock slot of a window's slot number `epoch` (1-based, counted
/// from the window's origin, `origin_ms` on the wall clock).
pub(crate) fn wall_slot(origin_ms: u64, epoch: u64, slot_secs: u64) -> u64 {
    let start_ms = origin_ms + epoch.saturating_sub(1) * slot_secs * 1000;
    start_ms / (slot_secs * 1000)
}

/// The fields to add for `counts`: only those that are not 0.
pub(crate) fn encode(counts: &Summary) -> Vec<(String, u64)> {
    let mut fields = Vec::new();
    if counts.attempts > 0 {
        fields.push(("a".to_owned(), counts.attempts));
    }
    if counts.failures > 0 {
        fields.push(("f".to_owned(), counts.failures));
    }
    for (i, &n) in counts.latency().iter().enumerate() {
        if n > 0 {
            fields.push((format!("l{i}"), n));
        }
    }
    fields
}

/// Adds one hash's fields (as HGETALL returns them) to `sum`; unknown
/// fields are skipped.
pub(crate) fn add_hash<'a>(sum: &mut Summary, fields: impl IntoIterator<Item = (&'a str, u64)>) {
    for (field, n) in fields {
        match field {
            "a" => sum.attempts += n,
            "f" => sum.failures += n,
            other => {
                if let Some(bucket) = other
                    .strip_prefix('l')
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| sum.latency_mut().get_mut(i))
                {
                    *bucket += n;
                }
            }
        }
    }
}

/// The wall-clock slots a window of `slots` slots of `slot_secs` covers at
/// `now_ms`, oldest first, leaving out those that began before `after_ms`
/// (the route's last resume: the fleet's statistics were cleared then).
pub(crate) fn window_slots(
    now_ms: u64,
    slot_secs: u64,
    slots: usize,
    after_ms: Option<u64>,
) -> Vec<u64> {
    let span = slot_secs * 1000;
    let current = now_ms / span;
    let first = current.saturating_sub(slots as u64 - 1);
    (first..=current)
        .filter(|slot| after_ms.is_none_or(|after| slot * span >= after))
        .collect()
}

/// How long after a slot ends every proxy has sent its counts: they send
/// every second, so a slot this old no longer changes and is read once.
const SETTLE_MS: u64 = 3_000;

/// Whether `slot` (of `slot_secs`) ended at least [`SETTLE_MS`] before `now_ms`.
pub(crate) fn settled(now_ms: u64, slot_secs: u64, slot: u64) -> bool {
    let end_ms = (slot + 1) * slot_secs * 1000;
    now_ms >= end_ms + SETTLE_MS
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::stats::Window;

    #[test]
    fn slots_are_named_by_the_wall_clock() {
        // A window whose origin is 12.3 s after some whole minute.
        assert_eq!(wall_slot(60_300, 1, 1), 60);
        assert_eq!(wall_slot(60_300, 2, 1), 61);
        assert_eq!(wall_slot(60_300, 3, 5), 14);
        assert_eq!(
            key("strangler:", "checkout", "new", 1, 61),
            "strangler:stats:checkout:new:1:61"
        );
        assert_eq!(window_slots(65_500, 1, 3, None), vec![63, 64, 65]);
        // A resume at 64.2 s clears the slots that began before it.
        assert_eq!(window_slots(65_500, 1, 3, Some(64_200)), vec![65]);
        assert_eq!(window_slots(1_000, 1, 60, None), vec![0, 1]);
        // Slot 61 (61 s to 62 s) no longer changes from 65 s on.
        assert!(!settled(64_999, 1, 61));
        assert!(settled(65_000, 1, 61));
    }

    /// Three proxies' counts, encoded and summed as Redis would add them,
    /// give the totals of all their traffic.
    #[test]
    fn the_fleet_window_sums_every_proxy() {
        let origin = Instant::now();
        let mut fleet = Summary::default();
        for proxy in 0..3u64 {
            let w = Window::new(Duration::from_secs(60), origin);
            for i in 0..10 {
                w.record(origin, i < proxy, Some(Duration::from_millis(5 + proxy)));
            }
            let (_, counts) = w.slot_summaries(origin).pop().unwrap();
            let fields = encode(&counts);
            add_hash(&mut fleet, fields.iter().map(|(f, n)| (f.as_str(), *n)));
        }
        assert_eq!((fleet.attempts, fleet.failures), (30, 3));
        assert_eq!(fleet.error_rate(), 10.0);
        let p50 = fleet.percentile(0.5).unwrap();
        assert!(p50 >= Duration::from_millis(4) && p50 <= Duration::from_millis(8));
        // Unknown fields are skipped, not fatal.
        add_hash(&mut fleet, [("zz", 4), ("l999", 1)]);
        assert_eq!(fleet.attempts, 30);
    }

    #[test]
    fn a_delta_is_what_a_slot_gained_since_it_was_sent() {
        let origin = Instant::now();
        let w = Window::new(Duration::from_secs(60), origin);
        w.record(origin, false, Some(Duration::from_millis(1)));
        let (_, first) = w.slot_summaries(origin).pop().unwrap();
        w.record(origin, true, None);
        let (_, second) = w.slot_summaries(origin).pop().unwrap();
        let delta = second.minus(&first);
        assert_eq!(encode(&delta), vec![("a".into(), 1), ("f".into(), 1)]);
    }
}
