//! The decision for one request: its path normalised, its route and backend
//! decided, and what forwarding needs of the client (host, address).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use http::Uri;
use http::header::{COOKIE, HeaderValue};
use http::request::Parts;

use crate::config::Sticky;
use crate::error::ProxyError;
use crate::headers;
use crate::route::{self, Decision, RequestInfo};
use crate::server::{ClientAddr, ClientTls};
use crate::snapshot::Snapshot;

/// What the proxy derives once from the client's request, before forwarding.
#[derive(Debug)]
pub(super) struct Routed<'u> {
    pub decision: Decision,
    /// Normalised: what is matched and forwarded (borrowed when already normal).
    pub path: Cow<'u, str>,
    pub query: Option<&'u str>,
    /// The client's host (Host header or URI authority).
    pub host: Option<HeaderValue>,
    pub client_ip: IpAddr,
    /// An HTTP/1.1 upgrade (WebSocket) request.
    pub upgrade: bool,
    /// The `Set-Cookie` of a fresh sticky key (SPEC §3.2 `set_cookie`).
    pub set_cookie: Option<HeaderValue>,
}

/// Normalises the path and decides the request's route and backend.
pub(super) fn route_request<'u>(
    snapshot: &Snapshot,
    parts: &Parts,
    uri: &'u Uri,
    upgrade: bool,
) -> Result<Routed<'u>, ProxyError> {
    let raw_path = uri.path();
    if !raw_path.starts_with('/') {
        return Err(ProxyError::BadRequest("request target must be a path"));
    }
    let path = route::normalize_path(raw_path);
    let host = headers::client_host(uri, &parts.headers);
    let client_ip = parts
        .extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip());
    let info = RequestInfo {
        method: &parts.method,
        path: &path,
        query: uri.query(),
        host: host.as_ref().and_then(|h| h.to_str().ok()),
        headers: &parts.headers,
        client_ip,
    };
    let draw = fastrand::u16(..route::BUCKETS);
    let mut decision = route::decide(&snapshot.config, &snapshot.router, &info, draw);
    let mut set_cookie = None;
    let route = decision.route.map(|id| snapshot.config.route(id));
    if let Some(route) = route.filter(|r| r.set_cookie)
        && let Some(Sticky::Cookie(name)) = &route.sticky
        && route::cookie_value(&parts.headers, name).is_none()
    {
        // The decision is made again as if the client had sent the fresh
        // key, so its bucket comes from the key, by every rule of the decision.
        let key = fresh_key();
        let mut headers = parts.headers.clone();
        if let Ok(cookie) = HeaderValue::from_str(&format!("{name}={key}")) {
            headers.append(COOKIE, cookie);
            let info = RequestInfo {
                headers: &headers,
                ..info
            };
            decision = route::decide(&snapshot.config, &snapshot.router, &info, draw);
            let secure = parts.extensions.get::<ClientTls>().is_some();
            set_cookie = set_cookie_value(name, &key, secure);
        }
    }
    Ok(Routed {
        decision,
        path,
        query: uri.query(),
        host,
        client_ip,
        upgrade,
        set_cookie,
    })
}

/// A fresh sticky key: 128 random bits as 32 lowercase hex digits (URL-safe).
fn fresh_key() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// `NAME=KEY; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax`, plus
/// `Secure` when the client came over https.
fn set_cookie_value(name: &str, key: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={key}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}
