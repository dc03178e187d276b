//! The config's domain rules: pure functions on plain values, with no TOML and
//! no positions. The section readers report their errors with a position and a
//! hint.

use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime};

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};

use super::{HostMatch, Sticky};
use crate::path::normalize_path;

// === Paths ===

/// A route `path` or `rewrite` (named `key` in messages): starts with `/`,
/// returned normalised. The error is the message.
pub(super) fn route_path(s: &str, key: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("{key} \"{s}\" does not start with '/'"));
    }
    if let Some(c) = invalid_path_char(s) {
        return Err(format!(
            "{key} \"{s}\" contains {c:?}, which is not allowed in a path"
        ));
    }
    Ok(normalize_route_path(s))
}

/// The first character that cannot appear in a URI path (RFC 3986 `pchar` and `/`),
/// counting a `%` not followed by two hex digits.
fn invalid_path_char(s: &str) -> Option<char> {
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        let ok = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => true,
            '-' | '.' | '_' | '~' | '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';'
            | '=' | ':' | '@' | '/' => true,
            '%' => bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            _ => false,
        };
        if !ok {
            return Some(c);
        }
    }
    None
}

/// The request-path normalisation of [`normalize_path`] (so a route written with
/// escapes or dot-segments compares equal to the requests it matches), without a
/// trailing `/`; the root stays `/`.
fn normalize_route_path(s: &str) -> String {
    let normalized = normalize_path(s);
    match normalized.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

// === Hosts ===

/// Lowercases, strips a port, turns `*.example.com` into a suffix. The error
/// says why the host is invalid.
pub(super) fn host_match(s: &str) -> Result<HostMatch, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("*.") {
        valid_hostname(rest)?;
        return Ok(HostMatch::Suffix(format!(".{rest}")));
    }
    if lower.contains('*') {
        return Err(
            "a wildcard is only allowed as a whole first label, like \"*.example.com\"".into(),
        );
    }
    if let Some(inner) = lower.strip_prefix('[') {
        let (ip, rest) = inner.split_once(']').ok_or("missing ']'")?;
        ip.parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 address")?;
        if !(rest.is_empty() || valid_port(rest)) {
            return Err("invalid port".into());
        }
        return Ok(HostMatch::Exact(format!("[{ip}]")));
    }
    let name = match lower.rsplit_once(':') {
        Some((name, port)) if valid_port(&format!(":{port}")) => name,
        Some(_) => return Err("invalid port".into()),
        None => &lower,
    };
    valid_hostname(name)?;
    Ok(HostMatch::Exact(name.to_owned()))
}

/// `":8080"`.
fn valid_port(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| p.parse::<u16>().is_ok())
}

/// Lowercase DNS name (or IPv4 address): labels of letters, digits and `-`.
pub(super) fn valid_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!(
                "\"{label}\" is not a valid label (letters, digits and '-')"
            ));
        }
    }
    Ok(())
}

// === Requests ===

/// A header condition's name, stored lowercase.
pub(super) fn header_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()
}

pub(super) fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// A method name: an HTTP token, stored uppercase.
pub(super) fn method(s: &str) -> Option<Method> {
    let upper = s.to_ascii_uppercase();
    match Method::from_bytes(upper.as_bytes()) {
        Ok(m) if is_token(&upper) => Some(m),
        _ => None,
    }
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `"header:NAME"`, `"cookie:NAME"`, `"query:NAME"` or `"ip"`.
pub(super) fn sticky(s: &str) -> Option<Sticky> {
    match s.split_once(':') {
        None if s == "ip" => Some(Sticky::Ip),
        Some(("header", name)) => header_name(name).map(Sticky::Header),
        Some(("cookie", name)) if is_token(name) => Some(Sticky::Cookie(name.to_owned())),
        Some(("query", name)) if valid_query_name(name) => Some(Sticky::Query(name.to_owned())),
        _ => None,
    }
}

fn valid_query_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['&', '=', '#', '?'])
        && !name.chars().any(char::is_whitespace)
}

/// The lowest of a fallback's `on_status` items.
pub(super) const MIN_STATUS: i64 = 100;
/// The highest of a fallback's `on_status` items.
pub(super) const MAX_STATUS: i64 = 599;

/// Statuses sorted and deduplicated.
pub(super) fn status_set(mut statuses: Vec<u16>) -> Vec<u16> {
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

// === Routes ===

/// A route name: printable ASCII without surrounding spaces. [`super::DEFAULT_ROUTE`]
/// is valid here; the reader refuses it as reserved.
pub(super) fn valid_route_name(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && HeaderValue::from_str(s).is_ok()
}

/// A weight in percent for new, `0..=100` with up to 2 decimals, as basis points.
/// The error is the message.
pub(super) fn weight_bp(percent: f64) -> Result<u16, String> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("weight {percent} is out of range 0..=100"));
    }
    let bp = (percent * 100.0).round();
    if (percent * 100.0 - bp).abs() > 1e-6 {
        return Err(format!("weight {percent} has more than 2 decimals"));
    }
    // In 0..=10000 after the range check.
    Ok(bp as u16)
}

// === Backends ===

/// A backend's `url`, parsed.
pub(super) struct BackendUrl {
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    /// The URL's path without a trailing `/`.
    pub(super) path_prefix: String,
}

/// An http or https URL with a host, no credentials, query or fragment. The
/// error says why the URL is invalid.
pub(super) fn backend_url(s: &str) -> Result<BackendUrl, String> {
    if s.contains('#') {
        return Err("a fragment (#...) makes no sense here".into());
    }
    let uri: Uri = s
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string().to_lowercase())?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::HTTP,
        Some("https") => Scheme::HTTPS,
        Some(other) => return Err(format!("scheme \"{other}\" is not http or https")),
        None => return Err("it has no scheme".into()),
    };
    let Some(authority) = uri.authority().cloned() else {
        return Err("it has no host".into());
    };
    if authority.host().is_empty() {
        return Err("it has no host".into());
    }
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    if uri.query().is_some() {
        return Err("a query (?...) is not allowed".into());
    }
    Ok(BackendUrl {
        scheme,
        authority,
        path_prefix: uri.path().trim_end_matches('/').to_owned(),
    })
}

/// A backend's name in `[backends.NAME]`: letters, digits, `-`, `_` and `.`.
pub(super) fn valid_backend_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// An environment variable's name: no `=`, NUL or whitespace.
pub(super) fn valid_env_name(name: &str) -> bool {
    !(name.contains(['=', '\0']) || name.chars().any(char::is_whitespace))
}

// === Times ===

/// An RFC 3339 time with its zone: `Z` or a `±HH:MM` offset, optional
/// fractional seconds. The error says why it is invalid.
pub(super) fn rfc3339(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    let (local, offset_secs) = match s.len().checked_sub(6).map(|i| s.split_at(i)) {
        Some((local, zone))
            if zone.starts_with(['+', '-']) && zone.as_bytes().get(3) == Some(&b':') =>
        {
            let hours: u64 = zone[1..3].parse().map_err(|_| "invalid zone offset")?;
            let minutes: u64 = zone[4..6].parse().map_err(|_| "invalid zone offset")?;
            if hours > 23 || minutes > 59 {
                return Err("invalid zone offset".into());
            }
            let secs = hours * 3600 + minutes * 60;
            (
                local,
                if zone.starts_with('-') {
                    -(secs as i64)
                } else {
                    secs as i64
                },
            )
        }
        _ if s.ends_with(['Z', 'z']) => (&s[..s.len() - 1], 0),
        _ => return Err("it has no zone: end it with Z (UTC) or an offset like +01:00".into()),
    };
    let utc = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|e| e.to_string())?;
    // The local time minus its offset is UTC.
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    let at = if offset_secs >= 0 {
        utc.checked_sub(shift)
    } else {
        utc.checked_add(shift)
    };
    at.ok_or_else(|| "out of range".into())
}
