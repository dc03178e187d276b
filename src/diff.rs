//! `strangler diff`: what saving a file would change in a running proxy
//! (SPEC §1). The running config is fetched from the admin API's
//! `/config/source`, its runtime state from `/routes`; both are compared with
//! the file as parsed, so comments and layout do not count as changes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use crate::config::{self, BackendConfig, Config, MethodSet, RouteConfig};
use crate::health::{fetch, fetch_json};

/// What `diff` prints and how it exits: 0 when equal, 2 when they differ, 1 on error.
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub code: u8,
}

/// Compares the file at `path` with the config the proxy at `admin` serves.
pub async fn run(path: &Path, admin: &str, token: Option<&str>) -> Result<Outcome, String> {
    let file = config::load(path).map_err(|e| format!("{e}"))?;
    let (status, source) = fetch(admin, "/config/source", token).await?;
    if !status.is_success() {
        return Err(format!(
            "http://{admin}/config/source answered {status}: {}",
            String::from_utf8_lossy(&source).trim()
        ));
    }
    let running_path = format!("running config at {admin}");
    let running = config::parse_bytes(source.to_vec(), Path::new(&running_path))
        .map_err(|e| format!("the running config does not parse here: {e}"))?;
    // Runtime state is optional: an older proxy still gets a config diff.
    let routes = fetch_json(admin, "/routes", token)
        .await
        .unwrap_or(Value::Null);
    let status = fetch_json(admin, "/config", token)
        .await
        .unwrap_or(Value::Null);
    let text_equal = running.source == file.source;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "comparing {} with the proxy at {admin} (running version {})",
        path.display(),
        &running.version[..12.min(running.version.len())]
    );
    let changes = compare(&running, &file, &routes);
    for line in &changes {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "effective weights (now → after the save):");
    for line in weights(&running, &file, &routes) {
        let _ = writeln!(out, "  {line}");
    }
    let mut overrides = runtime_notes(&routes);
    overrides.extend(override_notes(&status));
    for line in &overrides {
        let _ = writeln!(out, "{line}");
    }
    if changes.is_empty() {
        if text_equal {
            let _ = writeln!(out, "no difference: the proxy serves this file");
        } else {
            let _ = writeln!(
                out,
                "no difference in effect: only comments or layout differ (the proxy will reload it, with nothing to change)"
            );
        }
    } else {
        let _ = writeln!(
            out,
            "{} change(s): saving this file applies them on the next reload",
            changes.len()
        );
    }
    Ok(Outcome {
        text: out,
        code: if changes.is_empty() { 0 } else { 2 },
    })
}

/// The effective weight `/routes` shows for `name`, with its runtime state.
fn runtime_route<'v>(routes: &'v Value, name: &str) -> Option<&'v Value> {
    routes.as_array()?.iter().find(|r| r["name"] == name)
}

/// The overrides `/config` lists (route weights and flags), which a save
/// does not clear: one line each.
fn override_notes(config: &Value) -> Vec<String> {
    let describe = |name: &str, value: &Value| {
        format!("! override {name} = {value} stays in force after the save")
    };
    match config.get("overrides") {
        Some(Value::Object(map)) => map
            .iter()
            .flat_map(|(kind, entries)| match entries {
                Value::Object(inner) => inner
                    .iter()
                    .map(|(name, value)| describe(&format!("{kind}.{name}"), value))
                    .collect::<Vec<_>>(),
                other => vec![describe(kind, other)],
            })
            .collect(),
        Some(Value::Array(items)) => items.iter().map(|item| describe("(list)", item)).collect(),
        _ => Vec::new(),
    }
}

/// Overrides and rollbacks that stand whatever the file says.
fn runtime_notes(routes: &Value) -> Vec<String> {
    let mut notes = Vec::new();
    for route in routes.as_array().into_iter().flatten() {
        let name = route["name"].as_str().unwrap_or("?");
        if let Some(weight) = route.get("override").and_then(|o| o.get("weight")) {
            let set_at = route["override"]["set_at"].as_str().unwrap_or("?");
            notes.push(format!(
                "! route {name}: an override of its weight ({weight}%, set at {set_at}) stays in force after the save; clear it with DELETE /routes/{name}/override"
            ));
        }
        if route.get("rollback").and_then(|r| r.get("state")) == Some(&Value::from("tripped")) {
            notes.push(format!(
                "! route {name} is rolled back: it stays on legacy unless the save changes its weight, flag, ramp or rollback keys, or POST /routes/{name}/resume"
            ));
        }
    }
    notes
}

fn compare(running: &Config, file: &Config, routes: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let before: BTreeMap<&str, &RouteConfig> = running
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r))
        .collect();
    let after: BTreeMap<&str, &RouteConfig> =
        file.routes.iter().map(|r| (r.name.as_str(), r)).collect();
    for route in &file.routes {
        let now = route_weight_after(route, runtime_route(routes, &route.name));
        match before.get(route.name.as_str()) {
            None => out.push(format!(
                "+ route {} (path {}): added; effective weight {now}% (its requests were _default's, on legacy)",
                route.name, route.path
            )),
            Some(old) => {
                let changes = route_changes(running, old, file, route);
                let was = runtime_route(routes, &route.name)
                    .and_then(|r| r["weight"].as_f64())
                    .unwrap_or_else(|| crate::route::file_weight_percent(old));
                if !changes.is_empty() || was != now {
                    let changes = if changes.is_empty() {
                        "no change in the file".to_owned()
                    } else {
                        changes.join("; ")
                    };
                    out.push(format!(
                        "~ route {}: {changes}; effective weight {was}% → {now}%",
                        route.name
                    ));
                }
            }
        }
    }
    for route in &running.routes {
        if !after.contains_key(route.name.as_str()) {
            let was = runtime_route(routes, &route.name)
                .and_then(|r| r["weight"].as_f64())
                .unwrap_or_else(|| crate::route::file_weight_percent(route));
            out.push(format!(
                "- route {} (path {}): removed; effective weight {was}% → its requests go to the longest other match, or _default's legacy",
                route.name, route.path
            ));
        }
    }
    for backend in &file.backends {
        match running.backends.iter().find(|b| b.name == backend.name) {
            None => out.push(format!(
                "+ backend {}: added ({})",
                backend.name, backend.url
            )),
            Some(old) => {
                let changes = backend_changes(old, backend);
                if !changes.is_empty() {
                    out.push(format!(
                        "~ backend {}: {}",
                        backend.name,
                        changes.join("; ")
                    ));
                }
            }
        }
    }
    for backend in &running.backends {
        if !file.backends.iter().any(|b| b.name == backend.name) {
            out.push(format!("- backend {}: removed", backend.name));
        }
    }
    for (name, value) in &file.flags {
        match running.flags.iter().find(|(n, _)| n == name) {
            None => out.push(format!("+ flag {name} = {value}: added")),
            Some((_, old)) if old != value => {
                let users: Vec<&str> = file
                    .routes
                    .iter()
                    .filter(|r| r.flag.as_ref().is_some_and(|(n, _)| n == name))
                    .map(|r| r.name.as_str())
                    .collect();
                out.push(format!(
                    "~ flag {name}: {old} → {value} (routes: {})",
                    if users.is_empty() {
                        "none".to_owned()
                    } else {
                        users.join(", ")
                    }
                ));
            }
            Some(_) => {}
        }
    }
    for (name, _) in &running.flags {
        if !file.flags.iter().any(|(n, _)| n == name) {
            out.push(format!("- flag {name}: removed"));
        }
    }
    if running.default_legacy_name() != file.default_legacy_name() {
        out.push(format!(
            "~ defaults.legacy: {} → {}",
            running.default_legacy_name(),
            file.default_legacy_name()
        ));
    }
    let server = server_changes(running, file);
    if !server.is_empty() {
        out.push(format!("~ server: {}", server.join(", ")));
    }
    out
}

/// Every route of either config with its effective weight now (as the
/// proxy reports it, else the running file's) and after the save.
fn weights(running: &Config, file: &Config, routes: &Value) -> Vec<String> {
    let mut names: Vec<&str> = running.routes.iter().map(|r| r.name.as_str()).collect();
    for route in &file.routes {
        if !names.contains(&route.name.as_str()) {
            names.push(&route.name);
        }
    }
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    names
        .iter()
        .map(|name| {
            let runtime = runtime_route(routes, name);
            let now = running.routes.iter().find(|r| r.name == *name).map(|r| {
                runtime
                    .and_then(|r| r["weight"].as_f64())
                    .unwrap_or_else(|| crate::route::file_weight_percent(r))
            });
            let after = file
                .routes
                .iter()
                .find(|r| r.name == *name)
                .map(|r| route_weight_after(r, runtime));
            let show = |w: Option<f64>| w.map_or("-".to_owned(), |w| format!("{w}%"));
            format!("{name:<width$}  {} → {}", show(now), show(after))
        })
        .collect()
}

/// The weight a route will have after the save: an override stands, a trip
/// stands unless the route's own keys change; else the file's (flag applied).
fn route_weight_after(route: &RouteConfig, runtime: Option<&Value>) -> f64 {
    if let Some(weight) = runtime
        .and_then(|r| r.get("override"))
        .and_then(|o| o.get("weight"))
        .and_then(Value::as_f64)
    {
        return weight;
    }
    crate::route::file_weight_percent(route)
}

fn route_changes(
    old_config: &Config,
    old: &RouteConfig,
    new_config: &Config,
    new: &RouteConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, was: String, now: String| {
        if was != now {
            out.push(format!("{name} {was} → {now}"));
        }
    };
    field("path", old.path.clone(), new.path.clone());
    field(
        "weight",
        format!("{}", f64::from(old.weight_bp) / 100.0),
        format!("{}", f64::from(new.weight_bp) / 100.0),
    );
    let flag = |r: &RouteConfig| {
        r.flag
            .as_ref()
            .map_or("none".to_owned(), |(n, v)| format!("{n}={v}"))
    };
    field("flag", flag(old), flag(new));
    field(
        "legacy",
        old_config.backend(old.legacy).name.clone(),
        new_config.backend(new.legacy).name.clone(),
    );
    field(
        "new",
        old_config.backend(old.new).name.clone(),
        new_config.backend(new.new).name.clone(),
    );
    field(
        "methods",
        format!("{:?}", old.methods.as_deref().map(methods)),
        format!("{:?}", new.methods.as_deref().map(methods)),
    );
    field("host", format!("{:?}", old.host), format!("{:?}", new.host));
    let headers = |r: &RouteConfig| {
        r.headers
            .iter()
            .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(v.as_bytes())))
            .collect::<Vec<_>>()
            .join(",")
    };
    field("headers", headers(old), headers(new));
    field(
        "sticky",
        format!("{:?}", old.sticky),
        format!("{:?}", new.sticky),
    );
    field(
        "set_cookie",
        old.set_cookie.to_string(),
        new.set_cookie.to_string(),
    );
    field("cohort", old.cohort.clone(), new.cohort.clone());
    field(
        "rewrite",
        format!("{:?}", old.rewrite),
        format!("{:?}", new.rewrite),
    );
    let fallback = |r: &RouteConfig| {
        let fb = &r.fallback;
        let replay = match &fb.replay_methods {
            MethodSet::Any => "*".to_owned(),
            MethodSet::List(list) => methods(list).join(","),
        };
        format!(
            "enabled={} on_status={:?} connect={} timeout={} reset={} replay=[{replay}] max_body={} hold_response={}",
            fb.enabled,
            fb.on_status,
            fb.on_connect_error,
            fb.on_timeout,
            fb.on_reset,
            fb.max_body,
            fb.hold_response
        )
    };
    field("fallback", fallback(old), fallback(new));
    out
}

fn methods(list: &[http::Method]) -> Vec<String> {
    list.iter().map(|m| m.as_str().to_owned()).collect()
}

fn backend_changes(old: &BackendConfig, new: &BackendConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, was: String, now: String| {
        if was != now {
            out.push(format!("{name} {was} → {now}"));
        }
    };
    field("url", old.url.clone(), new.url.clone());
    let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
    field(
        "connect_timeout",
        d(old.connect_timeout),
        d(new.connect_timeout),
    );
    field("timeout", d(old.timeout), d(new.timeout));
    field(
        "preserve_host",
        old.preserve_host.to_string(),
        new.preserve_host.to_string(),
    );
    field(
        "protocol",
        format!("{:?}", old.protocol),
        format!("{:?}", new.protocol),
    );
    field(
        "ca_file",
        format!("{:?}", old.ca_file),
        format!("{:?}", new.ca_file),
    );
    field(
        "tls_server_name",
        format!("{:?}", old.tls_server_name),
        format!("{:?}", new.tls_server_name),
    );
    field(
        "tls_insecure_skip_verify",
        old.tls_insecure_skip_verify.to_string(),
        new.tls_insecure_skip_verify.to_string(),
    );
    field(
        "outlier",
        format!("{:?}", old.outlier),
        format!("{:?}", new.outlier),
    );
    field(
        "health",
        format!("{:?}", old.health),
        format!("{:?}", new.health),
    );
    out
}

fn server_changes(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&old.server, &new.server);
    let mut out = Vec::new();
    let mut check = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_owned());
        }
    };
    check("listen (restart)", a.listen != b.listen);
    check("admin_listen (restart)", a.admin_listen != b.admin_listen);
    check("admin_token_env", a.admin_token_env != b.admin_token_env);
    check("debug_headers", a.debug_headers != b.debug_headers);
    check("max_request_body", a.max_request_body != b.max_request_body);
    check(
        "header_read_timeout (restart)",
        a.header_read_timeout != b.header_read_timeout,
    );
    check(
        "max_connections (restart)",
        a.max_connections != b.max_connections,
    );
    check("workers (restart)", a.workers != b.workers);
    check(
        "shutdown_timeout (restart)",
        a.shutdown_timeout != b.shutdown_timeout,
    );
    check("tls", a.tls != b.tls);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runtime_state_that_outlives_a_save_is_reported() {
        let routes = json!([
            {"name": "users", "override": {"weight": 0.0, "set_at": "2026-12-01T10:00:00Z"},
             "rollback": {"state": "armed", "reason": null, "since": null}},
            {"name": "pay", "override": null,
             "rollback": {"state": "tripped", "reason": "error rate", "since": "2026-12-01T10:00:00Z"}},
            {"name": "old"}
        ]);
        let notes = runtime_notes(&routes);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with(
                "! route users: an override of its weight (0.0%, set at 2026-12-01T10:00:00Z) stays"
            ),
            "{notes:?}"
        );
        assert!(
            notes[1].starts_with("! route pay is rolled back"),
            "{notes:?}"
        );

        let config = json!({"overrides": {"routes": {"users": {"weight": 0}}, "flags": {"new_checkout": {"value": false}}}});
        let notes = override_notes(&config);
        assert_eq!(
            notes,
            [
                "! override flags.new_checkout = {\"value\":false} stays in force after the save",
                "! override routes.users = {\"weight\":0} stays in force after the save",
            ]
        );
        assert!(override_notes(&json!({"overrides": {}})).is_empty());
        assert!(override_notes(&json!({})).is_empty());
    }

    #[test]
    fn an_override_decides_the_weight_after_the_save() {
        let route = crate::route::testing::route("users", "/users");
        assert_eq!(route_weight_after(&route, None), 0.0);
        let runtime = json!({"override": {"weight": 12.5}});
        assert_eq!(route_weight_after(&route, Some(&runtime)), 12.5);
    }
}
