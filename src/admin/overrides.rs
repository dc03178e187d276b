//! The admin API's writes to runtime state (SPEC §5): route weight
//! overrides, flag overrides and resuming a tripped route. Each change is
//! logged at warn and saved to `state_file`.

use std::time::SystemTime;

use http::{HeaderValue, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

use super::routes_view::{percent, route_json};
use crate::body::{self, ProxyBody};
use crate::error::json_error;
use crate::snapshot::Snapshot;

/// A write the admin API understood from its method and path.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Write {
    SetOverride(String),
    ClearOverride(String),
    Resume(String),
    SetFlag(String),
    ClearFlag(String),
}

/// The write `method path` asks for: `/routes/NAME/override`,
/// `/routes/NAME/resume`, `/flags/NAME`, with NAME percent-decoded (route
/// names that are paths arrive as `%2Fapi%2Fauth`). `Err(())`: a known path
/// with the wrong method.
pub(super) fn parse(method: &http::Method, path: &str) -> Option<Result<Write, ()>> {
    use http::Method;
    if let Some(rest) = path.strip_prefix("/routes/") {
        let (name, action) = rest.rsplit_once('/')?;
        let name = percent_decode(name)?;
        return Some(match (action, method) {
            ("override", &Method::POST) => Ok(Write::SetOverride(name)),
            ("override", &Method::DELETE) => Ok(Write::ClearOverride(name)),
            ("resume", &Method::POST) => Ok(Write::Resume(name)),
            ("override" | "resume", _) => Err(()),
            _ => return None,
        });
    }
    let name = percent_decode(path.strip_prefix("/flags/")?)?;
    Some(match *method {
        Method::POST => Ok(Write::SetFlag(name)),
        Method::DELETE => Ok(Write::ClearFlag(name)),
        _ => Err(()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    weight: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagBody {
    value: bool,
}

/// Carries out `write` on the live `snapshot`; `body` is the request's.
pub(super) fn apply(
    snapshot: &Snapshot,
    write: Write,
    body: &[u8],
    request_id: Option<&HeaderValue>,
) -> Response<ProxyBody> {
    let now = SystemTime::now();
    let not_found = |what: &str, name: &str| {
        json_error(
            StatusCode::NOT_FOUND,
            &format!("no {what} named \"{name}\""),
            request_id,
        )
    };
    let bad_body = |why: String| json_error(StatusCode::BAD_REQUEST, &why, request_id);
    let response = match write {
        Write::SetOverride(name) => {
            let Some(route) = snapshot.route_named(&name) else {
                return not_found("route", &name);
            };
            let parsed: WeightBody = match serde_json::from_slice(body) {
                Ok(parsed) => parsed,
                Err(e) => {
                    return bad_body(format!("the body must be {{\"weight\": 0..100}}: {e}"));
                }
            };
            let Some(bp) = weight_bp(parsed.weight) else {
                return bad_body(format!(
                    "weight {} must be from 0 to 100 with at most 2 decimals",
                    parsed.weight
                ));
            };
            route.handles.state.set_override(bp, now);
            warn!(
                route = %name,
                weight = percent(bp),
                file_weight = percent(route.config.weight_bp),
                "override set: the route's weight is overridden until DELETE /routes/NAME/override"
            );
            body::json(StatusCode::OK, &route_json(snapshot, route))
        }
        Write::ClearOverride(name) => {
            let Some(route) = snapshot.route_named(&name) else {
                return not_found("route", &name);
            };
            if let Some(cleared) = route.handles.state.clear_override() {
                warn!(
                    route = %name,
                    was = percent(cleared.value),
                    weight = route.weight(now).percent(),
                    "override cleared: the file's weight applies again"
                );
            }
            body::json(StatusCode::OK, &route_json(snapshot, route))
        }
        Write::Resume(name) => {
            let Some(route) = snapshot.route_named(&name) else {
                return not_found("route", &name);
            };
            let Some(trip) = route.handles.state.resume() else {
                return json_error(
                    StatusCode::CONFLICT,
                    &format!("route \"{name}\" is not rolled back"),
                    request_id,
                );
            };
            route.handles.stats.new.clear();
            warn!(route = %name, tripped_by = %trip.reason, "route resumed: the rollback is armed again with new's statistics cleared");
            body::json(StatusCode::OK, &route_json(snapshot, route))
        }
        Write::SetFlag(name) => {
            let Some((_, file_value, flag)) = snapshot.flags().find(|(n, _, _)| *n == name) else {
                return not_found("flag", &name);
            };
            let parsed: FlagBody = match serde_json::from_slice(body) {
                Ok(parsed) => parsed,
                Err(e) => {
                    return bad_body(format!(
                        "the body must be {{\"value\": true}} or {{\"value\": false}}: {e}"
                    ));
                }
            };
            flag.set(parsed.value, now);
            warn!(flag = %name, value = parsed.value, file_value, "flag override set");
            body::json(StatusCode::OK, &flag_json(snapshot, &name))
        }
        Write::ClearFlag(name) => {
            let Some((_, file_value, flag)) = snapshot.flags().find(|(n, _, _)| *n == name) else {
                return not_found("flag", &name);
            };
            if let Some(cleared) = flag.clear() {
                warn!(flag = %name, was = cleared.value, value = file_value, "flag override cleared: the file's value applies again");
            }
            body::json(StatusCode::OK, &flag_json(snapshot, &name))
        }
    };
    snapshot.state_changed.notify_one();
    response
}

/// `{"name", "value" (in force), "file_value", "override": null | {"value", "set_at"}}`.
pub(super) fn flag_json(snapshot: &Snapshot, name: &str) -> serde_json::Value {
    let Some((_, file_value, flag)) = snapshot.flags().find(|(n, _, _)| *n == name) else {
        return serde_json::Value::Null;
    };
    let set = flag.override_info();
    json!({
        "name": name,
        "value": set.map_or(file_value, |o| o.value),
        "file_value": file_value,
        "override": set.map(|o| json!({"value": o.value, "set_at": super::rfc3339(o.set_at)})),
    })
}

/// A weight in percent as basis points: `0..=100` with at most 2 decimals.
fn weight_bp(percent: f64) -> Option<u16> {
    let bp = (percent * 100.0).round();
    ((0.0..=100.0).contains(&percent) && (percent * 100.0 - bp).abs() < 1e-6).then_some(bp as u16)
}

/// `%XX` sequences decoded; `None` when that is not UTF-8 or malformed.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    #[test]
    fn paths_and_methods() {
        let p = |m: Method, path: &str| parse(&m, path);
        assert_eq!(
            p(Method::POST, "/routes/checkout/override"),
            Some(Ok(Write::SetOverride("checkout".into())))
        );
        assert_eq!(
            p(Method::DELETE, "/routes/%2Fapi%2Fauth/override"),
            Some(Ok(Write::ClearOverride("/api/auth".into())))
        );
        assert_eq!(
            p(Method::POST, "/routes/a/resume"),
            Some(Ok(Write::Resume("a".into())))
        );
        assert_eq!(p(Method::GET, "/routes/a/resume"), Some(Err(())));
        assert_eq!(
            p(Method::POST, "/flags/new_auth"),
            Some(Ok(Write::SetFlag("new_auth".into())))
        );
        assert_eq!(p(Method::PUT, "/flags/x"), Some(Err(())));
        assert_eq!(p(Method::POST, "/routes/a/other"), None);
        assert_eq!(p(Method::POST, "/routes/%zz/override"), None);
        assert_eq!(p(Method::POST, "/other"), None);
    }

    #[test]
    fn override_weights() {
        assert_eq!(weight_bp(0.0), Some(0));
        assert_eq!(weight_bp(12.5), Some(1250));
        assert_eq!(weight_bp(100.0), Some(10_000));
        assert_eq!(weight_bp(100.5), None);
        assert_eq!(weight_bp(-1.0), None);
        assert_eq!(weight_bp(1.234), None);
        assert_eq!(weight_bp(f64::NAN), None);
    }
}
