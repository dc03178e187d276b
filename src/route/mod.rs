//! The compiled route table: normalise, match, decide. Pure: no I/O, no clock,
//! no randomness (the random draw, the time and the route's runtime state are
//! passed in).
//!
//! - [`normalize_path`] (from [`crate::path`]): the request path as matched and
//!   forwarded;
//! - [`Router`]: the path index, built once per config load;
//! - [`decide`]: legacy or new, and why;
//! - [`sticky_hash`] / [`sticky_bucket`]: the stable, documented bucket of a key;
//! - [`rewrite_path`]: the path the new backend gets.

mod decide;
mod hash;
mod table;
#[cfg(test)]
pub(crate) mod testing;

use std::net::IpAddr;
use std::time::SystemTime;

use http::{HeaderMap, Method};

use crate::config::{BackendId, RouteId};

pub use crate::path::normalize_path;
pub(crate) use decide::cookie_value;
pub use decide::{decide, effective_weight, file_weight_percent, rewrite_path};
pub use hash::{BUCKETS, sticky_bucket, sticky_hash};
pub use table::Router;

/// What the decision looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    pub method: &'a Method,
    /// Already normalised with [`normalize_path`].
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The client's host (Host header or URI authority), possibly with a port.
    pub host: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Legacy,
    New,
}

/// Where a bucket number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketSource {
    Header,
    Cookie,
    Query,
    Ip,
    /// No sticky key configured, or the request lacks it (an empty value counts
    /// as lacking it).
    Random,
}

/// What the decision takes besides the request: the draw and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// Uniformly random in `0..10000`, used when the request has no sticky key.
    pub draw: u16,
    /// Wall-clock time, for the ramp.
    pub now: SystemTime,
}

/// A route's runtime state, as the decision reads it (SPEC §3.2 steps 2–4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteRuntime {
    /// The automatic rollback tripped: everything goes to legacy.
    pub tripped: bool,
    /// An override of the route's weight, in basis points.
    pub weight_override: Option<u16>,
    /// An override of the value of the route's flag.
    pub flag_override: Option<bool>,
}

/// Where a route's effective weight comes from, in the order of SPEC §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFrom {
    /// Tripped: 0.
    RolledBack,
    /// The admin API's override.
    Override,
    /// The route's flag (or its override) is false: 0.
    FlagOff,
    /// The ramp's step in force.
    Ramp { step: usize },
    /// The file's `weight`.
    File,
}

/// A route's share of traffic for new at some time, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight {
    /// Basis points, `0..=10000`.
    pub bp: u16,
    pub from: WeightFrom,
}

impl Weight {
    /// As a percentage, for people and metrics.
    pub fn percent(self) -> f64 {
        f64::from(self.bp) / 100.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No route matched: `defaults.legacy`.
    NoRoute,
    /// `server.force_header` named the side.
    Forced,
    /// The route is rolled back.
    RolledBack,
    /// The route's flag is false.
    FlagOff,
    /// `bucket < weight` → new; the weight came `from` the file, the ramp or
    /// an override.
    Weight {
        bucket: u16,
        source: BucketSource,
        from: WeightFrom,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// `None` for `_default`.
    pub route: Option<RouteId>,
    pub target: Target,
    pub backend: BackendId,
    pub reason: Reason,
}

// === impl Target ===

impl Target {
    /// `legacy` or `new`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Legacy => "legacy",
            Target::New => "new",
        }
    }
}

pub use crate::config::DEFAULT_ROUTE;
