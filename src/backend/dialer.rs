//! The connector of a backend's pool: it dials the backend's own address
//! whatever authority the request URI names. The URI's authority is the Host
//! the backend sees (`:authority` over HTTP/2, `Host` over HTTP/1.1), so the
//! client's host can be preserved over HTTP/2 without a conflicting `Host`
//! header (RFC 9113 §8.3.1).
//!
//! It also caps the connections open to the backend (`max_connections`): a
//! connection holds a slot from its dial until it closes, and a dial waits
//! for a slot at most `connect_timeout`, then fails as a connect error
//! (nothing was sent, so a fallback may replay any method).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

use crate::body::BoxError;

/// Connects to `target` (the backend's scheme and authority), with TLS for
/// `https` (SNI from `target` or `tls_server_name`, never from the request).
#[derive(Debug, Clone)]
pub struct Dialer {
    inner: HttpsConnector<HttpConnector>,
    target: Uri,
    /// One permit per connection allowed; `None`: no cap.
    slots: Option<Arc<Semaphore>>,
    /// How long a dial waits for a slot.
    wait: Duration,
}

impl Dialer {
    pub(crate) fn new(
        inner: HttpsConnector<HttpConnector>,
        target: Uri,
        max_connections: usize,
        wait: Duration,
    ) -> Dialer {
        let slots = (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections)));
        Dialer {
            inner,
            target,
            slots,
            wait,
        }
    }
}

/// The backend's connection limit was reached and no slot freed in time.
#[derive(Debug)]
struct AtConnectionLimit;

impl std::fmt::Display for AtConnectionLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("backend max_connections reached")
    }
}

impl std::error::Error for AtConnectionLimit {}

impl Service<Uri> for Dialer {
    type Response = Capped;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Capped, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _request_uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let target = self.target.clone();
        let slots = self.slots.clone();
        let wait = self.wait;
        Box::pin(async move {
            let slot = match slots {
                Some(slots) => match tokio::time::timeout(wait, slots.acquire_owned()).await {
                    Ok(Ok(slot)) => Some(slot),
                    _ => return Err(Box::new(AtConnectionLimit) as BoxError),
                },
                None => None,
            };
            let io = inner.call(target).await?;
            Ok(Capped { io, _slot: slot })
        })
    }
}

/// A connection to the backend, holding its slot until it is dropped.
#[derive(Debug)]
pub struct Capped {
    io: MaybeHttpsStream<TokioIo<TcpStream>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Connection for Capped {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl Read for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
