//! The comparison of two answers (SPEC §3.7): pure, no I/O.
//!
//! Status first, then the headers outside the ignored sets, then the body:
//! as parsed JSON values when both answers say `application/json` (or
//! `+json`) and both parse, else byte for byte. A body over `max_body` was
//! not kept ([`Answer::body`] is `None`): such answers compare by status and
//! headers only.

use std::collections::BTreeSet;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, header};
use serde_json::Value;

use super::json_path::{JsonPath, Segment, path_string};
use super::noise::Noise;

/// Headers never compared (SPEC §3.7), besides every `x-strangler-*`.
pub const BUILTIN_IGNORED_HEADERS: &[&str] = &[
    "date",
    "server",
    "x-request-id",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "age",
    "expires",
    "set-cookie",
    "etag",
    "last-modified",
    "via",
];

/// Each value shown in a difference is cut to this many bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// A comparison stops after this many differences.
pub const MAX_DIFFERENCES: usize = 50;

/// One side's answer, as far as it was read.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// `None`: longer than `max_body`, not kept.
    pub body: Option<Bytes>,
}

/// What the route's config excludes from the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Lowercase, added to [`BUILTIN_IGNORED_HEADERS`].
    pub ignore_headers: &'a [HeaderName],
    pub ignore_json: &'a [JsonPath],
}

/// Where two answers differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    Status,
    /// A header, by its lowercase name.
    Header(String),
    /// A node of two JSON bodies.
    Json(Vec<Segment>),
    /// Two bodies that are not both JSON.
    Body,
}

impl Place {
    /// How the place is written: `status`, `header:NAME`, a JSON path, `body`.
    pub fn name(&self) -> String {
        match self {
            Place::Status => "status".to_owned(),
            Place::Header(name) => format!("header:{name}"),
            Place::Json(path) => path_string(path),
            Place::Body => "body".to_owned(),
        }
    }

    /// The name with array indices as `[*]`: how fields are ranked.
    pub fn field(&self) -> String {
        match self {
            Place::Json(path) => JsonPath::generalised(path).to_string(),
            other => other.name(),
        }
    }
}

/// One difference: the place and each side's value, cut to
/// [`MAX_VALUE_BYTES`]. A missing value is `(absent)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub place: Place,
    pub a: String,
    pub b: String,
}

/// The differences between `a` and `b`, at most `limit`, leaving out what
/// `rules` and `noise` exclude. Empty: the answers match.
pub fn compare(
    a: &Answer,
    b: &Answer,
    rules: Rules<'_>,
    noise: &Noise,
    limit: usize,
) -> Vec<Difference> {
    let mut out = Vec::new();
    if a.status != b.status {
        out.push(Difference {
            place: Place::Status,
            a: a.status.to_string(),
            b: b.status.to_string(),
        });
    }
    compare_headers(a, b, rules, noise, &mut out);
    if let (Some(x), Some(y)) = (&a.body, &b.body) {
        match (json_of(&a.headers, x), json_of(&b.headers, y)) {
            (Some(x), Some(y)) => {
                let walk = Walk {
                    rules,
                    noise,
                    limit,
                };
                walk.values(&x, &y, &mut Vec::new(), &mut out);
            }
            _ if x != y && !noise.body() => out.push(Difference {
                place: Place::Body,
                a: shown_bytes(x),
                b: shown_bytes(y),
            }),
            _ => {}
        }
    }
    out.truncate(limit);
    out
}

/// Whether a header takes part in no comparison: built in, `x-strangler-*`,
/// or configured.
pub fn ignored_header(name: &str, rules: Rules<'_>) -> bool {
    BUILTIN_IGNORED_HEADERS.contains(&name)
        || name.starts_with("x-strangler-")
        || rules.ignore_headers.iter().any(|h| h.as_str() == name)
}

fn compare_headers(
    a: &Answer,
    b: &Answer,
    rules: Rules<'_>,
    noise: &Noise,
    out: &mut Vec<Difference>,
) {
    let names: BTreeSet<&str> = a
        .headers
        .keys()
        .chain(b.headers.keys())
        .map(HeaderName::as_str)
        .collect();
    for name in names {
        if ignored_header(name, rules) || noise.ignores_header(name) {
            continue;
        }
        let (x, y) = (
            header_value(&a.headers, name),
            header_value(&b.headers, name),
        );
        if x != y {
            out.push(Difference {
                place: Place::Header(name.to_owned()),
                a: x.map_or_else(absent, |v| shown(&v)),
                b: y.map_or_else(absent, |v| shown(&v)),
            });
        }
    }
}

/// Every value of `name`, joined by `, `; `None` when absent.
fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let joined: Vec<String> = values
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    Some(joined.join(", "))
}

/// The body parsed as JSON when the content type says JSON and it parses.
fn json_of(headers: &HeaderMap, body: &Bytes) -> Option<Value> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" && !media.ends_with("+json") {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// Two JSON documents walked together.
struct Walk<'r> {
    rules: Rules<'r>,
    noise: &'r Noise,
    limit: usize,
}

impl Walk<'_> {
    fn ignored(&self, path: &[Segment]) -> bool {
        self.rules.ignore_json.iter().any(|p| p.matches(path)) || self.noise.ignores_json(path)
    }

    fn values(&self, a: &Value, b: &Value, path: &mut Vec<Segment>, out: &mut Vec<Difference>) {
        if out.len() >= self.limit || self.ignored(path) {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for key in keys {
                    path.push(Segment::Key(key.clone()));
                    self.pair(x.get(key), y.get(key), path, out);
                    path.pop();
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                for i in 0..x.len().max(y.len()) {
                    path.push(Segment::Index(i));
                    self.pair(x.get(i), y.get(i), path, out);
                    path.pop();
                }
            }
            _ if a == b => {}
            _ => out.push(Difference {
                place: Place::Json(path.clone()),
                a: shown_json(a),
                b: shown_json(b),
            }),
        }
    }

    /// A node that may be absent on either side.
    fn pair(
        &self,
        a: Option<&Value>,
        b: Option<&Value>,
        path: &mut Vec<Segment>,
        out: &mut Vec<Difference>,
    ) {
        match (a, b) {
            (Some(a), Some(b)) => self.values(a, b, path, out),
            _ if out.len() >= self.limit || self.ignored(path) => {}
            (a, b) => out.push(Difference {
                place: Place::Json(path.clone()),
                a: a.map_or_else(absent, shown_json),
                b: b.map_or_else(absent, shown_json),
            }),
        }
    }
}

fn absent() -> String {
    "(absent)".to_owned()
}

fn shown_json(v: &Value) -> String {
    shown(&v.to_string())
}

fn shown_bytes(b: &Bytes) -> String {
    shown(&String::from_utf8_lossy(b))
}

/// `s` cut to [`MAX_VALUE_BYTES`] on a character boundary, `…` marking a cut.
pub fn shown(s: &str) -> String {
    if s.len() <= MAX_VALUE_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn json(body: &str) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        Answer {
            status: 200,
            headers,
            body: Some(Bytes::copy_from_slice(body.as_bytes())),
        }
    }

    fn text(body: &'static str) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        Answer {
            status: 200,
            headers,
            body: Some(Bytes::from_static(body.as_bytes())),
        }
    }

    const NONE: Rules<'static> = Rules {
        ignore_headers: &[],
        ignore_json: &[],
    };

    fn diff(a: &Answer, b: &Answer) -> Vec<String> {
        diff_with(a, b, NONE, &Noise::default())
    }

    fn diff_with(a: &Answer, b: &Answer, rules: Rules<'_>, noise: &Noise) -> Vec<String> {
        compare(a, b, rules, noise, MAX_DIFFERENCES)
            .into_iter()
            .map(|d| format!("{} {} {}", d.place.name(), d.a, d.b))
            .collect()
    }

    #[test]
    fn equal_json_with_keys_in_another_order_is_a_match() {
        let a = json(r#"{"a": 1, "b": {"x": [1, 2], "y": null}}"#);
        let b = json(r#"{"b": {"y": null, "x": [1, 2]}, "a": 1}"#);
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn a_changed_nested_field_is_a_mismatch_naming_its_path() {
        let a = json(r#"{"user": {"name": "ann", "roles": ["a", "b"]}}"#);
        let b = json(r#"{"user": {"name": "ann", "roles": ["a", "c"]}}"#);
        assert_eq!(diff(&a, &b), ["$.user.roles[1] \"b\" \"c\""]);
        let c = json(r#"{"user": {"name": "ann"}, "extra": 1}"#);
        assert_eq!(
            diff(&a, &c),
            ["$.extra (absent) 1", "$.user.roles [\"a\",\"b\"] (absent)"]
        );
    }

    #[test]
    fn a_json_suffix_type_is_json() {
        let mut a = json(r#"{"title": "x", "status": 400}"#);
        let mut b = json(r#"{"status": 400, "title": "x"}"#);
        for answer in [&mut a, &mut b] {
            answer.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("Application/Problem+JSON"),
            );
        }
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn a_number_and_a_string_differ() {
        assert_eq!(
            diff(&json(r#"{"n": 1}"#), &json(r#"{"n": "1"}"#)),
            ["$.n 1 \"1\""]
        );
    }

    #[test]
    fn ignore_json_with_a_wildcard() {
        let a =
            json(r#"{"items": [{"id": 1, "at": "t1"}, {"id": 2, "at": "t2"}], "meta": {"x": 1}}"#);
        let b =
            json(r#"{"items": [{"id": 1, "at": "u1"}, {"id": 2, "at": "u2"}], "meta": {"x": 2}}"#);
        assert_eq!(diff(&a, &b).len(), 3);
        let patterns = [
            JsonPath::parse("$.items[*].at").unwrap(),
            JsonPath::parse("$.meta.*").unwrap(),
        ];
        let rules = Rules {
            ignore_headers: &[],
            ignore_json: &patterns,
        };
        assert!(diff_with(&a, &b, rules, &Noise::default()).is_empty());
        // A pattern covers everything below it.
        let patterns = [JsonPath::parse("$.*").unwrap()];
        let rules = Rules {
            ignore_headers: &[],
            ignore_json: &patterns,
        };
        assert!(diff_with(&a, &b, rules, &Noise::default()).is_empty());
    }

    #[test]
    fn non_json_bodies_compare_byte_for_byte() {
        assert!(diff(&text("hello"), &text("hello")).is_empty());
        assert_eq!(diff(&text("hello"), &text("hello ")), ["body hello hello "]);
        // Same JSON text but not declared JSON: bytes, so spacing matters.
        let mut a = json(r#"{"a":1}"#);
        let mut b = json(r#"{ "a": 1 }"#);
        a.headers.remove(header::CONTENT_TYPE);
        b.headers.remove(header::CONTENT_TYPE);
        assert_eq!(diff(&a, &b).len(), 1);
        // Declared JSON that does not parse: bytes too.
        assert_eq!(diff(&json("{oops"), &json("{oops")).len(), 0);
        assert_eq!(diff(&json("{oops"), &json("{oops!")).len(), 1);
    }

    #[test]
    fn the_built_in_ignored_headers_and_configured_ones() {
        let mut a = text("x");
        let mut b = text("x");
        for (name, x, y) in [
            ("date", "Mon", "Tue"),
            ("server", "legacy", "new"),
            ("x-request-id", "1", "2"),
            ("content-length", "1", "2"),
            ("etag", "\"a\"", "\"b\""),
            ("set-cookie", "a=1", "a=2"),
            ("last-modified", "Mon", "Tue"),
            ("age", "1", "2"),
            ("expires", "Mon", "Tue"),
            ("via", "a", "b"),
            ("keep-alive", "timeout=5", "timeout=6"),
            ("x-strangler-backend", "legacy", "new"),
            ("x-powered-by", "php", "rust"),
        ] {
            a.headers
                .insert(HeaderName::from_static(name), HeaderValue::from_static(x));
            b.headers
                .insert(HeaderName::from_static(name), HeaderValue::from_static(y));
        }
        assert_eq!(diff(&a, &b), ["header:x-powered-by php rust"]);
        let configured = [HeaderName::from_static("x-powered-by")];
        let rules = Rules {
            ignore_headers: &configured,
            ignore_json: &[],
        };
        assert!(diff_with(&a, &b, rules, &Noise::default()).is_empty());
        // A header on one side only.
        b.headers
            .insert("x-new-only", HeaderValue::from_static("1"));
        assert_eq!(
            diff_with(&a, &b, rules, &Noise::default()),
            ["header:x-new-only (absent) 1"]
        );
    }

    #[test]
    fn status_is_compared_and_bodies_over_max_body_are_not() {
        let mut a = text("one");
        let mut b = text("two");
        a.body = None;
        b.status = 404;
        assert_eq!(diff(&a, &b), ["status 200 404"]);
        b.status = 200;
        assert!(
            diff(&a, &b).is_empty(),
            "no body kept: status and headers only"
        );
    }

    #[test]
    fn values_are_cut_to_one_kibibyte() {
        let long = "é".repeat(2000);
        let a = json(&format!(r#"{{"s": "{long}"}}"#));
        let b = json(r#"{"s": "short"}"#);
        let found = compare(&a, &b, NONE, &Noise::default(), MAX_DIFFERENCES);
        assert!(found[0].a.len() <= MAX_VALUE_BYTES + '…'.len_utf8());
        assert!(found[0].a.ends_with('…'));
        assert_eq!(found[0].b, "\"short\"");
    }

    #[test]
    fn the_number_of_differences_is_bounded() {
        let a: Vec<u32> = (0..500).collect();
        let b: Vec<u32> = (1..501).collect();
        let a = json(&serde_json::to_string(&a).unwrap());
        let b = json(&serde_json::to_string(&b).unwrap());
        assert_eq!(compare(&a, &b, NONE, &Noise::default(), 7).len(), 7);
    }

    #[test]
    fn fields_generalise_indices() {
        let place = Place::Json(vec![Segment::Key("items".into()), Segment::Index(4)]);
        assert_eq!(place.name(), "$.items[4]");
        assert_eq!(place.field(), "$.items[*]");
    }
}
