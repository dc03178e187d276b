//! The request path: snapshot → decide → forward → fall back → respond.
//!
//! - [`outgoing`]: the upstream request, built for each attempt;
//! - [`attempt`]: one backend's try, classified, retried on a fresh connection;
//! - [`fallback`]: try new, replay to legacy when it fails;
//! - [`copy`]: the request body streamed on with a copy kept, and its budget;
//! - [`respond`]: the backend's answer made the client's;
//! - [`tunnel`]: upgraded connections after a 101;
//! - [`exchange`]: the record of one request, for the observer.

mod attempt;
mod copy;
mod exchange;
mod fallback;
mod outgoing;
mod respond;
mod tunnel;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::HeaderValue;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Limited;
use std::sync::LazyLock;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::body::{self, BoxError, ProxyBody};
use crate::config::FallbackConfig;
use crate::error::ProxyError;
use crate::headers::{self, X_REQUEST_ID};
use crate::route::{self, Decision, RequestInfo, Target};
use crate::server::{ClientAddr, ClientTls};
use crate::snapshot::{SharedSnapshot, Snapshot};

pub use exchange::{Exchange, Observer};
pub use fallback::FallbackReason;
use fallback::Forwarded;

pub use attempt::{AttemptResult, Attempts};

use copy::{COPY_BUDGET_BYTES, CopyBudget, CopyLimits};
use outgoing::Outgoing;
use respond::{add_debug_headers, finish_response};

/// The fallback settings whose statuses and methods apply to `_default`.
static DEFAULT_FALLBACK: LazyLock<FallbackConfig> = LazyLock::new(FallbackConfig::default);

/// The innermost tower service: routes and forwards one request. Cloned per
/// connection and per request, so it is one `Arc`.
#[derive(Clone)]
pub struct ProxyService(Arc<Shared>);

/// What every request of every connection shares.
struct Shared {
    snapshot: SharedSnapshot,
    observer: Option<Arc<dyn Observer>>,
    /// Upgraded connections; shutdown waits for them.
    tunnels: TaskTracker,
    copy_budget: CopyBudget,
}

impl std::fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyService").finish_non_exhaustive()
    }
}

impl ProxyService {
    pub fn new(
        snapshot: SharedSnapshot,
        observer: Option<Arc<dyn Observer>>,
        tunnels: TaskTracker,
    ) -> ProxyService {
        ProxyService(Arc::new(Shared {
            snapshot,
            observer,
            tunnels,
            copy_budget: Arc::new(Semaphore::new(COPY_BUDGET_BYTES)),
        }))
    }
}

impl<B> tower::Service<Request<B>> for ProxyService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // One snapshot per request: a reload mid-request does not affect it.
        let snapshot = self.0.snapshot.load_full();
        let shared = self.0.clone();
        Box::pin(async move { Ok(handle(&snapshot, &shared, req.map(body::boxed)).await) })
    }
}

/// What the proxy derives once from the client's request, before forwarding.
#[derive(Debug)]
struct Routed {
    decision: Decision,
    /// Normalised: what is matched and forwarded.
    path: String,
    /// The client's host (Host header or URI authority).
    host: Option<HeaderValue>,
    client_ip: IpAddr,
    /// An HTTP/1.1 upgrade (WebSocket) request.
    upgrade: bool,
}

async fn handle(
    snapshot: &Snapshot,
    shared: &Shared,
    mut req: Request<ProxyBody>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let upgrade = headers::is_upgrade_request(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let mut exchange = Exchange {
        method: req.method().clone(),
        uri: req.uri().clone(),
        route: None,
        backend: None,
        status: StatusCode::OK,
        fallback: None,
        proxy_error: false,
        to_new: false,
        attempts: Attempts::default(),
        started,
        request_id: req.headers().get(&X_REQUEST_ID).cloned(),
    };
    let (parts, body) = req.into_parts();
    let outcome = match route_request(snapshot, &parts, upgrade.is_some()) {
        Ok(routed) => {
            exchange.route = routed.decision.route;
            exchange.to_new = routed.decision.target == Target::New;
            forward(snapshot, shared, routed, parts, body).await
        }
        Err(error) => Err(error),
    };
    let answer = outcome.and_then(|forwarded| {
        exchange.backend = Some(forwarded.backend);
        exchange.fallback = forwarded.fallback;
        exchange.attempts = forwarded.attempts;
        forwarded.result
    });
    let mut response = match answer {
        Ok(response) => finish_response(response, upgrade, &shared.tunnels),
        Err(error) => {
            debug!(
                route = snapshot.handles(exchange.route).label.as_str(),
                status = error.status().as_u16(),
                error = error.message(),
                request_id = exchange.request_id(),
                "proxy error"
            );
            exchange.proxy_error = true;
            error.into_response(exchange.request_id.as_ref())
        }
    };
    exchange.status = response.status();
    if snapshot.config.server.debug_headers {
        add_debug_headers(snapshot, &exchange, response.headers_mut());
    }
    if let Some(observer) = &shared.observer {
        observer.observe(snapshot, &exchange);
    }
    response
}

/// Normalises the path and decides the request's route and backend.
fn route_request(snapshot: &Snapshot, parts: &Parts, upgrade: bool) -> Result<Routed, ProxyError> {
    let raw_path = parts.uri.path();
    if !raw_path.starts_with('/') {
        return Err(ProxyError::BadRequest("request target must be a path"));
    }
    let path = route::normalize_path(raw_path).into_owned();
    let host = headers::client_host(&parts.uri, &parts.headers);
    let client_ip = parts
        .extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip());
    let info = RequestInfo {
        method: &parts.method,
        path: &path,
        query: parts.uri.query(),
        host: host.as_ref().and_then(|h| h.to_str().ok()),
        headers: &parts.headers,
        client_ip,
    };
    let draw = fastrand::u16(..route::BUCKETS);
    let decision = route::decide(&snapshot.config, &snapshot.router, &info, draw);
    Ok(Routed {
        decision,
        path,
        host,
        client_ip,
        upgrade,
    })
}

/// Forwards the request to the decided backend, through the route's
/// fallback when the decision is new and the route has one.
async fn forward(
    snapshot: &Snapshot,
    shared: &Shared,
    routed: Routed,
    parts: Parts,
    body: ProxyBody,
) -> Result<Forwarded, ProxyError> {
    let limit = snapshot.config.server.max_request_body;
    // hyper parsed Content-Length already; a body without one has no exact size.
    let content_length = body.size_hint().exact();
    if content_length.is_some_and(|n| n > limit) {
        return Err(ProxyError::PayloadTooLarge);
    }
    // hyper enforces a declared length (and an empty body, like most GETs,
    // is exactly 0), so only bodies of unknown length need the limit.
    let body = if content_length.is_some() {
        body
    } else {
        body::boxed(Limited::new(body, limit as usize))
    };
    let Parts {
        method,
        uri,
        mut headers,
        extensions,
        ..
    } = parts;
    let te_trailers = headers::wants_trailers(&headers);
    headers::remove_hop_by_hop(&mut headers, routed.upgrade);
    let proto = if extensions.get::<ClientTls>().is_some() {
        "https"
    } else {
        "http"
    };
    headers::set_forwarded(&mut headers, routed.client_ip, proto, routed.host.as_ref());
    let decision = routed.decision;
    let route = decision.route.map(|id| snapshot.route(id));
    let fallback = route.map_or(&*DEFAULT_FALLBACK, |r| &r.config.fallback);
    let replayable = fallback.replay_methods.contains(&method);
    // SPEC §3.2 "Unhealthy new": straight to legacy, or 503 without fallback.
    let unhealthy = decision.target == Target::New
        && !snapshot
            .backend(decision.backend)
            .health
            .admit(Instant::now());
    let (to_new, backend) = match route {
        Some(route) if unhealthy && fallback.enabled => (false, route.config.legacy),
        _ if unhealthy => return Err(ProxyError::Unavailable),
        _ => (decision.target == Target::New, decision.backend),
    };
    let with_fallback = to_new && fallback.enabled;
    // Copy the body only if some failure could send it again.
    let may_resend = replayable || (with_fallback && fallback.on_connect_error);
    let (body, copy) = if may_resend {
        let limits = CopyLimits {
            max: fallback.max_body,
            idle: snapshot.config.server.header_read_timeout,
        };
        copy::tee(body, content_length, limits, &shared.copy_budget)
    } else {
        (body, copy::Copy::Unavailable)
    };
    let mut request = Outgoing {
        method,
        path: &routed.path,
        query: uri.query(),
        headers,
        client_host: routed.host.clone(),
        te_trailers,
        copy,
        fallback,
        replayable,
        attempts: Attempts::default(),
    };
    let forwarded = match route {
        Some(route) if with_fallback => {
            fallback::forward_with_fallback(snapshot, route, &mut request, body).await
        }
        _ => {
            let path = match route {
                Some(route) if to_new => route::rewrite_path(&route.config, &routed.path),
                _ => routed.path.as_str().into(),
            };
            let outcome =
                fallback::try_backend(snapshot, &mut request, backend, &path, body, true).await;
            Forwarded::new(backend, outcome).map(|forwarded| Forwarded {
                fallback: unhealthy.then_some(FallbackReason::Unhealthy),
                ..forwarded
            })
        }
    };
    forwarded.map(|forwarded| Forwarded {
        attempts: request.attempts,
        ..forwarded
    })
}
