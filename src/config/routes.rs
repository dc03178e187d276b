//! `[[routes]]`.

use std::collections::HashMap;

use http::{HeaderName, HeaderValue, Method};
use toml::de::DeValue;

use super::backends::BackendNames;
use super::defaults::{Defaults, NameRef, backend_ref};
use super::fallback::read_fallback;
use super::rate_limit::read_rate_limit;
use super::reader::{
    Lines, Problems, Table, Value, expect_array, expect_bool, expect_str, expect_table, field,
    suggest,
};
use super::rollout::{read_ramp, read_rollback, weight};
use super::shadow::read_shadow;
use super::validate;
use super::{BackendId, DEFAULT_ROUTE, FallbackConfig, HostMatch, RouteConfig, Sticky};

const ROUTE_KEYS: &[&str] = &[
    "name",
    "path",
    "methods",
    "host",
    "headers",
    "flag",
    "weight",
    "sticky",
    "cohort",
    "rewrite",
    "legacy",
    "new",
    "fallback",
    "ramp",
    "rollback",
    "rate_limit",
    "shadow",
    "set_cookie",
];

/// What every route is checked against.
pub(super) struct RouteEnv<'e> {
    pub(super) backends: BackendNames<'e>,
    pub(super) flags: &'e [(String, bool)],
    pub(super) defaults: &'e Defaults<'e>,
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

pub(super) fn read_routes(
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
    let rate_limit_table = t.table(p, "rate_limit", "[routes.rate_limit]".into());
    let rate_limit = read_rate_limit(p, &rate_limit_table);
    let ramp_table = t.table(p, "ramp", "[routes.ramp]".into());
    let ramp = read_ramp(p, &ramp_table);
    let rollback_table = t.table(p, "rollback", "[routes.rollback]".into());
    let rollback = read_rollback(p, &rollback_table).over(env.defaults.rollback.over(None));

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
        set_cookie: false,
        rewrite: field(p, &t, "rewrite", |p, v| route_path(p, v, "rewrite")),
        legacy: legacy.unwrap_or(BackendId::new(0)),
        new: new.unwrap_or(BackendId::new(0)),
        fallback,
        rate_limit,
        ramp,
        rollback,
        shadow: read_shadow(p, &t),
        line: lines.line(t.at),
    };
    let mut route = route;
    if let Some(v) = t.get("set_cookie") {
        route.set_cookie = expect_bool(p, v).unwrap_or(false);
        if route.set_cookie && !matches!(route.sticky, Some(Sticky::Cookie(_))) {
            p.add(
                v.span().start,
                "set_cookie needs a cookie sticky key",
                "add sticky = \"cookie:NAME\" to the route, or remove set_cookie",
            );
        }
    }
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
    if !validate::valid_route_name(s) {
        p.add(at, format!("invalid route name \"{s}\""), hint);
        return None;
    }
    if s == DEFAULT_ROUTE {
        p.add(
            at,
            format!("the route name \"{DEFAULT_ROUTE}\" is reserved"),
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

/// A route `path` or `rewrite`, stored normalised.
fn route_path(p: &mut Problems, v: &Value<'_>, key: &str) -> Option<String> {
    // Made only for a problem: formatting it for every route was 4% of a
    // 10,000-route reload.
    let hint = || {
        format!("write a path starting with '/', like {key} = \"/api/users\"; no query or fragment")
    };
    let DeValue::String(s) = v.get_ref() else {
        // Not a string: reports the wrong type.
        return expect_str(p, v, "a path string", &hint()).map(str::to_owned);
    };
    validate::route_path(s, key)
        .map_err(|message| p.add(v.span().start, message, hint()))
        .ok()
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

/// A method name, stored uppercase (also read by `replay_methods`).
pub(super) fn method(p: &mut Problems, v: &Value<'_>) -> Option<Method> {
    let hint = "write a method name like \"GET\" or \"POST\"";
    let s = expect_str(p, v, "a method name", hint)?;
    let method = validate::method(s);
    if method.is_none() {
        p.add(v.span().start, format!("invalid method \"{s}\""), hint);
    }
    method
}

fn host(p: &mut Problems, v: &Value<'_>) -> Option<HostMatch> {
    let hint = "write a host name like \"api.example.com\" or a wildcard like \"*.example.com\"";
    let s = expect_str(p, v, "a host name", hint)?;
    validate::host_match(s)
        .map_err(|why| p.add(v.span().start, format!("invalid host \"{s}\": {why}"), hint))
        .ok()
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
        let header = validate::header_name(name);
        if header.is_none() {
            p.add(
                at,
                format!("invalid header name \"{name}\""),
                "use a header name like \"x-tenant\"",
            );
        }
        let value = expect_str(p, value, "a header value string", hint).and_then(|s| {
            let parsed = validate::header_value(s);
            if parsed.is_none() {
                let hint = "use printable ASCII characters in header values";
                p.add(
                    value.span().start,
                    format!("invalid header value \"{s}\""),
                    hint,
                );
            }
            parsed
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
    let parsed = validate::sticky(s);
    if parsed.is_none() {
        p.add(v.span().start, format!("invalid sticky key \"{s}\""), hint);
    }
    parsed
}
