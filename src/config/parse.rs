//! TOML text → [`Config`], collecting every error with its position.
//!
//! The document is read with toml's spanned [`DeTable`] and walked by hand rather
//! than through serde, so that one pass can report *every* problem: syntax errors,
//! unknown keys (with the closest known key), wrong types, bad values and broken
//! cross-references (backends, flags, duplicate routes). Each reader below records
//! its problems and returns a placeholder, so the walk always goes to the end; only
//! a file with no problem at all becomes a [`Config`].

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::units;
use super::{
    BackendConfig, BackendId, Config, ConfigError, ConfigErrors, FallbackConfig, HostMatch,
    MethodSet, Protocol, RouteConfig, ServerConfig, Sticky, TlsConfig,
};

type Value<'i> = Spanned<DeValue<'i>>;

// === Known keys ===

const ROOT_KEYS: &[&str] = &["server", "defaults", "backends", "flags", "routes"];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "admin_token_env",
    "debug_headers",
    "max_request_body",
    "header_read_timeout",
    "max_connections",
    "workers",
    "shutdown_timeout",
    "tls",
];
const TLS_KEYS: &[&str] = &["cert_file", "key_file"];
const DEFAULTS_KEYS: &[&str] = &["legacy", "new", "fallback"];
const BACKEND_KEYS: &[&str] = &[
    "url",
    "connect_timeout",
    "timeout",
    "preserve_host",
    "protocol",
    "ca_file",
    "tls_server_name",
    "tls_insecure_skip_verify",
];
const ROUTE_KEYS: &[&str] = &[
    "name", "path", "methods", "host", "headers", "flag", "weight", "sticky", "cohort", "rewrite",
    "legacy", "new", "fallback",
];
const FALLBACK_KEYS: &[&str] = &[
    "enabled",
    "on_status",
    "on_connect_error",
    "on_timeout",
    "replay_methods",
    "max_body",
];

/// The route label of requests no route matches; no route may take it.
const DEFAULT_ROUTE_LABEL: &str = "_default";

/// How to fix a TOML syntax error, from toml's message.
fn syntax_hint(message: &str) -> &'static str {
    if message.starts_with("duplicate key") {
        "a key or table may appear only once: remove or rename the second one \
         (each route is its own [[routes]] table)"
    } else if message.contains("unclosed") {
        "close the bracket or quote that opens here"
    } else {
        "fix the TOML syntax here: strings need double quotes, tables are written [name], \
         routes [[routes]]"
    }
}

/// Parses and validates a whole config file. `path` is only used for messages
/// and stored in [`Config::path`]; nothing is read from disk here.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut p = Problems::default();
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    for e in &syntax_errors {
        let at = e.span().map_or(0, |s| s.start);
        p.add(
            at,
            format!("invalid TOML: {}", e.message()),
            syntax_hint(e.message()),
        );
    }
    let lines = Lines::new(text);
    let config = read_config(&mut p, &lines, doc.get_ref(), path);
    if p.0.is_empty() {
        Ok(config)
    } else {
        Err(p.into_errors(&lines, path))
    }
}

// === Problems and positions ===

/// One problem, positioned by byte offset until the end, when it gets its line and column.
struct Problem {
    at: usize,
    message: String,
    hint: String,
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, at: usize, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(Problem {
            at,
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// Sorted by position; problems at the same position keep the order they were found in.
    fn into_errors(mut self, lines: &Lines<'_>, path: &Path) -> ConfigErrors {
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
struct Lines<'t> {
    text: &'t str,
    /// Byte offset where each line starts; the first is 0.
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Self {
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

    fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }
}

// === Tables and typed values ===

/// A table of the document, with the name it has in messages (`[server]`).
struct Table<'a, 'i> {
    name: String,
    /// Offset of the table's header (or inline value); where "missing key" points.
    at: usize,
    /// `None` when the table is absent: every key then takes its default.
    entries: Option<&'a DeTable<'i>>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.entries?.get(key)
    }

    /// Entries in file order (the map itself is sorted by key): `(key, key offset, value)`.
    fn entries(&self) -> Vec<(&'a str, usize, &'a Value<'i>)> {
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
    fn check_keys(&self, p: &mut Problems, known: &[&str]) {
        for (key, at, _) in self.entries() {
            if known.contains(&key) {
                continue;
            }
            let hint = match closest(key, known.iter().copied()) {
                Some(k) => format!("did you mean \"{k}\"?"),
                None => format!("valid keys in {}: {}", self.name, known.join(", ")),
            };
            p.add(at, format!("unknown key \"{key}\" in {}", self.name), hint);
        }
    }

    /// The sub-table at `key`, or an absent table when the key is missing or not a table.
    fn table(&self, p: &mut Problems, key: &str, name: String) -> Table<'a, 'i> {
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
fn field<'a, 'i, T>(
    p: &mut Problems,
    t: &Table<'a, 'i>,
    key: &str,
    read: impl FnOnce(&mut Problems, &'a Value<'i>) -> Option<T>,
) -> Option<T> {
    t.get(key).and_then(|v| read(p, v))
}

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

fn wrong_type(p: &mut Problems, v: &Value<'_>, expected: &str, hint: impl Into<String>) {
    let found = type_name(v.get_ref());
    p.add(
        v.span().start,
        format!("expected {expected}, found {found}"),
        hint,
    );
}

fn expect_str<'a>(
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

fn expect_bool(p: &mut Problems, v: &Value<'_>) -> Option<bool> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        _ => {
            wrong_type(p, v, "true or false", "write true or false, without quotes");
            None
        }
    }
}

fn expect_int(p: &mut Problems, v: &Value<'_>, hint: &str) -> Option<i64> {
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

fn expect_array<'a, 'i>(
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

fn expect_table<'a, 'i>(p: &mut Problems, v: &'a Value<'i>, hint: &str) -> Option<&'a DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            wrong_type(p, v, "a table", hint);
            None
        }
    }
}

/// A duration string such as `"5s"`.
fn duration(p: &mut Problems, v: &Value<'_>) -> Option<Duration> {
    let hint = match v.get_ref() {
        DeValue::Integer(i) => {
            format!(
                "durations need a unit: write \"{i}s\" for seconds or \"{i}ms\" for milliseconds"
            )
        }
        _ => "durations are strings with a unit: \"250ms\", \"5s\", \"1m\", \"1h\"".to_owned(),
    };
    let s = expect_str(p, v, "a string like \"5s\"", &hint)?;
    units::parse_duration(s)
        .map_err(|e| p.add(v.span().start, format!("invalid duration \"{s}\""), e))
        .ok()
}

/// Like [`duration`], but zero is refused (a timeout of zero would fail every request).
fn positive_duration(p: &mut Problems, v: &Value<'_>) -> Option<Duration> {
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
fn size(p: &mut Problems, v: &Value<'_>) -> Option<u64> {
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

fn socket_addr(p: &mut Problems, v: &Value<'_>) -> Option<SocketAddr> {
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
fn int_in(p: &mut Problems, v: &Value<'_>, min: i64, max: i64, hint: &str) -> Option<usize> {
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
fn file_path(p: &mut Problems, v: &Value<'_>) -> Option<PathBuf> {
    let hint = "write the file's path, like \"/etc/strangler/tls.crt\"";
    let s = expect_str(p, v, "a file path string", hint)?;
    if s.is_empty() {
        p.add(v.span().start, "the file path is empty", hint);
        return None;
    }
    Some(PathBuf::from(s))
}

/// An optional string where `""` means unset.
fn optional_str(p: &mut Problems, v: &Value<'_>, hint: &str) -> Option<Option<String>> {
    let s = expect_str(p, v, "a string", hint)?;
    Some((!s.is_empty()).then(|| s.to_owned()))
}

// === Edit distance ===

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
fn closest<'k>(word: &str, candidates: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters (insert, delete, substitute: cost 1 each).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// `did you mean "x"?` when a name is close to `name`, else `otherwise`.
fn suggest<'k>(name: &str, known: impl IntoIterator<Item = &'k str>, otherwise: String) -> String {
    match closest(name, known) {
        Some(k) => format!("did you mean \"{k}\"?"),
        None => otherwise,
    }
}

// === The document ===

fn read_config(p: &mut Problems, lines: &Lines<'_>, doc: &DeTable<'_>, path: &Path) -> Config {
    let root = Table {
        name: "the top level".into(),
        at: 0,
        entries: Some(doc),
    };
    root.check_keys(p, ROOT_KEYS);

    let server = read_server(p, &root);
    let defaults = read_defaults(p, &root);
    let backends = read_backends(p, &root);
    let flags = read_flags(p, &root);
    let names = BackendNames(&backends);
    let default_legacy = resolve_default_legacy(p, &names, &defaults);
    let routes = read_routes(
        p,
        lines,
        &root,
        &RouteEnv {
            backends: names,
            flags: &flags,
            defaults: &defaults,
        },
    );

    Config {
        path: path.to_owned(),
        version: format!("{:x}", Sha256::digest(lines.text.as_bytes())),
        server,
        backends,
        flags,
        routes,
        default_legacy,
    }
}

// === [server] ===

fn read_server(p: &mut Problems, root: &Table<'_, '_>) -> ServerConfig {
    let t = root.table(p, "server", "[server]".into());
    t.check_keys(p, SERVER_KEYS);
    let connections_hint = "write a whole number of at least 1, like 10000";
    ServerConfig {
        listen: field(p, &t, "listen", socket_addr).unwrap_or(([0, 0, 0, 0], 8080).into()),
        admin_listen: field(p, &t, "admin_listen", socket_addr)
            .unwrap_or(([127, 0, 0, 1], 9901).into()),
        admin_token_env: field(p, &t, "admin_token_env", admin_token_env).flatten(),
        debug_headers: field(p, &t, "debug_headers", expect_bool).unwrap_or(true),
        max_request_body: field(p, &t, "max_request_body", size).unwrap_or(10 << 20),
        header_read_timeout: field(p, &t, "header_read_timeout", positive_duration)
            .unwrap_or(Duration::from_secs(10)),
        max_connections: field(p, &t, "max_connections", |p, v| {
            int_in(p, v, 1, i64::from(u32::MAX), connections_hint)
        })
        .unwrap_or(10_000),
        workers: field(p, &t, "workers", |p, v| {
            int_in(
                p,
                v,
                0,
                1024,
                "write a number of threads, or 0 for one per core",
            )
        })
        .unwrap_or(0),
        shutdown_timeout: field(p, &t, "shutdown_timeout", duration)
            .unwrap_or(Duration::from_secs(30)),
        tls: read_tls(p, &t),
    }
}

/// The name of an environment variable, `""` meaning none.
fn admin_token_env(p: &mut Problems, v: &Value<'_>) -> Option<Option<String>> {
    let hint = "write the name of an environment variable, like \"STRANGLER_ADMIN_TOKEN\", or \"\" for none";
    let name = optional_str(p, v, hint)?;
    if let Some(n) = &name
        && (n.contains(['=', '\0']) || n.chars().any(char::is_whitespace))
    {
        p.add(
            v.span().start,
            format!("\"{n}\" is not a valid environment variable name"),
            hint,
        );
        return None;
    }
    Some(name)
}

fn read_tls(p: &mut Problems, server: &Table<'_, '_>) -> Option<TlsConfig> {
    let t = server.table(p, "tls", "[server.tls]".into());
    t.entries?;
    t.check_keys(p, TLS_KEYS);
    let mut required = |key: &str, example: &str| {
        if t.get(key).is_none() {
            p.add(
                t.at,
                format!("[server.tls] has no {key}"),
                format!("add {key} = \"{example}\", or remove [server.tls] to serve plain HTTP"),
            );
        }
        field(p, &t, key, file_path)
    };
    let cert_file = required("cert_file", "/etc/strangler/tls.crt");
    let key_file = required("key_file", "/etc/strangler/tls.key");
    Some(TlsConfig {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}

// === [defaults] ===

/// A backend name and the offset where it was written (`None`: the built-in default).
#[derive(Clone, Copy)]
struct NameRef<'a> {
    name: &'a str,
    at: Option<usize>,
}

struct Defaults<'a> {
    /// Offset of `[defaults]`, or 0 when absent.
    at: usize,
    legacy: NameRef<'a>,
    new: NameRef<'a>,
    fallback: FallbackPatch,
}

fn read_defaults<'a>(p: &mut Problems, root: &Table<'a, '_>) -> Defaults<'a> {
    let t = root.table(p, "defaults", "[defaults]".into());
    t.check_keys(p, DEFAULTS_KEYS);
    let fallback_table = t.table(p, "fallback", "[defaults.fallback]".into());
    let fallback = read_fallback(p, &fallback_table);
    Defaults {
        at: t.at,
        legacy: field(p, &t, "legacy", backend_ref).unwrap_or(NameRef {
            name: "legacy",
            at: None,
        }),
        new: field(p, &t, "new", backend_ref).unwrap_or(NameRef {
            name: "new",
            at: None,
        }),
        fallback,
    }
}

fn backend_ref<'a>(p: &mut Problems, v: &'a Value<'_>) -> Option<NameRef<'a>> {
    let hint = "write the name of a [backends.NAME] table, like \"legacy\"";
    let name = expect_str(p, v, "a backend name", hint)?;
    Some(NameRef {
        name,
        at: Some(v.span().start),
    })
}

// === [backends] ===

/// Backend names → ids, with "did you mean" for unknown names.
#[derive(Clone, Copy)]
struct BackendNames<'a>(&'a [BackendConfig]);

impl BackendNames<'_> {
    fn find(&self, name: &str) -> Option<BackendId> {
        self.0.iter().position(|b| b.name == name)
    }

    fn hint_for(&self, name: &str) -> String {
        let defined: Vec<&str> = self.0.iter().map(|b| b.name.as_str()).collect();
        let otherwise = if defined.is_empty() {
            format!("define it: [backends.{name}] with url = \"http://host:port\"")
        } else {
            format!(
                "define it with [backends.{name}] and a url, or use one of: {}",
                defined.join(", ")
            )
        };
        suggest(name, defined.iter().copied(), otherwise)
    }
}

fn read_backends(p: &mut Problems, root: &Table<'_, '_>) -> Vec<BackendConfig> {
    let t = root.table(p, "backends", "[backends]".into());
    t.entries()
        .into_iter()
        .map(|(name, at, v)| read_backend(p, name, at, v))
        .collect()
}

/// Always returns a backend so ids stay aligned with names; a broken one has
/// placeholder fields and its problems recorded.
fn read_backend(p: &mut Problems, name: &str, name_at: usize, v: &Value<'_>) -> BackendConfig {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        p.add(
            name_at,
            format!("invalid backend name \"{name}\""),
            "use letters, digits, '-', '_' and '.', like [backends.legacy]",
        );
    }
    let table_name = format!("[backends.{name}]");
    let hint = format!("write it as a table: {table_name} with url = \"http://host:port\"");
    let t = Table {
        at: v.span().start,
        entries: expect_table(p, v, &hint),
        name: table_name,
    };
    t.check_keys(p, BACKEND_KEYS);

    let url = match t.get("url") {
        Some(v) => backend_url(p, v),
        None => {
            if t.entries.is_some() {
                p.add(
                    t.at,
                    format!("backend \"{name}\" has no url"),
                    "add url = \"http://host:port\" to it",
                );
            }
            None
        }
    };
    let (url, scheme, authority, path_prefix) = url.unwrap_or_else(|| {
        (
            String::new(),
            Scheme::HTTP,
            Authority::from_static("invalid"),
            String::new(),
        )
    });
    let server_name_hint =
        "write a host name, like \"api.internal\", or \"\" to use the URL's host";
    BackendConfig {
        name: name.to_owned(),
        url,
        scheme,
        authority,
        path_prefix,
        connect_timeout: field(p, &t, "connect_timeout", positive_duration)
            .unwrap_or(Duration::from_secs(2)),
        timeout: field(p, &t, "timeout", positive_duration).unwrap_or(Duration::from_secs(30)),
        preserve_host: field(p, &t, "preserve_host", expect_bool).unwrap_or(true),
        protocol: field(p, &t, "protocol", protocol).unwrap_or(Protocol::Auto),
        ca_file: field(p, &t, "ca_file", |p, v| {
            optional_str(
                p,
                v,
                "write the path of a PEM file, or \"\" for the default roots",
            )
        })
        .flatten()
        .map(PathBuf::from),
        tls_server_name: field(p, &t, "tls_server_name", |p, v| {
            let name = optional_str(p, v, server_name_hint)?;
            if let Some(n) = &name
                && valid_hostname(&n.to_ascii_lowercase()).is_err()
            {
                p.add(
                    v.span().start,
                    format!("invalid TLS server name \"{n}\""),
                    server_name_hint,
                );
                return None;
            }
            Some(name)
        })
        .flatten(),
        tls_insecure_skip_verify: field(p, &t, "tls_insecure_skip_verify", expect_bool)
            .unwrap_or(false),
    }
}

fn protocol(p: &mut Problems, v: &Value<'_>) -> Option<Protocol> {
    let hint = "write \"http1\", \"http2\" or \"auto\"";
    match expect_str(p, v, "a string", hint)? {
        "http1" => Some(Protocol::Http1),
        "http2" => Some(Protocol::Http2),
        "auto" => Some(Protocol::Auto),
        other => {
            let hint = suggest(other, ["http1", "http2", "auto"], hint.to_owned());
            p.add(
                v.span().start,
                format!("unknown protocol \"{other}\""),
                hint,
            );
            None
        }
    }
}

/// `(url as written, scheme, authority, path prefix without trailing '/')`.
fn backend_url(p: &mut Problems, v: &Value<'_>) -> Option<(String, Scheme, Authority, String)> {
    let hint = "write an http or https URL with a host, like \"http://127.0.0.1:3001\"";
    let s = expect_str(p, v, "a URL string", hint)?;
    let at = v.span().start;
    let mut bad = |what: String| {
        p.add(at, format!("invalid backend url \"{s}\": {what}"), hint);
        None
    };
    if s.contains('#') {
        return bad("a fragment (#...) makes no sense here".into());
    }
    let uri: Uri = match s.parse() {
        Ok(uri) => uri,
        Err(e) => return bad(e.to_string().to_lowercase()),
    };
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        Some(other) => return bad(format!("scheme \"{other}\" is not http or https")),
        None => return bad("it has no scheme".into()),
    };
    let Some(authority) = uri.authority().cloned() else {
        return bad("it has no host".into());
    };
    if authority.host().is_empty() {
        return bad("it has no host".into());
    }
    if authority.as_str().contains('@') {
        return bad("credentials in the URL are not supported".into());
    }
    if uri.query().is_some() {
        return bad("a query (?...) is not allowed".into());
    }
    let path_prefix = uri.path().trim_end_matches('/').to_owned();
    Some((s.to_owned(), scheme, authority, path_prefix))
}

fn resolve_default_legacy(
    p: &mut Problems,
    backends: &BackendNames<'_>,
    d: &Defaults<'_>,
) -> BackendId {
    if let Some(id) = backends.find(d.legacy.name) {
        return id;
    }
    let name = d.legacy.name;
    let message = match d.legacy.at {
        Some(_) => format!("default legacy backend \"{name}\" is not defined"),
        None => format!("no backend \"{name}\": [defaults] legacy is \"{name}\" when not set"),
    };
    p.add(
        d.legacy.at.unwrap_or(d.at),
        message,
        backends.hint_for(name),
    );
    0
}

// === [flags] ===

fn read_flags(p: &mut Problems, root: &Table<'_, '_>) -> Vec<(String, bool)> {
    let t = root.table(p, "flags", "[flags]".into());
    t.entries()
        .into_iter()
        .map(|(name, _, v)| {
            let value = match v.get_ref() {
                DeValue::Boolean(b) => *b,
                _ => {
                    let hint = format!("write {name} = true or {name} = false");
                    wrong_type(p, v, "true or false", hint);
                    false
                }
            };
            (name.to_owned(), value)
        })
        .collect()
}

// === [[routes]] ===

/// What every route is checked against.
struct RouteEnv<'e> {
    backends: BackendNames<'e>,
    flags: &'e [(String, bool)],
    defaults: &'e Defaults<'e>,
}

/// What makes two routes the same for the "identical path and conditions" rule.
#[derive(PartialEq, Eq, Hash)]
struct Conditions {
    path: String,
    methods: Option<Vec<String>>,
    host: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Conditions {
    fn of(route: &RouteConfig) -> Self {
        let methods = route.methods.as_ref().map(|m| {
            let mut m: Vec<String> = m.iter().map(|m| m.as_str().to_owned()).collect();
            m.sort();
            m.dedup();
            m
        });
        let host = route.host.as_ref().map(|h| match h {
            HostMatch::Exact(h) => h.clone(),
            HostMatch::Suffix(s) => format!("*{s}"),
        });
        let mut headers: Vec<_> = route
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        headers.sort();
        headers.dedup();
        Conditions {
            path: route.path.clone(),
            methods,
            host,
            headers,
        }
    }
}

fn read_routes(
    p: &mut Problems,
    lines: &Lines<'_>,
    root: &Table<'_, '_>,
    env: &RouteEnv<'_>,
) -> Vec<RouteConfig> {
    let Some(v) = root.get("routes") else {
        return Vec::new();
    };
    let hint = "write each route as a [[routes]] table";
    let Some(items) = expect_array(p, v, "an array of [[routes]] tables", hint) else {
        return Vec::new();
    };
    let mut routes = Vec::with_capacity(items.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut conditions: HashMap<Conditions, usize> = HashMap::new();
    // The first route that inherits `defaults.new`, to report a missing one once.
    let mut inherits_new: Option<usize> = None;

    for item in items {
        let Some(parsed) = read_route(p, lines, item, env) else {
            continue;
        };
        let route = parsed.route;
        if parsed.inherits_new {
            inherits_new.get_or_insert(parsed.at);
        }
        if let Some(first) = names.insert(route.name.clone(), route.line) {
            p.add(
                parsed.name_at,
                format!("duplicate route name \"{}\"", route.name),
                format!(
                    "the route on line {first} has this name too: give one of them another name"
                ),
            );
        }
        if let Some(first) = conditions.insert(Conditions::of(&route), route.line) {
            p.add(
                parsed.at,
                format!(
                    "route \"{}\" has the same path and conditions as the route on line {first}",
                    route.name
                ),
                "it can never match: remove one, or make their methods, host or headers differ",
            );
        }
        routes.push(route);
    }

    if let Some(at) = inherits_new {
        check_default_new(p, env, at);
    }
    routes
}

/// `defaults.new` must exist once a route inherits it; reported once.
fn check_default_new(p: &mut Problems, env: &RouteEnv<'_>, first_user: usize) {
    let new = env.defaults.new;
    if env.backends.find(new.name).is_some() {
        return;
    }
    let message = match new.at {
        Some(_) => format!("default new backend \"{}\" is not defined", new.name),
        None => format!(
            "this route uses backend \"{}\" ([defaults] new when not set), which is not defined",
            new.name
        ),
    };
    p.add(
        new.at.unwrap_or(first_user),
        message,
        env.backends.hint_for(new.name),
    );
}

struct ParsedRoute {
    route: RouteConfig,
    /// Offset of the route's header.
    at: usize,
    /// Offset of its `name` value, or of its header when the name is its path.
    name_at: usize,
    inherits_new: bool,
}

fn read_route(
    p: &mut Problems,
    lines: &Lines<'_>,
    v: &Value<'_>,
    env: &RouteEnv<'_>,
) -> Option<ParsedRoute> {
    let entries = expect_table(p, v, "write each route as a [[routes]] table")?;
    let t = Table {
        name: "[[routes]]".into(),
        at: v.span().start,
        entries: Some(entries),
    };
    t.check_keys(p, ROUTE_KEYS);

    let path = match t.get("path") {
        Some(v) => route_path(p, v, "path").unwrap_or_else(|| "/".into()),
        None => {
            p.add(
                t.at,
                "route has no path",
                "add path = \"/prefix\" (\"/\" matches every path)",
            );
            "/".into()
        }
    };
    let name = field(p, &t, "name", route_name).unwrap_or_else(|| path.clone());
    let name_at = t.get("name").map_or(t.at, |v| v.span().start);
    let flag = field(p, &t, "flag", |p, v| flag_ref(p, v, env.flags));
    let default_weight = if t.get("flag").is_some() { 10_000 } else { 0 };
    let (legacy, _) = route_backend(p, &t, "legacy", env.defaults.legacy, &env.backends);
    let (new, inherits_new) = route_backend(p, &t, "new", env.defaults.new, &env.backends);
    let mut fallback = FallbackConfig::default();
    env.defaults.fallback.apply(&mut fallback);
    let fallback_table = t.table(p, "fallback", "[routes.fallback]".into());
    read_fallback(p, &fallback_table).apply(&mut fallback);

    let route = RouteConfig {
        cohort: field(p, &t, "cohort", cohort).unwrap_or_else(|| name.clone()),
        name,
        path,
        methods: field(p, &t, "methods", route_methods),
        host: field(p, &t, "host", host),
        headers: field(p, &t, "headers", header_conditions).unwrap_or_default(),
        flag,
        weight_bp: field(p, &t, "weight", weight).unwrap_or(default_weight),
        sticky: field(p, &t, "sticky", sticky),
        rewrite: field(p, &t, "rewrite", |p, v| route_path(p, v, "rewrite")),
        legacy: legacy.unwrap_or(0),
        new: new.unwrap_or(0),
        fallback,
        line: lines.line(t.at),
    };
    Some(ParsedRoute {
        route,
        at: t.at,
        name_at,
        inherits_new,
    })
}

/// A route's `legacy` or `new`: its own, or the default. The flag is true when the
/// default was inherited (its existence is checked once, by the caller).
fn route_backend(
    p: &mut Problems,
    t: &Table<'_, '_>,
    key: &str,
    default: NameRef<'_>,
    backends: &BackendNames<'_>,
) -> (Option<BackendId>, bool) {
    let Some(v) = t.get(key) else {
        return (backends.find(default.name), true);
    };
    let Some(r) = backend_ref(p, v) else {
        return (None, false);
    };
    let id = backends.find(r.name);
    if id.is_none() {
        p.add(
            v.span().start,
            format!("backend \"{}\" is not defined", r.name),
            backends.hint_for(r.name),
        );
    }
    (id, false)
}

fn route_name(p: &mut Problems, v: &Value<'_>) -> Option<String> {
    let hint = "use printable ASCII, like \"auth\" or \"api-v2\"";
    let s = expect_str(p, v, "a string", hint)?;
    let at = v.span().start;
    if s.is_empty() || s.trim() != s || HeaderValue::from_str(s).is_err() {
        p.add(at, format!("invalid route name \"{s}\""), hint);
        return None;
    }
    if s == DEFAULT_ROUTE_LABEL {
        p.add(
            at,
            "the route name \"_default\" is reserved",
            "it labels requests no route matches: choose another name",
        );
        return None;
    }
    Some(s.to_owned())
}

fn cohort(p: &mut Problems, v: &Value<'_>) -> Option<String> {
    let hint = "write a cohort name, like \"checkout\"; routes with the same cohort share buckets";
    let s = expect_str(p, v, "a string", hint)?;
    if s.is_empty() {
        p.add(v.span().start, "the cohort is empty", hint);
        return None;
    }
    Some(s.to_owned())
}

fn flag_ref(p: &mut Problems, v: &Value<'_>, flags: &[(String, bool)]) -> Option<(String, bool)> {
    let hint = "write the name of a key of [flags], like \"new_auth\"";
    let name = expect_str(p, v, "a flag name", hint)?;
    if let Some((n, value)) = flags.iter().find(|(n, _)| n == name) {
        return Some((n.clone(), *value));
    }
    let otherwise = if flags.is_empty() {
        format!("add it under [flags]: {name} = true")
    } else {
        let known: Vec<&str> = flags.iter().map(|(n, _)| n.as_str()).collect();
        format!("add it under [flags], or use one of: {}", known.join(", "))
    };
    let hint = suggest(name, flags.iter().map(|(n, _)| n.as_str()), otherwise);
    p.add(v.span().start, format!("unknown flag \"{name}\""), hint);
    None
}

/// Percent for new, `0..=100` with up to 2 decimals, as basis points.
fn weight(p: &mut Problems, v: &Value<'_>) -> Option<u16> {
    let hint = "write a percentage from 0 to 100 with at most 2 decimals, like 25 or 12.5";
    let percent = match v.get_ref() {
        DeValue::Integer(_) => expect_int(p, v, hint)? as f64,
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .unwrap_or(f64::NAN),
        _ => {
            wrong_type(p, v, "a number", hint);
            return None;
        }
    };
    if !(0.0..=100.0).contains(&percent) {
        p.add(
            v.span().start,
            format!("weight {percent} is out of range 0..=100"),
            hint,
        );
        return None;
    }
    let bp = (percent * 100.0).round();
    if (percent * 100.0 - bp).abs() > 1e-6 {
        p.add(
            v.span().start,
            format!("weight {percent} has more than 2 decimals"),
            hint,
        );
        return None;
    }
    // In 0..=10000 after the range check.
    Some(bp as u16)
}

/// A route `path` or `rewrite`: starts with `/`, stored normalised.
fn route_path(p: &mut Problems, v: &Value<'_>, key: &str) -> Option<String> {
    let hint = format!(
        "write a path starting with '/', like {key} = \"/api/users\"; no query or fragment"
    );
    let s = expect_str(p, v, "a path string", &hint)?;
    let at = v.span().start;
    if !s.starts_with('/') {
        p.add(at, format!("{key} \"{s}\" does not start with '/'"), hint);
        return None;
    }
    if let Some(c) = invalid_path_char(s) {
        p.add(
            at,
            format!("{key} \"{s}\" contains {c:?}, which is not allowed in a path"),
            hint,
        );
        return None;
    }
    Some(normalize_path(s))
}

/// The first character that cannot appear in a URI path (RFC 3986 `pchar` and `/`),
/// counting a `%` not followed by two hex digits.
fn invalid_path_char(s: &str) -> Option<char> {
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        let ok = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => true,
            '-' | '.' | '_' | '~' | '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';'
            | '=' | ':' | '@' | '/' => true,
            '%' => bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            _ => false,
        };
        if !ok {
            return Some(c);
        }
    }
    None
}

/// The request-path normalisation of [`crate::route::normalize_path`] (so a
/// route written with escapes or dot-segments compares equal to the requests
/// it matches), without a trailing `/`; the root stays `/`.
fn normalize_path(s: &str) -> String {
    let normalized = crate::route::normalize_path(s);
    match normalized.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

fn route_methods(p: &mut Problems, v: &Value<'_>) -> Option<Vec<Method>> {
    let hint = "write a list of methods, like [\"GET\", \"POST\"], or remove the key to match every method";
    let items = expect_array(p, v, "an array of method names", hint)?;
    if items.is_empty() {
        p.add(
            v.span().start,
            "methods is empty, so the route never matches",
            hint,
        );
        return None;
    }
    // Read every item before giving up, so each bad one is reported.
    let methods: Vec<Option<Method>> = items.iter().map(|item| method(p, item)).collect();
    methods.into_iter().collect()
}

/// A method name: an HTTP token, stored uppercase.
fn method(p: &mut Problems, v: &Value<'_>) -> Option<Method> {
    let hint = "write a method name like \"GET\" or \"POST\"";
    let s = expect_str(p, v, "a method name", hint)?;
    let upper = s.to_ascii_uppercase();
    match Method::from_bytes(upper.as_bytes()) {
        Ok(m) if is_token(&upper) => Some(m),
        _ => {
            p.add(v.span().start, format!("invalid method \"{s}\""), hint);
            None
        }
    }
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn host(p: &mut Problems, v: &Value<'_>) -> Option<HostMatch> {
    let hint = "write a host name like \"api.example.com\" or a wildcard like \"*.example.com\"";
    let s = expect_str(p, v, "a host name", hint)?;
    host_match(s)
        .map_err(|why| p.add(v.span().start, format!("invalid host \"{s}\": {why}"), hint))
        .ok()
}

/// Lowercases, strips a port, turns `*.example.com` into a suffix.
fn host_match(s: &str) -> Result<HostMatch, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("*.") {
        valid_hostname(rest)?;
        return Ok(HostMatch::Suffix(format!(".{rest}")));
    }
    if lower.contains('*') {
        return Err(
            "a wildcard is only allowed as a whole first label, like \"*.example.com\"".into(),
        );
    }
    if let Some(inner) = lower.strip_prefix('[') {
        let (ip, rest) = inner.split_once(']').ok_or("missing ']'")?;
        ip.parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 address")?;
        if !(rest.is_empty() || valid_port(rest)) {
            return Err("invalid port".into());
        }
        return Ok(HostMatch::Exact(format!("[{ip}]")));
    }
    let name = match lower.rsplit_once(':') {
        Some((name, port)) if valid_port(&format!(":{port}")) => name,
        Some(_) => return Err("invalid port".into()),
        None => &lower,
    };
    valid_hostname(name)?;
    Ok(HostMatch::Exact(name.to_owned()))
}

/// `":8080"`.
fn valid_port(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| p.parse::<u16>().is_ok())
}

/// Lowercase DNS name (or IPv4 address): labels of letters, digits and `-`.
fn valid_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!(
                "\"{label}\" is not a valid label (letters, digits and '-')"
            ));
        }
    }
    Ok(())
}

fn header_conditions(p: &mut Problems, v: &Value<'_>) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let hint = "write headers = { \"x-tenant\" = \"beta\" }";
    let t = Table {
        name: "headers".into(),
        at: v.span().start,
        entries: expect_table(p, v, hint),
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (name, at, value) in t.entries() {
        let header = match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                p.add(
                    at,
                    format!("invalid header name \"{name}\""),
                    "use a header name like \"x-tenant\"",
                );
                None
            }
        };
        let value = expect_str(p, value, "a header value string", hint).and_then(|s| {
            HeaderValue::from_str(s)
                .map_err(|_| {
                    let hint = "use printable ASCII characters in header values";
                    p.add(
                        value.span().start,
                        format!("invalid header value \"{s}\""),
                        hint,
                    );
                })
                .ok()
        });
        match (header, value) {
            (Some(h), Some(v)) => out.push((h, v)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn sticky(p: &mut Problems, v: &Value<'_>) -> Option<Sticky> {
    let hint = "write \"header:NAME\", \"cookie:NAME\", \"query:NAME\" or \"ip\"";
    let s = expect_str(p, v, "a string", hint)?;
    let parsed = match s.split_once(':') {
        None if s == "ip" => Some(Sticky::Ip),
        Some(("header", name)) => HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .ok()
            .map(Sticky::Header),
        Some(("cookie", name)) if is_token(name) => Some(Sticky::Cookie(name.to_owned())),
        Some(("query", name)) if valid_query_name(name) => Some(Sticky::Query(name.to_owned())),
        _ => None,
    };
    if parsed.is_none() {
        p.add(v.span().start, format!("invalid sticky key \"{s}\""), hint);
    }
    parsed
}

fn valid_query_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['&', '=', '#', '?'])
        && !name.chars().any(char::is_whitespace)
}

// === [routes.fallback] and [defaults.fallback] ===

/// The keys a fallback table sets; applied key by key over the inherited values.
#[derive(Default)]
struct FallbackPatch {
    enabled: Option<bool>,
    on_status: Option<Vec<u16>>,
    on_connect_error: Option<bool>,
    on_timeout: Option<bool>,
    replay_methods: Option<MethodSet>,
    max_body: Option<u64>,
}

impl FallbackPatch {
    fn apply(&self, base: &mut FallbackConfig) {
        if let Some(v) = self.enabled {
            base.enabled = v;
        }
        if let Some(v) = &self.on_status {
            base.on_status.clone_from(v);
        }
        if let Some(v) = self.on_connect_error {
            base.on_connect_error = v;
        }
        if let Some(v) = self.on_timeout {
            base.on_timeout = v;
        }
        if let Some(v) = &self.replay_methods {
            base.replay_methods = v.clone();
        }
        if let Some(v) = self.max_body {
            base.max_body = v;
        }
    }
}

fn read_fallback(p: &mut Problems, t: &Table<'_, '_>) -> FallbackPatch {
    t.check_keys(p, FALLBACK_KEYS);
    FallbackPatch {
        enabled: field(p, t, "enabled", expect_bool),
        on_status: field(p, t, "on_status", statuses),
        on_connect_error: field(p, t, "on_connect_error", expect_bool),
        on_timeout: field(p, t, "on_timeout", expect_bool),
        replay_methods: field(p, t, "replay_methods", replay_methods),
        max_body: field(p, t, "max_body", size),
    }
}

/// Sorted, deduplicated statuses in `100..=599`.
fn statuses(p: &mut Problems, v: &Value<'_>) -> Option<Vec<u16>> {
    let hint = "write a list of HTTP statuses from 100 to 599, like [502, 503, 504]";
    let items = expect_array(p, v, "an array of statuses", hint)?;
    // Read every item before giving up, so each bad one is reported.
    let statuses: Option<Vec<u16>> = items
        .iter()
        .map(|item| int_in(p, item, 100, 599, hint).map(|n| n as u16))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let mut statuses = statuses?;
    statuses.sort_unstable();
    statuses.dedup();
    Some(statuses)
}

fn replay_methods(p: &mut Problems, v: &Value<'_>) -> Option<MethodSet> {
    let hint = "write a list of methods like [\"GET\", \"PUT\"], or [\"*\"] for every method";
    let items = expect_array(p, v, "an array of method names", hint)?;
    let is_star = |item: &Value<'_>| matches!(item.get_ref(), DeValue::String(s) if s == "*");
    if let Some(star) = items.iter().find(|i| is_star(i)) {
        if items.len() > 1 {
            p.add(
                star.span().start,
                "\"*\" already means every method",
                "write [\"*\"] alone, or list the methods",
            );
            return None;
        }
        return Some(MethodSet::Any);
    }
    // Read every item before giving up, so each bad one is reported.
    let methods: Vec<Option<Method>> = items.iter().map(|item| method(p, item)).collect();
    let mut methods: Vec<Method> = methods.into_iter().collect::<Option<_>>()?;
    methods.dedup();
    Some(MethodSet::List(methods))
}
