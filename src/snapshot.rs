//! One immutable, compiled view of the configuration, swapped whole on reload.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::backend::{Backend, BackendError};
use crate::config::{BackendId, Config, DEFAULT_ROUTE, RouteConfig, RouteId};
use crate::route::Router;
use crate::shadow::ShadowState;
use crate::stats::{Label, RouteCounters};

/// Everything a request reads, built once per (re)load, off the request path.
/// A request loads the current snapshot once and uses only that one.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    /// Indexed by [`BackendId`], in the order of `config.backends`.
    backends: Vec<Arc<Backend>>,
    /// Indexed by [`RouteId`], compiled from `config.routes` in its order.
    routes: Vec<CompiledRoute>,
    /// The handles of `_default`, the requests no route matches.
    default_route: RouteHandles,
}

/// A route as the request path uses it: its config and its handles.
#[derive(Debug)]
pub struct CompiledRoute {
    pub config: RouteConfig,
    pub handles: RouteHandles,
}

/// What observing a request on a route needs, resolved once per snapshot so
/// the request path does no lookup by name.
#[derive(Debug)]
pub struct RouteHandles {
    /// The `x-strangler-route` value.
    pub header: HeaderValue,
    /// The `route` metric label.
    pub label: Label,
    /// Kept across reloads for a route that keeps its name.
    pub counters: Arc<RouteCounters>,
    /// With `[routes.shadow]`: its results and learned noise, kept across
    /// reloads for a route that keeps its name and its shadow.
    pub shadow: Option<Arc<ShadowState>>,
}

/// The live snapshot, shared by every connection.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;

impl Snapshot {
    /// Compiles `config`. Backends whose settings equal one in `previous` reuse
    /// its [`Backend`], so their connection pools survive the reload; routes
    /// that keep their name keep their counters and their shadow state. Fails
    /// when a backend's TLS settings cannot be loaded (an unreadable or
    /// invalid `ca_file`).
    pub fn new(config: Config, previous: Option<&Snapshot>) -> Result<Snapshot, BackendError> {
        let previous_backends = previous.map_or(&[][..], |p| &p.backends[..]);
        let backends = config
            .backends
            .iter()
            .map(|wanted| Backend::reuse_or_new(previous_backends, wanted))
            .collect::<Result<_, _>>()?;
        let previous_handles: HashMap<&str, &RouteHandles> = previous
            .map(|p| {
                p.routes
                    .iter()
                    .map(|r| (r.config.name.as_str(), &r.handles))
                    .collect()
            })
            .unwrap_or_default();
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let before = previous_handles.get(route.name.as_str());
                let mut handles = RouteHandles::new(&route.name, before.map(|h| &h.counters));
                if route.shadow.is_some() {
                    let kept = before.and_then(|h| h.shadow.clone());
                    handles.shadow = Some(kept.unwrap_or_default());
                }
                CompiledRoute {
                    config: route.clone(),
                    handles,
                }
            })
            .collect();
        let router = Router::new(&config.routes);
        Ok(Snapshot {
            config,
            router,
            backends,
            routes,
            default_route: RouteHandles::new(
                DEFAULT_ROUTE,
                previous.map(|p| &p.default_route.counters),
            ),
        })
    }

    pub fn route(&self, id: RouteId) -> &CompiledRoute {
        &self.routes[id.index()]
    }

    /// Every route, in file order.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }

    /// The handles of a route (`None`: `_default`).
    pub fn handles(&self, route: Option<RouteId>) -> &RouteHandles {
        route.map_or(&self.default_route, |id| &self.route(id).handles)
    }

    pub fn backend(&self, id: BackendId) -> &Backend {
        &self.backends[id.index()]
    }

    /// Every backend, in file order.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }
}

impl RouteHandles {
    /// Handles for the route `name`, keeping `counters` when the route had them.
    fn new(name: &str, counters: Option<&Arc<RouteCounters>>) -> RouteHandles {
        RouteHandles {
            header: HeaderValue::from_str(name)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid-name")),
            label: Arc::new(name.to_owned()),
            counters: counters.cloned().unwrap_or_default(),
            shadow: None,
        }
    }
}
