//! TOML text → [`Config`], collecting every error with its position.
//!
//! The document is read with toml's spanned [`DeTable`] and walked by hand rather
//! than through serde, so that one pass can report *every* problem: syntax errors,
//! unknown keys (with the closest known key), wrong types, bad values and broken
//! cross-references (backends, flags, duplicate routes). Each section's reader
//! records its problems and returns a placeholder, so the walk always goes to the
//! end; only a file with no problem at all becomes a [`Config`].

use std::path::Path;

use toml::de::DeTable;

use super::backends::{BackendNames, read_backends};
use super::control::read_control;
use super::defaults::{read_defaults, resolve_default_legacy};
use super::flags::read_flags;
use super::reader::{Lines, Problems, Table};
use super::routes::{RouteEnv, read_routes};
use super::server::read_server;
use super::warnings::warnings;
use super::{Config, ConfigErrors, version_of};

const ROOT_KEYS: &[&str] = &[
    "server", "defaults", "backends", "flags", "routes", "control",
];

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

    let root = Table {
        name: "the top level".into(),
        at: 0,
        entries: Some(doc.get_ref()),
    };
    root.check_keys(&mut p, ROOT_KEYS);
    let server = read_server(&mut p, &root);
    let defaults = read_defaults(&mut p, &root);
    let backends = read_backends(&mut p, &root);
    let flags = read_flags(&mut p, &root);
    let names = BackendNames(&backends);
    let default_legacy = resolve_default_legacy(&mut p, &names, &defaults);
    let env = RouteEnv {
        backends: names,
        flags: &flags,
        defaults: &defaults,
    };
    let routes = read_routes(&mut p, &lines, &root, &env);
    let control = read_control(&mut p, &root);

    if !p.is_empty() {
        return Err(p.into_errors(&lines, path));
    }
    let mut config = Config {
        path: path.to_owned(),
        version: version_of(text.as_bytes()),
        server,
        backends,
        flags,
        routes,
        default_legacy,
        source: text.into(),
        warnings: Vec::new(),
        control,
    };
    let mut w = Problems::default();
    warnings(&mut w, &config, doc.get_ref(), |var| {
        std::env::var(var).ok()
    });
    config.warnings = w.into_errors(&lines, path).errors;
    Ok(config)
}

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
