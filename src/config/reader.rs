//! A generic reader over toml's spanned [`DeTable`]: problems with positions,
//! tables that report unknown keys, typed values, and "did you mean".
//!
//! Nothing here knows the config's sections. Every reader records its problems
//! in [`Problems`] and returns `None` (or a placeholder), so a walk always goes
//! to the end and reports every problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::units;
use super::{ConfigError, ConfigErrors};

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

// === Problems and positions ===

/// One problem, positioned by byte offset until the end, when it gets its line and column.
struct Problem {
    at: usize,
    message: String,
    hint: String,
}

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, at: usize, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(Problem {
            at,
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorted by position; problems at the same position keep the order they were found in.
    pub(super) fn into_errors(mut self, lines: &Lines<'_>, path: &Path) -> ConfigErrors {
        self.0.sort_by_key(|pb| pb.at);
        let errors = self
            .0
            .into_iter()
            .map(|pb| {
                let (line, column) = lines.position(pb.at);
                ConfigError {
                    line,
                    column,
                    message: pb.message,
                    hint: Some(pb.hint),
                }
            })
            .collect();
        ConfigErrors {
            path: path.to_owned(),
            errors,
        }
    }
}

/// Byte offset → 1-based line and column (the column counts characters, not bytes).
pub(super) struct Lines<'t> {
    text: &'t str,
    /// Byte offset where each line starts; the first is 0.
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }

    pub(super) fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }
}

// === Tables ===

/// A table of the document, with the name it has in messages (`[server]`).
pub(super) struct Table<'a, 'i> {
    pub(super) name: String,
    /// Offset of the table's header (or inline value); where "missing key" points.
    pub(super) at: usize,
    /// `None` when the table is absent: every key then takes its default.
    pub(super) entries: Option<&'a DeTable<'i>>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.entries?.get(key)
    }

    /// Entries in file order (the map itself is sorted by key): `(key, key offset, value)`.
    pub(super) fn entries(&self) -> Vec<(&'a str, usize, &'a Value<'i>)> {
        let mut entries: Vec<_> = self
            .entries
            .into_iter()
            .flat_map(|t| t.iter())
            .map(|(k, v)| (k.get_ref().as_ref(), k.span().start, v))
            .collect();
        entries.sort_by_key(|&(_, at, _)| at);
        entries
    }

    /// Reports every key that is not in `known`, suggesting the closest known one.
    pub(super) fn check_keys(&self, p: &mut Problems, known: &[&str]) {
        for (key, at, _) in self.entries() {
            if known.contains(&key) {
                continue;
            }
            let otherwise = format!("valid keys in {}: {}", self.name, known.join(", "));
            let hint = suggest(key, known.iter().copied(), otherwise);
            p.add(at, format!("unknown key \"{key}\" in {}", self.name), hint);
        }
    }

    /// The sub-table at `key`, or an absent table when the key is missing or not a table.
    pub(super) fn table(&self, p: &mut Problems, key: &str, name: String) -> Table<'a, 'i> {
        let Some(v) = self.get(key) else {
            return Table {
                name,
                at: self.at,
                entries: None,
            };
        };
        let hint = format!("write it as a table: {name} on its own line, then its keys");
        let entries = expect_table(p, v, &hint);
        Table {
            name,
            at: v.span().start,
            entries,
        }
    }
}

/// Reads `key` from `t` with `read`; `None` when absent or invalid (the problem is recorded).
pub(super) fn field<'a, 'i, T>(
    p: &mut Problems,
    t: &Table<'a, 'i>,
    key: &str,
    read: impl FnOnce(&mut Problems, &'a Value<'i>) -> Option<T>,
) -> Option<T> {
    t.get(key).and_then(|v| read(p, v))
}

// === Typed values ===

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "string",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "float",
        DeValue::Boolean(_) => "boolean",
        DeValue::Datetime(_) => "datetime",
        DeValue::Array(_) => "array",
        DeValue::Table(_) => "table",
    }
}

pub(super) fn wrong_type(p: &mut Problems, v: &Value<'_>, expected: &str, hint: impl Into<String>) {
    let found = type_name(v.get_ref());
    p.add(
        v.span().start,
        format!("expected {expected}, found {found}"),
        hint,
    );
}

pub(super) fn expect_str<'a>(
    p: &mut Problems,
    v: &'a Value<'_>,
    expected: &str,
    hint: &str,
) -> Option<&'a str> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.as_ref()),
        _ => {
            wrong_type(p, v, expected, hint);
            None
        }
    }
}

pub(super) fn expect_bool(p: &mut Problems, v: &Value<'_>) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            wrong_type(p, v, "true or false", "write true or false, without quotes");
            None
        }
    }
}

pub(super) fn expect_int(p: &mut Problems, v: &Value<'_>, hint: &str) -> Option<i64> {
    let DeValue::Integer(i) = v.get_ref() else {
        wrong_type(p, v, "an integer", hint);
        return None;
    };
    match i64::from_str_radix(i.as_str(), i.radix()) {
        Ok(n) => Some(n),
        Err(_) => {
            p.add(v.span().start, format!("integer {i} is out of range"), hint);
            None
        }
    }
}

pub(super) fn expect_array<'a, 'i>(
    p: &mut Problems,
    v: &'a Value<'i>,
    expected: &str,
    hint: &str,
) -> Option<&'a [Value<'i>]> {
    match v.get_ref() {
        DeValue::Array(a) => Some(a),
        _ => {
            wrong_type(p, v, expected, hint);
            None
        }
    }
}

pub(super) fn expect_table<'a, 'i>(
    p: &mut Problems,
    v: &'a Value<'i>,
    hint: &str,
) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            wrong_type(p, v, "a table", hint);
            None
        }
    }
}

/// A duration string such as `"5s"`.
pub(super) fn duration(p: &mut Problems, v: &Value<'_>) -> Option<Duration> {
    let hint = match v.get_ref() {
        DeValue::Integer(i) => {
            format!(
                "durations need a unit: write \"{i}s\" for seconds or \"{i}ms\" for milliseconds"
            )
        }
        _ => "durations are strings with a unit: \"250ms\", \"5s\", \"1m\", \"1h\"".to_owned(),
    };
    let s = expect_str(p, v, "a string like \"5s\"", &hint)?;
    let d = units::parse_duration(s)
        .map_err(|e| p.add(v.span().start, format!("invalid duration \"{s}\""), e))
        .ok()?;
    if d > units::MAX_DURATION {
        p.add(
            v.span().start,
            format!("duration \"{s}\" is out of range: at most 30 days"),
            "use a duration of at most \"720h\" (30 days)",
        );
        return None;
    }
    Some(d)
}

/// Like [`duration`], but zero is refused (a timeout of zero would fail every request).
pub(super) fn positive_duration(p: &mut Problems, v: &Value<'_>) -> Option<Duration> {
    let d = duration(p, v)?;
    if d.is_zero() {
        p.add(
            v.span().start,
            "this timeout must be above zero",
            "use a duration like \"5s\"",
        );
        return None;
    }
    Some(d)
}

/// A size: an integer number of bytes or a string such as `"64KiB"`.
pub(super) fn size(p: &mut Problems, v: &Value<'_>) -> Option<u64> {
    let result = match v.get_ref() {
        DeValue::Integer(_) => {
            units::size_from_integer(expect_int(p, v, "write a number of bytes")?)
        }
        DeValue::String(s) => units::parse_size(s),
        _ => {
            let hint =
                "sizes are a number of bytes or a string with a unit: 1048576, \"64KiB\", \"1MiB\"";
            wrong_type(p, v, "a size like 1048576 or \"1MiB\"", hint);
            return None;
        }
    };
    result
        .map_err(|e| p.add(v.span().start, "invalid size", e))
        .ok()
}

pub(super) fn socket_addr(p: &mut Problems, v: &Value<'_>) -> Option<SocketAddr> {
    let hint = "write an IP address and a port, like \"0.0.0.0:8080\" or \"[::1]:8080\"";
    let s = expect_str(p, v, "a string like \"0.0.0.0:8080\"", hint)?;
    s.parse()
        .map_err(|_| {
            p.add(
                v.span().start,
                format!("invalid socket address \"{s}\""),
                hint,
            )
        })
        .ok()
}

/// An integer in `min..=max` (as `usize`).
pub(super) fn int_in(
    p: &mut Problems,
    v: &Value<'_>,
    min: i64,
    max: i64,
    hint: &str,
) -> Option<usize> {
    let n = expect_int(p, v, hint)?;
    if n < min || n > max {
        p.add(
            v.span().start,
            format!("{n} is out of range {min}..={max}"),
            hint,
        );
        return None;
    }
    usize::try_from(n).ok()
}

/// A non-empty string naming a file.
pub(super) fn file_path(p: &mut Problems, v: &Value<'_>) -> Option<PathBuf> {
    let hint = "write the file's path, like \"/etc/strangler/tls.crt\"";
    let s = expect_str(p, v, "a file path string", hint)?;
    if s.is_empty() {
        p.add(v.span().start, "the file path is empty", hint);
        return None;
    }
    Some(PathBuf::from(s))
}

/// An optional string where `""` means unset.
pub(super) fn optional_str(p: &mut Problems, v: &Value<'_>, hint: &str) -> Option<Option<String>> {
    let s = expect_str(p, v, "a string", hint)?;
    Some((!s.is_empty()).then(|| s.to_owned()))
}

// === Did you mean ===

/// `did you mean "x"?` when a name is close to `name`, else `otherwise`.
pub(super) fn suggest<'k>(
    name: &str,
    known: impl IntoIterator<Item = &'k str>,
    otherwise: String,
) -> String {
    match closest(name, known) {
        Some(k) => format!("did you mean \"{k}\"?"),
        None => otherwise,
    }
}

/// The candidate closest to `word` by edit distance (over characters), if it is
/// close enough to be a typo; the first of equally close ones.
fn closest<'k>(word: &str, candidates: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}
