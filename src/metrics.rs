//! Metric families (SPEC §7) and the per-request observer that feeds them and
//! writes the access log.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::info;

use crate::config::BackendId;
use crate::headers::IpText;
use crate::proxy::{AttemptResult, Exchange, FallbackReason, Observer};
use crate::shadow::ShadowResult;
use crate::snapshot::Snapshot;
use crate::stats::Label;
use crate::stats::latency::Latency;

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
struct AttemptLabels {
    route: Label,
    backend: Label,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    route: Label,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Label,
}

/// Every metric strangler exports.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteBackendLabels, Latency>,
    fallbacks: Family<FallbackLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    new_weight: Family<RouteLabels, Gauge<f64, AtomicU64>>,
    backend_available: Family<BackendLabels, Gauge>,
    backend_ejections: Family<BackendLabels, Counter>,
    rate_limited: Family<RouteLabels, Counter>,
    rollbacks: Family<RouteLabels, Counter>,
    rolled_back: Family<RouteLabels, Gauge>,
    shadow: Family<ShadowLabels, Counter>,
    /// The backends whose health the last scrape showed, so that the next
    /// one drops those a reload removed.
    health_shown: Mutex<Vec<Label>>,
    /// The routes the last scrape showed, likewise.
    routes_shown: Mutex<Vec<Label>>,
    /// The `backend` label of answers no backend was asked for (400, 408, 413).
    no_backend: Label,
}

/// The backend name logged and labelled when no backend was asked.
const NO_BACKEND: &str = "none";

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
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "strangler_requests",
            "Requests answered, by route, the backend whose answer the client got, and status code",
            requests.clone(),
        );
        let durations = Family::<RouteBackendLabels, Latency>::default();
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
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "strangler_attempts",
            "Attempts on a backend, by result, including failed ones that were sent again",
            attempts.clone(),
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
        let backend_available = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "strangler_backend_available",
            "1 while the backend is neither ejected nor failing its health check",
            backend_available.clone(),
        );
        let backend_ejections = Family::<BackendLabels, Counter>::default();
        registry.register(
            "strangler_backend_ejections",
            "Passive ejections of a backend after gateway failures in a row",
            backend_ejections.clone(),
        );
        let rate_limited = Family::<RouteLabels, Counter>::default();
        registry.register(
            "strangler_rate_limited",
            "Requests refused with 429 by a route's rate limit",
            rate_limited.clone(),
        );
        let rollbacks = Family::<RouteLabels, Counter>::default();
        registry.register(
            "strangler_rollbacks",
            "Automatic rollbacks (trips) of a route with [routes.rollback]",
            rollbacks.clone(),
        );
        let rolled_back = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "strangler_route_rolled_back",
            "1 while the route is tripped and sends everything to legacy",
            rolled_back.clone(),
        );
        let shadow = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "strangler_shadow",
            "Shadow traffic results, by route: match, mismatch, error, skipped",
            shadow.clone(),
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
            attempts,
            reloads,
            new_weight,
            backend_available,
            backend_ejections,
            rate_limited,
            rollbacks,
            rolled_back,
            shadow,
            health_shown: Mutex::new(Vec::new()),
            routes_shown: Mutex::new(Vec::new()),
            no_backend: Arc::new(NO_BACKEND.to_owned()),
        }
    }

    /// Registers `strangler_control_connected` (only with `[control]`: SPEC
    /// §7) and returns the gauge the fleet link sets.
    pub(crate) fn control_gauge(&mut self) -> Gauge {
        let gauge = Gauge::default();
        self.registry.register(
            "strangler_control_connected",
            "1 while the fleet's Redis ([control]) is reachable",
            gauge.clone(),
        );
        gauge
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text format 0.0.4 of every metric, made from the
    /// OpenMetrics text: a counter's `# HELP`/`# TYPE` name its samples'
    /// name (`_total`), and `# UNIT` and `# EOF` go, as 0.0.4 parsers expect.
    pub(crate) fn encode_prometheus(&self) -> String {
        openmetrics_to_prometheus(&self.encode())
    }

    /// Copies every backend's health into its metrics, read at scrape time
    /// so the request path never touches them; backends gone since the last
    /// call are dropped. Half-open counts as available.
    pub(crate) fn show_backends(&self, snapshot: &Snapshot) {
        let mut shown = self.health_shown.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for backend in snapshot.backends() {
            let labels = BackendLabels {
                backend: backend.name_label.clone(),
            };
            let available = backend.health.available(now);
            self.backend_available
                .get_or_create(&labels)
                .set(i64::from(available));
            self.backend_ejections
                .get_or_create(&labels)
                .inner()
                .store(backend.health.ejections(), Ordering::Relaxed);
        }
        let live: Vec<Label> = snapshot
            .backends()
            .iter()
            .map(|b| b.name_label.clone())
            .collect();
        for gone in shown.iter().filter(|label| !live.contains(label)) {
            let labels = BackendLabels {
                backend: gone.clone(),
            };
            self.backend_available.remove(&labels);
            self.backend_ejections.remove(&labels);
        }
        *shown = live;
    }

    pub(crate) fn reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// Copies every route's effective weight (the ramp moves it with the
    /// clock; overrides and trips at any time) and rollback state into its
    /// metrics, read at scrape time; routes gone since the last call are
    /// dropped. The rollback metrics exist for routes with a rollback.
    pub(crate) fn show_routes(&self, snapshot: &Snapshot) {
        let mut shown = self.routes_shown.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        for route in snapshot.routes() {
            let labels = RouteLabels {
                route: route.handles.label.clone(),
            };
            self.new_weight
                .get_or_create(&labels)
                .set(route.weight(now).percent());
            let state = &route.handles.state;
            if route.config.rollback.is_some() || state.trips() > 0 || state.is_tripped() {
                self.rollbacks
                    .get_or_create(&labels)
                    .inner()
                    .store(state.trips(), Ordering::Relaxed);
                self.rolled_back
                    .get_or_create(&labels)
                    .set(i64::from(state.is_tripped()));
            } else {
                self.rollbacks.remove(&labels);
                self.rolled_back.remove(&labels);
            }
        }
        let live: Vec<Label> = snapshot
            .routes()
            .iter()
            .map(|r| r.handles.label.clone())
            .collect();
        for gone in shown.iter().filter(|label| !live.contains(label)) {
            let labels = RouteLabels {
                route: gone.clone(),
            };
            self.new_weight.remove(&labels);
            self.rollbacks.remove(&labels);
            self.rolled_back.remove(&labels);
        }
        *shown = live;
    }

    fn shadow(&self, route: &Label, result: ShadowResult) {
        self.shadow
            .get_or_create(&ShadowLabels {
                route: route.clone(),
                result: result.label(),
            })
            .inc();
    }

    /// Counts the request, its latency and its attempts in the series the
    /// route's snapshot handles keep, asking the families only for series
    /// the route has not used yet.
    fn record(&self, snapshot: &Snapshot, exchange: &Exchange, elapsed: Duration) {
        let handles = snapshot.handles(exchange.route);
        let series = handles.metrics.get();
        let route = &handles.label;
        let backend_label = |backend: Option<BackendId>| match backend {
            Some(b) => snapshot.backend(b).name_label.clone(),
            None => self.no_backend.clone(),
        };
        let code = exchange.status.as_u16();
        let requests = || {
            self.requests
                .get_or_create(&RequestLabels {
                    route: route.clone(),
                    backend: backend_label(exchange.backend),
                    code,
                })
                .clone()
        };
        match series
            .requests
            .get_or_make((exchange.backend, code), requests)
        {
            Some(counter) => counter.inc(),
            None => requests().inc(),
        };
        let durations = || {
            self.durations
                .get_or_create(&RouteBackendLabels {
                    route: route.clone(),
                    backend: backend_label(exchange.backend),
                })
                .clone()
        };
        match series.durations.get_or_make(exchange.backend, durations) {
            Some(latency) => latency.observe(elapsed),
            None => durations().observe(elapsed),
        }
        for (backend, result) in exchange.attempts.iter() {
            let attempts = || {
                self.attempts
                    .get_or_create(&AttemptLabels {
                        route: route.clone(),
                        backend: backend_label(Some(backend)),
                        result: result.label(),
                    })
                    .clone()
            };
            match series
                .attempts
                .get_or_make((backend, result.label()), attempts)
            {
                Some(counter) => counter.inc(),
                None => attempts().inc(),
            };
        }
        // Only a rate limit makes the proxy itself answer 429.
        if exchange.proxy_error && exchange.status == http::StatusCode::TOO_MANY_REQUESTS {
            self.rate_limited
                .get_or_create(&RouteLabels {
                    route: route.clone(),
                })
                .inc();
        }
        if let Some(reason) = exchange.fallback {
            self.fallbacks
                .get_or_create(&FallbackLabels {
                    route: route.clone(),
                    reason: reason.label(),
                })
                .inc();
        }
    }
}

/// See [`Metrics::encode_prometheus`].
fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Feeds [`Metrics`] and [`RouteCounters`] and writes one access-log event
/// (target `strangler::access`) per request.
#[derive(Debug)]
pub(crate) struct Telemetry {
    pub metrics: Arc<Metrics>,
}

impl Observer for Telemetry {
    fn observe(&self, snapshot: &Snapshot, exchange: &Exchange) {
        let elapsed = exchange.started.elapsed();
        self.metrics.record(snapshot, exchange, elapsed);
        let handles = snapshot.handles(exchange.route);
        let counters = &handles.counters;
        let backend = exchange.backend.map(|b| snapshot.backend(b));
        let is_new = exchange.to_new && exchange.fallback.is_none();
        if let Some(reason) = exchange.fallback {
            counters.count_fallback(reason.label());
        }
        if exchange.proxy_error || backend.is_none() {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        } else if is_new {
            counters.new.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.legacy.fetch_add(1, Ordering::Relaxed);
        }
        // Every attempt, so that a new whose failures legacy answered for
        // still shows them (SPEC §5 `/routes`).
        let route = exchange.route.map(|id| snapshot.config.route(id));
        for (attempted, result) in exchange.attempts.iter() {
            let failed = result != AttemptResult::Ok;
            let (attempts, failures) = match route {
                Some(route) if attempted == route.new && exchange.to_new => {
                    (&counters.new_attempts, &counters.new_failures)
                }
                _ => (&counters.legacy_attempts, &counters.legacy_failures),
            };
            attempts.fetch_add(1, Ordering::Relaxed);
            if failed {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        let client = exchange.client.map(IpText::new);
        let new_status = match exchange.fallback {
            Some(FallbackReason::Status(code)) => Some(code.as_u16()),
            _ => None,
        };
        info!(
            target: "strangler::access",
            method = exchange.method.as_str(),
            path = exchange.uri.path(),
            query = exchange.uri.query(),
            client = client.as_ref().map(IpText::as_str),
            route = handles.label.as_str(),
            backend = backend.map_or(NO_BACKEND, |b| b.config.name.as_str()),
            upstream_path = upstream_path(snapshot, exchange).map(tracing::field::display),
            status = exchange.status.as_u16(),
            duration_ms = duration_ms(elapsed),
            fallback = exchange.fallback.map(|r| r.label()),
            new_status,
            request_id = exchange.request_id(),
        );
    }

    fn shadow(&self, route: &Label, result: ShadowResult) {
        self.metrics.shadow(route, result);
    }
}

/// Milliseconds rounded to whole microseconds: `1.154`, never `1.1543020000000002`.
fn duration_ms(elapsed: Duration) -> f64 {
    // An integer number of microseconds divided by 1000 prints as its
    // shortest decimal form.
    elapsed.as_micros() as f64 / 1000.0
}

/// The path the answering backend was sent: its URL's path prefix, then the
/// normalised path, rewritten for new. `None` when no backend answered.
fn upstream_path<'a>(snapshot: &'a Snapshot, exchange: &'a Exchange) -> Option<UpstreamPath<'a>> {
    let backend = snapshot.backend(exchange.backend?);
    let path = crate::route::normalize_path(exchange.uri.path());
    let path = match exchange.route {
        Some(id) if exchange.to_new && exchange.fallback.is_none() => {
            if let Cow::Owned(rewritten) =
                crate::route::rewrite_path(snapshot.config.route(id), &path)
            {
                Cow::Owned(rewritten)
            } else {
                path
            }
        }
        _ => path,
    };
    Some(UpstreamPath {
        prefix: &backend.config.path_prefix,
        path,
    })
}

/// What [`upstream_path`] found, written out only when logged.
struct UpstreamPath<'a> {
    prefix: &'a str,
    path: Cow<'a, str>,
}

impl std::fmt::Display for UpstreamPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.prefix)?;
        f.write_str(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counters_by_their_samples() {
        let open = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus(open),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n"
        );
    }
}
