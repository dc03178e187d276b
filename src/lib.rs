//! strangler: a strangler-fig reverse proxy.
//!
//! A request flows one way through the modules: [`server`] accepts it,
//! [`route`] normalises its path, finds its route and decides legacy or new,
//! [`proxy`] forwards it (with [`headers`] rewritten), falls back to legacy when
//! new fails, and answers; [`error`] maps what the proxy itself refuses.
//! [`config`] turns the TOML file into a validated config, which
//! [`snapshot::Snapshot::new`] compiles (routes, backends and their pools) into
//! what every request reads.

mod admin;
pub mod app;
mod backend;
#[doc(hidden)]
pub mod bench_support;
pub mod body;
pub mod check;
pub mod cidr;
pub mod config;
mod control;
pub mod demo;
pub mod diff;
pub mod echo;
mod error;
pub mod explain;
mod headers;
pub mod health;
pub mod log_json;
mod metrics;
mod path;
mod proxy;
mod ratelimit;
mod reload;
pub mod route;
mod runtime;
pub mod server;
pub mod shadow;
pub mod snapshot;
mod state_file;
mod stats;
mod status_page;
mod tls;

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::proxy::Observer;
pub use crate::proxy::ProxyService;
use crate::snapshot::SharedSnapshot;

/// The client-facing proxy service: credentials marked sensitive (redacted
/// in any debug output, never HPACK-indexed), `x-request-id` passed on or
/// created and echoed in the response, a `debug` span per request carrying
/// that id, then the proxy itself. Served by [`server::serve`] on each
/// connection, or called as a tower service (the client then comes from the
/// request's [`server::ClientAddr`] extension).
pub fn proxy_service(
    snapshot: SharedSnapshot,
    observer: Option<Arc<dyn Observer>>,
    tunnels: TaskTracker,
) -> ProxyService {
    ProxyService::new(snapshot, observer, tunnels)
}
