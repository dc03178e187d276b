//! The fleet's runtime state as Redis holds it (SPEC §3.10), and the rules
//! that merge it: pure, no I/O.
//!
//! One hash, `{prefix}state`, holds a field per register:
//!
//! | field | value (JSON) |
//! |---|---|
//! | `override:ROUTE` | `{"at": ms, "by": "replica", "weight": 12.5}`; no `weight`: cleared |
//! | `flag:FLAG` | `{"at", "by", "value": true}`; no `value`: cleared |
//! | `trip:ROUTE` | `{"at", "by", "reason": "error_rate 50% over 60s, ..."}` |
//! | `resume:ROUTE` | `{"at", "by"}` |
//!
//! `at` is the change's wall-clock time in milliseconds since the Unix epoch
//! and `by` the replica that made it. Each field keeps its latest record
//! (greater `(at, by)`): clearing is a record too, so a clear made later
//! beats a set made earlier. A route is tripped when its `trip` record
//! exists and no `resume` record is later than it. Every accepted write is
//! published on `{prefix}changes` as `FIELD\nJSON`.

use serde::{Deserialize, Serialize};

/// One change to a register: when, by whom, and the new value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    /// The replica that made the change.
    pub by: String,
    /// `override:` fields: the weight in percent; `None`: cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// `flag:` fields: the value; `None`: cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<bool>,
    /// `trip:` fields: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Record {
    /// A record with no value: a clear or a resume.
    pub(crate) fn bare(at: u64, by: &str) -> Record {
        Record {
            at,
            by: by.to_owned(),
            weight: None,
            value: None,
            reason: None,
        }
    }

    /// True when `self` replaces `other`: later, or as late and by a
    /// greater replica id (every replica breaks ties alike).
    pub(crate) fn newer_than(&self, other: &Record) -> bool {
        (self.at, &self.by) > (other.at, &other.by)
    }

    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn decode(text: &str) -> Option<Record> {
        serde_json::from_str(text).ok()
    }
}

/// What a hash field is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Field {
    Override(String),
    Flag(String),
    Trip(String),
    Resume(String),
}

impl Field {
    pub(crate) fn key(&self) -> String {
        match self {
            Field::Override(name) => format!("override:{name}"),
            Field::Flag(name) => format!("flag:{name}"),
            Field::Trip(name) => format!("trip:{name}"),
            Field::Resume(name) => format!("resume:{name}"),
        }
    }

    /// The field named `key`; `None` for a field this version does not know.
    pub(crate) fn parse(key: &str) -> Option<Field> {
        let (kind, name) = key.split_once(':')?;
        let name = name.to_owned();
        Some(match kind {
            "override" => Field::Override(name),
            "flag" => Field::Flag(name),
            "trip" => Field::Trip(name),
            "resume" => Field::Resume(name),
            _ => return None,
        })
    }
}

/// A published change: `FIELD\nJSON` (the scripts in `link` publish it).
#[cfg(test)]
pub(crate) fn encode_message(field: &Field, record: &Record) -> String {
    format!("{}\n{}", field.key(), record.encode())
}

pub(crate) fn decode_message(text: &str) -> Option<(Field, Record)> {
    let (key, json) = text.split_once('\n')?;
    Some((Field::parse(key)?, Record::decode(json)?))
}

/// The fleet's state as this proxy knows it: the latest record per field.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Fleet {
    records: std::collections::BTreeMap<Field, Record>,
}

impl Fleet {
    /// Keeps `record` when it is newer than the field's; true when it was.
    pub(crate) fn merge(&mut self, field: Field, record: Record) -> bool {
        match self.records.get(&field) {
            Some(known) if !record.newer_than(known) => false,
            _ => {
                self.records.insert(field, record);
                true
            }
        }
    }

    pub(crate) fn get(&self, field: &Field) -> Option<&Record> {
        self.records.get(field)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Field, &Record)> {
        self.records.iter()
    }

    /// The route's override in force: `(basis points, at)`.
    pub(crate) fn weight_override(&self, route: &str) -> Option<(u16, u64)> {
        let record = self.get(&Field::Override(route.to_owned()))?;
        Some((weight_bp(record.weight?)?, record.at))
    }

    /// The flag's override in force: `(value, at)`.
    pub(crate) fn flag_override(&self, flag: &str) -> Option<(bool, u64)> {
        let record = self.get(&Field::Flag(flag.to_owned()))?;
        Some((record.value?, record.at))
    }

    /// The trip that stands for `route`: one with no resume later than it.
    pub(crate) fn trip(&self, route: &str) -> Option<&Record> {
        let trip = self.get(&Field::Trip(route.to_owned()))?;
        let resume = self.get(&Field::Resume(route.to_owned()));
        resume.is_none_or(|r| r.at <= trip.at).then_some(trip)
    }

    /// When `route` was last resumed, in ms.
    pub(crate) fn resumed_at(&self, route: &str) -> Option<u64> {
        self.get(&Field::Resume(route.to_owned())).map(|r| r.at)
    }
}

/// A percent weight as basis points; `None` when out of range.
pub(crate) fn weight_bp(percent: f64) -> Option<u16> {
    (0.0..=100.0)
        .contains(&percent)
        .then(|| (percent * 100.0).round() as u16)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn time(ms: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: u64, by: &str) -> Record {
        Record::bare(at, by)
    }

    fn weight(at: u64, by: &str, w: Option<f64>) -> Record {
        Record {
            weight: w,
            ..Record::bare(at, by)
        }
    }

    /// The JSON other replicas (and other versions) read: pinned.
    #[test]
    fn records_encode_and_decode() {
        let r = weight(1_764_662_400_000, "a", Some(12.5));
        assert_eq!(r.encode(), r#"{"at":1764662400000,"by":"a","weight":12.5}"#);
        assert_eq!(Record::decode(&r.encode()), Some(r.clone()));
        let trip = Record {
            reason: Some("error_rate 50%".into()),
            ..at(5, "b")
        };
        assert_eq!(
            trip.encode(),
            r#"{"at":5,"by":"b","reason":"error_rate 50%"}"#
        );
        assert_eq!(at(7, "c").encode(), r#"{"at":7,"by":"c"}"#);
        assert_eq!(Record::decode("{not json"), None);
        let message = encode_message(&Field::Override("/api/a:b".into()), &r);
        assert_eq!(
            decode_message(&message),
            Some((Field::Override("/api/a:b".into()), r))
        );
        assert_eq!(
            Field::parse("flag:new_auth"),
            Some(Field::Flag("new_auth".into()))
        );
        assert_eq!(Field::parse("other:x"), None);
        assert_eq!(decode_message("no newline"), None);
    }

    #[test]
    fn the_latest_write_wins_and_clearing_is_a_write() {
        let mut fleet = Fleet::default();
        let field = Field::Override("r".into());
        assert!(fleet.merge(field.clone(), weight(10, "a", Some(0.0))));
        assert_eq!(fleet.weight_override("r"), Some((0, 10)));
        // An older write, arriving late, loses.
        assert!(!fleet.merge(field.clone(), weight(9, "b", Some(50.0))));
        assert_eq!(fleet.weight_override("r"), Some((0, 10)));
        // A later clear wins.
        assert!(fleet.merge(field.clone(), weight(11, "c", None)));
        assert_eq!(fleet.weight_override("r"), None);
        // Same instant: the greater replica id, on every replica.
        assert!(fleet.merge(field.clone(), weight(11, "d", Some(25.0))));
        assert!(!fleet.merge(field.clone(), weight(11, "a", Some(75.0))));
        assert_eq!(fleet.weight_override("r"), Some((2500, 11)));
        // The same record again changes nothing (our own echo).
        assert!(!fleet.merge(field, weight(11, "d", Some(25.0))));
        let flag = Field::Flag("f".into());
        let set = Record {
            value: Some(false),
            ..at(3, "a")
        };
        assert!(fleet.merge(flag, set));
        assert_eq!(fleet.flag_override("f"), Some((false, 3)));
    }

    #[test]
    fn a_trip_stands_until_a_later_resume() {
        let mut fleet = Fleet::default();
        let trip = |t: u64| Record {
            reason: Some("bad".into()),
            ..at(t, "a")
        };
        assert!(fleet.trip("r").is_none());
        fleet.merge(Field::Trip("r".into()), trip(10));
        assert_eq!(fleet.trip("r").map(|t| t.at), Some(10));
        // A resume older than the trip (made while cut off) does not end it.
        fleet.merge(Field::Resume("r".into()), at(9, "b"));
        assert_eq!(fleet.trip("r").map(|t| t.at), Some(10));
        // Nor does one at the same instant.
        fleet.merge(Field::Resume("r".into()), at(10, "c"));
        assert!(fleet.trip("r").is_some());
        fleet.merge(Field::Resume("r".into()), at(12, "b"));
        assert!(fleet.trip("r").is_none());
        assert_eq!(fleet.resumed_at("r"), Some(12));
        // A later trip stands again.
        fleet.merge(Field::Trip("r".into()), trip(13));
        assert_eq!(fleet.trip("r").map(|t| t.at), Some(13));
    }

    #[test]
    fn times_round_trip_in_milliseconds() {
        let t = time(1_764_662_400_123);
        assert_eq!(ms(t), 1_764_662_400_123);
        assert_eq!(weight_bp(12.5), Some(1250));
        assert_eq!(weight_bp(101.0), None);
    }
}
