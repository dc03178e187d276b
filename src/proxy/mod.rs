//! The request path: snapshot → decide → forward → fall back → respond.
//!
//! - [`routed`]: the decision for one request, and what it derived;
//! - [`outgoing`]: the upstream request, built for each attempt;
//! - [`attempt`]: one backend's try, classified, retried on a fresh connection;
//! - [`fallback`]: try new, replay to legacy when it fails;
//! - [`copy`]: the request body streamed on with a copy kept, and its budget;
//! - [`respond`]: the backend's answer made the client's;
//! - [`shadow`]: the request mirrored to the other side, in the background;
//! - [`tunnel`]: upgraded connections after a 101;
//! - [`exchange`]: the record of one request, for the observer.

mod attempt;
pub(crate) mod copy;
mod exchange;
mod fallback;
mod outgoing;
mod respond;
mod routed;
mod shadow;
mod tunnel;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::Limited;
use hyper::body::Incoming;
use std::sync::LazyLock;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug};

use crate::body::{self, BoxError, ProxyBody};
use crate::config::{FallbackConfig, RateKey};
use crate::error::ProxyError;
use crate::headers::{self, X_REQUEST_ID};
use crate::route::{self, Target};
use crate::server::{self, ClientAddr, ClientTls, Connection, Counted};
use crate::snapshot::{CompiledRoute, SharedSnapshot, Snapshot};

pub(crate) use exchange::{Exchange, Observer};
pub(crate) use fallback::FallbackReason;
use fallback::Forwarded;

pub(crate) use attempt::{AttemptResult, Attempts};

use copy::{COPY_BUDGET_BYTES, CopyBudget, CopyLimits};
use outgoing::Outgoing;
use respond::{add_debug_headers, finish_response};
use routed::{Routed, route_request};

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
    /// Shadow requests in flight; never awaited by a request.
    shadows: TaskTracker,
    copy_budget: CopyBudget,
}

impl std::fmt::Debug for ProxyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyService").finish_non_exhaustive()
    }
}

impl ProxyService {
    pub(crate) fn new(
        snapshot: SharedSnapshot,
        observer: Option<Arc<dyn Observer>>,
        tunnels: TaskTracker,
    ) -> ProxyService {
        ProxyService(Arc::new(Shared {
            snapshot,
            observer,
            tunnels,
            shadows: TaskTracker::new(),
            copy_budget: Arc::new(Semaphore::new(COPY_BUDGET_BYTES)),
        }))
    }
}

/// The client as the listener saw it.
#[derive(Clone, Copy, Debug)]
struct Peer {
    ip: IpAddr,
    tls: bool,
}

impl ProxyService {
    /// What a stack of tower layers used to do around the proxy, done in
    /// one place with no allocation of its own: credentials marked
    /// sensitive (redacted in debug output, never HPACK-indexed),
    /// `x-request-id` passed on or created, and a `debug` span carrying it.
    /// The rest happens in [`Front::respond`], which the caller boxes: the
    /// request's large future is then built in place, never moved.
    fn front<B>(&self, mut req: Request<B>, peer: Peer) -> (Front, tracing::Span)
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        for (name, value) in req.headers_mut().iter_mut() {
            if name == header::AUTHORIZATION
                || name == header::PROXY_AUTHORIZATION
                || name == header::COOKIE
            {
                value.set_sensitive(true);
            }
        }
        let request_id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = headers::new_request_id();
                req.headers_mut().insert(&X_REQUEST_ID, id.clone());
                id
            }
        };
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            path = req.uri().path(),
            request_id = request_id.to_str().ok(),
        );
        let front = Front {
            // One snapshot per request: a reload mid-request does not affect it.
            snapshot: self.0.snapshot.load_full(),
            shared: self.0.clone(),
            req: req.map(body::boxed),
            peer,
            request_id,
        };
        (front, span)
    }
}

/// One request, ready to be answered.
struct Front {
    snapshot: Arc<Snapshot>,
    shared: Arc<Shared>,
    req: Request<ProxyBody>,
    peer: Peer,
    request_id: HeaderValue,
}

impl Front {
    async fn respond(self) -> Response<ProxyBody> {
        let Front {
            snapshot,
            shared,
            req,
            peer,
            request_id,
        } = self;
        let mut response = handle(&snapshot, &shared, req, peer, &request_id).await;
        // A backend's own request id stands.
        if let http::header::Entry::Vacant(entry) = response.headers_mut().entry(&X_REQUEST_ID) {
            entry.insert(request_id);
        }
        response
    }
}

/// Boxes `answer`, inside its span only when that span is enabled (debug
/// logging), so the common case adds no wrapper.
fn boxed<T: 'static>(
    answer: impl Future<Output = T> + Send + 'static,
    span: tracing::Span,
) -> Pin<Box<dyn Future<Output = T> + Send>> {
    if span.is_disabled() {
        Box::pin(answer)
    } else {
        Box::pin(answer.instrument(span))
    }
}

/// Used without the listener (tests, embedding): the client is read from
/// the request's [`ClientAddr`] and [`ClientTls`] extensions, if any.
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
        let extensions = req.extensions();
        let peer = Peer {
            ip: extensions
                .get::<ClientAddr>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip()),
            tls: extensions.get::<ClientTls>().is_some(),
        };
        let (front, span) = self.front(req, peer);
        boxed(async move { Ok(front.respond().await) }, span)
    }
}

impl server::PerConnection<Counted<ProxyBody>> for ProxyService {
    type Service = ConnectionProxy;

    fn connect(&self, connection: Connection) -> ConnectionProxy {
        ConnectionProxy {
            proxy: self.clone(),
            peer: Peer {
                ip: connection.peer.ip(),
                tls: connection.tls,
            },
            connection,
        }
    }
}

/// The proxy on one accepted connection: knows its client, and counts its
/// requests in flight until their response body is dropped.
#[derive(Clone, Debug)]
pub struct ConnectionProxy {
    proxy: ProxyService,
    peer: Peer,
    connection: Connection,
}

impl tower::Service<Request<Incoming>> for ConnectionProxy {
    type Response = Response<Counted<ProxyBody>>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Counted<ProxyBody>>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let busy = self.connection.busy();
        let (front, span) = self.proxy.front(req, self.peer);
        boxed(
            async move { Ok(front.respond().await.map(|body| Counted::new(body, busy))) },
            span,
        )
    }
}

async fn handle(
    snapshot: &Snapshot,
    shared: &Shared,
    mut req: Request<ProxyBody>,
    peer: Peer,
    request_id: &HeaderValue,
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
        request_id: Some(request_id.clone()),
        client: None,
    };
    // Until the answer is made: if this future is dropped, the client went away.
    let mut gone = ClientGone {
        snapshot,
        observer: shared.observer.as_ref(),
        exchange: Some(exchange.clone()),
    };
    let (mut parts, body) = req.into_parts();
    // Taken out so the routing result can borrow it while the parts move on.
    let uri = std::mem::take(&mut parts.uri);
    let mut set_cookie = None;
    let outcome = match route_request(snapshot, &parts, &uri, peer, upgrade.is_some()) {
        Ok(mut routed) => {
            set_cookie = routed.set_cookie.take();
            exchange.route = routed.decision.route;
            exchange.to_new = routed.decision.target == Target::New;
            exchange.client = Some(routed.client_ip);
            gone.routed(&exchange);
            match rate_limit(snapshot, &routed, &parts) {
                Ok(()) => forward(snapshot, shared, routed, parts, body).await,
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    let answer = outcome.and_then(|forwarded| {
        exchange.backend = Some(forwarded.backend);
        exchange.fallback = forwarded.fallback;
        exchange.attempts = forwarded.attempts;
        forwarded.result
    });
    let answer = answer.and_then(|response| finish_response(response, upgrade, &shared.tunnels));
    let mut response = match answer {
        Ok(response) => response,
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
    gone.exchange = None;
    if let Some(cookie) = set_cookie {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, cookie);
    }
    exchange.status = response.status();
    if snapshot.config.server.debug_headers {
        add_debug_headers(snapshot, &exchange, response.headers_mut());
    }
    if let Some(observer) = &shared.observer {
        observer.observe(snapshot, &exchange);
    }
    response
}

/// Observes a request whose client went away before its answer was made
/// (the request's future dropped: an HTTP/2 stream reset, a connection
/// closed mid-request): `code="499"`, `backend="none"`, apart from the
/// backends' failures.
struct ClientGone<'a> {
    snapshot: &'a Snapshot,
    observer: Option<&'a Arc<dyn Observer>>,
    /// `Some` until the answer is made.
    exchange: Option<Exchange>,
}

impl ClientGone<'_> {
    fn routed(&mut self, exchange: &Exchange) {
        if let Some(gone) = &mut self.exchange {
            gone.route = exchange.route;
            gone.to_new = exchange.to_new;
            gone.client = exchange.client;
        }
    }
}

impl Drop for ClientGone<'_> {
    fn drop(&mut self) {
        let Some(mut exchange) = self.exchange.take() else {
            return;
        };
        debug!(
            route = self.snapshot.handles(exchange.route).label.as_str(),
            request_id = exchange.request_id(),
            "client went away before its answer"
        );
        if let Some(observer) = self.observer {
            exchange.status = crate::error::CLIENT_CLOSED_REQUEST;
            exchange.proxy_error = true;
            observer.observe(self.snapshot, &exchange);
        }
    }
}

/// SPEC §3.8: takes a token from the bucket of the request's key on its
/// route; a 429 (not forwarded) when it is empty.
fn rate_limit(snapshot: &Snapshot, routed: &Routed<'_>, parts: &Parts) -> Result<(), ProxyError> {
    let Some(id) = routed.decision.route else {
        return Ok(());
    };
    let route = snapshot.route(id);
    let Some(limit) = &route.config.rate_limit else {
        return Ok(());
    };
    let ip;
    let key: &[u8] = match &limit.key {
        RateKey::Route => b"",
        RateKey::Header(name) => parts.headers.get(name).map_or(&b""[..], |v| v.as_bytes()),
        RateKey::Ip => {
            ip = match routed.client_ip {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                std::net::IpAddr::V6(v6) => v6.octets(),
            };
            &ip
        }
    };
    route
        .handles
        .rate_limiter
        .take(limit, key, Instant::now())
        .map_err(|wait| ProxyError::RateLimited(crate::ratelimit::retry_after_secs(wait)))
}

/// The fallback settings of `route`, or the defaults for `_default`.
fn fallback_of(route: Option<&CompiledRoute>) -> &FallbackConfig {
    route.map_or(&*DEFAULT_FALLBACK, |r| &r.config.fallback)
}

/// Forwards the request to the decided backend, through the route's
/// fallback when the decision is new and the route has one.
async fn forward(
    snapshot: &Snapshot,
    shared: &Shared,
    routed: Routed<'_>,
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
    let decision = routed.decision;
    let route = decision.route.map(|id| snapshot.route(id));
    let fallback = fallback_of(route);
    let replayable = fallback.replay_methods.contains(&parts.method);
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
    let mirror = shadow::plan(
        route,
        &parts.method,
        content_length,
        routed.upgrade,
        shared.observer.as_ref(),
    );
    // Copy the body only if some failure could send it again, or a shadow
    // needs it (up to the fallback's `max_body` when both do).
    let may_resend = replayable || (with_fallback && fallback.on_connect_error);
    let copy_max = if may_resend {
        Some(fallback.max_body)
    } else {
        mirror.as_ref().map(shadow::Plan::max_body)
    };
    let (body, copy) = if let Some(max) = copy_max {
        let limits = CopyLimits {
            max,
            idle: snapshot.config.server.header_read_timeout,
        };
        copy::tee(body, content_length, limits, &shared.copy_budget)
    } else {
        (body, copy::Copy::Unavailable)
    };
    let mut parts = parts;
    if let Some(force) = &snapshot.config.server.force_header {
        // SPEC §3.2: the force header is for the proxy, not the backends.
        parts.headers.remove(force);
    }
    let mut request = Outgoing::new(parts, &routed, copy, route, replayable);
    let mirror = mirror.map(|plan| plan.with_headers(request.headers.clone()));
    let forwarded = match route {
        Some(route) if with_fallback => {
            fallback::forward_with_fallback(snapshot, route, &mut request, body).await
        }
        _ => {
            let path = match route {
                Some(route) if to_new => route::rewrite_path(&route.config, &routed.path),
                _ => Cow::Borrowed(&*routed.path),
            };
            let side = if to_new { Target::New } else { Target::Legacy };
            let outcome =
                fallback::try_backend(snapshot, &mut request, side, &path, body, true).await;
            Forwarded::new(backend, outcome).map(|forwarded| Forwarded {
                fallback: unhealthy.then_some(FallbackReason::Unhealthy),
                ..forwarded
            })
        }
    };
    let mut forwarded = match forwarded {
        Ok(forwarded) => forwarded,
        Err(error) => {
            if let Some(plan) = mirror {
                plan.abandon();
            }
            return Err(error);
        }
    };
    if let Some(plan) = mirror {
        let budget = &shared.copy_budget;
        shadow::start(
            plan,
            snapshot,
            &shared.shadows,
            budget,
            &request,
            &mut forwarded,
        );
    }
    Ok(Forwarded {
        attempts: request.attempts,
        ..forwarded
    })
}
