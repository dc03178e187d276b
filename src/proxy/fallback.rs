//! Fall back: try new, and when it fails in a way the route's fallback covers,
//! send the request again to legacy with its copied body.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tracing::{error, warn};

use super::attempt::{AttemptResult, Attempts, Connection, Failure, send};
use super::outgoing::Outgoing;
use crate::backend::Backend;
use crate::body::{self, ProxyBody};
use crate::config::{BackendId, FallbackConfig};
use crate::error::ProxyError;
use crate::headers::X_REQUEST_ID;
use crate::route::Target;
use crate::runtime::Trip;
use crate::snapshot::{CompiledRoute, Snapshot};
use crate::stats::verdict::verdict;

/// Why an answer came from legacy after new was picked (`x-strangler-fallback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    Status(StatusCode),
    Connect,
    Timeout,
    Reset,
    /// New was ejected or failing its health check: it was not tried.
    Unhealthy,
}

impl FallbackReason {
    /// The metric label: `status`, `connect`, `timeout`, `reset` or `unhealthy`.
    pub fn label(self) -> &'static str {
        match self {
            FallbackReason::Status(_) => "status",
            FallbackReason::Connect => "connect",
            FallbackReason::Timeout => "timeout",
            FallbackReason::Reset => "reset",
            FallbackReason::Unhealthy => "unhealthy",
        }
    }

    /// The `x-strangler-fallback` value: `status-<code>` or the label.
    pub fn header_value(self) -> HeaderValue {
        match self {
            FallbackReason::Status(code) => {
                HeaderValue::from_str(&format!("status-{}", code.as_u16()))
                    .unwrap_or_else(|_| HeaderValue::from_static("status"))
            }
            other => HeaderValue::from_static(other.label()),
        }
    }

    /// The reason `fallback` gives to send `attempt` to legacy, if it covers
    /// it: a connect error for any method (nothing was sent), the rest only
    /// for `replay_methods` (new has seen the request).
    fn of(
        attempt: &Result<Response<ProxyBody>, Failure>,
        fallback: &FallbackConfig,
        replayable: bool,
    ) -> Option<FallbackReason> {
        match attempt {
            Ok(response) if fallback.on_status(response.status().as_u16()) && replayable => {
                Some(FallbackReason::Status(response.status()))
            }
            Err(Failure::Connect) if fallback.on_connect_error => Some(FallbackReason::Connect),
            Err(Failure::Timeout) if fallback.on_timeout && replayable => {
                Some(FallbackReason::Timeout)
            }
            Err(Failure::Reset) if fallback.on_reset && replayable => Some(FallbackReason::Reset),
            _ => None,
        }
    }
}

/// What forwarding produced: the backend's answer or the proxy's error, and
/// which backend it came from.
#[derive(Debug)]
pub(super) struct Forwarded {
    pub result: Result<Response<ProxyBody>, ProxyError>,
    /// The backend whose answer the client gets, or that failed.
    pub backend: BackendId,
    pub fallback: Option<FallbackReason>,
    pub attempts: Attempts,
}

impl Forwarded {
    /// The outcome of the last attempt, on `backend`. A failure of the
    /// client's own request is the proxy's answer, with no backend.
    pub(super) fn new(
        backend: BackendId,
        outcome: Result<Response<ProxyBody>, Failure>,
    ) -> Result<Forwarded, ProxyError> {
        let result = match outcome {
            Ok(response) => Ok(response),
            Err(Failure::Client(error)) => return Err(error),
            Err(failure) => Err(failure.into_error()),
        };
        Ok(Forwarded {
            result,
            backend,
            fallback: None,
            attempts: Attempts::default(),
        })
    }
}

/// Tries the route's new backend; sends the request to its legacy backend
/// when new fails in a way `route.config.fallback` covers and the body's copy
/// is whole.
pub(super) async fn forward_with_fallback(
    snapshot: &Snapshot,
    route: &CompiledRoute,
    request: &mut Outgoing<'_>,
    body: ProxyBody,
) -> Result<Forwarded, ProxyError> {
    let config = &route.config;
    let fallback = &config.fallback;
    let new_path = crate::route::rewrite_path(config, request.path);
    let sent = Instant::now();
    let mut attempt = try_backend(snapshot, request, Target::New, &new_path, body, false).await;
    if let Ok(response) = attempt {
        attempt = hold_response(snapshot.backend(config.new), fallback, sent, response).await;
        if let Err(failure) = &attempt {
            request.attempts.amend_last(failure.result());
            let now = Instant::now();
            record_health(snapshot.backend(config.new), &attempt, now);
            if failure.result().is_some() {
                route.handles.stats.new.add_failure(now);
                judge(snapshot, route, true, None, now);
            }
        }
    }
    let reason = FallbackReason::of(&attempt, fallback, request.replayable);
    let Some(reason) = reason else {
        return Forwarded::new(config.new, attempt);
    };
    let Some(replay_body) = request.copy.resend().await? else {
        return Forwarded::new(config.new, attempt);
    };
    // The failed answer's body is discarded unread.
    drop(attempt);
    // At most one line per route per second, naming how many were held back:
    // a broken new must not flood the log (every fallback is in the metrics).
    if let Some(suppressed) = route
        .handles
        .counters
        .fallback_log
        .admit(log_clock_ms(), FALLBACK_LOG_PERIOD_MS)
    {
        warn!(
            route = %config.name,
            reason = reason.label(),
            method = %request.method,
            path = request.path,
            request_id = request.headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()),
            suppressed,
            "new failed, replaying to legacy"
        );
    }
    let path = request.path;
    let replayed = try_backend(snapshot, request, Target::Legacy, path, replay_body, true).await;
    Ok(Forwarded {
        fallback: Some(reason),
        ..Forwarded::new(config.legacy, replayed)?
    })
}

/// One fallback warning per route per this period; the others are counted.
const FALLBACK_LOG_PERIOD_MS: u64 = 1_000;

/// Milliseconds since the first call, plus one (the limiter's clock must not be 0).
fn log_clock_ms() -> u64 {
    static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    u64::try_from(ORIGIN.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// Sends the request to the route's `side` (`_default`: its legacy) with
/// `body`, classifies the answer, and records the attempt. When the
/// connection broke before any answer and the request may be sent again,
/// tries once more on a fresh connection: the usual cause is a pooled
/// connection the backend had closed while idle.
pub(super) async fn try_backend(
    snapshot: &Snapshot,
    request: &mut Outgoing<'_>,
    side: Target,
    path: &str,
    body: ProxyBody,
    last: bool,
) -> Result<Response<ProxyBody>, Failure> {
    let id = match (request.route, side) {
        (Some(route), Target::New) => route.config.new,
        (Some(route), Target::Legacy) => route.config.legacy,
        (None, _) => snapshot.config.default_legacy,
    };
    let backend = snapshot.backend(id);
    let mut body = body;
    let mut connection = Connection::Pooled;
    loop {
        let retry = connection == Connection::Fresh;
        let upstream = request.build(backend, path, body, last && retry)?;
        let sent = Instant::now();
        let outcome = send(backend, connection, upstream).await;
        let now = Instant::now();
        record_health(backend, &outcome, now);
        if let Some(result) = attempt_result(&outcome, request) {
            request.attempts.record(id, result);
            if let Some(route) = request.route {
                let latency = outcome.is_ok().then(|| now.saturating_duration_since(sent));
                record_stats(snapshot, route, side, result, latency, now);
            }
        }
        if retry || !matches!(outcome, Err(Failure::Reset)) || !request.replayable {
            return outcome;
        }
        match request.copy.resend().await? {
            Some(again) => body = again,
            None => return outcome,
        }
        connection = Connection::Fresh;
    }
}

/// Counts an attempt in the backend's health: a connect error, timeout,
/// reset or a 502/503/504 is a gateway failure whatever the route's
/// `on_status`; a failure of the client's side is not the backend's. An
/// answer cut off while held counts as a success, then a failure.
fn record_health(backend: &Backend, outcome: &Result<Response<ProxyBody>, Failure>, now: Instant) {
    let success = match outcome {
        Ok(response) => !matches!(
            response.status(),
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ),
        Err(Failure::Client(_)) => return,
        Err(_) => false,
    };
    backend.health.record(success, now);
}

/// The attempt's result; `None` when the client's side failed.
fn attempt_result(
    outcome: &Result<Response<ProxyBody>, Failure>,
    request: &Outgoing<'_>,
) -> Option<AttemptResult> {
    match outcome {
        Ok(response) if request.fallback.on_status(response.status().as_u16()) => {
            Some(AttemptResult::Status)
        }
        Ok(_) => Some(AttemptResult::Ok),
        Err(failure) => failure.result(),
    }
}

/// Counts an attempt in the route's live statistics (SPEC §3.6) and, for
/// new, judges the route at once: a failure or an answer slower than
/// `max_p95` always, a healthy answer at most every 100 ms.
fn record_stats(
    snapshot: &Snapshot,
    route: &CompiledRoute,
    side: Target,
    result: AttemptResult,
    latency: Option<Duration>,
    now: Instant,
) {
    let failed = result != AttemptResult::Ok;
    route.handles.stats.side(side).record(now, failed, latency);
    if side == Target::New {
        judge(snapshot, route, failed, latency, now);
    }
}

/// Trips the route when its rollback's verdict on new says so (SPEC §3.6).
fn judge(
    snapshot: &Snapshot,
    route: &CompiledRoute,
    failed: bool,
    latency: Option<Duration>,
    now: Instant,
) {
    let Some(rollback) = &route.config.rollback else {
        return;
    };
    let handles = &route.handles;
    if handles.state.is_tripped() {
        return;
    }
    let slow = latency
        .zip(rollback.max_p95)
        .is_some_and(|(l, max)| l > max);
    if !(failed || slow || handles.stats.verdict_due(now)) {
        return;
    }
    let window = &handles.stats.new;
    let Some(reason) = verdict(rollback, &window.summary(now), window.length()) else {
        return;
    };
    let trip = Trip {
        reason,
        since: SystemTime::now(),
    };
    if handles.state.trip(trip.clone()) {
        error!(
            route = %route.config.name,
            reason = %trip.reason,
            "route rolled back: every request goes to legacy until POST /routes/NAME/resume or a reload that changes the route"
        );
        snapshot.state_changed.notify_one();
    }
}

/// Reads an answer with a Content-Length up to `hold_response` whole before
/// its head goes on, within what is left of the backend's `timeout` since
/// `sent`, so an answer cut off mid-body is a [`Failure::Reset`] that can be
/// replayed. A failure status is not read: it is replayed or passed on as it is.
async fn hold_response(
    backend: &Backend,
    fallback: &FallbackConfig,
    sent: Instant,
    response: Response<ProxyBody>,
) -> Result<Response<ProxyBody>, Failure> {
    let length = response.body().size_hint().exact();
    let held = fallback.hold_response > 0
        && !fallback.on_status(response.status().as_u16())
        && length.is_some_and(|n| n > 0 && n <= fallback.hold_response);
    if !held {
        return Ok(response);
    }
    let left = backend.config.timeout.saturating_sub(sent.elapsed());
    let (parts, body) = response.into_parts();
    match tokio::time::timeout(left, body.collect()).await {
        Ok(Ok(whole)) => Ok(Response::from_parts(parts, body::full(whole.to_bytes()))),
        Ok(Err(_)) => Err(Failure::Reset),
        Err(_) => Err(Failure::Timeout),
    }
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
        assert_eq!(FallbackReason::Reset.header_value(), "reset");
        assert_eq!(FallbackReason::Timeout.label(), "timeout");
    }
}
