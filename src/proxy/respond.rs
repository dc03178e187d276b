//! The client's answer: a backend's response with hop-by-hop headers removed
//! (or tunnelled after a 101), and strangler's debug headers added.

use http::header::HeaderMap;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use tokio_util::task::TaskTracker;

use super::exchange::Exchange;
use super::tunnel;
use crate::body::ProxyBody;
use crate::headers;
use crate::snapshot::Snapshot;

/// Turns a backend response into the client's: hop-by-hop headers removed,
/// and a 101 to an upgrade request tunnelled both ways.
pub(super) fn finish_response(
    mut response: Response<ProxyBody>,
    client_upgrade: Option<OnUpgrade>,
    tunnels: &TaskTracker,
) -> Response<ProxyBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    match client_upgrade {
        Some(client_upgrade) if switching => {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tunnel::spawn(tunnels, client_upgrade, backend_upgrade);
            headers::remove_hop_by_hop(response.headers_mut(), true);
        }
        _ => headers::remove_hop_by_hop(response.headers_mut(), false),
    }
    headers::remove_debug_headers(response.headers_mut());
    response
}

pub(super) fn add_debug_headers(snapshot: &Snapshot, exchange: &Exchange, headers: &mut HeaderMap) {
    let route = &snapshot.handles(exchange.route).header;
    headers.insert(&headers::X_STRANGLER_ROUTE, route.clone());
    if let Some(backend) = exchange.backend {
        let name = &snapshot.backend(backend).name_header;
        headers.insert(&headers::X_STRANGLER_BACKEND, name.clone());
    }
    if let Some(reason) = exchange.fallback {
        headers.insert(&headers::X_STRANGLER_FALLBACK, reason.header_value());
    }
}
