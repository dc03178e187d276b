//! `[control]` (SPEC §3.10): the Redis a fleet of proxies shares its runtime
//! state through.

use super::ControlConfig;
use super::reader::{Problems, Table, Value, expect_bool, expect_str, field};

const CONTROL_KEYS: &[&str] = &["redis", "key_prefix", "fleet_statistics"];

/// `None` without `[control]` or without its `redis` key: every proxy keeps
/// its own runtime state.
pub(super) fn read_control(p: &mut Problems, root: &Table<'_, '_>) -> Option<ControlConfig> {
    let t = root.table(p, "control", "[control]".into());
    t.entries?;
    t.check_keys(p, CONTROL_KEYS);
    let redis = field(p, &t, "redis", redis_url);
    let key_prefix = field(p, &t, "key_prefix", |p, v| {
        let hint = "write a short namespace, like \"strangler:\" or \"shop-eu:\"";
        let s = expect_str(p, v, "a string", hint)?;
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            p.add(
                v.span().start,
                format!("key_prefix \"{s}\" must be non-empty and without spaces"),
                hint,
            );
            return None;
        }
        Some(s.to_owned())
    });
    let fleet_statistics = field(p, &t, "fleet_statistics", expect_bool).unwrap_or(true);
    Some(ControlConfig {
        redis: redis?,
        key_prefix: key_prefix.unwrap_or_else(|| "strangler:".into()),
        fleet_statistics,
    })
}

/// A `redis://` or `rediss://` URL the redis client accepts.
fn redis_url(p: &mut Problems, v: &Value<'_>) -> Option<String> {
    let hint =
        "write a URL like \"redis://redis:6379/0\" or \"rediss://:PASSWORD@redis.example:6380/0\"";
    let url = expect_str(p, v, "a redis:// or rediss:// URL", hint)?;
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    let parsed = scheme_ok.then(|| redis::Client::open(url));
    match parsed {
        Some(Ok(_)) => Some(url.to_owned()),
        Some(Err(e)) => {
            p.add(
                v.span().start,
                format!("invalid Redis URL \"{}\": {e}", redact(url)),
                hint,
            );
            None
        }
        None => {
            p.add(
                v.span().start,
                format!(
                    "invalid Redis URL \"{}\": the scheme must be redis or rediss",
                    redact(url)
                ),
                hint,
            );
            None
        }
    }
}

/// `url` with its password replaced by `***`, for `/config`, logs and
/// `check` (SPEC §3.10): `redis://user:secret@host` → `redis://user:***@host`,
/// `redis://secret@host` → `redis://***@host`.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}://{user}{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("rediss://:s3cret@redis:6380/0"),
            "rediss://:***@redis:6380/0"
        );
        assert_eq!(
            redact("redis://app:p@ss@redis/1?x=@"),
            "redis://app:***@redis/1?x=@"
        );
        assert_eq!(redact("redis://token@redis"), "redis://***@redis");
    }
}
