//! `[routes.ramp]`, `[routes.rollback]` and `[defaults.rollback]` (SPEC §3.6).

use std::time::{Duration, SystemTime};

use toml::de::DeValue;

use super::reader::{
    Problems, Table, Value, expect_array, expect_int, field, int_in, positive_duration, wrong_type,
};
use super::validate;
use super::{RampConfig, RollbackConfig};

const RAMP_KEYS: &[&str] = &["steps", "every", "start"];
const ROLLBACK_KEYS: &[&str] = &["window", "min_requests", "max_error_rate", "max_p95"];

/// `[routes.ramp]`, when present: `steps`, `every` and `start` are all required.
pub(super) fn read_ramp(p: &mut Problems, t: &Table<'_, '_>) -> Option<RampConfig> {
    t.entries?;
    t.check_keys(p, RAMP_KEYS);
    let mut required = |key: &str, example: &str| {
        if t.get(key).is_none() {
            p.add(
                t.at,
                format!("[routes.ramp] has no {key}"),
                format!("add {key} = {example}"),
            );
        }
    };
    required("steps", "[10, 25, 50, 100]");
    required("every", "\"24h\"");
    required("start", "\"2026-12-01T09:00:00Z\"");
    let steps_bp = field(p, t, "steps", steps);
    let every = field(p, t, "every", positive_duration);
    let start = field(p, t, "start", start_time);
    Some(RampConfig {
        steps_bp: steps_bp?,
        every: every?,
        start: start?,
    })
}

/// Non-empty, each a weight, in non-decreasing order.
fn steps(p: &mut Problems, v: &Value<'_>) -> Option<Vec<u16>> {
    let hint = "write the weights in order, like [10, 25, 50, 100]";
    let items = expect_array(p, v, "an array of weights", hint)?;
    if items.is_empty() {
        p.add(v.span().start, "the ramp has no steps", hint);
        return None;
    }
    // Read every item before giving up, so each bad one is reported.
    let weights: Vec<Option<u16>> = items.iter().map(|item| weight(p, item)).collect();
    let weights: Vec<u16> = weights.into_iter().collect::<Option<_>>()?;
    if let Some(i) = weights.windows(2).position(|w| w[1] < w[0]) {
        p.add(
            items[i + 1].span().start,
            format!(
                "ramp step {} is below the step before it ({} < {})",
                i + 2,
                percent(weights[i + 1]),
                percent(weights[i])
            ),
            "a ramp only raises the weight: list the steps in non-decreasing order",
        );
        return None;
    }
    Some(weights)
}

fn percent(bp: u16) -> f64 {
    f64::from(bp) / 100.0
}

/// A weight in percent (`0..=100`, up to 2 decimals) as basis points; also
/// `weight` of a route.
pub(super) fn weight(p: &mut Problems, v: &Value<'_>) -> Option<u16> {
    let hint = "write a percentage from 0 to 100 with at most 2 decimals, like 25 or 12.5";
    let percent = number(p, v, hint)?;
    validate::weight_bp(percent)
        .map_err(|message| p.add(v.span().start, message, hint))
        .ok()
}

/// An integer or a float.
fn number(p: &mut Problems, v: &Value<'_>, hint: &str) -> Option<f64> {
    match v.get_ref() {
        DeValue::Integer(_) => Some(expect_int(p, v, hint)? as f64),
        DeValue::Float(f) => Some(
            f.as_str()
                .replace('_', "")
                .parse::<f64>()
                .unwrap_or(f64::NAN),
        ),
        _ => {
            wrong_type(p, v, "a number", hint);
            None
        }
    }
}

/// An RFC 3339 time, as a string or a TOML datetime: `2026-12-01T09:00:00Z`
/// or with an offset, `2026-12-01T10:00:00+01:00`.
fn start_time(p: &mut Problems, v: &Value<'_>) -> Option<SystemTime> {
    let hint = "write an RFC 3339 time with its zone, like \"2026-12-01T09:00:00Z\"";
    let text = match v.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        _ => {
            wrong_type(p, v, "an RFC 3339 time string", hint);
            return None;
        }
    };
    validate::rfc3339(&text)
        .map_err(|why| {
            p.add(
                v.span().start,
                format!("invalid start \"{text}\": {why}"),
                hint,
            )
        })
        .ok()
}

/// The keys a rollback table sets; applied key by key over `[defaults.rollback]`.
#[derive(Default)]
pub(super) struct RollbackPatch {
    /// The table was written (even empty): the route has a rollback.
    present: bool,
    window: Option<Duration>,
    min_requests: Option<u64>,
    max_error_rate: Option<f64>,
    max_p95: Option<Duration>,
}

impl RollbackPatch {
    /// `base` with this table's keys over it; `None` when neither has a table.
    pub(super) fn over(&self, base: Option<RollbackConfig>) -> Option<RollbackConfig> {
        if !self.present {
            return base;
        }
        let mut config = base.unwrap_or_default();
        if let Some(v) = self.window {
            config.window = v;
        }
        if let Some(v) = self.min_requests {
            config.min_requests = v;
        }
        if let Some(v) = self.max_error_rate {
            config.max_error_rate = v;
        }
        if let Some(v) = self.max_p95 {
            config.max_p95 = Some(v);
        }
        Some(config)
    }
}

pub(super) fn read_rollback(p: &mut Problems, t: &Table<'_, '_>) -> RollbackPatch {
    if t.entries.is_none() {
        return RollbackPatch::default();
    }
    t.check_keys(p, ROLLBACK_KEYS);
    let rate_hint = "write a percentage of failed attempts from 0 to 100, like 5 or 2.5";
    RollbackPatch {
        present: true,
        window: field(p, t, "window", positive_duration),
        min_requests: field(p, t, "min_requests", |p, v| {
            let hint = "write a whole number of attempts, like 20";
            int_in(p, v, 1, i64::from(u32::MAX), hint).map(|n| n as u64)
        }),
        max_error_rate: field(p, t, "max_error_rate", |p, v| {
            let rate = number(p, v, rate_hint)?;
            if !(0.0..=100.0).contains(&rate) {
                p.add(
                    v.span().start,
                    format!("max_error_rate {rate} is out of range 0..=100"),
                    rate_hint,
                );
                return None;
            }
            Some(rate)
        }),
        max_p95: field(p, t, "max_p95", positive_duration),
    }
}
