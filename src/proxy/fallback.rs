//! Fall back: try new, and when it fails in a way the route's fallback covers,
//! replay the request to legacy with its copied body.

use http::{HeaderValue, StatusCode};
use tracing::warn;

use super::Forwarded;
use super::copy::{self, Held, ReplayBudget};
use super::outgoing::{Outgoing, send};
use crate::body::{self, ProxyBody};
use crate::config::FallbackConfig;
use crate::error::ProxyError;
use crate::headers::X_REQUEST_ID;
use crate::snapshot::{CompiledRoute, Snapshot};

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

    /// The reason `fallback` gives to replay `attempt`, if it covers it.
    fn of(
        attempt: &Result<http::Response<hyper::body::Incoming>, ProxyError>,
        fallback: &FallbackConfig,
        replayable_method: bool,
    ) -> Option<FallbackReason> {
        match attempt {
            Ok(response) if fallback.on_status(response.status().as_u16()) && replayable_method => {
                Some(FallbackReason::Status(response.status()))
            }
            Err(ProxyError::Unreachable) if fallback.on_connect_error => {
                Some(FallbackReason::Connect)
            }
            Err(ProxyError::GatewayTimeout) if fallback.on_timeout && replayable_method => {
                Some(FallbackReason::Timeout)
            }
            _ => None,
        }
    }
}

/// Tries the route's new backend with `body`; replays to its legacy backend
/// when new fails in a way `route.config.fallback` covers and the body was
/// copied whole.
pub(super) async fn forward_with_fallback(
    snapshot: &Snapshot,
    route: &CompiledRoute,
    mut request: Outgoing<'_>,
    body: ProxyBody,
    content_length: Option<u64>,
    budget: &ReplayBudget,
) -> Result<Forwarded, ProxyError> {
    let config = &route.config;
    let fallback = &config.fallback;
    let new = snapshot.backend(config.new);
    let replayable_method = fallback.replay_methods.contains(&request.method);
    // Copy the body only if some failure could replay it.
    let may_replay = fallback.on_connect_error
        || (replayable_method && (fallback.on_timeout || !fallback.on_status.is_empty()));
    let held = if may_replay {
        let idle = snapshot.config.server.header_read_timeout;
        copy::hold(body, fallback.max_body, content_length, idle, budget).await?
    } else {
        Held::Streaming(body)
    };
    // `_permit` keeps the copied bytes counted until this request is answered.
    let (first_body, replay_body, _permit) = match held {
        Held::Whole(bytes, permit) => (body::full(bytes.clone()), Some(bytes), permit),
        Held::Streaming(body) => (body, None, None),
    };
    // Headers are copied only when a replay could need them.
    let headers = match replay_body {
        Some(_) => request.headers.clone(),
        None => std::mem::take(&mut request.headers),
    };
    let new_path = crate::route::rewrite_path(config, request.path);
    let attempt = send(new, request.build(new, &new_path, first_body, headers)?).await;
    let reason = FallbackReason::of(&attempt, fallback, replayable_method);
    let (Some(reason), Some(bytes)) = (reason, replay_body) else {
        return Ok(Forwarded::from(config.new, attempt));
    };
    // The failed answer's body is discarded unread.
    drop(attempt);
    warn!(
        route = %config.name,
        reason = reason.label(),
        method = %request.method,
        path = request.path,
        request_id = request.headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()),
        "new failed, replaying to legacy"
    );
    let legacy = snapshot.backend(config.legacy);
    // The replay is the headers' last use.
    let headers = std::mem::take(&mut request.headers);
    let replayed = request.build(legacy, request.path, body::full(bytes), headers)?;
    Ok(Forwarded {
        fallback: Some(reason),
        ..Forwarded::from(config.legacy, send(legacy, replayed).await)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
