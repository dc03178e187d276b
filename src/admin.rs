//! The admin listener (SPEC §5): health, readiness, metrics, config, routes,
//! backends, shadow, reload.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::body::{self, ProxyBody};
use crate::error::json_error;
use crate::headers::X_REQUEST_ID;
use crate::metrics::Metrics;
use crate::reload::{Outcome, Reloader, Trigger};
use crate::snapshot::SharedSnapshot;

/// What the admin API reads and drives.
#[derive(Debug)]
pub(crate) struct Admin {
    pub snapshot: SharedSnapshot,
    pub metrics: Arc<Metrics>,
    pub reloader: Arc<Reloader>,
    /// False once shutdown began: `/readyz` answers 503.
    pub ready: AtomicBool,
}

impl Admin {
    /// Answers one admin request.
    pub(crate) async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
    ) -> Result<Response<ProxyBody>, Infallible> {
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
        let response = match (req.method(), path) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => {
                if self.ready.load(Ordering::Acquire) {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
                }
            }
            (&Method::GET, "/metrics") => {
                self.metrics.show_backends(&self.snapshot.load());
                body::response(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.encode(),
                )
            }
            (&Method::GET, "/config") => body::json(StatusCode::OK, &self.config_json()),
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
                "/healthz" | "/readyz" | "/metrics" | "/config" | "/routes" | "/backends"
                | "/reload" | "/shadow",
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
        let token = match std::env::var(var) {
            Ok(token) if !token.is_empty() => token,
            _ => return true,
        };
        let presented = authorization
            .map(HeaderValue::as_bytes)
            .and_then(bearer_token)
            .unwrap_or_default();
        constant_time_eq(presented, token.as_bytes())
    }

    fn config_json(&self) -> Value {
        let status = self.reloader.status();
        json!({
            "version": status.version,
            "generation": status.generation,
            "loaded_at": rfc3339(status.loaded_at),
            "path": self.reloader.path().display().to_string(),
            "last_error": status.last_error.map(|error| error.to_string()),
        })
    }

    /// `new_available` is true while the route's new backend would be tried
    /// (half-open included); `_default`, which has no new, shows `null`.
    fn routes_json(&self) -> Value {
        let snapshot = self.snapshot.load();
        let now = Instant::now();
        let config = &snapshot.config;
        let mut routes: Vec<Value> = snapshot
            .routes()
            .iter()
            .map(|compiled| {
                let route = &compiled.config;
                let counters = &compiled.handles.counters;
                let legacy = &config.backend(route.legacy).name;
                let new = &config.backend(route.new).name;
                json!({
                    "name": route.name,
                    "path": route.path,
                    "weight": route.effective_weight_percent(),
                    "flag": route.flag.as_ref().map(|(name, value)| json!({"name": name, "value": value})),
                    "legacy": legacy,
                    "new": new,
                    "requests": {
                        "legacy": counters.legacy.load(Ordering::Relaxed),
                        "new": counters.new.load(Ordering::Relaxed),
                        "errors": counters.errors.load(Ordering::Relaxed),
                    },
                    "fallbacks": counters.fallbacks.load(Ordering::Relaxed),
                    "new_available": snapshot.backend(route.new).health.available(now),
                })
            })
            .collect();
        let counters = &snapshot.handles(None).counters;
        routes.push(json!({
            "name": crate::config::DEFAULT_ROUTE,
            "path": null,
            "weight": 0.0,
            "flag": null,
            "legacy": config.backend(config.default_legacy).name,
            "new": null,
            "requests": {
                "legacy": counters.legacy.load(Ordering::Relaxed),
                "new": 0,
                "errors": counters.errors.load(Ordering::Relaxed),
            },
            "fallbacks": 0,
            "new_available": null,
        }));
        Value::Array(routes)
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
