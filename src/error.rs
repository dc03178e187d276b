//! The errors the proxy answers itself, and their single mapping to a response.

use http::{HeaderValue, Response, StatusCode};

use crate::body::{self, ProxyBody};

/// Why the proxy, not a backend, produced the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProxyError {
    /// The request cannot be proxied: a target that is not a path, a body the
    /// client broke off, a path that cannot be forwarded.
    BadRequest(&'static str),
    /// The request body is larger than `server.max_request_body`.
    PayloadTooLarge,
    /// The client stopped sending its request body.
    RequestTimeout,
    /// The route's rate limit refused the request; retry after this many
    /// whole seconds (at least 1).
    RateLimited(u64),
    /// The client closed its connection before its request body was whole:
    /// nobody reads the answer. Counted as 499 (nginx's "client closed
    /// request"), with no backend, apart from the backends' failures.
    ClientGone,
    /// The backend could not be reached: nothing was sent.
    Unreachable,
    /// The exchange with the backend broke after the request was sent.
    BadGateway(&'static str),
    /// The backend did not send a response head within its `timeout`.
    GatewayTimeout,
    /// The decision picked a new backend that is ejected or unhealthy, and
    /// the route has no fallback to legacy.
    Unavailable,
}

impl ProxyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::ClientGone => CLIENT_CLOSED_REQUEST,
            ProxyError::Unreachable | ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The short lowercase message put in the JSON body.
    pub(crate) fn message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(why) => why,
            ProxyError::PayloadTooLarge => "request body too large",
            ProxyError::RequestTimeout => "request body not received in time",
            ProxyError::RateLimited(_) => "rate limit exceeded",
            ProxyError::ClientGone => "client closed the request",
            ProxyError::Unreachable => "backend unreachable",
            ProxyError::BadGateway(why) => why,
            ProxyError::GatewayTimeout => "backend timed out",
            ProxyError::Unavailable => "new backend unavailable",
        }
    }

    /// What a broken client request body means for the client: too large
    /// (413), stalled (408), or broken off (400).
    pub(crate) fn from_client_body(error: &(dyn std::error::Error + 'static)) -> ProxyError {
        if caused_by_length_limit(error) {
            ProxyError::PayloadTooLarge
        } else if caused_by::<crate::body::BodyStalled>(error) {
            ProxyError::RequestTimeout
        } else if client_went_away(error) {
            ProxyError::ClientGone
        } else {
            ProxyError::BadRequest("client request body failed")
        }
    }

    /// `{"error": "...", "request_id": "..."}` with this error's status.
    pub(crate) fn into_response(self, request_id: Option<&HeaderValue>) -> Response<ProxyBody> {
        let mut response = json_error(self.status(), self.message(), request_id);
        if let ProxyError::RateLimited(secs) = self {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A short JSON error body, as every answer made by strangler itself has.
pub(crate) fn json_error(
    status: StatusCode,
    message: &str,
    request_id: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    let request_id = request_id.and_then(|v| v.to_str().ok()).unwrap_or("");
    body::json(
        status,
        &serde_json::json!({ "error": message, "request_id": request_id }),
    )
}

/// Not a standard status: nginx's, for a client that went away first.
pub(crate) const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// Whether the client's connection ended before its body was whole (as
/// opposed to a malformed body, which is the client's fault: 400).
fn client_went_away(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && (hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed())
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether `error`, or any error it was caused by, is a body over its limit.
pub(crate) fn caused_by_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<http_body_util::LengthLimitError>(error)
}

/// Whether `error`, or any error it was caused by, is an `E`.
pub(crate) fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_body_is_json_with_request_id() {
        let id = HeaderValue::from_static("abc-123");
        let response = ProxyError::GatewayTimeout.into_response(Some(&id));
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["error"], "backend timed out");
        assert_eq!(json["request_id"], "abc-123");
    }

    #[test]
    fn statuses() {
        assert_eq!(ProxyError::BadRequest("x").status(), 400);
        assert_eq!(ProxyError::PayloadTooLarge.status(), 413);
        assert_eq!(ProxyError::BadGateway("x").status(), 502);
    }
}
