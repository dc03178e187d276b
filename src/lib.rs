//! strangler: a strangler-fig reverse proxy.
//!
//! A request flows one way through the modules: [`server`] accepts it,
//! [`route`] normalises its path, finds its route and decides legacy or new,
//! [`proxy`] forwards it (with [`headers`] rewritten), falls back to legacy when
//! new fails, and answers; [`error`] maps what the proxy itself refuses.
//! [`config`] turns the TOML file into a validated config, which
//! [`snapshot::Snapshot::new`] compiles (routes, backends and their pools) into
//! what every request reads.

mod admin;
pub mod app;
mod backend;
#[doc(hidden)]
pub mod bench_support;
pub mod body;
pub mod check;
pub mod cidr;
pub mod config;
pub mod demo;
pub mod diff;
pub mod echo;
mod error;
pub mod explain;
mod headers;
pub mod health;
mod metrics;
mod path;
mod proxy;
mod ratelimit;
mod reload;
pub mod route;
mod runtime;
pub mod server;
pub mod shadow;
pub mod snapshot;
mod state_file;
mod stats;
mod status_page;
mod tls;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, header};
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::body::BoxError;
use crate::proxy::{Observer, ProxyService};
use crate::snapshot::SharedSnapshot;

/// The client-facing service stack: credentials marked sensitive (redacted
/// in any debug output, never HPACK-indexed), `x-request-id` passed on or
/// created and echoed in the response, a `debug` span per request carrying
/// that id, then the proxy itself.
pub fn proxy_service<B>(
    snapshot: SharedSnapshot,
    observer: Option<Arc<dyn Observer>>,
    tunnels: TaskTracker,
) -> impl Service<
    Request<B>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let proxy = ProxyService::new(snapshot, observer, tunnels);
    ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<B>| {
                    tracing::debug_span!(
                        "request",
                        method = %req.method(),
                        path = req.uri().path(),
                        request_id = req.headers().get(&headers::X_REQUEST_ID).and_then(|v| v.to_str().ok()),
                    )
                })
                // A backend's 5xx is an answer, not a proxy failure: the
                // access log and metrics record it.
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(proxy)
}
