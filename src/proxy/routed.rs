//! The decision for one request: its path normalised, its route and backend
//! decided, and what forwarding needs of the client (host, address).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use http::Uri;
use http::header::HeaderValue;
use http::request::Parts;

use crate::error::ProxyError;
use crate::headers;
use crate::route::{self, Decision, RequestInfo};
use crate::server::ClientAddr;
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
    // A NUL byte ends a string in many backends: refused before any decoding.
    if has_encoded_nul(raw_path) || uri.query().is_some_and(has_encoded_nul) {
        return Err(ProxyError::BadRequest("request target contains %00"));
    }
    check_host(parts, uri)?;
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
    let decision = route::decide(&snapshot.config, &snapshot.router, &info, draw);
    Ok(Routed {
        decision,
        path,
        query: uri.query(),
        host,
        client_ip,
        upgrade,
    })
}

/// Whether `s` holds `%00`, an encoded NUL byte.
fn has_encoded_nul(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"%00")
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one valid `Host` (unless
/// its target is in absolute form), with no userinfo; an absolute-form
/// target (or HTTP/2's `:scheme`/`:authority`) is http or https with no
/// userinfo. Anything else is a 400, never forwarded.
fn check_host(parts: &Parts, uri: &Uri) -> Result<(), ProxyError> {
    if let Some(scheme) = uri.scheme_str()
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        return Err(ProxyError::BadRequest("request target scheme must be http or https"));
    }
    if let Some(authority) = uri.authority()
        && !valid_host(authority.as_str().as_bytes())
    {
        return Err(ProxyError::BadRequest("invalid host in request target"));
    }
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadRequest("more than one host header")),
        (Some(host), None) if !valid_host(host.as_bytes()) => {
            Err(ProxyError::BadRequest("invalid host header"))
        }
        (None, _) if parts.version == http::Version::HTTP_11 && uri.authority().is_none() => {
            Err(ProxyError::BadRequest("missing host header"))
        }
        _ => Ok(()),
    }
}

/// `host[:port]`: a registered name, IPv4 or bracketed IPv6 literal, with no
/// userinfo, path, query or whitespace, and a numeric port if any.
fn valid_host(host: &[u8]) -> bool {
    if host.is_empty() || host.contains(&b'@') {
        return false;
    }
    match http::uri::Authority::try_from(host) {
        Ok(authority) => {
            let name = authority.host();
            let port = authority.as_str().get(name.len()..).unwrap_or("");
            !name.is_empty()
                && (port.is_empty()
                    || port.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in ["a.test", "a.test:8080", "127.0.0.1", "[::1]:80", "A-b.Test"] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "a.test evil",
            "user@evil.test",
            "evil.test/x?y",
            "a.test:port",
            "a.test\\x",
            ":80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn encoded_nul() {
        assert!(has_encoded_nul("/a%00b"));
        assert!(!has_encoded_nul("/a%200"));
    }
}
