//! Header rewriting between client and backend: hop-by-hop removal and the
//! forwarding headers (SPEC §3.3).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_STRANGLER_ROUTE: HeaderName = HeaderName::from_static("x-strangler-route");
pub(crate) static X_STRANGLER_BACKEND: HeaderName = HeaderName::from_static("x-strangler-backend");
pub(crate) static X_STRANGLER_FALLBACK: HeaderName =
    HeaderName::from_static("x-strangler-fallback");

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
/// `Proxy-Connection` is not standard but still sent by some clients.
const HOP_BY_HOP_COUNT: usize = 9;
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The host the client asked for: the URI's authority (absolute-form, HTTP/2)
/// or else the Host header (RFC 9112 §3.2.2).
pub(crate) fn client_host(uri: &http::Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    match uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => headers.get(header::HOST).cloned(),
    }
}

/// Whether this is an HTTP/1.1 WebSocket upgrade request (`Connection:
/// upgrade` plus `Upgrade: websocket`). Any other protocol (`h2c` above all)
/// is not an upgrade: its `Upgrade` header is dropped like any hop-by-hop one,
/// since a backend could not switch to it through the proxy anyway.
pub(crate) fn is_upgrade_request(headers: &HeaderMap) -> bool {
    upgrades_to_websocket(headers) && connection_has(headers, "upgrade")
}

/// Whether `headers` carry exactly one `Upgrade`, naming `websocket` alone
/// (case-insensitive): what a request may ask for and a 101 must answer.
pub(crate) fn upgrades_to_websocket(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::UPGRADE).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket")),
        _ => false,
    }
}

/// Joins the `Cookie` crumbs an HTTP/2 client may send as several fields
/// into one, with `"; "` (RFC 9113 §8.2.3): an HTTP/1.1 backend must get one
/// `Cookie` line.
pub(crate) fn join_cookies(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for crumb in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    if let Ok(joined) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, joined);
    }
}

/// Whether any `Connection` header lists `token` (case-insensitive).
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether the client sent `TE: trailers` (kept for HTTP/2 backends: gRPC needs it).
pub(crate) fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Removes hop-by-hop headers: the fixed list and every header `Connection` names.
///
/// With `keep_upgrade`, an upgrade exchange keeps `Connection: upgrade` and
/// `Upgrade` so the next hop can switch protocols. Called before the proxy
/// sets its own forwarding headers, so a client cannot name those away.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names present (comparing a standard name is an
    // integer compare), rather than a hash lookup per hop-by-hop name: the
    // common request has none, the common answer only `Connection`.
    let mut present = [false; HOP_BY_HOP_COUNT];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    let upgrade = keep_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    // Names the Connection header lists, beyond the usual `keep-alive`
    // (removed below with the others).
    let listed = connection_tokens(headers)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|name| !is_end_to_end_essential(name))
        .collect::<Vec<_>>();
    for name in listed {
        headers.remove(&name);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, here)| *here) {
        headers.remove(name);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// Removes the `x-strangler-*` headers a backend may have sent: only the
/// proxy says which route, backend and fallback produced an answer.
pub(crate) fn remove_debug_headers(headers: &mut HeaderMap) {
    // A scan of the names present is cheaper than three hashed removes of
    // names an answer almost never has.
    if !headers
        .keys()
        .any(|name| name.as_str().starts_with("x-strangler-"))
    {
        return;
    }
    for name in [
        &X_STRANGLER_ROUTE,
        &X_STRANGLER_BACKEND,
        &X_STRANGLER_FALLBACK,
    ] {
        headers.remove(name);
    }
}

/// `Connection` must not be able to strip the headers the proxy itself relies on.
fn is_end_to_end_essential(name: &HeaderName) -> bool {
    name == header::HOST || name == X_REQUEST_ID
}

/// Appends the client address to `X-Forwarded-For` (joining earlier values into
/// one header) and sets `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    proto: &'static str,
    host: Option<&HeaderValue>,
) {
    // One buffer, handed to the header without another copy.
    let mut xff = String::new();
    for prior in headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        xff.push_str(prior);
        xff.push_str(", ");
    }
    xff.push_str(IpText::new(client_ip).as_str());
    let xff = HeaderValue::try_from(xff);
    if let Ok(xff) = xff {
        headers.insert(&X_FORWARDED_FOR, xff);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match host {
        Some(host) => {
            headers.insert(&X_FORWARDED_HOST, host.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// A fresh `x-request-id`: a random (version 4) UUID in its usual text
/// form, made on the stack and copied once into the header.
pub(crate) fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Version 4, variant 10xx (RFC 9562 §5.4).
    let bits = (fastrand::u128(..) & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let mut text = [0u8; 36];
    let mut nibble = 32;
    for (i, byte) in text.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *byte = b'-';
        } else {
            nibble -= 1;
            *byte = HEX[((bits >> (nibble * 4)) & 0xf) as usize];
        }
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// An IP address written out without the formatting machinery
/// (`Ipv4Addr`'s `Display` pads through `fmt`, which cost more than the
/// rest of the header): the same text as `Display`, on the stack.
pub(crate) struct IpText {
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    pub(crate) fn new(ip: IpAddr) -> IpText {
        let mut text = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b".");
                    }
                    text.push(itoa::Buffer::new().format(octet).as_bytes());
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let mut cursor = std::io::Cursor::new(&mut text.buf[..]);
                // 45 bytes hold the longest IPv6 text (IPv4-mapped, full).
                let _ = write!(cursor, "{v6}");
                text.len = usize::try_from(cursor.position()).unwrap_or(0);
            }
        }
        text
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits, dots, hex digits and colons are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn request_ids_are_fresh_v4_uuids() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let uuid = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id:?}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id:?}");
            assert_eq!(uuid.hyphenated().to_string(), id.to_str().unwrap());
        }
    }

    #[test]
    fn ip_text_is_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.20.3.100",
            "::",
            "::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:192.168.100.200",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn removes_fixed_list_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "close, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "gzip"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("proxy-authenticate", "Basic"),
            ("x-keep", "yes"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn connection_cannot_strip_host_or_request_id() {
        let mut h = map(&[
            ("connection", "host, x-request-id"),
            ("host", "a"),
            ("x-request-id", "r"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h["host"], "a");
        assert_eq!(h["x-request-id"], "r");
    }

    #[test]
    fn upgrade_keeps_connection_upgrade() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert!(is_upgrade_request(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert!(!is_upgrade_request(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn only_websocket_is_an_upgrade() {
        let upgrade = |value: &str| map(&[("connection", "upgrade"), ("upgrade", value)]);
        assert!(is_upgrade_request(&upgrade("WebSocket")));
        assert!(!is_upgrade_request(&upgrade("h2c")));
        assert!(!is_upgrade_request(&upgrade("websocket, h2c")));
        let mut h = upgrade("h2c");
        let keep = is_upgrade_request(&h);
        remove_hop_by_hop(&mut h, keep);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn cookie_crumbs_are_joined() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2; c=3");
        let mut one = map(&[("cookie", "a=1")]);
        join_cookies(&mut one);
        assert_eq!(one["cookie"], "a=1");
    }

    #[test]
    fn te_trailers_detected_then_removed() {
        let mut h = map(&[("te", "gzip, Trailers")]);
        assert!(wants_trailers(&h));
        remove_hop_by_hop(&mut h, false);
        assert!(h.get("te").is_none());
        assert!(!wants_trailers(&map(&[("te", "gzip")])));
    }

    #[test]
    fn backend_debug_headers_are_removed() {
        let mut h = map(&[
            ("x-strangler-fallback", "forged"),
            ("x-strangler-route", "r"),
            ("x-other", "1"),
        ]);
        remove_debug_headers(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut h,
            ip,
            "http",
            Some(&HeaderValue::from_static("a.example")),
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.9");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a.example");

        let mut h = HeaderMap::new();
        set_forwarded(&mut h, ip, "http", None);
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert!(h.get("x-forwarded-host").is_none());
    }
}
