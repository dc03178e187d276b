//! The client-facing listener: accept, limit, serve HTTP/1.1 and h2c on one
//! port (or HTTPS, with h2 by ALPN, under `[server.tls]`), and drain gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Service, ServiceBuilder};
use tower_http::add_extension::AddExtensionLayer;
use tracing::{debug, info, warn};

use crate::body::BoxError;
use crate::config::ServerConfig;
use crate::tls::ServerTls;

/// The client's address, put in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Put in a request's extensions when the client connected over TLS.
#[derive(Debug, Clone, Copy)]
pub struct ClientTls;

/// The listener limits of `[server]` that apply to every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl From<&ServerConfig> for Limits {
    fn from(server: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: server.header_read_timeout,
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

/// What the listener needs of a response body.
pub trait ResponseBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// Serves `service` on `listener` until `shutdown` completes, then stops
/// accepting and waits up to `limits.shutdown_timeout` for open connections.
///
/// At most `limits.max_connections` connections are held at once; further
/// clients wait in the kernel's accept queue. With `tls`, the handshake and
/// the first request bytes must both arrive within
/// `limits.header_read_timeout`, and requests carry [`ClientTls`].
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()>,
) where
    S: HttpService<B>,
    B: ResponseBody,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // HTTP/2 has no header_read_timeout: pings find dead peers instead.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
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
        let service = ServiceBuilder::new()
            .layer(AddExtensionLayer::new(ClientAddr(peer)))
            .option_layer(tls.is_some().then(|| AddExtensionLayer::new(ClientTls)))
            .service(service.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            // hyper-util's protocol detection has no deadline of its own: a
            // client that sends nothing must not hold a connection slot.
            let deadline = tokio::time::Instant::now() + limits.header_read_timeout;
            match tls {
                None => serve_client(stream, peer, deadline, &builder, service, watcher).await,
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout_at(deadline, handshake).await {
                        Ok(Ok(stream)) => {
                            serve_client(stream, peer, deadline, &builder, service, watcher).await;
                        }
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
    info!(
        connections = graceful.count(),
        "stopped accepting, draining connections"
    );
    tokio::select! {
        () = graceful.shutdown() => info!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            warn!("shutdown_timeout reached with connections still open");
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one client connection (plain or already past
/// the TLS handshake) until it closes or the graceful shutdown ends it. The
/// protocol is known from the first bytes, which must come by `deadline`.
async fn serve_client<I, S, B>(
    mut stream: I,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    builder: &auto::Builder<TokioExecutor>,
    service: S,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: HttpService<B>,
    B: ResponseBody,
{
    let prefix = tokio::time::timeout_at(deadline, read_protocol_prefix(&mut stream)).await;
    let Ok(Ok(prefix)) = prefix else {
        debug!(%peer, "no request within header_read_timeout; closing");
        return;
    };
    let io = TokioIo::new(Rewind::new(prefix, stream));
    let connection = builder
        .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
        .into_owned();
    if let Err(error) = watcher.watch(connection).await {
        debug!(%peer, error = %error, "connection closed with an error");
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
