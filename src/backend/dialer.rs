//! The connector of a backend's pool: it dials the backend's own address
//! whatever authority the request URI names. The URI's authority is the Host
//! the backend sees (`:authority` over HTTP/2, `Host` over HTTP/1.1), so the
//! client's host can be preserved over HTTP/2 without a conflicting `Host`
//! header (RFC 9113 §8.3.1).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use crate::body::BoxError;

/// Connects to `target` (the backend's scheme and authority), with TLS for
/// `https` (SNI from `target` or `tls_server_name`, never from the request).
#[derive(Debug, Clone)]
pub struct Dialer {
    inner: HttpsConnector<HttpConnector>,
    target: Uri,
}

impl Dialer {
    pub(crate) fn new(inner: HttpsConnector<HttpConnector>, target: Uri) -> Dialer {
        Dialer { inner, target }
    }
}

impl Service<Uri> for Dialer {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _request_uri: Uri) -> Self::Future {
        self.inner.call(self.target.clone())
    }
}
