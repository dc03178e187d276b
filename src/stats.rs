//! Per-route counters that outlive a snapshot: created by the snapshot for
//! each route, fed by telemetry, read by the admin API. A leaf module, so the
//! snapshot and telemetry both use it without importing each other.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// A label value shared by `Arc`, so recording a request clones, not allocates.
pub(crate) type Label = Arc<String>;

/// Per-route request counts for `/routes`: lock-free, kept across reloads for
/// routes that keep their name.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Answers from the route's legacy backend.
    pub legacy: AtomicU64,
    /// Answers from the route's new backend.
    pub new: AtomicU64,
    pub fallbacks: AtomicU64,
    /// Answers made by the proxy itself (413, 502, 504 ...).
    pub errors: AtomicU64,
}
