//! A route's metric series, found once per snapshot instead of per request.
//!
//! A metric family finds a series by hashing its whole label set (route,
//! backend, code ...) under a read lock: three such lookups per request cost
//! more than the route's decision. A snapshot's route keeps the series its
//! requests used in a few lock-free slots, keyed by what varies within the
//! route; the family is asked only the first time, or when the slots are
//! full (a route answering with many different codes).

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;

use super::latency::Latency;
use crate::config::BackendId;

/// The series a snapshot's route records into, created with its first
/// request (most routes of a large file may never see one).
#[derive(Debug, Default)]
pub(crate) struct MetricHandles(OnceLock<Box<RouteSeries>>);

impl MetricHandles {
    pub(crate) fn get(&self) -> &RouteSeries {
        self.0.get_or_init(Box::default)
    }
}

/// `None` as a backend: no backend was asked (the proxy answered itself).
#[derive(Debug, Default)]
pub(crate) struct RouteSeries {
    /// `strangler_requests_total`, by backend and status code.
    pub requests: Slots<(Option<BackendId>, u16), Counter, 8>,
    /// `strangler_request_duration_seconds`, by backend.
    pub durations: Slots<Option<BackendId>, Latency, 3>,
    /// `strangler_attempts_total`, by backend and result.
    pub attempts: Slots<(BackendId, &'static str), Counter, 6>,
}

/// Up to `N` values by key, filled on first use and never changed: a
/// lookup is a scan of at most `N` keys, with no lock and no hash.
#[derive(Debug)]
pub(crate) struct Slots<K, V, const N: usize>([OnceLock<(K, V)>; N]);

impl<K, V, const N: usize> Default for Slots<K, V, N> {
    fn default() -> Self {
        Slots(std::array::from_fn(|_| OnceLock::new()))
    }
}

impl<K: PartialEq + Copy, V, const N: usize> Slots<K, V, N> {
    /// The value of `key`, made by `make` in the first free slot if no slot
    /// has it yet; `None` when every slot holds another key.
    pub(crate) fn get_or_make(&self, key: K, make: impl FnOnce() -> V) -> Option<&V> {
        let mut make = Some(make);
        let mut made = None;
        for slot in &self.0 {
            if slot.get().is_none() {
                let value = match (made.take(), make.take()) {
                    (Some(value), _) => value,
                    (None, Some(make)) => make(),
                    (None, None) => return None,
                };
                // Another thread filled the slot first, maybe with another
                // key: keep the value for the next free slot.
                if let Err((_, value)) = slot.set((key, value)) {
                    made = Some(value);
                }
            }
            if let Some((found, value)) = slot.get()
                && *found == key
            {
                return Some(value);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_find_what_they_made_and_refuse_past_their_size() {
        let slots: Slots<u16, String, 2> = Slots::default();
        assert_eq!(slots.get_or_make(200, || "ok".into()).unwrap(), "ok");
        assert_eq!(slots.get_or_make(200, || unreachable!()).unwrap(), "ok");
        assert_eq!(slots.get_or_make(503, || "busy".into()).unwrap(), "busy");
        assert!(slots.get_or_make(404, || "never kept".into()).is_none());
        assert_eq!(slots.get_or_make(503, || unreachable!()).unwrap(), "busy");
    }

    #[test]
    fn racing_threads_agree_on_one_value_per_key() {
        let slots: Slots<u8, std::sync::Arc<()>, 4> = Slots::default();
        let seen: Vec<Vec<usize>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..4u8)
                            .map(|key| {
                                let value = slots.get_or_make(key, Default::default).unwrap();
                                std::sync::Arc::as_ptr(value) as usize
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(seen.windows(2).all(|pair| pair[0] == pair[1]));
    }
}
