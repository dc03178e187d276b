//! SPEC §2 *Warnings*: what is valid but probably not meant. Computed from the
//! validated [`Config`], positioned from the document it came from; a warning
//! never blocks a load.

use toml::de::{DeTable, DeValue};

use super::Config;
use super::reader::{Problems, Value};

/// The document's value at `keys` (tables only), if present.
fn at<'a, 'i>(root: &'a DeTable<'i>, keys: &[&str]) -> Option<&'a Value<'i>> {
    let (first, rest) = keys.split_first()?;
    let mut value = root.get(*first)?;
    for key in rest {
        let DeValue::Table(table) = value.get_ref() else {
            return None;
        };
        value = table.get(*key)?;
    }
    Some(value)
}

/// The offset of the key `name` in the table at `keys`.
fn key_at(root: &DeTable<'_>, keys: &[&str], name: &str) -> Option<usize> {
    let DeValue::Table(table) = at(root, keys)?.get_ref() else {
        return None;
    };
    table
        .iter()
        .find(|(k, _)| k.get_ref() == name)
        .map(|(k, _)| k.span().start)
}

/// The `index`th `[[routes]]` table.
fn route_table<'a, 'i>(root: &'a DeTable<'i>, index: usize) -> Option<&'a DeTable<'i>> {
    let DeValue::Array(routes) = root.get("routes")?.get_ref() else {
        return None;
    };
    match routes.get(index)?.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

fn start(value: Option<&Value<'_>>) -> Option<usize> {
    value.map(|v| v.span().start)
}

/// Every warning about `config`, recorded in `w` at its position in `root`.
/// `env` reads an environment variable (`admin_token_env`).
pub(super) fn warnings(
    w: &mut Problems,
    config: &Config,
    root: &DeTable<'_>,
    env: impl Fn(&str) -> Option<String>,
) {
    // A backend no route uses.
    for (index, backend) in config.backends.iter().enumerate() {
        let id = super::BackendId::new(index);
        let used = config.default_legacy == id
            || config.routes.iter().any(|r| r.legacy == id || r.new == id);
        let here = key_at(root, &["backends"], &backend.name).unwrap_or(0);
        if !used {
            w.add(
                here,
                format!("backend \"{}\" is not used by any route", backend.name),
                "use it as a route's legacy or new, or remove it",
            );
        }
        let keys = ["backends", backend.name.as_str()];
        if backend.connect_timeout >= backend.timeout {
            let connect = start(at(root, &[keys[0], keys[1], "connect_timeout"]));
            let timeout = start(at(root, &[keys[0], keys[1], "timeout"]));
            w.add(
                connect.or(timeout).unwrap_or(here),
                format!(
                    "backend \"{}\": connect_timeout ({}) is not shorter than timeout ({})",
                    backend.name,
                    humantime::format_duration(backend.connect_timeout),
                    humantime::format_duration(backend.timeout)
                ),
                "timeout counts from the start of the connection: make connect_timeout \
                 a fraction of it, like 2s for a 30s timeout",
            );
        }
        if backend.tls_insecure_skip_verify {
            let value = start(at(root, &[keys[0], keys[1], "tls_insecure_skip_verify"]));
            w.add(
                value.unwrap_or(here),
                format!(
                    "backend \"{}\": tls_insecure_skip_verify is on: its certificate is not checked",
                    backend.name
                ),
                "never in production: set ca_file to the backend's CA instead",
            );
        }
    }
    // A flag no route uses.
    for (name, _) in &config.flags {
        let used = config
            .routes
            .iter()
            .any(|r| r.flag.as_ref().is_some_and(|(n, _)| n == name));
        if !used {
            w.add(
                key_at(root, &["flags"], name).unwrap_or(0),
                format!("flag \"{name}\" is not used by any route"),
                "set it as a route's flag, or remove it",
            );
        }
    }
    // `on_status` codes below 500: in [defaults.fallback] once, then per route's own.
    let low = |statuses: &[u16]| -> Vec<String> {
        statuses
            .iter()
            .filter(|&&s| s < 500)
            .map(u16::to_string)
            .collect()
    };
    let on_status_hint = "an answer below 500 is new's real answer (a 404 is the client's \
                          error, a 200 a success): list server errors only, like [500, 502, 503, 504]";
    if let Some(value) = at(root, &["defaults", "fallback", "on_status"]) {
        let codes = low(&statuses_of(value));
        if !codes.is_empty() {
            w.add(
                value.span().start,
                format!(
                    "[defaults.fallback] on_status has {} below 500",
                    codes.join(", ")
                ),
                on_status_hint,
            );
        }
    }
    for (index, route) in config.routes.iter().enumerate() {
        let table = route_table(root, index);
        let header = table.map_or(0, |t| {
            t.iter()
                .map(|(k, _)| k.span().start)
                .min()
                .unwrap_or_default()
        });
        let own_status = table
            .and_then(|t| t.get("fallback"))
            .and_then(|f| match f.get_ref() {
                DeValue::Table(t) => t.get("on_status"),
                _ => None,
            });
        if let Some(value) = own_status {
            let codes = low(&route.fallback.on_status);
            if !codes.is_empty() {
                w.add(
                    value.span().start,
                    format!(
                        "route \"{}\": on_status has {} below 500",
                        route.name,
                        codes.join(", ")
                    ),
                    on_status_hint,
                );
            }
        }
        if route.weight_bp > 0 && route.weight_bp < 10_000 && route.sticky.is_none() {
            let weight = table.and_then(|t| t.get("weight")).map(|v| v.span().start);
            w.add(
                weight.unwrap_or(header),
                format!(
                    "route \"{}\" sends {}% to new with no sticky key: users flip between \
                     legacy and new on every request",
                    route.name,
                    f64::from(route.weight_bp) / 100.0
                ),
                "add sticky = \"header:x-user-id\", \"cookie:NAME\" (with set_cookie = true \
                 for anonymous users) or \"ip\"",
            );
        }
        if route.rollback.is_some() && config.server.state_file.is_none() {
            let rollback = table
                .and_then(|t| t.get("rollback"))
                .map(|v| v.span().start);
            w.add(
                rollback.unwrap_or(header),
                format!(
                    "route \"{}\" has a rollback but server.state_file is not set: a trip \
                     (and any override) is lost at a restart",
                    route.name
                ),
                "set [server] state_file = \"/var/lib/strangler/state.json\" on a writable volume",
            );
        }
    }
    // The admin token's variable, where this runs.
    if let Some(var) = &config.server.admin_token_env
        && env(var).is_none_or(|v| v.is_empty())
    {
        w.add(
            start(at(root, &["server", "admin_token_env"])).unwrap_or(0),
            format!("admin_token_env names ${var}, which is unset or empty here"),
            format!("`run` refuses to start without it: set {var} where the proxy runs"),
        );
    }
}

/// The integers of an `on_status` array, as written.
fn statuses_of(value: &Value<'_>) -> Vec<u16> {
    match value.get_ref() {
        DeValue::Array(items) => items
            .iter()
            .filter_map(|v| match v.get_ref() {
                DeValue::Integer(i) => u16::from_str_radix(i.as_str(), i.radix()).ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
