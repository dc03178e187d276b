//! The compiled route table: normalise, match, decide. Pure: no I/O, no clock,
//! no randomness (the random draw is passed in).
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

use http::{HeaderMap, Method};

use crate::config::{BackendId, RouteId};

pub use crate::path::normalize_path;
pub(crate) use decide::cookie_value;
pub use decide::{decide, rewrite_path};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No route matched: `defaults.legacy`.
    NoRoute,
    /// The route's flag is false.
    FlagOff,
    /// `bucket < weight_bp` → new.
    Weight { bucket: u16, source: BucketSource },
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
