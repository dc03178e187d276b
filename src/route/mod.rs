//! The compiled route table: normalise, match, decide. Pure: no I/O, no clock,
//! no randomness (the random draw is passed in).
//!
//! - [`normalize_path`]: the request path as matched and forwarded;
//! - [`Router`]: the path index, built once per config load;
//! - [`decide`]: legacy or new, and why;
//! - [`sticky_hash`] / [`sticky_bucket`]: the stable, documented bucket of a key;
//! - [`rewrite_path`]: the path the new backend gets.

mod decide;
mod hash;
mod normalize;
mod table;
#[cfg(test)]
pub(crate) mod testing;

use std::fmt;
use std::net::IpAddr;

use http::{HeaderMap, Method};

use crate::config::{BackendId, Config};

pub use decide::{decide, rewrite_path};
pub use hash::{BUCKETS, sticky_bucket, sticky_hash};
pub use normalize::normalize_path;
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
    /// Index into [`Config::routes`]; `None` for `_default`.
    pub route: Option<usize>,
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

// === impl BucketSource ===

impl BucketSource {
    /// `header`, `cookie`, `query`, `ip` or `random`.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketSource::Header => "header",
            BucketSource::Cookie => "cookie",
            BucketSource::Query => "query",
            BucketSource::Ip => "ip",
            BucketSource::Random => "random",
        }
    }
}

// === impl Decision ===

/// The route label of a request that no route matched (metrics, headers).
pub const DEFAULT_ROUTE: &str = "_default";

impl Decision {
    /// The route's name, or `_default` when none matched.
    pub fn route_name<'c>(&self, config: &'c Config) -> &'c str {
        self.route
            .and_then(|i| config.routes.get(i))
            .map_or(DEFAULT_ROUTE, |r| r.name.as_str())
    }

    /// A one-line account of the decision for humans (`strangler explain`, logs),
    /// e.g. `route auth → new (backend new): bucket 1234 from header < weight 50.00%`.
    /// `config` must be the one the decision was made with.
    pub fn describe<'a>(&'a self, config: &'a Config) -> impl fmt::Display + 'a {
        Describe {
            decision: self,
            config,
        }
    }
}

struct Describe<'a> {
    decision: &'a Decision,
    config: &'a Config,
}

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.decision;
        let backend = self
            .config
            .backends
            .get(d.backend)
            .map_or("?", |b| b.name.as_str());
        write!(
            f,
            "route {} \u{2192} {} (backend {backend}): ",
            d.route_name(self.config),
            d.target.as_str()
        )?;
        match d.reason {
            Reason::NoRoute => write!(f, "no route matched, defaults.legacy serves"),
            Reason::FlagOff => {
                let flag = d
                    .route
                    .and_then(|i| self.config.routes.get(i))
                    .and_then(|r| r.flag.as_ref())
                    .map_or("?", |(name, _)| name.as_str());
                write!(f, "flag {flag} is false")
            }
            Reason::Weight { bucket, source } => {
                let weight = d
                    .route
                    .and_then(|i| self.config.routes.get(i))
                    .map_or(0, |r| r.weight_bp);
                let op = if d.target == Target::New { "<" } else { ">=" };
                write!(
                    f,
                    "bucket {bucket} from {} {op} weight {}.{:02}%",
                    source.as_str(),
                    weight / 100,
                    weight % 100
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Req, RouteBuilder, config, route};
    use super::*;

    #[test]
    fn describe_each_reason() {
        let cfg = config(vec![
            route("auth", "/auth").weight(5_000),
            route("off", "/off").flag("new_off", false),
        ]);
        let router = Router::new(&cfg.routes);
        let line = |path: &str, draw: u16| {
            let d = decide(&cfg, &router, &Req::get(path).info(), draw);
            d.describe(&cfg).to_string()
        };
        assert_eq!(
            line("/auth", 1234),
            "route auth \u{2192} new (backend new): bucket 1234 from random < weight 50.00%"
        );
        assert_eq!(
            line("/auth", 5000),
            "route auth \u{2192} legacy (backend legacy): bucket 5000 from random >= weight 50.00%"
        );
        assert_eq!(
            line("/off", 0),
            "route off \u{2192} legacy (backend legacy): flag new_off is false"
        );
        assert_eq!(
            line("/x", 0),
            "route _default \u{2192} legacy (backend legacy): no route matched, defaults.legacy serves"
        );
    }
}
