//! The client-facing listener: accept, limit, serve HTTP/1.1 and h2c on one
//! port (or HTTPS, with h2 by ALPN, under `[server.tls]`), and drain gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::{debug, info, warn};

use crate::body::BoxError;
use crate::config::ServerConfig;
use crate::tls::ServerTls;

/// The client's address, read from a request's extensions by a proxy
/// service used without the listener (tests, embedding).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Put in a request's extensions, likewise, when the client connected over TLS.
#[derive(Debug, Clone, Copy)]
pub struct ClientTls;

/// The listener limits of `[server]` that apply to every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    /// A connection with no request in flight this long is closed.
    pub idle_timeout: Duration,
    /// The largest request head accepted (431 past it).
    pub max_header_size: u64,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl From<&ServerConfig> for Limits {
    fn from(server: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_header_size: server.max_header_size,
            max_connections: server.max_connections,
            shutdown_timeout: server.shutdown_timeout,
        }
    }
}

/// What the listener needs of a service: one that never fails (errors are
/// responses) and can be cloned onto every connection.
pub trait HttpService<B>:
    Service<Request<Incoming>, Response = Response<B>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> HttpService<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Makes the service of each accepted connection, told who the client is
/// and given what counts the connection's requests in flight (for the idle
/// timeout): the proxy reads the client from it directly, rather than from
/// request extensions (a map allocated per request).
pub trait PerConnection<B>: Clone + Send + 'static {
    type Service: HttpService<B>;

    fn connect(&self, connection: Connection) -> Self::Service;
}

/// An accepted connection, as its service sees it.
#[derive(Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    /// The client connected over TLS.
    pub tls: bool,
    activity: Arc<Activity>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Counts a request as in flight until the returned guard drops (with
    /// the response body: see [`Counted`]).
    pub fn busy(&self) -> Busy {
        Busy::new(&self.activity)
    }
}

/// Any service, cloned onto each connection, its requests counted in
/// flight from the call until their response body is dropped.
#[derive(Clone, Debug)]
pub struct Counting<S>(pub S);

impl<S, B> PerConnection<Counted<B>> for Counting<S>
where
    S: HttpService<B>,
    B: ResponseBody,
{
    type Service = InFlight<S>;

    fn connect(&self, connection: Connection) -> InFlight<S> {
        InFlight {
            inner: self.0.clone(),
            activity: connection.activity,
        }
    }
}

/// What the listener needs of a response body.
pub trait ResponseBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

/// Serves `service` on `listener` until `shutdown` completes, then stops
/// accepting and waits up to `limits.shutdown_timeout` for open connections.
///
/// At most `limits.max_connections` connections are held at once; further
/// clients wait in the kernel's accept queue. With `tls`, the handshake and
/// the first request bytes must both arrive within
/// `limits.header_read_timeout`, and requests carry [`ClientTls`]. A
/// connection with no request in flight for `limits.idle_timeout` is closed
/// gracefully, whatever its protocol (an HTTP/2 client answering PINGs is
/// idle too).
pub async fn serve<M, B>(
    listener: TcpListener,
    service: M,
    limits: Limits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()>,
) where
    M: PerConnection<B>,
    B: ResponseBody,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let draining = CancellationToken::new();
    let connections = TaskTracker::new();
    let builder = connection_builder(&limits);
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let builder = builder.clone();
        let draining = draining.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            // hyper-util's protocol detection has no deadline of its own: a
            // client that sends nothing must not hold a connection slot.
            let deadline = tokio::time::Instant::now() + limits.header_read_timeout;
            let client = Client {
                peer,
                tls: tls.is_some(),
                deadline,
                idle_timeout: limits.idle_timeout,
                draining,
            };
            match tls {
                None => client.serve(stream, &builder, service).await,
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout_at(deadline, handshake).await {
                        Ok(Ok(stream)) => client.serve(stream, &builder, service).await,
                        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => {
                            debug!(%peer, "no TLS handshake within header_read_timeout; closing")
                        }
                    }
                }
            }
            drop(permit);
        });
    }

    drop(listener);
    connections.close();
    info!(
        connections = connections.len(),
        "stopped accepting, draining connections"
    );
    draining.cancel();
    tokio::select! {
        () = connections.wait() => info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            warn!("shutdown_timeout reached with connections still open");
        }
    }
}

/// The HTTP/1.1 + HTTP/2 connection builder for `limits`.
fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The read buffer, and so a request head, is bounded by max_header_size:
    // hyper answers 431 when a head fills it (its floor is 8 KiB). Without
    // this, hyper buffers up to about 400 KiB per connection.
    let max_head = usize::try_from(limits.max_header_size).unwrap_or(usize::MAX);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(max_head.max(8 << 10));
    // HTTP/2 has no header_read_timeout: pings find dead peers, and the idle
    // timeout closes live ones that send nothing.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// One accepted client connection.
struct Client {
    peer: SocketAddr,
    tls: bool,
    /// By when the first bytes must have come.
    deadline: tokio::time::Instant,
    idle_timeout: Duration,
    /// Cancelled when the listener drains.
    draining: CancellationToken,
}

impl Client {
    /// Serves HTTP/1.1 or HTTP/2 on the connection (plain or already past the
    /// TLS handshake) until it closes, it has been idle for `idle_timeout`, or
    /// the listener drains. The protocol is known from the first bytes, which
    /// must come by `deadline`.
    async fn serve<I, M, B>(self, mut stream: I, builder: &auto::Builder<TokioExecutor>, service: M)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        M: PerConnection<B>,
        B: ResponseBody,
    {
        let peer = self.peer;
        let prefix = tokio::select! {
            prefix = tokio::time::timeout_at(self.deadline, read_protocol_prefix(&mut stream)) => prefix,
            () = self.draining.cancelled() => return,
        };
        let Ok(Ok(prefix)) = prefix else {
            debug!(%peer, "no request within header_read_timeout; closing");
            return;
        };
        let io = TokioIo::new(Rewind::new(prefix, stream));
        let activity = Arc::new(Activity::new());
        let service = service.connect(Connection {
            peer,
            tls: self.tls,
            activity: activity.clone(),
        });
        let connection =
            builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        tokio::pin!(connection);
        let idle = idle_for(activity, self.idle_timeout);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        debug!(%peer, error = %error, "connection closed with an error");
                    }
                    return;
                }
                () = &mut idle, if !closing => {
                    debug!(%peer, "connection idle for idle_timeout; closing");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = self.draining.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Completes once no request has been in flight on a connection for
/// `timeout`. It wakes when the connection could have been idle that long
/// and checks; the request path only touches two atomics, never a lock.
async fn idle_for(activity: Arc<Activity>, timeout: Duration) {
    let mut wake = activity.at(activity.last_done()) + timeout;
    loop {
        tokio::time::sleep_until(wake).await;
        let now = tokio::time::Instant::now();
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            // Busy: look again once a request that ends now could have idled.
            wake = now + timeout;
            continue;
        }
        let idle_until = activity.at(activity.last_done()) + timeout;
        if idle_until <= now {
            return;
        }
        wake = idle_until;
    }
}

// === impl InFlight ===

/// Counts a connection's requests in flight: from the call until the
/// response body is dropped (sent whole, or abandoned).
#[derive(Clone)]
pub struct InFlight<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> std::fmt::Debug for InFlight<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

/// A connection's requests in flight and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `opened` when a request last ended.
    last_done_ms: AtomicU64,
    opened: tokio::time::Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            opened: tokio::time::Instant::now(),
        }
    }

    fn last_done(&self) -> u64 {
        self.last_done_ms.load(Ordering::Acquire)
    }

    fn at(&self, ms: u64) -> tokio::time::Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Marks now as the last activity, so the idle clock restarts from it.
    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_done_ms.fetch_max(ms, Ordering::AcqRel);
    }
}

/// One request in flight; its drop ends it.
pub struct Busy(Arc<Activity>);

impl std::fmt::Debug for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Busy")
    }
}

impl Busy {
    fn new(activity: &Arc<Activity>) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, B> Service<Request<Incoming>> for InFlight<S>
where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        >,
    B: ResponseBody,
{
    type Response = Response<Counted<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let busy = Busy::new(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| Counted { inner, _busy: busy }))
        })
    }
}

/// A response body that keeps its request counted as in flight.
pub struct Counted<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Counted<B> {
    pub fn new(inner: B, busy: Busy) -> Counted<B> {
        Counted { inner, _busy: busy }
    }
}

impl<B> std::fmt::Debug for Counted<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counted")
    }
}

impl<B: ResponseBody> http_body::Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The HTTP/2 connection preface: a client that starts with it speaks h2c.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the protocol is known: the bytes part from the HTTP/2 preface,
/// or all of it has arrived, or the peer closed. Returns what was read.
async fn read_protocol_prefix<I: AsyncRead + Unpin>(stream: &mut I) -> std::io::Result<Bytes> {
    let mut buffer = BytesMut::with_capacity(4096);
    loop {
        if stream.read_buf(&mut buffer).await? == 0 {
            break;
        }
        let seen = buffer.len().min(H2_PREFACE.len());
        if buffer[..seen] != H2_PREFACE[..seen] || seen == H2_PREFACE.len() {
            break;
        }
    }
    Ok(buffer.freeze())
}

/// A stream that first yields bytes already read from it, then reads on.
struct Rewind<I> {
    prefix: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    fn new(prefix: Bytes, inner: I) -> Rewind<I> {
        Rewind { prefix, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    async fn prefix_of(sent: &'static [u8]) -> Bytes {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(sent).await.unwrap();
            client
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let prefix = read_protocol_prefix(&mut stream).await.unwrap();
        drop(client.await.unwrap());
        prefix
    }

    #[tokio::test]
    async fn http1_is_known_from_the_first_bytes() {
        let prefix = prefix_of(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(prefix.starts_with(b"GET"));
    }

    #[tokio::test]
    async fn h2_preface_is_read_whole() {
        let prefix = prefix_of(H2_PREFACE).await;
        assert_eq!(&prefix[..], H2_PREFACE);
    }
}
