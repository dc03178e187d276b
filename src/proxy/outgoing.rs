//! The upstream request: built for one backend from the client's parts, and
//! sent with the backend's `timeout` to the response head.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;
use tracing::debug;

use crate::backend::Backend;
use crate::body::ProxyBody;
use crate::config::Protocol;
use crate::error::{ProxyError, caused_by_length_limit};

/// The parts of the upstream request shared by the first try and a replay.
#[derive(Debug)]
pub(super) struct Outgoing<'a> {
    pub method: Method,
    /// Normalised.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Client headers, hop-by-hop removed, forwarding headers set. Each
    /// attempt gets a copy, or takes them when no later attempt needs them.
    pub headers: HeaderMap,
    pub client_host: Option<HeaderValue>,
    /// The client sent `TE: trailers`: passed on to HTTP/2 backends only.
    pub te_trailers: bool,
}

impl Outgoing<'_> {
    /// The request for `backend` at `path` (the route's rewrite applied), with
    /// `headers` (a copy of, or taken from, `self.headers`) given the right Host.
    pub fn build(
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
pub(super) async fn send(
    backend: &Backend,
    request: Request<ProxyBody>,
) -> Result<Response<Incoming>, ProxyError> {
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
