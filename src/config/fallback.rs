//! `[defaults.fallback]` and `[routes.fallback]`.

use http::Method;
use toml::de::DeValue;

use super::reader::{Problems, Table, Value, expect_array, expect_bool, field, int_in, size};
use super::routes::method;
use super::validate::{MAX_STATUS, MIN_STATUS, status_set};
use super::{FallbackConfig, MethodSet};

const FALLBACK_KEYS: &[&str] = &[
    "enabled",
    "on_status",
    "on_connect_error",
    "on_timeout",
    "on_reset",
    "replay_methods",
    "max_body",
    "hold_response",
];

/// The keys a fallback table sets; applied key by key over the inherited values.
#[derive(Default)]
pub(super) struct FallbackPatch {
    enabled: Option<bool>,
    on_status: Option<Vec<u16>>,
    on_connect_error: Option<bool>,
    on_timeout: Option<bool>,
    on_reset: Option<bool>,
    replay_methods: Option<MethodSet>,
    max_body: Option<u64>,
    hold_response: Option<u64>,
}

impl FallbackPatch {
    pub(super) fn apply(&self, base: &mut FallbackConfig) {
        if let Some(v) = self.enabled {
            base.enabled = v;
        }
        if let Some(v) = &self.on_status {
            base.on_status.clone_from(v);
        }
        if let Some(v) = self.on_connect_error {
            base.on_connect_error = v;
        }
        if let Some(v) = self.on_timeout {
            base.on_timeout = v;
        }
        if let Some(v) = self.on_reset {
            base.on_reset = v;
        }
        if let Some(v) = self.hold_response {
            base.hold_response = v;
        }
        if let Some(v) = &self.replay_methods {
            base.replay_methods = v.clone();
        }
        if let Some(v) = self.max_body {
            base.max_body = v;
        }
    }
}

pub(super) fn read_fallback(p: &mut Problems, t: &Table<'_, '_>) -> FallbackPatch {
    t.check_keys(p, FALLBACK_KEYS);
    FallbackPatch {
        enabled: field(p, t, "enabled", expect_bool),
        on_status: field(p, t, "on_status", statuses),
        on_connect_error: field(p, t, "on_connect_error", expect_bool),
        on_timeout: field(p, t, "on_timeout", expect_bool),
        on_reset: field(p, t, "on_reset", expect_bool),
        replay_methods: field(p, t, "replay_methods", replay_methods),
        max_body: field(p, t, "max_body", size),
        hold_response: field(p, t, "hold_response", size),
    }
}

/// Sorted, deduplicated statuses in `100..=599`.
fn statuses(p: &mut Problems, v: &Value<'_>) -> Option<Vec<u16>> {
    let hint = "write a list of HTTP statuses from 100 to 599, like [502, 503, 504]";
    let items = expect_array(p, v, "an array of statuses", hint)?;
    // Read every item before giving up, so each bad one is reported.
    let statuses: Vec<Option<u16>> = items
        .iter()
        .map(|item| int_in(p, item, MIN_STATUS, MAX_STATUS, hint).map(|n| n as u16))
        .collect();
    statuses.into_iter().collect::<Option<_>>().map(status_set)
}

pub(super) fn replay_methods(p: &mut Problems, v: &Value<'_>) -> Option<MethodSet> {
    let hint = "write a list of methods like [\"GET\", \"PUT\"], or [\"*\"] for every method";
    let items = expect_array(p, v, "an array of method names", hint)?;
    let is_star = |item: &Value<'_>| matches!(item.get_ref(), DeValue::String(s) if s == "*");
    if let Some(star) = items.iter().find(|i| is_star(i)) {
        if items.len() > 1 {
            p.add(
                star.span().start,
                "\"*\" already means every method",
                "write [\"*\"] alone, or list the methods",
            );
            return None;
        }
        return Some(MethodSet::Any);
    }
    // Read every item before giving up, so each bad one is reported.
    let methods: Vec<Option<Method>> = items.iter().map(|item| method(p, item)).collect();
    let mut methods: Vec<Method> = methods.into_iter().collect::<Option<_>>()?;
    methods.dedup();
    Some(MethodSet::List(methods))
}
