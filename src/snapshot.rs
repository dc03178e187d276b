//! One immutable, compiled view of the configuration, swapped whole on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::backend::Backend;
use crate::config::Config;
use crate::route::Router;

/// The route label of requests that no route matched.
pub const DEFAULT_ROUTE: &str = "_default";

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
}

/// The live snapshot, shared by every connection.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

impl Snapshot {
    /// Compiles `config`. Backends whose settings equal one in `previous` reuse
    /// its [`Backend`], so their connection pools survive the reload.
    pub fn new(config: Config, previous: Option<&Snapshot>) -> Snapshot {
        let backends = config
            .backends
            .iter()
            .map(|wanted| {
                previous
                    .and_then(|p| p.backends.iter().find(|b| b.config == *wanted))
                    .cloned()
                    .unwrap_or_else(|| Backend::new(wanted.clone()))
            })
            .collect();
        let route_names = config
            .routes
            .iter()
            .map(|r| {
                HeaderValue::from_str(&r.name)
                    .unwrap_or_else(|_| HeaderValue::from_static("invalid-name"))
            })
            .collect();
        let router = Router::new(&config.routes);
        Snapshot {
            config,
            router,
            backends,
            route_names,
        }
    }

    /// The route's label for headers, logs and metrics.
    pub fn route_label(&self, route: Option<usize>) -> &str {
        route.map_or(DEFAULT_ROUTE, |i| &self.config.routes[i].name)
    }
}
