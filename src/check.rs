//! `strangler check`: validate a file, print its route table and its
//! warnings (SPEC §1, §2 *Warnings*), as text or as JSON for CI.

use std::path::Path;

use serde_json::{Value, json};

use crate::config::{self, ConfigError};
use crate::explain;

/// What `check` prints and how it exits.
#[derive(Debug)]
pub struct Report {
    pub stdout: String,
    pub stderr: String,
    /// 0 when valid (and, with `strict`, without warnings), else 1.
    pub code: u8,
}

/// Checks the file at `path`. With `strict`, a warning fails the check as an
/// error does; with `json`, everything goes to stdout as one JSON object.
pub fn check(path: &Path, strict: bool, json: bool) -> Report {
    let loaded = config::load(path);
    let (errors, warnings) = match &loaded {
        Ok(config) => (Vec::new(), config.warnings.clone()),
        Err(errors) => (errors.errors.clone(), Vec::new()),
    };
    let failed = !errors.is_empty() || (strict && !warnings.is_empty());
    let code = u8::from(failed);
    if json {
        let routes: Vec<Value> = match &loaded {
            Ok(config) => config
                .routes
                .iter()
                .map(|r| explain::route_json(config, r))
                .collect(),
            Err(_) => Vec::new(),
        };
        let report = json!({
            "ok": !failed,
            "path": path.display().to_string(),
            "errors": errors.iter().map(problem_json).collect::<Vec<_>>(),
            "warnings": warnings.iter().map(problem_json).collect::<Vec<_>>(),
            "routes": routes,
        });
        let stdout = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        return Report {
            stdout,
            stderr: String::new(),
            code,
        };
    }
    let mut stderr = String::new();
    let stdout = match &loaded {
        Ok(config) => explain::route_table(config),
        Err(errors) => {
            stderr.push_str(&format!("{errors}\n"));
            stderr.push_str(&format!(
                "{} error(s); nothing was changed\n",
                errors.errors.len()
            ));
            String::new()
        }
    };
    for warning in &warnings {
        stderr.push_str(&format!("{}\n", warning_text(path, warning)));
    }
    if !warnings.is_empty() {
        let verdict = if strict {
            "--strict: failing"
        } else {
            "not blocking"
        };
        stderr.push_str(&format!("{} warning(s) ({verdict})\n", warnings.len()));
    }
    Report {
        stdout,
        stderr,
        code,
    }
}

/// `path:line:column: warning: message` then `  help: hint`.
pub fn warning_text(path: &Path, warning: &ConfigError) -> String {
    let mut text = if warning.line == 0 {
        format!("{}: warning: {}", path.display(), warning.message)
    } else {
        format!(
            "{}:{}:{}: warning: {}",
            path.display(),
            warning.line,
            warning.column,
            warning.message
        )
    };
    if let Some(hint) = &warning.hint {
        text.push_str(&format!("\n  help: {hint}"));
    }
    text
}

/// A problem for `--format json`: `line` and `column` are null when it is
/// about the file as a whole (missing, unreadable).
fn problem_json(problem: &ConfigError) -> Value {
    let position = |n: usize| if n == 0 { Value::Null } else { json!(n) };
    json!({
        "line": position(problem.line),
        "column": position(problem.column),
        "message": problem.message,
        "hint": problem.hint,
    })
}
