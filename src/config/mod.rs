//! Configuration: raw TOML → validated, compiled [`Config`].
//!
//! Loading is two-stage: [`parse`] walks the spanned TOML document, collecting
//! *every* problem (unknown keys with the closest known key, wrong types, bad
//! values, cross-references) with its line and column, and only a file with no
//! problem at all becomes a [`Config`].
//!
//! - `reader`: the generic spanned-TOML reader (positions, unknown keys, typed
//!   values, "did you mean");
//! - `server`, `defaults`, `backends`, `flags`, `routes`, `fallback`, `rollout`
//!   (ramp and rollback), `rate_limit`, `shadow`, `control`: one reader per section, each beside
//!   its known keys;
//! - `validate`: the domain rules, pure functions on plain values.

mod backends;
mod control;
mod defaults;
mod fallback;
mod flags;
mod model;
mod parse;
mod rate_limit;
mod reader;
mod rollout;
mod routes;
mod server;
mod shadow;
pub mod units;
mod validate;
mod warnings;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;
pub use parse::parse;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based; 0 when the problem has no position (e.g. the file is unreadable).
    pub line: usize,
    /// 1-based; 0 when the problem has no position.
    pub column: usize,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Every problem found in one config file; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub path: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    /// `path:line:column: message` then `  help: hint`, one error after another.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if e.line == 0 {
                // A problem with the file as a whole has no position to show.
                write!(f, "{}: {}", self.path.display(), e.message)?;
            } else {
                write!(
                    f,
                    "{}:{}:{}: {}",
                    self.path.display(),
                    e.line,
                    e.column,
                    e.message
                )?;
            }
            if let Some(hint) = &e.hint {
                write!(f, "\n  help: {hint}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and parses the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read(path) {
        Ok(bytes) => parse_bytes(bytes, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigErrors::whole_file(
            path,
            "the file does not exist".into(),
            "check the path given with -c or $STRANGLER_CONFIG (default: config/strangler.toml)",
        )),
        Err(e) => Err(ConfigErrors::whole_file(
            path,
            format!("cannot read the file: {e}"),
            "check the path given with -c or $STRANGLER_CONFIG",
        )),
    }
}

/// Parses a file's bytes, read from `path`.
pub fn parse_bytes(bytes: Vec<u8>, path: &Path) -> Result<Config, ConfigErrors> {
    match String::from_utf8(bytes) {
        Ok(text) => parse(&text, path),
        Err(_) => Err(ConfigErrors::whole_file(
            path,
            "file is not valid UTF-8".into(),
            "save the file as UTF-8",
        )),
    }
}

impl ConfigErrors {
    /// One error about the file as a whole (no position).
    pub fn whole_file(path: &Path, message: String, hint: &str) -> ConfigErrors {
        ConfigErrors {
            path: path.to_owned(),
            errors: vec![ConfigError {
                line: 0,
                column: 0,
                message,
                hint: Some(hint.into()),
            }],
        }
    }
}

/// A config's `version`: the SHA-256 of the file's bytes, lowercase hex. The
/// only place it is computed.
pub fn version_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}
