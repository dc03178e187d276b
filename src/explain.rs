//! Human-readable views of a config: the route table (`check`) and the
//! decision for one request (`explain`). Pure: no network.

use std::fmt::Write;
use std::net::IpAddr;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::config::{BackendConfig, Config, RouteConfig, Sticky};
use crate::route::{
    self, BucketSource, Inputs, Reason, RequestInfo, RouteRuntime, Router, Target, WeightFrom,
};

/// `check`'s output: one line per route, with what it does now.
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
    let _ = writeln!(
        out,
        "{:<20} {:<24} {:>8}  {:<22} {:<10} {:<10} STICKY",
        "ROUTE", "PATH", "NEW %", "FLAG", "LEGACY", "NEW"
    );
    for route in &config.routes {
        let flag = match &route.flag {
            Some((name, value)) => format!("{name}={value}"),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:>8}  {:<22} {:<10} {:<10} {}",
            route.name,
            route.path,
            percent(route::effective_weight(route, SystemTime::now(), RouteRuntime::default()).bp),
            flag,
            config.backend(route.legacy).name,
            config.backend(route.new).name,
            sticky_text(route),
        );
    }
    let _ = writeln!(
        out,
        "{:<20} {:<24} {:>8}  {:<22} {:<10}",
        crate::config::DEFAULT_ROUTE,
        "(unmatched)",
        percent(0),
        "-",
        config.backend(config.default_legacy).name
    );
    out
}

/// `explain`'s output for one request, or what is wrong with the arguments.
pub fn explain(
    config: &Config,
    method: &str,
    target: &str,
    headers: &[String],
    client_ip: IpAddr,
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
                fallback_line(&mut out, config, route);
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
        fallback_line(&mut out, config, route);
    }
    Ok(out)
}

/// The URL `backend` would get, or why it cannot be built.
fn upstream(backend: &BackendConfig, path: &str, query: Option<&str>) -> Result<Uri, String> {
    backend.upstream_uri(path, query).map_err(|e| e.to_string())
}

fn fallback_line(out: &mut String, config: &Config, route: &RouteConfig) {
    let fb = &route.fallback;
    if !fb.enabled {
        let _ = writeln!(out, "fallback:  off");
        return;
    }
    let statuses: Vec<String> = fb.on_status.iter().map(u16::to_string).collect();
    let _ = writeln!(
        out,
        "fallback:  to {} on status [{}]{}{}{}; body copied up to {} bytes",
        config.backend(route.legacy).name,
        statuses.join(", "),
        if fb.on_connect_error {
            ", connect error"
        } else {
            ""
        },
        if fb.on_timeout { ", timeout" } else { "" },
        if fb.on_reset { ", reset" } else { "" },
        fb.max_body
    );
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
        Some(_) => format!("the request has no {}", sticky_text(route)),
    }
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percent_formatting() {
        assert_eq!(percent(0), "0");
        assert_eq!(percent(10000), "100");
        assert_eq!(percent(1250), "12.5");
        assert_eq!(percent(1234), "12.34");
        assert_eq!(percent(1), "0.01");
    }
}
