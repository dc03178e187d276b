//! Human-readable views of a config: the route table (`check`) and the
//! decision for one request (`explain`). Pure: no network.

use std::fmt::Write;
use std::net::IpAddr;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::config::{BackendConfig, Config, MethodSet, RouteConfig, Sticky};
use crate::route::{
    self, BucketSource, Inputs, Reason, RequestInfo, RouteRuntime, Router, Target, WeightFrom,
};

/// `check`'s output: one line per route, with what it does now, in columns
/// as wide as their widest value.
pub fn route_table(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: ok ({} routes, {} backends, version {})",
        config.path.display(),
        config.routes.len(),
        config.backends.len(),
        &config.version[..12.min(config.version.len())]
    );
    if let Some(control) = &config.control {
        // The password never shows (SPEC §3.10).
        let _ = writeln!(
            out,
            "control: {} (key_prefix \"{}\", fleet_statistics {})",
            control.redis_shown(),
            control.key_prefix,
            if control.fleet_statistics {
                "on"
            } else {
                "off"
            }
        );
    }
    let header = [
        "ROUTE", "PATH", "NEW %", "FLAG", "LEGACY", "NEW", "STICKY", "COHORT", "REWRITE",
        "FALLBACK", "RAMP",
    ];
    let mut rows: Vec<[String; 11]> = config
        .routes
        .iter()
        .map(|route| {
            let flag = match &route.flag {
                Some((name, value)) => format!("{name}={value}"),
                None => "-".into(),
            };
            let mut sticky = sticky_text(route);
            if route.set_cookie {
                sticky.push_str(" (set)");
            }
            [
                route.name.clone(),
                route.path.clone(),
                percent(
                    route::effective_weight(route, SystemTime::now(), RouteRuntime::default()).bp,
                ),
                flag,
                config.backend(route.legacy).name.clone(),
                config.backend(route.new).name.clone(),
                sticky,
                route.cohort.clone(),
                route.rewrite.clone().unwrap_or_else(|| "-".into()),
                fallback_summary(route),
                ramp_summary(route),
            ]
        })
        .collect();
    let dash = || "-".to_owned();
    rows.push([
        crate::config::DEFAULT_ROUTE.into(),
        "(unmatched)".into(),
        percent(0),
        dash(),
        config.backend(config.default_legacy).name.clone(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
        dash(),
    ]);
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            if i == 2 {
                // NEW % is right-aligned, a number column.
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if i + 1 < cells.len() {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                text.push_str("  ");
            }
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&header));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    out
}

/// The route table's FALLBACK cell: `off`, or what new's failures go to legacy on.
/// `10,25,50,100 every 24h from 2026-12-01T09:00:00Z`, or `-`.
fn ramp_summary(route: &RouteConfig) -> String {
    let Some(ramp) = &route.ramp else {
        return "-".into();
    };
    let steps: Vec<String> = ramp.steps_bp.iter().map(|&bp| percent(bp)).collect();
    format!(
        "{} every {} from {}",
        steps.join(","),
        humantime::format_duration(ramp.every),
        humantime::format_rfc3339_seconds(ramp.start)
    )
}

fn fallback_summary(route: &RouteConfig) -> String {
    let fb = &route.fallback;
    if !fb.enabled {
        return "off".into();
    }
    let mut on: Vec<String> = Vec::new();
    if !fb.on_status.is_empty() {
        let statuses: Vec<String> = fb.on_status.iter().map(u16::to_string).collect();
        on.push(statuses.join(","));
    }
    for (enabled, name) in [
        (fb.on_connect_error, "connect"),
        (fb.on_timeout, "timeout"),
        (fb.on_reset, "reset"),
    ] {
        if enabled {
            on.push(name.into());
        }
    }
    if on.is_empty() {
        "never".into()
    } else {
        on.join(" ")
    }
}

/// `check --format json`'s description of a route.
pub fn route_json(config: &Config, route: &RouteConfig) -> serde_json::Value {
    let fb = &route.fallback;
    let methods = match &fb.replay_methods {
        MethodSet::Any => vec!["*".to_owned()],
        MethodSet::List(list) => list.iter().map(|m| m.as_str().to_owned()).collect(),
    };
    serde_json::json!({
        "name": route.name,
        "path": route.path,
        "line": route.line,
        "weight": crate::route::file_weight_percent(route),
        "file_weight": f64::from(route.weight_bp) / 100.0,
        "flag": route.flag.as_ref().map(|(name, value)| serde_json::json!({"name": name, "value": value})),
        "legacy": config.backend(route.legacy).name,
        "new": config.backend(route.new).name,
        "sticky": route.sticky.as_ref().map(|_| sticky_text(route)),
        "set_cookie": route.set_cookie,
        "cohort": route.cohort,
        "rewrite": route.rewrite,
        "fallback": {
            "enabled": fb.enabled,
            "on_status": fb.on_status,
            "on_connect_error": fb.on_connect_error,
            "on_timeout": fb.on_timeout,
            "on_reset": fb.on_reset,
            "replay_methods": methods,
        },
    })
}

/// `explain`'s output for one request, or what is wrong with the arguments.
pub fn explain(
    config: &Config,
    method: &str,
    target: &str,
    headers: &[String],
    client_ip: IpAddr,
) -> Result<String, String> {
    explain_with(config, method, target, headers, client_ip, &mut None)
}

/// The running proxy's state, from its admin API (`explain --admin`).
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Where it came from, for the output.
    pub admin: String,
    /// `GET /routes`.
    pub routes: serde_json::Value,
    /// `GET /backends`.
    pub backends: serde_json::Value,
}

/// [`explain`], followed by what the running proxy's state changes about it:
/// the route's effective weight, override and rollback, and whether its
/// backends are available. Fields the proxy does not report show as `-`.
pub fn explain_runtime(
    config: &Config,
    method: &str,
    target: &str,
    headers: &[String],
    client_ip: IpAddr,
    runtime: &Runtime,
) -> Result<String, String> {
    let mut matched = None;
    let mut out = explain_with(config, method, target, headers, client_ip, &mut matched)?;
    let name = matched.map_or(crate::config::DEFAULT_ROUTE, |id| {
        config.route(id).name.as_str()
    });
    let _ = writeln!(out, "runtime:   from the proxy at {}", runtime.admin);
    let route = runtime
        .routes
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["name"] == name));
    let Some(route) = route else {
        let _ = writeln!(
            out,
            "           the running proxy has no route {name}: its config differs from this file (see strangler diff)"
        );
        return Ok(out);
    };
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "-".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        // 100.0 as `100`, 12.5 as `12.5`.
        Some(serde_json::Value::Number(n)) => n.as_f64().map_or(n.to_string(), |f| f.to_string()),
        Some(other) => other.to_string(),
    };
    let _ = writeln!(
        out,
        "           effective weight {}% (file {})",
        show(route.get("weight")),
        show(route.get("file_weight"))
    );
    let _ = writeln!(out, "           override: {}", show(route.get("override")));
    let _ = writeln!(out, "           rollback: {}", show(route.get("rollback")));
    if let Some(ramp) = route.get("ramp").filter(|r| !r.is_null()) {
        let _ = writeln!(out, "           ramp: {ramp}");
    }
    for side in ["legacy", "new"] {
        let Some(backend_name) = route.get(side).and_then(|b| b.as_str()) else {
            continue;
        };
        let backend = runtime
            .backends
            .as_array()
            .and_then(|all| all.iter().find(|b| b["name"] == backend_name));
        let state = backend.map_or("-".to_owned(), |b| show(b.get("state")));
        let until = backend
            .and_then(|b| b.get("ejected_until"))
            .filter(|u| !u.is_null())
            .map(|u| format!(" until {}", show(Some(u))))
            .unwrap_or_default();
        let _ = writeln!(out, "           {side} {backend_name}: {state}{until}");
    }
    if route.get("new_available") == Some(&serde_json::Value::Bool(false)) {
        let _ = writeln!(
            out,
            "           new is not available now: a request decided for new goes straight to legacy (x-strangler-fallback: unhealthy)"
        );
    }
    Ok(out)
}

fn explain_with(
    config: &Config,
    method: &str,
    target: &str,
    headers: &[String],
    client_ip: IpAddr,
    matched: &mut Option<crate::config::RouteId>,
) -> Result<String, String> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not a method name"))?;
    let uri: Uri = target
        .parse()
        .map_err(|_| format!("{target:?} is not a request path"))?;
    if !uri.path().starts_with('/') {
        return Err(format!("{target:?} must start with /"));
    }
    let header_map = parse_headers(headers)?;
    let path = route::normalize_path(uri.path());
    let host = crate::headers::client_host(&uri, &header_map);
    let host = host.as_ref().and_then(|h| h.to_str().ok());
    let info = RequestInfo {
        method: &method,
        path: &path,
        query: uri.query(),
        host,
        headers: &header_map,
        client_ip,
    };
    let router = Router::new(&config.routes);
    // Any draw: for a random bucket the output gives the odds, not one outcome.
    // The runtime state (overrides, trips) is the running proxy's, not the file's.
    let now = SystemTime::now();
    let inputs = Inputs { draw: 0, now };
    let decision = route::decide(config, &router, &info, inputs, |_| RouteRuntime::default());
    *matched = decision.route;

    let mut out = String::new();
    let _ = writeln!(out, "request:   {method} {target}");
    if path != uri.path() {
        let _ = writeln!(out, "           normalised path: {path}");
    }
    let Some(index) = decision.route else {
        let backend = config.backend(decision.backend);
        let _ = writeln!(
            out,
            "route:     _default (no route matches: legacy owns this path)"
        );
        let _ = writeln!(out, "backend:   {} (defaults.legacy)", backend.name);
        let _ = writeln!(out, "upstream:  {}", upstream(backend, &path, uri.query())?);
        return Ok(out);
    };
    let route = config.route(index);
    let _ = writeln!(
        out,
        "route:     {} (path {}, line {})",
        route.name, route.path, route.line
    );
    let legacy = config.backend(route.legacy);
    let new = config.backend(route.new);
    let new_path = route::rewrite_path(route, &path);
    match decision.reason {
        Reason::FlagOff => {
            let flag = route.flag.as_ref().map_or("?", |(name, _)| name.as_str());
            let _ = writeln!(out, "flag:      {flag} = false → legacy");
        }
        Reason::Forced => {
            let header = config
                .server
                .force_header
                .as_ref()
                .map_or("?", |h| h.as_str());
            let _ = writeln!(out, "forced:    by the {header} header");
        }
        Reason::RolledBack => {
            let _ = writeln!(out, "rollback:  tripped → legacy");
        }
        Reason::Weight {
            bucket,
            source,
            from,
        } => {
            if let Some((flag, value)) = &route.flag {
                let _ = writeln!(out, "flag:      {flag} = {value}");
            }
            let weight_bp = route::effective_weight(route, now, RouteRuntime::default()).bp;
            let _ = writeln!(out, "weight:    {}% to new", percent(weight_bp));
            if let (WeightFrom::Ramp { step }, Some(ramp)) = (from, &route.ramp) {
                let next = ramp
                    .next_at(now)
                    .map_or("none (last step)".to_owned(), |t| {
                        humantime::format_rfc3339_seconds(t).to_string()
                    });
                let _ = writeln!(
                    out,
                    "ramp:      step {} of {}, next step at {next}",
                    step + 1,
                    ramp.steps_bp.len()
                );
            }
            if source == BucketSource::Random && !weight_bp.is_multiple_of(10_000) {
                let _ = writeln!(
                    out,
                    "bucket:    random per request ({}): new iff bucket < {}",
                    no_key_reason(route),
                    weight_bp
                );
                let _ = writeln!(
                    out,
                    "backend:   {} with probability {}%, else {}",
                    new.name,
                    percent(weight_bp),
                    legacy.name
                );
                let _ = writeln!(
                    out,
                    "upstream:  {} (new)",
                    upstream(new, &new_path, uri.query())?
                );
                let _ = writeln!(
                    out,
                    "           {} (legacy)",
                    upstream(legacy, &path, uri.query())?
                );
                fallback_line(&mut out, config, route, &method);
                return Ok(out);
            }
            if source == BucketSource::Random {
                let _ = writeln!(out, "bucket:    not needed: every request goes to one side");
            } else {
                let _ = writeln!(
                    out,
                    "bucket:    {bucket} from {} (cohort {:?}); new iff bucket < {}",
                    source_text(route, source),
                    route.cohort,
                    weight_bp
                );
            }
        }
        Reason::NoRoute => {}
    }
    let (backend, upstream_path) = match decision.target {
        Target::New => (new, new_path.as_ref()),
        Target::Legacy => (legacy, path.as_ref()),
    };
    let side = decision.target.as_str();
    let _ = writeln!(out, "backend:   {} ({side})", backend.name);
    let _ = writeln!(
        out,
        "upstream:  {}",
        upstream(backend, upstream_path, uri.query())?
    );
    if decision.target == Target::New {
        fallback_line(&mut out, config, route, &method);
    }
    Ok(out)
}

/// The URL `backend` would get, or why it cannot be built.
fn upstream(backend: &BackendConfig, path: &str, query: Option<&str>) -> Result<Uri, String> {
    backend.upstream_uri(path, query).map_err(|e| e.to_string())
}

/// Whether this request could fall back to legacy, and on what: a connect
/// error for any method (nothing was sent), the rest only for a method in
/// `replay_methods` (new has seen the request).
fn fallback_line(out: &mut String, config: &Config, route: &RouteConfig, method: &Method) {
    let fb = &route.fallback;
    if !fb.enabled {
        let _ = writeln!(
            out,
            "fallback:  off: new's answer or failure is what the client gets"
        );
        return;
    }
    let legacy = &config.backend(route.legacy).name;
    let replayable = fb.replay_methods.contains(method);
    let mut on: Vec<String> = Vec::new();
    if replayable && !fb.on_status.is_empty() {
        let statuses: Vec<String> = fb.on_status.iter().map(u16::to_string).collect();
        on.push(format!("status [{}]", statuses.join(", ")));
    }
    if fb.on_connect_error {
        on.push("connect error".into());
    }
    if replayable && fb.on_timeout {
        on.push("timeout".into());
    }
    if replayable && fb.on_reset {
        on.push("reset".into());
    }
    if on.is_empty() {
        let _ = writeln!(out, "fallback:  none for {method}");
    } else {
        let _ = writeln!(
            out,
            "fallback:  to {legacy} on {}; body copied up to {} bytes",
            on.join(", "),
            fb.max_body
        );
    }
    if !replayable {
        let methods = match &fb.replay_methods {
            MethodSet::Any => "*".to_owned(),
            MethodSet::List(list) => list
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "           not on a status, timeout or reset: {method} is not in replay_methods [{methods}] \
             (new has seen the request, and sending it again could do its work twice), \
             so the client gets new's answer"
        );
    }
}

fn parse_headers(headers: &[String]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for raw in headers {
        let (name, value) = raw
            .split_once(':')
            .ok_or_else(|| format!("header {raw:?} must look like 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("{:?} is not a header value", value.trim()))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Basis points as a percentage with up to two decimals: 2500 → "25", 1250 → "12.5".
fn percent(bp: u16) -> String {
    let whole = bp / 100;
    match bp % 100 {
        0 => whole.to_string(),
        frac if frac % 10 == 0 => format!("{whole}.{}", frac / 10),
        frac => format!("{whole}.{frac:02}"),
    }
}

fn sticky_text(route: &RouteConfig) -> String {
    match &route.sticky {
        None => "-".into(),
        Some(Sticky::Header(name)) => format!("header:{name}"),
        Some(Sticky::Cookie(name)) => format!("cookie:{name}"),
        Some(Sticky::Query(name)) => format!("query:{name}"),
        Some(Sticky::Ip) => "ip".into(),
    }
}

fn source_text(route: &RouteConfig, source: BucketSource) -> String {
    match (source, &route.sticky) {
        (BucketSource::Header, Some(Sticky::Header(name))) => format!("header {name}"),
        (BucketSource::Cookie, Some(Sticky::Cookie(name))) => format!("cookie {name}"),
        (BucketSource::Query, Some(Sticky::Query(name))) => format!("query parameter {name}"),
        (BucketSource::Ip, _) => "the client ip".into(),
        _ => "the sticky key".into(),
    }
}

fn no_key_reason(route: &RouteConfig) -> String {
    match &route.sticky {
        None => "the route has no sticky key".into(),
        Some(Sticky::Cookie(name)) if route.set_cookie => format!(
            "the request has no cookie {name}: the proxy makes a fresh random key, decides by its bucket and sends it in Set-Cookie, so the user keeps that side"
        ),
        Some(_) => format!("the request has no {}", sticky_text(route)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::testing::{RouteBuilder, config, route};

    #[test]
    fn runtime_state_is_shown_when_the_proxy_reports_it() {
        let config = config(vec![route("users", "/users").weight(2500)]);
        let runtime = Runtime {
            admin: "127.0.0.1:9901".into(),
            routes: serde_json::json!([{
                "name": "users", "weight": 0.0, "file_weight": 25.0, "legacy": "legacy", "new": "new",
                "override": {"weight": 0.0, "set_at": "2026-12-01T10:00:00Z"},
                "rollback": {"state": "tripped", "reason": "error rate 12% over 5%", "since": "2026-12-01T10:01:00Z"},
                "new_available": true,
            }]),
            backends: serde_json::json!([
                {"name": "legacy", "state": "available", "ejected_until": null},
                {"name": "new", "state": "half_open", "ejected_until": null},
            ]),
        };
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let out = explain_runtime(&config, "GET", "/users/1", &[], ip, &runtime).unwrap();
        assert!(
            out.contains("runtime:   from the proxy at 127.0.0.1:9901\n"),
            "{out}"
        );
        assert!(out.contains("effective weight 0% (file 25)\n"), "{out}");
        assert!(
            out.contains(r#"override: {"set_at":"2026-12-01T10:00:00Z","weight":0.0}"#),
            "{out}"
        );
        assert!(
            out.contains(r#"rollback: {"reason":"error rate 12% over 5%""#),
            "{out}"
        );
        assert!(out.contains("new new: half_open\n"), "{out}");
        assert!(!out.contains("new is not available"), "{out}");
    }

    #[test]
    fn percent_formatting() {
        assert_eq!(percent(0), "0");
        assert_eq!(percent(10000), "100");
        assert_eq!(percent(1250), "12.5");
        assert_eq!(percent(1234), "12.34");
        assert_eq!(percent(1), "0.01");
    }
}
