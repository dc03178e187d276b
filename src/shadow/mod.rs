//! Parallel running (SPEC §3.7): what a route's shadow traffic found.
//!
//! - [`json_path`]: the `$.a[*].b` paths of `ignore_json`, differences and noise;
//! - [`compare`]: two answers compared, pure;
//! - [`noise`]: what differs between two answers of the same backend, learned;
//! - [`ShadowState`]: per-route results, differing fields, samples and
//!   noise, kept across reloads for a route that keeps its name.
//!
//! A leaf like `stats`: the config reads its paths, the snapshot creates the
//! state, the proxy's shadow task (`proxy/shadow.rs`) feeds it, the admin
//! API reads it.

pub mod compare;
pub mod json_path;
pub mod noise;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use compare::{Answer, Difference, Rules};
use noise::Noise;

/// `strangler_shadow_total`'s `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowResult {
    Match,
    Mismatch,
    /// The shadow failed (connect, timeout, reset, or a 5xx when the served
    /// answer was not).
    Error,
    Skipped,
}

impl ShadowResult {
    const ALL: [ShadowResult; 4] = [
        ShadowResult::Match,
        ShadowResult::Mismatch,
        ShadowResult::Error,
        ShadowResult::Skipped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ShadowResult::Match => "match",
            ShadowResult::Mismatch => "mismatch",
            ShadowResult::Error => "error",
            ShadowResult::Skipped => "skipped",
        }
    }
}

/// Why a request picked for mirroring was not mirrored (or not compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The route had `max_inflight` shadow requests in flight.
    MaxInflight,
    /// The request body is over `max_body`, or was not copied whole.
    Body,
    /// The process-wide copy budget was spent.
    Budget,
    /// The served answer was an error of the proxy, or its body was not read
    /// to the end (the client went away).
    Served,
}

impl SkipReason {
    const ALL: [SkipReason; 4] = [
        SkipReason::MaxInflight,
        SkipReason::Body,
        SkipReason::Budget,
        SkipReason::Served,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SkipReason::MaxInflight => "max_inflight",
            SkipReason::Body => "body",
            SkipReason::Budget => "budget",
            SkipReason::Served => "served",
        }
    }
}

/// Which side of a route an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Legacy,
    New,
}

/// The last mismatches kept per route.
pub const MAX_SAMPLES: usize = 20;

/// Distinct differing fields counted per route; later new ones are not.
const MAX_FIELDS: usize = 1000;

/// One mismatch, as `/shadow` shows it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: SystemTime,
    pub method: String,
    pub path: String,
    /// The side whose answer the client got: `a` of the differences.
    pub served: Side,
    pub served_status: u16,
    pub shadow_status: u16,
    /// `a`: the served answer's value, `b`: the shadow's.
    pub differences: Vec<Difference>,
}

/// What one route's shadow traffic found. Lock-free counters; the locks are
/// taken only by the shadow tasks and the admin API, never by a request.
#[derive(Debug)]
pub struct ShadowState {
    results: [AtomicU64; 4],
    skipped: [AtomicU64; 4],
    inflight: AtomicUsize,
    noise: RwLock<Noise>,
    report: Mutex<Report>,
    log: LogLimit,
}

#[derive(Debug, Default)]
struct Report {
    /// Differing fields (array indices as `[*]`) and how many mismatches named them.
    fields: HashMap<String, u64>,
    /// Newest last.
    samples: VecDeque<Sample>,
}

impl Default for ShadowState {
    fn default() -> Self {
        ShadowState {
            results: Default::default(),
            skipped: Default::default(),
            inflight: AtomicUsize::new(0),
            noise: RwLock::default(),
            report: Mutex::default(),
            log: LogLimit::new(),
        }
    }
}

/// A shadow request in flight: counted in [`ShadowState`] until dropped.
#[derive(Debug)]
pub struct Slot(Arc<ShadowState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ShadowState {
    /// A slot for one more shadow request, unless `max` are in flight.
    pub fn enter(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let entered = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        entered.then(|| Slot(self.clone()))
    }

    pub fn count(&self, result: ShadowResult) {
        self.results[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a skip with its reason (and as a `skipped` result).
    pub fn skip(&self, reason: SkipReason) {
        self.skipped[reason as usize].fetch_add(1, Ordering::Relaxed);
        self.count(ShadowResult::Skipped);
    }

    pub fn results(&self, result: ShadowResult) -> u64 {
        self.results[result as usize].load(Ordering::Relaxed)
    }

    /// Learns noise from two answers of the serving backend; returns what
    /// was added.
    pub fn learn(&self, first: &Answer, second: &Answer, rules: Rules<'_>) -> Vec<String> {
        let mut noise = self.noise.write().unwrap_or_else(|e| e.into_inner());
        noise.learn(first, second, rules)
    }

    /// Compares the served answer `a` with the shadow's `b`, leaving out the
    /// learned noise.
    pub fn compare(&self, a: &Answer, b: &Answer, rules: Rules<'_>) -> Vec<Difference> {
        let noise = self.noise.read().unwrap_or_else(|e| e.into_inner());
        compare::compare(a, b, rules, &noise, compare::MAX_DIFFERENCES)
    }

    /// Records a mismatch: its fields counted, the sample kept.
    pub fn mismatch(&self, sample: Sample) {
        let mut report = self.report();
        let mut fields: Vec<String> = sample.differences.iter().map(|d| d.place.field()).collect();
        fields.sort_unstable();
        fields.dedup();
        for field in fields {
            let room = report.fields.len() < MAX_FIELDS;
            match report.fields.get_mut(&field) {
                Some(n) => *n += 1,
                None if room => {
                    report.fields.insert(field, 1);
                }
                None => {}
            }
        }
        if report.samples.len() == MAX_SAMPLES {
            report.samples.pop_front();
        }
        report.samples.push_back(sample);
    }

    /// Whether a mismatch may be logged now (one line per second per
    /// route), and how many were not logged since the last line.
    pub fn may_log(&self, now: Instant) -> Option<u64> {
        self.log.admit(now)
    }

    fn report(&self) -> MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The route's part of `GET /shadow`. Differences are labelled by side.
    pub fn to_json(
        &self,
        legacy: &str,
        new: &str,
        format_time: impl Fn(SystemTime) -> String,
    ) -> Value {
        let counts: serde_json::Map<String, Value> = ShadowResult::ALL
            .iter()
            .map(|r| (r.label().to_owned(), self.results(*r).into()))
            .collect();
        let skipped: serde_json::Map<String, Value> = SkipReason::ALL
            .iter()
            .map(|r| {
                let n = self.skipped[*r as usize].load(Ordering::Relaxed);
                (r.label().to_owned(), n.into())
            })
            .collect();
        let (matches, mismatches) = (
            self.results(ShadowResult::Match),
            self.results(ShadowResult::Mismatch),
        );
        let compared = matches + mismatches;
        let match_rate = (compared > 0).then(|| matches as f64 / compared as f64);
        let noise = self
            .noise
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries();
        let report = self.report();
        let mut fields: Vec<(&String, &u64)> = report.fields.iter().collect();
        fields.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let fields: Vec<Value> = fields
            .into_iter()
            .map(|(field, count)| json!({ "field": field, "count": count }))
            .collect();
        let samples: Vec<Value> = report
            .samples
            .iter()
            .rev()
            .map(|s| sample_json(s, legacy, new, &format_time))
            .collect();
        json!({
            "counts": counts,
            "skipped": skipped,
            "inflight": self.inflight.load(Ordering::Relaxed),
            "match_rate": match_rate,
            "fields": fields,
            "noise": noise,
            "samples": samples,
        })
    }
}

fn sample_json(
    sample: &Sample,
    legacy: &str,
    new: &str,
    format_time: &impl Fn(SystemTime) -> String,
) -> Value {
    let (legacy_status, new_status) = match sample.served {
        Side::Legacy => (sample.served_status, sample.shadow_status),
        Side::New => (sample.shadow_status, sample.served_status),
    };
    let differences: Vec<Value> = sample
        .differences
        .iter()
        .map(|d| {
            let (l, n) = match sample.served {
                Side::Legacy => (&d.a, &d.b),
                Side::New => (&d.b, &d.a),
            };
            json!({ "path": d.place.name(), "legacy": l, "new": n })
        })
        .collect();
    json!({
        "at": format_time(sample.at),
        "method": sample.method,
        "path": sample.path,
        "served": match sample.served { Side::Legacy => legacy, Side::New => new },
        "status": { "legacy": legacy_status, "new": new_status },
        "differences": differences,
    })
}

/// At most one log line per second; counts the lines it refused.
#[derive(Debug)]
struct LogLimit {
    born: Instant,
    /// Milliseconds after `born` of the last line, plus one (0: none yet).
    last: AtomicU64,
    refused: AtomicU64,
}

impl LogLimit {
    fn new() -> LogLimit {
        LogLimit {
            born: Instant::now(),
            last: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn admit(&self, now: Instant) -> Option<u64> {
        let at = u64::try_from(now.saturating_duration_since(self.born).as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Acquire);
        let due = last == 0 || at.saturating_sub(last) >= 1000;
        if due
            && self
                .last
                .compare_exchange(last, at, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Some(self.refused.swap(0, Ordering::AcqRel));
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slots_are_bounded_and_returned() {
        let state = Arc::new(ShadowState::default());
        let a = state.enter(2).unwrap();
        let _b = state.enter(2).unwrap();
        assert!(state.enter(2).is_none());
        drop(a);
        assert!(state.enter(2).is_some());
    }

    #[test]
    fn mismatch_logs_are_limited_to_one_a_second() {
        let limit = LogLimit::new();
        let t0 = limit.born;
        assert_eq!(limit.admit(t0), Some(0));
        assert_eq!(limit.admit(t0 + Duration::from_millis(10)), None);
        assert_eq!(limit.admit(t0 + Duration::from_millis(999)), None);
        assert_eq!(limit.admit(t0 + Duration::from_millis(1000)), Some(2));
    }

    #[test]
    fn samples_keep_the_last_twenty_and_fields_are_ranked() {
        let state = ShadowState::default();
        for i in 0..25 {
            let mut differences = vec![Difference {
                place: compare::Place::Json(vec![json_path::Segment::Key("a".into())]),
                a: "1".into(),
                b: "2".into(),
            }];
            if i % 5 == 0 {
                differences.push(Difference {
                    place: compare::Place::Status,
                    a: "200".into(),
                    b: "500".into(),
                });
            }
            state.mismatch(Sample {
                at: SystemTime::UNIX_EPOCH,
                method: "GET".into(),
                path: format!("/p/{i}"),
                served: Side::New,
                served_status: 200,
                shadow_status: 500,
                differences,
            });
        }
        let shown = state.to_json("legacy", "new", |_| "t".into());
        assert_eq!(shown["samples"].as_array().unwrap().len(), MAX_SAMPLES);
        assert_eq!(shown["samples"][0]["path"], "/p/24");
        assert_eq!(shown["samples"][0]["status"]["legacy"], 500);
        assert_eq!(shown["samples"][0]["differences"][0]["new"], "1");
        assert_eq!(shown["fields"][0], json!({"field": "$.a", "count": 25}));
        assert_eq!(shown["fields"][1], json!({"field": "status", "count": 5}));
        assert_eq!(shown["match_rate"], Value::Null);
    }
}
