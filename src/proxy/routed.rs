//! The decision for one request: its path normalised, its route and backend
//! decided, and what forwarding needs of the client (host, address).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

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
    let inputs = route::Inputs {
        draw: fastrand::u16(..route::BUCKETS),
        now: SystemTime::now(),
    };
    let decision = route::decide(&snapshot.config, &snapshot.router, &info, inputs, |id| {
        snapshot.route(id).handles.runtime()
    });
    Ok(Routed {
        decision,
        path,
        query: uri.query(),
        host,
        client_ip,
        upgrade,
    })
}
