//! The admin listener (SPEC §5): health, readiness, metrics, config, routes,
//! backends, shadow, reload, and the runtime overrides.
//!
//! - [`routes_view`]: `GET /routes`;
//! - [`overrides`]: route and flag overrides, resuming a tripped route.

mod overrides;
mod routes_view;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::body::{self, ProxyBody};
use crate::error::json_error;
use crate::headers::X_REQUEST_ID;
use crate::metrics::Metrics;
use crate::reload::{Outcome, Reloader, Trigger};
use crate::snapshot::SharedSnapshot;
use crate::stats::{Histories, RouteCounters};

/// The largest body an admin write accepts.
const MAX_ADMIN_BODY: usize = 16 * 1024;

/// What the admin API reads and drives.
#[derive(Debug)]
pub(crate) struct Admin {
    pub snapshot: SharedSnapshot,
    pub metrics: Arc<Metrics>,
    pub reloader: Arc<Reloader>,
    /// False once shutdown began: `/readyz` answers 503.
    pub ready: AtomicBool,
    /// The routes' last 15 minutes, for the status page.
    pub history: Arc<Histories>,
    /// With `[control]`: the fleet link's state, for `/config`.
    pub control: Option<Arc<crate::control::ControlStatus>>,
}

/// `/metrics` in the Prometheus text format 0.0.4.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `/metrics` in OpenMetrics 1.0.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// True when `Accept` lists `application/openmetrics-text` with a q-value
/// above 0 (Prometheus asks for it first, then for text 0.0.4).
fn wants_openmetrics(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        let refused = params.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
    })
}

impl Admin {
    /// Answers one admin request.
    pub(crate) async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
    ) -> Result<Response<ProxyBody>, Infallible>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<crate::body::BoxError>,
    {
        let path = req.uri().path();
        // Set by the request-id layer of `app::start`'s admin stack.
        let request_id = req.headers().get(&X_REQUEST_ID);
        let open = matches!(path, "/healthz" | "/readyz");
        if !open && !self.authorized(req.headers().get(header::AUTHORIZATION)) {
            let mut response = json_error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin token",
                request_id,
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(response);
        }
        if let Some(write) = overrides::parse(req.method(), path) {
            let request_id = request_id.cloned();
            let Ok(write) = write else {
                return Ok(json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed",
                    request_id.as_ref(),
                ));
            };
            let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    return Ok(json_error(
                        StatusCode::BAD_REQUEST,
                        "the body could not be read (at most 16 KiB)",
                        request_id.as_ref(),
                    ));
                }
            };
            let snapshot = self.snapshot.load();
            return Ok(overrides::apply(
                &snapshot,
                write,
                &body,
                request_id.as_ref(),
            ));
        }
        // HEAD is GET without the body (hyper drops it): monitoring checks use it.
        let method = if req.method() == Method::HEAD {
            &Method::GET
        } else {
            req.method()
        };
        let response = match (method, path) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => {
                if self.ready.load(Ordering::Acquire) {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
                }
            }
            (&Method::GET, "/metrics") => {
                let snapshot = self.snapshot.load();
                self.metrics.show_backends(&snapshot);
                self.metrics.show_routes(&snapshot);
                if wants_openmetrics(req.headers().get(header::ACCEPT)) {
                    body::response(
                        StatusCode::OK,
                        OPENMETRICS_CONTENT_TYPE,
                        self.metrics.encode(),
                    )
                } else {
                    body::response(
                        StatusCode::OK,
                        PROMETHEUS_CONTENT_TYPE,
                        self.metrics.encode_prometheus(),
                    )
                }
            }
            (&Method::GET, "/config") => body::json(StatusCode::OK, &self.config_json()),
            (&Method::GET, "/config/source") => body::response(
                StatusCode::OK,
                "application/toml",
                self.snapshot.load().config.source.to_string(),
            ),
            (&Method::GET, "/") => body::response(
                StatusCode::OK,
                "text/html; charset=utf-8",
                self.status_page(),
            ),
            (&Method::GET, "/status/history") => body::json(StatusCode::OK, &self.history_json()),
            (&Method::GET, "/routes") => body::json(StatusCode::OK, &self.routes_json()),
            (&Method::GET, "/backends") => body::json(StatusCode::OK, &self.backends_json()),
            (&Method::GET, "/shadow") => body::json(StatusCode::OK, &self.shadow_json()),
            (&Method::POST, "/reload") => match self.reloader.reload(Trigger::Admin).await {
                Outcome::Loaded { version } => {
                    body::json(StatusCode::OK, &json!({ "version": version }))
                }
                Outcome::Failed { error } => body::json(
                    StatusCode::BAD_REQUEST,
                    &json!({ "error": error.to_string() }),
                ),
                Outcome::Unchanged | Outcome::Missing => {
                    let version = self.snapshot.load().config.version.clone();
                    body::json(StatusCode::OK, &json!({ "version": version }))
                }
            },
            (
                _,
                "/healthz" | "/readyz" | "/metrics" | "/config" | "/config/source" | "/routes"
                | "/backends" | "/reload" | "/shadow" | "/" | "/status/history",
            ) => json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                request_id,
            ),
            _ => json_error(StatusCode::NOT_FOUND, "not found", request_id),
        };
        Ok(response)
    }

    /// True when no token is configured, or `authorization` carries it.
    fn authorized(&self, authorization: Option<&HeaderValue>) -> bool {
        let snapshot = self.snapshot.load();
        let Some(var) = &snapshot.config.server.admin_token_env else {
            return true;
        };
        // A configured token never fails open: with the variable unset or
        // empty (say, after a reload named a new one), nothing is authorized.
        let token = match std::env::var(var) {
            Ok(token) if !token.is_empty() => token,
            _ => return false,
        };
        let presented = authorization
            .map(HeaderValue::as_bytes)
            .and_then(bearer_token)
            .unwrap_or_default();
        constant_time_eq(presented, token.as_bytes())
    }

    fn config_json(&self) -> Value {
        let status = self.reloader.status();
        let mut config = json!({
            "version": status.version,
            "generation": status.generation,
            "loaded_at": rfc3339(status.loaded_at),
            "path": self.reloader.path().display().to_string(),
            "last_error": status.last_error.map(|error| error.to_string()),
            "overrides": self.overrides_json(),
            "last_error_at": status.last_error_at.map(rfc3339),
            "restart_required": status.restart_required,
        });
        // With `[control]` only, as its metric (SPEC §3.10, §7).
        if let Some(control) = &self.control {
            config["control"] = control.json();
        }
        config
    }

    /// `GET /`: the status page, rendered from the same JSON the API serves.
    fn status_page(&self) -> String {
        crate::status_page::render(&crate::status_page::Inputs {
            routes: self.routes_json(),
            backends: self.backends_json(),
            history: self.history_json(),
            config: self.config_json(),
        })
    }

    /// `GET /status/history`: per route, the last 15 one-minute points of
    /// new's share of answers and new's error rate, then the minute in progress.
    fn history_json(&self) -> Value {
        let snapshot = self.snapshot.load();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut out = serde_json::Map::new();
        let routes = snapshot.routes().iter().map(|r| &r.handles);
        for handles in routes.chain(std::iter::once(snapshot.handles(None))) {
            let points = self
                .history
                .points(&handles.label, handles.counters.totals(), now);
            let points: Vec<Value> = points
                .iter()
                .map(|p| {
                    json!({
                        "at": p.at,
                        "legacy": p.legacy,
                        "new": p.new,
                        "new_share": p.new_share(),
                        "error_rate": p.error_rate(),
                    })
                })
                .collect();
            out.insert(handles.label.to_string(), Value::Array(points));
        }
        Value::Object(out)
    }

    /// `GET /routes`, also what the status page shows.
    fn routes_json(&self) -> Value {
        routes_view::routes(&self.snapshot.load())
    }

    /// `/config`'s `overrides`: `{"routes": {NAME: {"weight", "set_at"}},
    /// "flags": {NAME: {"value", "set_at"}}}`, each beside the file's value.
    fn overrides_json(&self) -> Value {
        let snapshot = self.snapshot.load();
        let mut routes = serde_json::Map::new();
        for route in snapshot.routes() {
            if let Some(o) = route.handles.state.override_info() {
                routes.insert(
                    route.config.name.clone(),
                    json!({
                        "weight": routes_view::percent(o.value),
                        "file_weight": routes_view::percent(route.config.weight_bp),
                        "set_at": rfc3339(o.set_at),
                    }),
                );
            }
        }
        let mut flags = serde_json::Map::new();
        for (name, file_value, flag) in snapshot.flags() {
            if let Some(o) = flag.override_info() {
                flags.insert(
                    name.to_owned(),
                    json!({"value": o.value, "file_value": file_value, "set_at": rfc3339(o.set_at)}),
                );
            }
        }
        json!({ "routes": routes, "flags": flags })
    }
}

impl Admin {
    /// `GET /backends` (SPEC §5): every backend's health, in file order.
    fn backends_json(&self) -> Value {
        let snapshot = self.snapshot.load();
        let (now, wall) = (Instant::now(), SystemTime::now());
        let backends = snapshot.backends().iter().map(|backend| {
            let health = &backend.health;
            let check = backend
                .config
                .health
                .as_ref()
                .and_then(|_| health.last_check());
            let checked = backend.config.health.as_ref().map(|_| {
                json!({
                    "last_check_at": check.as_ref().map(|c| rfc3339_millis(c.at)),
                    "last_result": check.as_ref().map(|c| c.result.clone()),
                })
            });
            json!({
                "name": backend.config.name,
                "url": backend.config.url,
                "state": health.state(now).label(),
                "ejected_until": health.ejected_until(now, wall).map(rfc3339_millis),
                "ejections": health.ejections(),
                "consecutive_failures": health.consecutive_failures(),
                "health": checked,
            })
        });
        Value::Array(backends.collect())
    }
}

impl Admin {
    /// `GET /shadow` (SPEC §5): per route with `[routes.shadow]`, in file
    /// order, what its shadow traffic found.
    fn shadow_json(&self) -> Value {
        let snapshot = self.snapshot.load();
        let config = &snapshot.config;
        let routes = snapshot.routes().iter().filter_map(|compiled| {
            let route = &compiled.config;
            let shadow = route.shadow.as_ref()?;
            let state = compiled.handles.shadow.as_ref()?;
            let legacy = &config.backend(route.legacy).name;
            let new = &config.backend(route.new).name;
            let mut found = state.to_json(legacy, new, rfc3339_millis);
            found["name"] = json!(route.name);
            found["percent"] = json!(f64::from(shadow.percent_bp) / 100.0);
            found["legacy"] = json!(legacy);
            found["new"] = json!(new);
            Some(found)
        });
        Value::Array(routes.collect())
    }
}

/// Attempts per side since start, failed ones (a status in `on_status`,
/// connect error, timeout, reset) counted before any fallback: legacy's
/// answer after a failed new does not hide new's failure.
pub(super) fn attempts_json(counters: &RouteCounters) -> Value {
    let side = |attempts: &AtomicU64, failures: &AtomicU64| {
        json!({
            "total": attempts.load(Ordering::Relaxed),
            "failed": failures.load(Ordering::Relaxed),
        })
    };
    json!({
        "legacy": side(&counters.legacy_attempts, &counters.legacy_failures),
        "new": side(&counters.new_attempts, &counters.new_failures),
    })
}

fn text(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    body::response(status, "text/plain; charset=utf-8", text)
}

/// The credentials of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = authorization.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// Compares without an early exit, so timing does not reveal how much matched.
/// The fixed-size digests are compared, so the lengths are not revealed either
/// (`subtle` answers unequal lengths at once).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

/// `SystemTime` as RFC 3339 in UTC with second precision, e.g. `2026-11-21T21:23:16Z`;
/// a time before 1970 shows as the epoch.
/// With milliseconds: ejections and checks are often shorter than a second.
fn rfc3339_millis(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time.max(SystemTime::UNIX_EPOCH)).to_string()
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time.max(SystemTime::UNIX_EPOCH)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        let at = |secs| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_296_196), "2026-11-21T21:23:16Z");
    }

    #[test]
    fn openmetrics_is_chosen_by_accept() {
        let accept = |s: &'static str| wants_openmetrics(Some(&HeaderValue::from_static(s)));
        assert!(!wants_openmetrics(None));
        assert!(!accept("text/plain"));
        assert!(!accept("*/*"));
        assert!(accept("application/openmetrics-text"));
        assert!(accept(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!accept("application/openmetrics-text;q=0, text/plain"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abcdef"), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-longer", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
