//! `GET /routes` (SPEC §5): one object per route, with its weight and where
//! it comes from, its runtime state and its live statistics.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use super::rfc3339;
use crate::config::DEFAULT_ROUTE;
use crate::snapshot::{CompiledRoute, Snapshot};
use crate::stats::{FALLBACK_REASONS, RouteCounters, Summary, Window};

/// Every route in file order, then `_default`.
pub(super) fn routes(snapshot: &Snapshot) -> Value {
    let mut routes: Vec<Value> = snapshot
        .routes()
        .iter()
        .map(|route| route_json(snapshot, route))
        .collect();
    routes.push(default_route(snapshot));
    Value::Array(routes)
}

/// One route's object. `new_available` is true while the route's new
/// backend would be tried (half-open included).
pub(super) fn route_json(snapshot: &Snapshot, compiled: &CompiledRoute) -> Value {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let route = &compiled.config;
    let handles = &compiled.handles;
    let config = &snapshot.config;
    let runtime = handles.runtime();
    let flag = route.flag.as_ref().map(|(name, value)| {
        json!({
            "name": name,
            "value": runtime.flag_override.unwrap_or(*value),
        })
    });
    let ramp = route.ramp.as_ref().map(|ramp| {
        let step = ramp.step_at(wall);
        json!({
            "step": step,
            "steps": ramp.steps_bp.iter().map(|&bp| percent(bp)).collect::<Vec<_>>(),
            "weight": step.map(|k| percent(ramp.steps_bp[k])),
            "next_at": ramp.next_at(wall).map(rfc3339),
        })
    });
    let rollback = route.rollback.as_ref().map(|_| {
        let trip = handles.state.trip_info();
        json!({
            "state": if trip.is_some() { "tripped" } else { "armed" },
            "reason": trip.as_ref().map(|t| t.reason.clone()),
            "since": trip.as_ref().map(|t| rfc3339(t.since)),
        })
    });
    let stats = &handles.stats;
    json!({
        "name": route.name,
        "path": route.path,
        "weight": compiled.weight(wall).percent(),
        "file_weight": percent(route.weight_bp),
        "flag": flag,
        "override": override_json(compiled),
        "ramp": ramp,
        "rollback": rollback,
        "legacy": config.backend(route.legacy).name,
        "new": config.backend(route.new).name,
        "requests": requests(&handles.counters, true),
        "attempts": super::attempts_json(&handles.counters),
        "fallbacks": fallbacks(&handles.counters),
        // With fleet statistics and a connected Redis, the fleet's figures
        // (what the verdict uses; SPEC §3.10), otherwise this proxy's.
        "stats": match stats.fleet() {
            Some(fleet) => json!({
                "window": format!("{}s", stats.new.length().as_secs()),
                "scope": "fleet",
                "legacy": side_json(&fleet.legacy),
                "new": side_json(&fleet.new),
            }),
            None => json!({
                "window": format!("{}s", stats.new.length().as_secs()),
                "legacy": side(&stats.legacy, now),
                "new": side(&stats.new, now),
            }),
        },
        "new_available": snapshot.backend(route.new).health.available(now),
    })
}

/// `null`, or the route's weight override and its flag's override, with
/// when the latest was set.
fn override_json(compiled: &CompiledRoute) -> Value {
    let handles = &compiled.handles;
    let weight = handles.state.override_info();
    let flag = handles.flag.as_ref().and_then(|f| f.override_info());
    if weight.is_none() && flag.is_none() {
        return Value::Null;
    }
    let set_at = weight.map(|o| o.set_at).max(flag.map(|o| o.set_at));
    let mut object = json!({ "set_at": set_at.map(rfc3339) });
    if let Some(o) = weight {
        object["weight"] = json!(percent(o.value));
    }
    if let (Some(o), Some((name, _))) = (flag, &compiled.config.flag) {
        object["flag"] = json!({ "name": name, "value": o.value });
    }
    object
}

/// `_default`: legacy only, no runtime state.
fn default_route(snapshot: &Snapshot) -> Value {
    let config = &snapshot.config;
    let counters = &snapshot.handles(None).counters;
    json!({
        "name": DEFAULT_ROUTE,
        "path": null,
        "weight": 0.0,
        "file_weight": 0.0,
        "flag": null,
        "override": null,
        "ramp": null,
        "rollback": null,
        "legacy": config.backend(config.default_legacy).name,
        "new": null,
        "requests": requests(counters, false),
        "attempts": super::attempts_json(counters),
        "fallbacks": fallbacks(counters),
        "stats": null,
        "new_available": null,
    })
}

fn requests(counters: &RouteCounters, has_new: bool) -> Value {
    json!({
        "legacy": counters.legacy.load(Ordering::Relaxed),
        "new": if has_new { counters.new.load(Ordering::Relaxed) } else { 0 },
        "errors": counters.errors.load(Ordering::Relaxed),
        "new_failed": if has_new { counters.new_failures.load(Ordering::Relaxed) } else { 0 },
    })
}

/// `{"total": n, "status": n, "connect": n, ...}`.
fn fallbacks(counters: &RouteCounters) -> Value {
    let mut object = json!({ "total": counters.fallbacks.load(Ordering::Relaxed) });
    for (reason, count) in FALLBACK_REASONS.iter().zip(&counters.fallback_reasons) {
        object[*reason] = json!(count.load(Ordering::Relaxed));
    }
    object
}

/// One side's statistics: `{"attempts", "failures", "error_rate", "p50_ms", "p95_ms", "p99_ms"}`.
fn side(window: &Window, now: Instant) -> Value {
    side_json(&window.summary(now))
}

fn side_json(summary: &Summary) -> Value {
    let ms = |q| {
        summary
            .percentile(q)
            .map(|d| round2(d.as_secs_f64() * 1000.0))
    };
    json!({
        "attempts": summary.attempts,
        "failures": summary.failures,
        "error_rate": round2(summary.error_rate()),
        "p50_ms": ms(0.5),
        "p95_ms": ms(0.95),
        "p99_ms": ms(0.99),
    })
}

pub(super) fn percent(bp: u16) -> f64 {
    f64::from(bp) / 100.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
