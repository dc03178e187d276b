//! Metric families (SPEC §7) and the per-request observer that feeds them and
//! writes the access log.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing::info;

use crate::proxy::{Exchange, Observer};
use crate::snapshot::Snapshot;

/// Latency buckets in seconds: sub-millisecond to tens of seconds.
const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A label value shared by `Arc`, so recording a request clones, not allocates.
pub type Label = Arc<String>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Label,
    backend: Label,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteBackendLabels {
    route: Label,
    backend: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    route: Label,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Label,
}

/// Every metric strangler exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteBackendLabels, Histogram>,
    fallbacks: Family<FallbackLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    new_weight: Family<RouteLabels, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "strangler_requests",
            "Requests answered, by route, the backend whose answer the client got, and status code",
            requests.clone(),
        );
        let durations = Family::<RouteBackendLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "strangler_request_duration_seconds",
            "Time from request received to response head sent",
            durations.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "strangler_fallbacks",
            "Requests replayed to legacy after new failed, by reason",
            fallbacks.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "strangler_config_reloads",
            "Config reloads, by result",
            reloads.clone(),
        );
        let new_weight = Family::<RouteLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "strangler_route_new_weight",
            "Effective percent of a route's traffic for the new backend",
            new_weight.clone(),
        );
        // Both results exist from the start, so a dashboard sees 0, not nothing.
        for result in ["success", "failure"] {
            let _ = reloads.get_or_create(&ResultLabels { result });
        }
        Metrics {
            registry,
            requests,
            durations,
            fallbacks,
            reloads,
            new_weight,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Sets `strangler_route_new_weight` to exactly the routes of `next`: every
    /// route's value is set before the routes `previous` had and `next` lacks
    /// are removed, so a scrape never sees a live route without its gauge.
    pub fn set_weights(&self, previous: Option<&Snapshot>, next: &Snapshot) {
        for (route, label) in next.config.routes.iter().zip(&next.route_labels) {
            self.new_weight
                .get_or_create(&RouteLabels {
                    route: label.clone(),
                })
                .set(f64::from(route.effective_weight_bp()) / 100.0);
        }
        let live: HashSet<&Label> = next.route_labels.iter().collect();
        for label in previous.iter().flat_map(|p| &p.route_labels) {
            if !live.contains(label) {
                self.new_weight.remove(&RouteLabels {
                    route: label.clone(),
                });
            }
        }
    }

    fn record(&self, snapshot: &Snapshot, exchange: &Exchange) {
        let route = snapshot.route_label_arc(exchange.route);
        let backend = match exchange.backend {
            Some(b) => snapshot.backends[b].name_label.clone(),
            None => Arc::new(String::from("none")),
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                backend: backend.clone(),
                code: exchange.status.as_u16(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteBackendLabels {
                route: route.clone(),
                backend,
            })
            .observe(exchange.started.elapsed().as_secs_f64());
        if let Some(reason) = exchange.fallback {
            self.fallbacks
                .get_or_create(&FallbackLabels {
                    route,
                    reason: reason.label(),
                })
                .inc();
        }
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

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

/// Feeds [`Metrics`] and [`RouteCounters`] and writes one access-log event
/// (target `strangler::access`) per request.
#[derive(Debug)]
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
}

impl Observer for Telemetry {
    fn observe(&self, snapshot: &Snapshot, exchange: &Exchange, request_id: Option<&HeaderValue>) {
        self.metrics.record(snapshot, exchange);
        let counters = snapshot.route_counters(exchange.route);
        let backend = exchange.backend.map(|b| &snapshot.backends[b]);
        let is_new = match (exchange.route, exchange.backend) {
            (Some(r), Some(b)) => snapshot.config.routes[r].new == b && exchange.fallback.is_none(),
            _ => false,
        };
        if exchange.fallback.is_some() {
            counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        if exchange.proxy_error || backend.is_none() {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        } else if is_new {
            counters.new.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.legacy.fetch_add(1, Ordering::Relaxed);
        }
        info!(
            target: "strangler::access",
            method = %exchange.method,
            path = %exchange.path,
            route = snapshot.route_label(exchange.route),
            backend = backend.map_or("-", |b| b.config.name.as_str()),
            status = exchange.status.as_u16(),
            duration_ms = exchange.started.elapsed().as_secs_f64() * 1000.0,
            fallback = exchange.fallback.map(|r| r.label()),
            request_id = request_id.and_then(|v| v.to_str().ok()),
        );
    }
}
