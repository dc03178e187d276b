//! The upstream request: built for each attempt from the client's parts.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::uri::Authority;
use http::{Method, Request, Uri, Version};

use super::attempt::Attempts;
use super::copy::Copy;
use super::routed::Routed;
use super::shadow::X_STRANGLER_SHADOW;
use crate::backend::Backend;
use crate::body::ProxyBody;
use crate::config::{FallbackConfig, Protocol};
use crate::error::ProxyError;
use crate::headers;
use crate::snapshot::CompiledRoute;

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
    pub client_host: Option<&'a HeaderValue>,
    /// The client sent `TE: trailers`: passed on to HTTP/2 backends only.
    pub te_trailers: bool,
    /// The body's copy, for another attempt.
    pub copy: Copy,
    /// The route (`None`: `_default`), whose statistics count each attempt.
    pub route: Option<&'a CompiledRoute>,
    /// The route's fallback settings (the defaults for `_default`): which
    /// statuses are failures, which methods may be sent again.
    pub fallback: &'a FallbackConfig,
    /// The method may be sent again after a backend has seen it
    /// (`replay_methods`).
    pub replayable: bool,
    /// Every attempt made so far.
    pub attempts: Attempts,
}

impl<'a> Outgoing<'a> {
    /// The client's request made ready to forward: hop-by-hop headers
    /// removed (upgrade headers kept for an upgrade), a client's
    /// `x-strangler-shadow` removed, forwarding headers set.
    pub(super) fn new(
        parts: Parts,
        routed: &'a Routed<'_>,
        copy: Copy,
        route: Option<&'a CompiledRoute>,
        replayable: bool,
    ) -> Outgoing<'a> {
        let Parts {
            method,
            mut headers,
            ..
        } = parts;
        let te_trailers = headers::wants_trailers(&headers);
        headers::remove_hop_by_hop(&mut headers, routed.upgrade);
        headers::join_cookies(&mut headers);
        // Only strangler marks a request as a shadow: a backend that skips
        // side effects for one must not be fooled by a client.
        headers.remove(&X_STRANGLER_SHADOW);
        let proto = if routed.tls { "https" } else { "http" };
        // SPEC §3.9: a trusted load balancer's X-Forwarded-Proto and
        // X-Forwarded-Host are kept as sent; anyone else's are overwritten.
        let sent_by_proxy = |name: &http::HeaderName| {
            routed
                .trusted_peer
                .then(|| headers.get(name).cloned())
                .flatten()
        };
        let kept_proto = sent_by_proxy(&headers::X_FORWARDED_PROTO);
        let kept_host = sent_by_proxy(&headers::X_FORWARDED_HOST);
        headers::set_forwarded(&mut headers, routed.peer_ip, proto, routed.host.as_ref());
        if let Some(kept) = kept_proto {
            headers.insert(&headers::X_FORWARDED_PROTO, kept);
        }
        if let Some(kept) = kept_host {
            headers.insert(&headers::X_FORWARDED_HOST, kept);
        }
        Outgoing {
            method,
            path: &routed.path,
            query: routed.query,
            headers,
            client_host: routed.host.as_ref(),
            te_trailers,
            copy,
            route,
            fallback: super::fallback_of(route),
            replayable,
            attempts: Attempts::default(),
        }
    }

    /// The request for `backend` at `path` (the route's rewrite applied). The
    /// headers are copied, or taken when `last` (no later attempt needs them).
    ///
    /// The host the backend sees: over HTTP/1.1 a `Host` header; to a backend
    /// that may speak HTTP/2, the URI's authority (`:authority`, or `Host`
    /// when ALPN picks HTTP/1.1) and no `Host` header, so the two cannot
    /// disagree. The backend's connector dials its own address whatever the
    /// URI names.
    pub(super) fn build(
        &mut self,
        backend: &Backend,
        path: &str,
        body: ProxyBody,
        last: bool,
    ) -> Result<Request<ProxyBody>, ProxyError> {
        let config = &backend.config;
        let mut headers = if last {
            std::mem::take(&mut self.headers)
        } else {
            self.headers.clone()
        };
        let mut uri = config
            .upstream_uri(path, self.query)
            .map_err(|_| ProxyError::BadRequest("request path cannot be forwarded"))?;
        let client_host = self.client_host.filter(|_| config.preserve_host);
        if backend.may_use_h2() {
            headers.remove(header::HOST);
            if self.te_trailers {
                headers.insert(header::TE, HeaderValue::from_static("trailers"));
            }
            // The upstream URI already names the backend's own authority.
            if let Some(host) = client_host {
                let authority = Authority::try_from(host.as_bytes())
                    .map_err(|_| ProxyError::BadRequest("invalid host"))?;
                let mut parts = uri.into_parts();
                parts.authority = Some(authority);
                uri = Uri::from_parts(parts)
                    .map_err(|_| ProxyError::BadRequest("request path cannot be forwarded"))?;
            }
        } else {
            let host = client_host.unwrap_or(&backend.host_header);
            headers.insert(header::HOST, host.clone());
        }
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = match config.protocol {
            Protocol::Http2 => Version::HTTP_2,
            _ => Version::HTTP_11,
        };
        *request.headers_mut() = headers;
        Ok(request)
    }
}
