//! The compiled route table: normalise, match, decide. Pure: no I/O, no clock,
//! no randomness (the random draw is passed in).

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, Method};

use crate::config::{BackendId, Config, RouteConfig};

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
    /// No sticky key configured, or the request lacks it.
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
    /// Index into [`Config::routes`]; `None` for `_default`.
    pub route: Option<usize>,
    pub target: Target,
    pub backend: BackendId,
    pub reason: Reason,
}

/// Normalises a request path: see SPEC §3.1.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let _ = path;
    unimplemented!()
}

/// The path index over a config's routes.
#[derive(Debug, Clone)]
pub struct Router {}

impl Router {
    pub fn new(routes: &[RouteConfig]) -> Router {
        let _ = routes;
        unimplemented!()
    }

    /// The matching route's index into `routes` (the slice given to [`Router::new`]).
    pub fn find(&self, routes: &[RouteConfig], req: &RequestInfo<'_>) -> Option<usize> {
        let _ = (routes, req);
        unimplemented!()
    }
}

/// The decision of SPEC §3.2. `draw` is a uniformly random number in `0..10000`,
/// used only when the request has no sticky key.
pub fn decide(config: &Config, router: &Router, req: &RequestInfo<'_>, draw: u16) -> Decision {
    let _ = (config, router, req, draw);
    unimplemented!()
}

/// The stable 64-bit hash of `cohort` and a sticky key.
pub fn sticky_hash(cohort: &str, key: &[u8]) -> u64 {
    let _ = (cohort, key);
    unimplemented!()
}

/// `sticky_hash(cohort, key) % 10000`.
pub fn sticky_bucket(cohort: &str, key: &[u8]) -> u16 {
    (sticky_hash(cohort, key) % 10_000) as u16
}

/// The path new gets: the route's matched prefix replaced by its `rewrite`.
pub fn rewrite_path<'p>(route: &RouteConfig, path: &'p str) -> Cow<'p, str> {
    let _ = route;
    Cow::Borrowed(path)
}
