//! The record of one request, handed to the observer once it is answered.

use std::net::IpAddr;
use std::time::Instant;

use http::{HeaderValue, Method, StatusCode, Uri};

use super::attempt::Attempts;
use super::fallback::FallbackReason;
use crate::config::{BackendId, RouteId};
use crate::shadow::ShadowResult;
use crate::snapshot::Snapshot;
use crate::stats::Label;

/// What happened to one request, for the access log and metrics.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: Method,
    /// The request target as the client sent it.
    pub uri: Uri,
    /// `None` for `_default` (and for a request refused before routing).
    pub route: Option<RouteId>,
    /// The backend whose answer the client got (or that failed, for 502/504).
    pub backend: Option<BackendId>,
    pub status: StatusCode,
    pub fallback: Option<FallbackReason>,
    /// The proxy made the answer itself (400, 408, 413, 502, 504).
    pub proxy_error: bool,
    /// The decision picked new (the answer may still be legacy's after a fallback).
    pub to_new: bool,
    /// Every attempt on a backend, in order, including failed ones.
    pub attempts: Attempts,
    pub started: Instant,
    /// `x-request-id`, as set by the service stack.
    pub request_id: Option<HeaderValue>,
    /// The client's address (the TCP peer), when the listener recorded it.
    pub client: Option<IpAddr>,
}

impl Exchange {
    /// The request id for logs.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().and_then(|v| v.to_str().ok())
    }
}

/// Told about every finished exchange (metrics, access log). Must not block.
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, snapshot: &Snapshot, exchange: &Exchange);

    /// Told about every shadow result of a route (SPEC §3.7), apart from the
    /// exchange, which knows nothing of its shadow.
    fn shadow(&self, _route: &Label, _result: ShadowResult) {}
}
