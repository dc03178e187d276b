//! The request path: snapshot → decide → forward → fall back → respond.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::backend::Backend;
use crate::body::{self, BoxError, ProxyBody};
use crate::config::{FallbackConfig, Protocol};
use crate::error::ProxyError;
use crate::headers::{self, X_REQUEST_ID};
use crate::route::{self, RequestInfo, Target};
use crate::snapshot::{SharedSnapshot, Snapshot};

/// The client's address, put in the request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Put in the request's extensions by the server when the client connected
/// over TLS: `X-Forwarded-Proto` becomes `https`.
#[derive(Debug, Clone, Copy)]
pub struct ClientTls;

/// Why an answer came from legacy after new was tried (`x-strangler-fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    Status(StatusCode),
    Connect,
    Timeout,
}

impl FallbackReason {
    /// The metric label: `status`, `connect` or `timeout`.
    pub fn label(self) -> &'static str {
        match self {
            FallbackReason::Status(_) => "status",
            FallbackReason::Connect => "connect",
            FallbackReason::Timeout => "timeout",
        }
    }

    /// The `x-strangler-fallback` value: `status-<code>`, `connect` or `timeout`.
    pub fn header_value(self) -> HeaderValue {
        match self {
            FallbackReason::Status(code) => {
                HeaderValue::from_str(&format!("status-{}", code.as_u16()))
                    .unwrap_or_else(|_| HeaderValue::from_static("status"))
            }
            FallbackReason::Connect => HeaderValue::from_static("connect"),
            FallbackReason::Timeout => HeaderValue::from_static("timeout"),
        }
    }
}

/// What happened to one request, for the access log and metrics.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: Method,
    /// The request target as the client sent it.
    pub uri: Uri,
    /// Index into the snapshot's routes; `None` for `_default`.
    pub route: Option<usize>,
    /// The backend whose answer the client got (or that failed, for 502/504).
    pub backend: Option<usize>,
    pub status: StatusCode,
    pub fallback: Option<FallbackReason>,
    /// The proxy made the answer itself (400, 408, 413, 502, 504).
    pub proxy_error: bool,
    /// The decision picked new (the answer may still be legacy's after a fallback).
    pub to_new: bool,
    pub started: Instant,
    /// `x-request-id`, as set by the service stack.
    pub request_id: Option<HeaderValue>,
}

/// The request id for logs.
pub fn request_id_text(exchange: &Exchange) -> Option<&str> {
    exchange.request_id.as_ref().and_then(|v| v.to_str().ok())
}

/// Told about every finished exchange (metrics, access log). Must not block.
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, snapshot: &Snapshot, exchange: &Exchange);
}

/// The innermost tower service: routes and forwards one request. Cloned per
/// connection and per request, so it is one `Arc`.
#[derive(Clone)]
pub struct ProxyService(Arc<Shared>);

/// What every request of every connection shares.
struct Shared {
    snapshot: SharedSnapshot,
    observer: Option<Arc<dyn Observer>>,
    /// Upgraded connections, counted so shutdown can wait for them.
    tunnels: Arc<Tunnels>,
    replay_budget: ReplayBudget,
}

impl ProxyService {
    pub fn new(
        snapshot: SharedSnapshot,
        observer: Option<Arc<dyn Observer>>,
        tunnels: Arc<Tunnels>,
    ) -> ProxyService {
        ProxyService(Arc::new(Shared {
            snapshot,
            observer,
            tunnels,
            replay_budget: Arc::new(Semaphore::new(REPLAY_BUDGET_BYTES)),
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
        Box::pin(async move { Ok(handle(snapshot, &shared, req.map(body::boxed)).await) })
    }
}

/// Everything known about the request once it has been routed.
struct Routed<'s> {
    snapshot: &'s Snapshot,
    route: Option<usize>,
    target: Target,
    backend: usize,
}

async fn handle(
    snapshot: Arc<Snapshot>,
    service: &Shared,
    mut req: Request<ProxyBody>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let upgrade = headers::is_upgrade_request(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let method = req.method().clone();
    let mut exchange = Exchange {
        method,
        uri: req.uri().clone(),
        route: None,
        backend: None,
        status: StatusCode::OK,
        fallback: None,
        proxy_error: false,
        to_new: false,
        started,
        request_id: req.headers().get(&X_REQUEST_ID).cloned(),
    };
    let outcome = route_and_forward(&snapshot, service, req, upgrade, &mut exchange).await;
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            debug!(
                route = snapshot.route_label(exchange.route),
                status = error.status().as_u16(),
                error = error.message(),
                request_id = request_id_text(&exchange),
                "proxy error"
            );
            exchange.proxy_error = true;
            error.into_response(exchange.request_id.as_ref())
        }
    };
    exchange.status = response.status();
    if snapshot.config.server.debug_headers {
        add_debug_headers(&snapshot, &exchange, response.headers_mut());
    }
    if let Some(observer) = &service.observer {
        observer.observe(&snapshot, &exchange);
    }
    response
}

fn add_debug_headers(snapshot: &Snapshot, exchange: &Exchange, headers: &mut HeaderMap) {
    let route = match exchange.route {
        Some(i) => snapshot.route_names[i].clone(),
        None => HeaderValue::from_static(crate::snapshot::DEFAULT_ROUTE),
    };
    headers.insert(&headers::X_STRANGLER_ROUTE, route);
    if let Some(b) = exchange.backend {
        headers.insert(
            &headers::X_STRANGLER_BACKEND,
            snapshot.backends[b].name_header.clone(),
        );
    }
    if let Some(reason) = exchange.fallback {
        headers.insert(&headers::X_STRANGLER_FALLBACK, reason.header_value());
    }
}

async fn route_and_forward(
    snapshot: &Snapshot,
    service: &Shared,
    req: Request<ProxyBody>,
    upgrade: Option<OnUpgrade>,
    exchange: &mut Exchange,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path();
    if !raw_path.starts_with('/') {
        return Err(ProxyError::BadRequest("request target must be a path"));
    }
    let path = route::normalize_path(raw_path);
    let query = parts.uri.query();
    let host = headers::client_host(&parts.uri, &parts.headers);
    let client_ip = parts
        .extensions
        .get::<ClientAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.0.ip());
    let info = RequestInfo {
        method: &parts.method,
        path: &path,
        query,
        host: host.as_ref().and_then(|h| h.to_str().ok()),
        headers: &parts.headers,
        client_ip,
    };
    let decision = route::decide(
        &snapshot.config,
        &snapshot.router,
        &info,
        fastrand::u16(..route::BUCKETS),
    );
    exchange.route = decision.route;
    exchange.to_new = decision.target == Target::New;
    let routed = Routed {
        snapshot,
        route: decision.route,
        target: decision.target,
        backend: decision.backend,
    };

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
    exchange.backend = Some(decision.backend);

    let mut forwarded = parts.headers;
    let te_trailers = headers::wants_trailers(&forwarded);
    headers::remove_hop_by_hop(&mut forwarded, upgrade.is_some());
    let client_host = host.clone();
    let proto = if parts.extensions.get::<ClientTls>().is_some() {
        "https"
    } else {
        "http"
    };
    headers::set_forwarded(&mut forwarded, client_ip, proto, client_host.as_ref());
    let mut request = Outgoing {
        method: parts.method,
        path: &path,
        query,
        headers: forwarded,
        client_host,
        te_trailers,
    };

    let fallback = match (routed.target, routed.route) {
        (Target::New, Some(i)) if snapshot.config.routes[i].fallback.enabled => {
            Some(&snapshot.config.routes[i].fallback)
        }
        _ => None,
    };
    let response = match fallback {
        None => {
            let backend = &snapshot.backends[routed.backend];
            let uri_path = upstream_path(&routed, &path);
            let headers = std::mem::take(&mut request.headers);
            let upstream = request.build(backend, &uri_path, body, headers)?;
            send(backend, upstream).await?
        }
        Some(fallback) => {
            forward_with_fallback(
                &routed,
                &mut request,
                body,
                &service.replay_budget,
                content_length,
                fallback,
                exchange,
            )
            .await?
        }
    };
    Ok(finish_response(response, upgrade, &service.tunnels))
}

/// The path sent upstream: new gets the route's `rewrite` applied.
fn upstream_path<'p>(routed: &Routed<'_>, path: &'p str) -> std::borrow::Cow<'p, str> {
    match (routed.target, routed.route) {
        (Target::New, Some(i)) => route::rewrite_path(&routed.snapshot.config.routes[i], path),
        _ => std::borrow::Cow::Borrowed(path),
    }
}

/// Tries new; when it fails in a way the route's fallback covers, and the
/// body was held whole, replays the request to legacy.
async fn forward_with_fallback(
    routed: &Routed<'_>,
    request: &mut Outgoing<'_>,
    body: ProxyBody,
    budget: &ReplayBudget,
    content_length: Option<u64>,
    fallback: &FallbackConfig,
    exchange: &mut Exchange,
) -> Result<Response<hyper::body::Incoming>, ProxyError> {
    let snapshot = routed.snapshot;
    let route = &snapshot.config.routes[routed.route.unwrap_or_default()];
    let new = &snapshot.backends[routed.backend];
    let idle = snapshot.config.server.header_read_timeout;
    let replayable_method = fallback.replay_methods.contains(&request.method);
    // Hold the body only if some failure could replay it.
    let may_replay = fallback.on_connect_error
        || (replayable_method && (fallback.on_timeout || !fallback.on_status.is_empty()));
    let held = if may_replay {
        hold(body, fallback.max_body, content_length, idle, budget).await?
    } else {
        Held::Streaming(body)
    };
    let uri_path = upstream_path(routed, request.path);
    // `_permit` keeps the held bytes counted until this request is answered.
    let (first_body, replay_body, _permit) = match held {
        Held::Whole(bytes, permit) => (body::full(bytes.clone()), Some(bytes), permit),
        Held::Streaming(body) => (body, None, None),
    };
    // Headers are copied only when a replay could need them.
    let headers = match replay_body {
        Some(_) => request.headers.clone(),
        None => std::mem::take(&mut request.headers),
    };
    let attempt = send(new, request.build(new, &uri_path, first_body, headers)?).await;
    let reason = match &attempt {
        Ok(response) if fallback.on_status(response.status().as_u16()) && replayable_method => {
            Some(FallbackReason::Status(response.status()))
        }
        Err(ProxyError::Unreachable) if fallback.on_connect_error => Some(FallbackReason::Connect),
        Err(ProxyError::GatewayTimeout) if fallback.on_timeout && replayable_method => {
            Some(FallbackReason::Timeout)
        }
        _ => None,
    };
    let (Some(reason), Some(bytes)) = (reason, replay_body) else {
        return attempt;
    };
    // The failed answer's body is discarded unread.
    drop(attempt);
    warn!(
        route = %route.name,
        reason = reason.label(),
        method = %request.method,
        path = request.path,
        request_id = request_id_text(exchange),
        "new failed, replaying to legacy"
    );
    exchange.fallback = Some(reason);
    exchange.backend = Some(route.legacy);
    let legacy = &snapshot.backends[route.legacy];
    // The replay is the headers' last use.
    let headers = std::mem::take(&mut request.headers);
    send(
        legacy,
        request.build(legacy, request.path, body::full(bytes), headers)?,
    )
    .await
}

/// The parts of the upstream request shared by the first try and a replay.
struct Outgoing<'a> {
    method: Method,
    path: &'a str,
    query: Option<&'a str>,
    /// Client headers, hop-by-hop removed, forwarding headers set. Each
    /// attempt gets a copy, or takes them when no later attempt needs them.
    headers: HeaderMap,
    client_host: Option<HeaderValue>,
    /// The client sent `TE: trailers`: passed on to HTTP/2 backends only.
    te_trailers: bool,
}

impl Outgoing<'_> {
    /// The request for `backend`, with `headers` (a copy of, or taken from,
    /// `self.headers`) given the right Host.
    fn build(
        &self,
        backend: &Backend,
        path: &str,
        body: ProxyBody,
        mut headers: HeaderMap,
    ) -> Result<Request<ProxyBody>, ProxyError> {
        let config = &backend.config;
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = config
            .upstream_uri(path, self.query)
            .map_err(|_| ProxyError::BadRequest("request path cannot be forwarded"))?;
        *request.version_mut() = match config.protocol {
            Protocol::Http2 => Version::HTTP_2,
            _ => Version::HTTP_11,
        };
        if self.te_trailers && backend.may_use_h2() {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        let host = if config.preserve_host {
            self.client_host.clone()
        } else {
            None
        };
        headers.insert(
            header::HOST,
            host.unwrap_or_else(|| backend.host_header.clone()),
        );
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// Sends one request, bounded by the backend's `timeout` to the response head.
async fn send(
    backend: &Backend,
    request: Request<ProxyBody>,
) -> Result<Response<hyper::body::Incoming>, ProxyError> {
    let sent = tokio::time::timeout(backend.config.timeout, backend.client.request(request)).await;
    match sent {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) if error.is_connect() => {
            debug!(backend = %backend.config.name, %error, "connect failed");
            Err(ProxyError::Unreachable)
        }
        Ok(Err(error)) => {
            if caused_by_length_limit(&error) {
                return Err(ProxyError::PayloadTooLarge);
            }
            debug!(backend = %backend.config.name, error = ?error, "backend exchange failed");
            Err(ProxyError::BadGateway("backend exchange failed"))
        }
        Err(_) => Err(ProxyError::GatewayTimeout),
    }
}

fn caused_by_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Turns a backend response into the client's: hop-by-hop headers removed,
/// and a 101 to an upgrade request tunnelled both ways.
fn finish_response(
    mut response: Response<hyper::body::Incoming>,
    client_upgrade: Option<OnUpgrade>,
    tunnels: &Arc<Tunnels>,
) -> Response<ProxyBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    match client_upgrade {
        Some(client_upgrade) if switching => {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            let open = tunnels.open();
            tokio::spawn(async move {
                tunnel(client_upgrade, backend_upgrade).await;
                drop(open);
            });
            headers::remove_hop_by_hop(response.headers_mut(), true);
        }
        _ => headers::remove_hop_by_hop(response.headers_mut(), false),
    }
    headers::remove_debug_headers(response.headers_mut());
    response.map(body::boxed)
}

/// The upgraded connections being tunnelled; shutdown waits for them.
#[derive(Debug, Default)]
pub struct Tunnels {
    open: AtomicUsize,
    closed: Notify,
}

/// One open tunnel; dropping it closes the count.
struct OpenTunnel(Arc<Tunnels>);

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

impl Tunnels {
    fn open(self: &Arc<Self>) -> OpenTunnel {
        self.open.fetch_add(1, Ordering::AcqRel);
        OpenTunnel(self.clone())
    }

    /// How many tunnels are open now.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Completes once no tunnel is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Copies bytes both ways between an upgraded client and backend connection.
async fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(error) => {
            debug!(%error, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        debug!(%error, "tunnel closed with an error");
    }
}

/// A request body, held in memory for a possible replay or, when larger than
/// the replay limit, streaming on.
enum Held {
    /// The whole body, and its share of the [`ReplayBudget`] until dropped.
    Whole(Bytes, Option<OwnedSemaphorePermit>),
    Streaming(ProxyBody),
}

/// Bytes of request bodies held for replay at once, across all requests.
/// Past it, a body streams (without fallback) rather than grow memory:
/// `max_body` bounds one request, this bounds them all.
pub const REPLAY_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// The process-wide allowance of held body bytes, one permit per byte.
pub type ReplayBudget = Arc<Semaphore>;

/// Takes `n` more bytes of `budget` into `held`; false when it is spent.
fn reserve(budget: &ReplayBudget, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> bool {
    let Ok(n) = u32::try_from(n) else {
        return false;
    };
    match budget.clone().try_acquire_many_owned(n) {
        Ok(permit) => {
            match held {
                Some(held) => held.merge(permit),
                None => *held = Some(permit),
            }
            true
        }
        Err(_) => false,
    }
}

/// Reads up to `max` bytes of `body`. A body that ends within `max` (and
/// within what is left of `budget`) is held whole; a larger one streams on
/// with what was already read in front. A client that sends nothing for
/// `idle` gets a 408.
async fn hold(
    mut body: ProxyBody,
    max: u64,
    content_length: Option<u64>,
    idle: Duration,
    budget: &ReplayBudget,
) -> Result<Held, ProxyError> {
    if body.is_end_stream() {
        return Ok(Held::Whole(Bytes::new(), None));
    }
    if content_length.is_some_and(|n| n > max) {
        return Ok(Held::Streaming(body));
    }
    let mut permit = None;
    // A declared length is reserved up front; a chunked body chunk by chunk.
    let declared = content_length.unwrap_or(0) as usize;
    if !reserve(budget, &mut permit, declared) {
        debug!("replay budget spent: streaming without fallback");
        return Ok(Held::Streaming(body));
    }
    let mut buffer = BytesMut::with_capacity(declared);
    loop {
        let Ok(frame) = tokio::time::timeout(idle, body.frame()).await else {
            return Err(ProxyError::RequestTimeout);
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            if caused_by_length_limit(e.as_ref()) {
                ProxyError::PayloadTooLarge
            } else {
                ProxyError::BadRequest("client request body failed")
            }
        })?;
        // Trailers of a held body are dropped: replay sends the bytes only.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let beyond_declared =
            (buffer.len() + data.len()).saturating_sub(declared.max(buffer.len()));
        if (buffer.len() + data.len()) as u64 > max
            || !reserve(budget, &mut permit, beyond_declared)
        {
            buffer.extend_from_slice(&data);
            let prefix = buffer.freeze();
            return Ok(Held::Streaming(body::boxed(Prefixed {
                prefix: Some(prefix),
                rest: body,
            })));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Held::Whole(buffer.freeze(), permit))
}

/// A body that yields `prefix` and then the rest of a partly read body.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: ProxyBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        hint.set_lower(hint.lower() + extra);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    fn budget(bytes: usize) -> ReplayBudget {
        Arc::new(Semaphore::new(bytes))
    }

    fn chunked(chunks: &[&'static str]) -> ProxyBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn held_bytes_count_against_the_budget_until_dropped() {
        let budget = budget(8);
        let first = hold(body::full("12345"), 100, Some(5), IDLE, &budget)
            .await
            .unwrap();
        assert!(matches!(first, Held::Whole(..)));
        assert_eq!(budget.available_permits(), 3);
        // Declared length over what is left: streams, the budget is untouched.
        let second = hold(body::full("abcd"), 100, Some(4), IDLE, &budget)
            .await
            .unwrap();
        assert!(matches!(second, Held::Streaming(_)));
        assert_eq!(budget.available_permits(), 3);
        // Chunked: runs out mid-body, streams with every byte intact.
        let Held::Streaming(rest) = hold(chunked(&["ab", "cd"]), 100, None, IDLE, &budget)
            .await
            .unwrap()
        else {
            panic!("expected streaming");
        };
        assert_eq!(&rest.collect().await.unwrap().to_bytes()[..], b"abcd");
        assert_eq!(budget.available_permits(), 3);
        drop(first);
        assert_eq!(budget.available_permits(), 8);
    }

    #[tokio::test]
    async fn a_stalled_body_is_a_request_timeout() {
        let stalled = body::boxed(http_body_util::StreamBody::new(
            futures_util::stream::pending::<Result<Frame<Bytes>, BoxError>>(),
        ));
        let held = hold(
            stalled,
            10,
            Some(5),
            Duration::from_millis(20),
            &budget(100),
        )
        .await;
        assert!(matches!(held, Err(ProxyError::RequestTimeout)));
    }

    #[tokio::test]
    async fn small_body_is_held_whole() {
        let held = hold(body::full("hello"), 10, Some(5), IDLE, &budget(100))
            .await
            .unwrap();
        assert!(matches!(held, Held::Whole(b, _) if b == "hello"));
    }

    #[tokio::test]
    async fn body_over_max_streams_with_prefix_intact() {
        let chunks: Vec<Result<Frame<Bytes>, BoxError>> = (0..4)
            .map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + i; 4]))))
            .collect();
        let streamed = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks,
        )));
        let Held::Streaming(rest) = hold(streamed, 6, None, IDLE, &budget(100)).await.unwrap()
        else {
            panic!("expected streaming");
        };
        let all = rest.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"aaaabbbbccccdddd");
    }

    #[tokio::test]
    async fn declared_length_over_max_is_not_read() {
        let held = hold(body::full("0123456789"), 4, Some(10), IDLE, &budget(100))
            .await
            .unwrap();
        assert!(matches!(held, Held::Streaming(_)));
    }

    #[test]
    fn fallback_header_values() {
        assert_eq!(
            FallbackReason::Status(StatusCode::SERVICE_UNAVAILABLE).header_value(),
            "status-503"
        );
        assert_eq!(FallbackReason::Connect.header_value(), "connect");
        assert_eq!(FallbackReason::Timeout.label(), "timeout");
    }
}
