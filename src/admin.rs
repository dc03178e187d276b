//! The admin listener (SPEC §5): health, readiness, metrics, config, routes,
//! backends, shadow, reload, and the runtime overrides.
//!
//! - [`routes_view`]: `GET /routes`;
//! - [`overrides`]: route and flag overrides, resuming a tripped route.

mod overrides;
mod routes_view;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
                let snapshot = self.snapshot.load();
                self.metrics.show_backends(&snapshot);
                self.metrics.show_routes(&snapshot);
                body::response(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.encode(),
                )
            }
            (&Method::GET, "/config") => body::json(StatusCode::OK, &self.config_json()),
            (&Method::GET, "/routes") => {
                body::json(StatusCode::OK, &routes_view::routes(&self.snapshot.load()))
            }
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
        json!({
            "version": status.version,
            "generation": status.generation,
            "loaded_at": rfc3339(status.loaded_at),
            "path": self.reloader.path().display().to_string(),
            "last_error": status.last_error.map(|error| error.to_string()),
            "overrides": self.overrides_json(),
        })
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
