//! The decision for one request: its path normalised, its route and backend
//! decided, and what forwarding needs of the client (host, address).

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::SystemTime;

use http::Uri;
use http::header::{COOKIE, HeaderValue};
use http::request::Parts;

use crate::cidr::Cidr;
use crate::config::Sticky;
use crate::error::ProxyError;
use crate::headers;
use crate::route::{self, Decision, RequestInfo};
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
    /// The client's address (SPEC §3.9): the TCP peer's, or, from a trusted
    /// proxy, the rightmost untrusted one in `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// The TCP peer's address: what `X-Forwarded-For` is appended with.
    pub peer_ip: IpAddr,
    /// The peer is in `trusted_proxies`: its `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` are kept as sent.
    pub trusted_peer: bool,
    /// The client connected over TLS.
    pub tls: bool,
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
    peer: super::Peer,
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
    let peer_ip = peer.ip;
    let trusted = &snapshot.config.server.trusted_proxies;
    let trusted_peer = is_trusted(trusted, peer_ip);
    let client_ip = if trusted_peer {
        forwarded_client(trusted, &parts.headers).unwrap_or(peer_ip)
    } else {
        peer_ip
    };
    let info = RequestInfo {
        method: &parts.method,
        path: &path,
        query: uri.query(),
        host: host.as_ref().and_then(|h| h.to_str().ok()),
        headers: &parts.headers,
        client_ip,
    };
    let inputs = route::Inputs {
        draw: fastrand::u16(..route::BUCKETS),
        now: SystemTime::now(),
    };
    let runtime = |id| snapshot.route(id).handles.runtime();
    let mut decision = route::decide(&snapshot.config, &snapshot.router, &info, inputs, runtime);
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
            decision = route::decide(&snapshot.config, &snapshot.router, &info, inputs, runtime);
            set_cookie = set_cookie_value(name, &key, peer.tls);
        }
    }
    Ok(Routed {
        decision,
        path,
        query: uri.query(),
        host,
        client_ip,
        peer_ip,
        trusted_peer,
        tls: peer.tls,
        upgrade,
        set_cookie,
    })
}

fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|block| block.contains(ip))
}

/// The rightmost address of `X-Forwarded-For` (all its fields, in order)
/// that is not a trusted proxy. `None` when every address is trusted, or
/// when an entry that is not an address comes first from the right (a
/// forged or broken chain is not believed past that point).
fn forwarded_client(trusted: &[Cidr], headers: &http::HeaderMap) -> Option<IpAddr> {
    let fields: Vec<&str> = headers
        .get_all(&headers::X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for entry in fields.iter().rev().flat_map(|f| f.rsplit(',')) {
        let ip = parse_forwarded_ip(entry.trim())?;
        if !is_trusted(trusted, ip) {
            return Some(ip.to_canonical());
        }
    }
    None
}

/// An X-Forwarded-For entry: an address, maybe with a port (`1.2.3.4:5`,
/// `[::1]:5`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
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
        return Err(ProxyError::BadRequest(
            "request target scheme must be http or https",
        ));
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
    // The common host, a DNS name or IPv4 address with maybe a port, is
    // checked in place; anything else (an IPv6 literal ...) is parsed.
    let (name, port) = match host.iter().position(|&b| b == b':') {
        Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
        None => (host, None),
    };
    if !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return port.is_none_or(|p| p.iter().all(u8::is_ascii_digit));
    }
    parsed_host_valid(host)
}

/// [`valid_host`] for any host: parsed as an authority.
fn parsed_host_valid(host: &[u8]) -> bool {
    match http::uri::Authority::try_from(host) {
        Ok(authority) => {
            let name = authority.host();
            let port = authority.as_str().get(name.len()..).unwrap_or("");
            !name.is_empty()
                && (port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
        }
        Err(_) => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_host_check_agrees_with_parsing() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"aZ09.-:_[]@%1";
        for _ in 0..20_000 {
            let len = rng.usize(1..12);
            let host: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            if host.contains(&b'@') {
                continue;
            }
            assert_eq!(
                valid_host(&host),
                parsed_host_valid(&host),
                "{}",
                String::from_utf8_lossy(&host)
            );
        }
    }

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
    fn the_client_is_the_rightmost_untrusted_forwarded_address() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            forwarded_client(&trusted, &h)
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(xff(&["1.1.1.1, 2.2.2.2, 10.0.0.5"]), ip("2.2.2.2"));
        assert_eq!(xff(&["1.1.1.1", "2.2.2.2:443, 10.1.1.1"]), ip("2.2.2.2"));
        assert_eq!(xff(&["[2001:db8::1]:80"]), ip("2001:db8::1"));
        assert_eq!(xff(&["10.0.0.1, 10.0.0.2"]), None);
        assert_eq!(xff(&["1.1.1.1, garbage, 10.0.0.2"]), None);
        assert_eq!(xff(&[]), None);
    }

    #[test]
    fn encoded_nul() {
        assert!(has_encoded_nul("/a%00b"));
        assert!(!has_encoded_nul("/a%200"));
    }
}
