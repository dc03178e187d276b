//! JSON paths as the shadow comparison names them: `ignore_json` patterns,
//! the paths of differences, and learned noise.
//!
//! The grammar, a small subset of RFC 9535 that users depend on across
//! releases (pinned by the tests at the bottom):
//!
//! ```text
//! path    = "$" *segment
//! segment = "." name        ; an object key made of A-Z a-z 0-9 _ -
//!         / "." "*"          ; any key or index
//!         / "[" digits "]"   ; an array index
//!         / "[*]"            ; any key or index
//!         / "[" string "]"   ; any object key, as a JSON string ("a.b", "")
//! ```
//!
//! A path is printed in that same form: a key as `.name` when it is made of
//! the name characters, else as a JSON string in brackets; an index as
//! `[n]`; a wildcard as `[*]`.
//!
//! A pattern matches a concrete path of the same length whose segments it
//! matches one by one; the comparison stops at the first path a pattern
//! matches, so a pattern also covers everything below it.
//!
//! Written here rather than taken from a JSONPath crate (`serde_json_path`,
//! `jsonpath-rust`): those evaluate a query against one document and return
//! the nodes it selects, while the comparison walks two documents at once and
//! needs the inverse question, "does this concrete path match a pattern", for
//! each node, in the 30 lines of [`JsonPath::matches`].

use std::fmt;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
    /// Any key or index (only in patterns).
    Any,
}

/// A path from the document's root (`$`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath(pub Vec<Segment>);

impl JsonPath {
    /// Parses the grammar above; the error says what is wrong.
    pub fn parse(s: &str) -> Result<JsonPath, String> {
        let Some(mut rest) = s.strip_prefix('$') else {
            return Err(format!("JSON path \"{s}\" does not start with '$'"));
        };
        let mut segments = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name == "*" {
                    segments.push(Segment::Any);
                } else if !name.is_empty() && name.chars().all(is_name_char) {
                    segments.push(Segment::Key(name.to_owned()));
                } else {
                    return Err(format!(
                        "JSON path \"{s}\": \"{name}\" after '.' is not a key; write [\"{name}\"] for keys with other characters"
                    ));
                }
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let (segment, used) = bracket(after).ok_or_else(|| {
                    format!("JSON path \"{s}\": a bracket holds an index, * or a quoted key")
                })?;
                segments.push(segment);
                rest = &after[used..];
            } else {
                return Err(format!(
                    "JSON path \"{s}\": expected '.' or '[' at \"{rest}\""
                ));
            }
        }
        Ok(JsonPath(segments))
    }

    /// Whether this pattern matches the concrete path `path`.
    pub fn matches(&self, path: &[Segment]) -> bool {
        self.0.len() == path.len()
            && self.0.iter().zip(path).all(|(p, s)| match (p, s) {
                (Segment::Any, _) => true,
                (Segment::Key(a), Segment::Key(b)) => a == b,
                (Segment::Index(a), Segment::Index(b)) => a == b,
                _ => false,
            })
    }

    /// The path with every array index replaced by `[*]`: what is learned as
    /// noise and ranked as a field, so item 3 counts with item 0.
    pub fn generalised(path: &[Segment]) -> JsonPath {
        JsonPath(
            path.iter()
                .map(|s| match s {
                    Segment::Index(_) => Segment::Any,
                    other => other.clone(),
                })
                .collect(),
        )
    }
}

/// What follows a `[`: the segment and the bytes used, `]` included.
fn bracket(after: &str) -> Option<(Segment, usize)> {
    if after.starts_with("*]") {
        return Some((Segment::Any, 2));
    }
    if after.starts_with('"') {
        // A JSON string: let serde_json find where it ends and unescape it.
        let mut stream = serde_json::Deserializer::from_str(after).into_iter::<String>();
        let key = stream.next()?.ok()?;
        let used = stream.byte_offset();
        return after[used..]
            .starts_with(']')
            .then(|| (Segment::Key(key), used + 1));
    }
    let end = after.find(']')?;
    let digits = &after[..end];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((Segment::Index(digits.parse().ok()?), end + 1))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Writes `path` in the grammar's form.
pub fn write_path(f: &mut impl fmt::Write, path: &[Segment]) -> fmt::Result {
    f.write_char('$')?;
    for segment in path {
        match segment {
            Segment::Key(k) if !k.is_empty() && k.chars().all(is_name_char) => {
                write!(f, ".{k}")?;
            }
            Segment::Key(k) => {
                let quoted = serde_json::to_string(k).map_err(|_| fmt::Error)?;
                write!(f, "[{quoted}]")?;
            }
            Segment::Index(i) => write!(f, "[{i}]")?,
            Segment::Any => f.write_str("[*]")?,
        }
    }
    Ok(())
}

/// `path` in the grammar's form, as a string.
pub fn path_string(path: &[Segment]) -> String {
    let mut s = String::new();
    let _ = write_path(&mut s, path);
    s
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_path(f, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::{Any, Index, Key};

    fn key(k: &str) -> Segment {
        Key(k.to_owned())
    }

    /// Vectors users depend on: the written form, what it parses to, and
    /// how it prints back.
    #[test]
    fn parse_and_print_vectors() {
        let vectors: &[(&str, Vec<Segment>, &str)] = &[
            ("$", vec![], "$"),
            ("$.a.b", vec![key("a"), key("b")], "$.a.b"),
            (
                "$.items[3].id",
                vec![key("items"), Index(3), key("id")],
                "$.items[3].id",
            ),
            ("$.a.*", vec![key("a"), Any], "$.a[*]"),
            ("$[*].x", vec![Any, key("x")], "$[*].x"),
            ("$[\"a.b\"]", vec![key("a.b")], "$[\"a.b\"]"),
            ("$[\"\"]", vec![key("")], "$[\"\"]"),
            (
                "$[\"q\\\"]\"].z",
                vec![key("q\"]"), key("z")],
                "$[\"q\\\"]\"].z",
            ),
            (
                "$.snake_case-1",
                vec![key("snake_case-1")],
                "$.snake_case-1",
            ),
        ];
        for (text, segments, printed) in vectors {
            let parsed = JsonPath::parse(text).unwrap();
            assert_eq!(&parsed.0, segments, "{text}");
            assert_eq!(parsed.to_string(), *printed, "{text}");
            assert_eq!(JsonPath::parse(printed).unwrap(), parsed, "{printed}");
        }
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in [
            "", "a.b", "$.", "$..a", "$.a b", "$[", "$[x]", "$[-1]", "$[\"a\"", "$a",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching() {
        let p = |s| JsonPath::parse(s).unwrap();
        let path = [key("items"), Index(2), key("id")];
        assert!(p("$.items[2].id").matches(&path));
        assert!(p("$.items[*].id").matches(&path));
        assert!(p("$.*.*.id").matches(&path));
        assert!(!p("$.items[1].id").matches(&path));
        assert!(!p("$.items").matches(&path), "length differs");
        assert!(!p("$.items.2.id").matches(&path), "a key is not an index");
        assert!(!p("$.items[2].id.x").matches(&path));
    }

    #[test]
    fn indices_are_generalised() {
        let path = [key("a"), Index(7), key("b"), Index(0)];
        assert_eq!(JsonPath::generalised(&path).to_string(), "$.a[*].b[*]");
    }
}
