//! One immutable, compiled view of the configuration, swapped whole on reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::backend::{Backend, BackendError};
use crate::config::{BackendId, Config, DEFAULT_ROUTE, RouteConfig, RouteId};
use crate::ratelimit::RateLimiter;
use crate::route::{self, RouteRuntime, Router, Weight};
use crate::runtime::{FlagState, RouteState, StateChanged};
use crate::shadow::ShadowState;
use crate::stats::metric_handles::MetricHandles;
use crate::stats::{Label, RouteCounters, RouteStats, Window};

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
    /// Every flag's override, in the order of `config.flags`.
    flags: Vec<Arc<FlagState>>,
    /// Notified on every change of runtime state, so it is saved
    /// (`state_file`) and sent to the fleet; the same across reloads.
    pub state_changed: Arc<StateChanged>,
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
    /// The rate-limit buckets; kept across reloads for a route that keeps
    /// its name (the route's current `[routes.rate_limit]` applies to them).
    pub(crate) rate_limiter: Arc<RateLimiter>,
    /// Live statistics; kept while the route keeps its name and window.
    pub stats: Arc<RouteStats>,
    /// Trip and override; kept while the route keeps its name.
    pub state: Arc<RouteState>,
    /// The override of the route's flag, shared by every route reading it.
    pub flag: Option<Arc<FlagState>>,
    /// With `[routes.shadow]`: its results and learned noise, kept across
    /// reloads for a route that keeps its name and its shadow.
    pub shadow: Option<Arc<ShadowState>>,
    /// The metric series this snapshot's requests on the route use; fresh
    /// per snapshot, as backend ids are.
    pub(crate) metrics: MetricHandles,
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
        let previous_flags: HashMap<&str, &Arc<FlagState>> = previous
            .map(|p| {
                p.config
                    .flags
                    .iter()
                    .zip(&p.flags)
                    .map(|((name, _), state)| (name.as_str(), state))
                    .collect()
            })
            .unwrap_or_default();
        let flags: Vec<Arc<FlagState>> = config
            .flags
            .iter()
            .map(|(name, _)| {
                previous_flags
                    .get(name.as_str())
                    .map_or_else(Arc::default, |&state| state.clone())
            })
            .collect();
        let previous_routes: HashMap<&str, &RouteHandles> = previous
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
                let flag = route.flag.as_ref().and_then(|(name, _)| {
                    let index = config.flags.iter().position(|(n, _)| n == name)?;
                    Some(flags[index].clone())
                });
                CompiledRoute {
                    config: route.clone(),
                    handles: RouteHandles::new(
                        route,
                        previous_routes.get(route.name.as_str()).copied(),
                        flag,
                    ),
                }
            })
            .collect();
        let router = Router::new(&config.routes);
        Ok(Snapshot {
            config,
            router,
            backends,
            routes,
            default_route: RouteHandles::default_route(previous.map(|p| &p.default_route)),
            flags,
            state_changed: previous.map_or_else(Arc::default, |p| p.state_changed.clone()),
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

    /// Every flag with its file value and its override state, in file order.
    pub fn flags(&self) -> impl Iterator<Item = (&str, bool, &FlagState)> {
        self.config
            .flags
            .iter()
            .zip(&self.flags)
            .map(|((name, value), state)| (name.as_str(), *value, &**state))
    }

    /// The route named `name`.
    pub fn route_named(&self, name: &str) -> Option<&CompiledRoute> {
        self.routes.iter().find(|r| r.config.name == name)
    }
}

impl CompiledRoute {
    /// The route's share for new at `now`, with its runtime state.
    pub fn weight(&self, now: SystemTime) -> Weight {
        route::effective_weight(&self.config, now, self.handles.runtime())
    }
}

impl RouteHandles {
    /// Handles for `route`, keeping what `previous` (the route of the same
    /// name before a reload) had: counters and state always, statistics
    /// while the window's length is unchanged.
    fn new(
        route: &RouteConfig,
        previous: Option<&RouteHandles>,
        flag: Option<Arc<FlagState>>,
    ) -> RouteHandles {
        let window = route.stats_window();
        let stats = previous
            .map(|p| p.stats.clone())
            .filter(|stats| stats.new.length() == Window::length_for(window))
            .unwrap_or_else(|| Arc::new(RouteStats::new(window)));
        RouteHandles {
            header: HeaderValue::from_str(&route.name)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid-name")),
            label: Arc::new(route.name.clone()),
            counters: previous.map(|p| p.counters.clone()).unwrap_or_default(),
            rate_limiter: previous.map(|p| p.rate_limiter.clone()).unwrap_or_default(),
            stats,
            state: previous.map(|p| p.state.clone()).unwrap_or_default(),
            flag,
            shadow: route
                .shadow
                .as_ref()
                .map(|_| previous.and_then(|p| p.shadow.clone()).unwrap_or_default()),
            metrics: MetricHandles::default(),
        }
    }

    /// The handles of `_default`: counters only matter.
    fn default_route(previous: Option<&RouteHandles>) -> RouteHandles {
        RouteHandles {
            header: HeaderValue::from_static(DEFAULT_ROUTE),
            label: Arc::new(DEFAULT_ROUTE.to_owned()),
            counters: previous.map(|p| p.counters.clone()).unwrap_or_default(),
            rate_limiter: previous.map(|p| p.rate_limiter.clone()).unwrap_or_default(),
            stats: previous.map_or_else(
                || Arc::new(RouteStats::new(crate::config::DEFAULT_STATS_WINDOW)),
                |p| p.stats.clone(),
            ),
            state: Arc::default(),
            flag: None,
            shadow: None,
            metrics: MetricHandles::default(),
        }
    }

    /// What the decision reads of the route's runtime state.
    pub fn runtime(&self) -> RouteRuntime {
        self.state.runtime(self.flag.as_deref())
    }
}
