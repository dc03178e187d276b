//! One immutable, compiled view of the configuration, swapped whole on reload.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::backend::{Backend, BackendError};
use crate::config::Config;
use crate::metrics::{Label, RouteCounters};
use crate::route::Router;

pub use crate::route::DEFAULT_ROUTE;

/// Everything a request reads, built once per (re)load, off the request path.
/// A request loads the current snapshot once and uses only that one.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    /// Same order as `config.backends`.
    pub backends: Vec<Arc<Backend>>,
    /// `x-strangler-route` values, same order as `config.routes`.
    pub route_names: Vec<HeaderValue>,
    /// Metric labels, same order as `config.routes`.
    pub route_labels: Vec<Label>,
    /// Request counts, same order as `config.routes`.
    pub counters: Vec<Arc<RouteCounters>>,
    default_label: Label,
    default_counters: Arc<RouteCounters>,
}

/// The live snapshot, shared by every connection.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

impl Snapshot {
    /// Compiles `config`. Backends whose settings equal one in `previous` reuse
    /// its [`Backend`], so their connection pools survive the reload; routes
    /// that keep their name keep their counters. Fails when a backend's TLS
    /// settings cannot be loaded (an unreadable or invalid `ca_file`).
    pub fn new(config: Config, previous: Option<&Snapshot>) -> Result<Snapshot, BackendError> {
        let previous_backends = previous.map_or(&[][..], |p| &p.backends[..]);
        let backends = config
            .backends
            .iter()
            .map(|wanted| Backend::reuse_or_new(previous_backends, wanted))
            .collect::<Result<_, _>>()?;
        let route_names = config
            .routes
            .iter()
            .map(|r| {
                HeaderValue::from_str(&r.name)
                    .unwrap_or_else(|_| HeaderValue::from_static("invalid-name"))
            })
            .collect();
        let route_labels = config
            .routes
            .iter()
            .map(|r| Arc::new(r.name.clone()))
            .collect();
        let previous_counters: HashMap<&str, &Arc<RouteCounters>> = previous
            .map(|p| {
                p.config
                    .routes
                    .iter()
                    .map(|r| r.name.as_str())
                    .zip(&p.counters)
                    .collect()
            })
            .unwrap_or_default();
        let counters = config
            .routes
            .iter()
            .map(|r| {
                previous_counters
                    .get(r.name.as_str())
                    .map(|c| Arc::clone(c))
                    .unwrap_or_default()
            })
            .collect();
        let router = Router::new(&config.routes);
        Ok(Snapshot {
            config,
            router,
            backends,
            route_names,
            route_labels,
            counters,
            default_label: Arc::new(DEFAULT_ROUTE.to_owned()),
            default_counters: previous
                .map(|p| p.default_counters.clone())
                .unwrap_or_default(),
        })
    }

    /// The route's label for headers, logs and metrics.
    pub fn route_label(&self, route: Option<usize>) -> &str {
        route.map_or(DEFAULT_ROUTE, |i| &self.config.routes[i].name)
    }

    pub fn route_label_arc(&self, route: Option<usize>) -> Label {
        route.map_or_else(
            || self.default_label.clone(),
            |i| self.route_labels[i].clone(),
        )
    }

    /// The request counters of a route (`None`: `_default`).
    pub fn route_counters(&self, route: Option<usize>) -> &RouteCounters {
        route.map_or(&self.default_counters, |i| &self.counters[i])
    }
}
