//! The client's answer: a backend's response with hop-by-hop headers removed
//! (or tunnelled after a 101), and strangler's debug headers added.

use http::header::{self, HeaderMap};
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use tokio_util::task::TaskTracker;

use super::exchange::Exchange;
use super::tunnel;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::headers;
use crate::snapshot::Snapshot;

/// Turns a backend response into the client's: hop-by-hop headers removed,
/// and a 101 to a WebSocket upgrade request tunnelled both ways.
///
/// A 101 is tunnelled only when the request asked for a WebSocket upgrade
/// and the 101's `Upgrade` names it too; any other 101 is a 502, so a
/// backend cannot turn a client's connection into a raw pipe that skips
/// routing and logging.
///
/// A response with both `Transfer-Encoding` and `Content-Length` has its
/// body framed by the former (hyper decoded it that way), so the
/// `Content-Length` is removed (RFC 9112 §6.3) and the client gets the body
/// re-framed by the proxy. Forwarding, rather than rejecting, keeps a sloppy
/// but unambiguous backend working; the bytes the client gets are exactly
/// those the decoded body had.
pub(super) fn finish_response(
    mut response: Response<ProxyBody>,
    client_upgrade: Option<OnUpgrade>,
    tunnels: &TaskTracker,
) -> Result<Response<ProxyBody>, ProxyError> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ProxyError::BadGateway("backend switched protocols unasked"));
        };
        if !headers::upgrades_to_websocket(response.headers()) {
            return Err(ProxyError::BadGateway(
                "backend switched to another protocol",
            ));
        }
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tunnel::spawn(tunnels, client_upgrade, backend_upgrade);
        headers::remove_hop_by_hop(response.headers_mut(), true);
    } else {
        if response.headers().contains_key(header::TRANSFER_ENCODING) {
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        headers::remove_hop_by_hop(response.headers_mut(), false);
    }
    headers::remove_debug_headers(response.headers_mut());
    Ok(response)
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
