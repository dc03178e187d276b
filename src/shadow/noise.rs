//! Learned noise (SPEC §3.7): what differs between two answers of the same
//! backend to the same request (timestamps, ids, nonces) and is therefore
//! ignored when the two sides are compared.
//!
//! A JSON path is learned with its array indices as `[*]`, so a field that
//! is noise in the first item is noise in every item. A pair whose statuses
//! differ teaches nothing (the backend failed once, not a noisy field), and
//! the status itself is never noise.

use std::collections::BTreeSet;

use super::compare::{self, Answer, Place, Rules};
use super::json_path::{JsonPath, Segment};

/// At most this many entries are learned per route.
pub const MAX_NOISE: usize = 256;

/// A comparison made to learn looks at up to this many differences.
const LEARN_LIMIT: usize = 256;

/// The noise learned for one route.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Noise {
    headers: BTreeSet<String>,
    json: BTreeSet<JsonPath>,
    /// A non-JSON body that differs between two answers of the same backend.
    body: bool,
}

impl Noise {
    /// Learns every difference between `first` and `second`, two answers of
    /// the same backend to the same request; returns the entries it added.
    pub fn learn(&mut self, first: &Answer, second: &Answer, rules: Rules<'_>) -> Vec<String> {
        if first.status != second.status {
            return Vec::new();
        }
        let mut added = Vec::new();
        for difference in compare::compare(first, second, rules, self, LEARN_LIMIT) {
            if self.len() >= MAX_NOISE {
                break;
            }
            let fresh = match &difference.place {
                Place::Status => false,
                Place::Header(name) => self.headers.insert(name.clone()),
                Place::Json(path) => self.json.insert(JsonPath::generalised(path)),
                Place::Body => !std::mem::replace(&mut self.body, true),
            };
            if fresh {
                added.push(difference.place.field());
            }
        }
        added
    }

    pub fn ignores_header(&self, name: &str) -> bool {
        self.headers.contains(name)
    }

    pub fn ignores_json(&self, path: &[Segment]) -> bool {
        !self.json.is_empty() && self.json.iter().any(|p| p.matches(path))
    }

    pub fn body(&self) -> bool {
        self.body
    }

    pub fn len(&self) -> usize {
        self.headers.len() + self.json.len() + usize::from(self.body)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry as `/shadow` shows it: JSON paths, `header:NAME`, `body`.
    pub fn entries(&self) -> Vec<String> {
        let json = self.json.iter().map(ToString::to_string);
        let headers = self.headers.iter().map(|h| format!("header:{h}"));
        let body = self.body.then(|| "body".to_owned());
        json.chain(headers).chain(body).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::compare::{MAX_DIFFERENCES, compare};
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, header};

    fn answer(status: u16, body: &str, request_id: &'static str) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-trace", HeaderValue::from_static(request_id));
        Answer {
            status,
            headers,
            body: Some(Bytes::copy_from_slice(body.as_bytes())),
        }
    }

    const NONE: Rules<'static> = Rules {
        ignore_headers: &[],
        ignore_json: &[],
    };

    #[test]
    fn a_random_field_becomes_noise_after_one_differing_pair() {
        let mut noise = Noise::default();
        let served = answer(
            200,
            r#"{"items": [{"id": 1, "nonce": "a1"}], "v": 1}"#,
            "t1",
        );
        let twin = answer(
            200,
            r#"{"items": [{"id": 1, "nonce": "b2"}], "v": 1}"#,
            "t2",
        );
        let added = noise.learn(&served, &twin, NONE);
        assert_eq!(added, ["header:x-trace", "$.items[*].nonce"]);
        assert_eq!(noise.entries(), ["$.items[*].nonce", "header:x-trace"]);
        // The other side now matches although its nonce and trace differ too,
        // in another item as well; a real difference still shows.
        let shadow = answer(
            200,
            r#"{"items": [{"id": 1, "nonce": "c3"}], "v": 1}"#,
            "t3",
        );
        assert!(compare(&served, &shadow, NONE, &noise, MAX_DIFFERENCES).is_empty());
        let shadow = answer(
            200,
            r#"{"items": [{"id": 1, "nonce": "c3"}, {"id": 2, "nonce": "d"}], "v": 1}"#,
            "t3",
        );
        let found = compare(&served, &shadow, NONE, &noise, MAX_DIFFERENCES);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].place.name(), "$.items[1]");
        let shadow = answer(200, r#"{"items": [{"id": 1, "nonce": "x"}], "v": 2}"#, "t4");
        let found = compare(&served, &shadow, NONE, &noise, MAX_DIFFERENCES);
        assert_eq!(found[0].place.name(), "$.v");
        // Learning the same pair again adds nothing.
        assert!(noise.learn(&served, &twin, NONE).is_empty());
    }

    #[test]
    fn a_pair_with_different_statuses_teaches_nothing() {
        let mut noise = Noise::default();
        let ok = answer(200, r#"{"a": 1}"#, "t1");
        let failed = answer(500, r#"{"a": 2}"#, "t2");
        assert!(noise.learn(&ok, &failed, NONE).is_empty());
        assert!(noise.is_empty());
    }

    #[test]
    fn a_differing_text_body_is_learned_whole() {
        let text = |s: &'static str| Answer {
            status: 200,
            headers: HeaderMap::new(),
            body: Some(Bytes::from_static(s.as_bytes())),
        };
        let mut noise = Noise::default();
        assert_eq!(noise.learn(&text("a"), &text("b"), NONE), ["body"]);
        assert!(compare(&text("a"), &text("c"), NONE, &noise, MAX_DIFFERENCES).is_empty());
    }

    #[test]
    fn noise_is_bounded() {
        let mut noise = Noise::default();
        let many = |offset: usize| {
            let map: serde_json::Map<String, serde_json::Value> = (0..400)
                .map(|i| (format!("k{i}"), serde_json::Value::from(i + offset)))
                .collect();
            answer(200, &serde_json::Value::Object(map).to_string(), "t")
        };
        noise.learn(&many(0), &many(1), NONE);
        assert_eq!(noise.len(), MAX_NOISE);
    }
}
