//! The one body type that flows through the proxy, both ways.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Any error a body can raise.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client stopped sending its request body for longer than
/// `header_read_timeout`.
#[derive(Debug)]
pub struct BodyStalled;

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body stalled")
    }
}

impl std::error::Error for BodyStalled {}

/// A streamed request or response body. Boxed once per request so the request
/// path has one concrete type whatever the source (client, backend, held bytes).
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body of exactly these bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with nothing in it.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A complete response made by strangler itself.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    bytes: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response made by strangler itself.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    response(status, "application/json", value.to_string())
}
