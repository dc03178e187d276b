//! `[routes.rate_limit]` (SPEC §3.8).

use http::HeaderName;
use toml::de::DeValue;

use super::reader::{Problems, Table, Value, expect_int, expect_str, field, wrong_type};
use super::{RateKey, RateLimitConfig};

const KEYS: &[&str] = &["rps", "burst", "key"];

/// The route's rate limit, `None` when it has none (or it is invalid: the
/// problem is recorded).
pub(super) fn read_rate_limit(p: &mut Problems, t: &Table<'_, '_>) -> Option<RateLimitConfig> {
    t.entries?;
    t.check_keys(p, KEYS);
    // SPEC §2: an omitted key means the value the example shows.
    let rps = match t.get("rps") {
        Some(v) => rps(p, v),
        None => Some(100.0),
    };
    let burst = match t.get("burst") {
        Some(v) => burst(p, v),
        None => Some(200),
    };
    let key = field(p, t, "key", key).unwrap_or(Some(RateKey::Ip));
    Some(RateLimitConfig {
        rps: rps?,
        burst: burst?,
        key: key?,
    })
}

fn rps(p: &mut Problems, v: &Value<'_>) -> Option<f64> {
    let hint = "write a number of requests per second above 0, like 100 or 0.5";
    let n = match v.get_ref() {
        DeValue::Integer(_) => expect_int(p, v, hint)? as f64,
        DeValue::Float(f) => f.as_str().parse::<f64>().ok()?,
        _ => {
            wrong_type(p, v, "a number", hint);
            return None;
        }
    };
    if !(n.is_finite() && n > 0.0 && n <= 1e9) {
        p.add(v.span().start, format!("rps {n} is out of range"), hint);
        return None;
    }
    Some(n)
}

fn burst(p: &mut Problems, v: &Value<'_>) -> Option<u32> {
    let hint = "write a whole number of requests of at least 1, like 200";
    let n = expect_int(p, v, hint)?;
    match u32::try_from(n) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            p.add(v.span().start, format!("burst {n} is out of range"), hint);
            None
        }
    }
}

/// `Some(None)`: present but invalid.
fn key(p: &mut Problems, v: &Value<'_>) -> Option<Option<RateKey>> {
    let hint = "write \"ip\", \"route\" or \"header:NAME\", like \"header:x-api-key\"";
    let s = expect_str(p, v, "a string", hint)?;
    let key = match s {
        "ip" => Some(RateKey::Ip),
        "route" => Some(RateKey::Route),
        _ => s
            .strip_prefix("header:")
            .and_then(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .map(RateKey::Header),
    };
    if key.is_none() {
        p.add(
            v.span().start,
            format!("invalid rate limit key \"{s}\""),
            hint,
        );
    }
    Some(key)
}
