//! `[backends.NAME]`.

use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme};

use super::reader::{
    Problems, Table, Value, expect_bool, expect_str, expect_table, field, int_in, optional_str,
    positive_duration, suggest,
};
use super::validate::{self, BackendUrl, valid_backend_name, valid_hostname};
use super::{BackendConfig, BackendId, HealthConfig, OutlierConfig, PoolConfig, Protocol};

const BACKEND_KEYS: &[&str] = &[
    "url",
    "connect_timeout",
    "timeout",
    "preserve_host",
    "protocol",
    "ca_file",
    "tls_server_name",
    "tls_insecure_skip_verify",
    "max_connections",
    "max_idle",
    "idle_timeout",
    "outlier",
    "health",
];
const OUTLIER_KEYS: &[&str] = &["consecutive_failures", "ejection", "max_ejection"];
const HEALTH_KEYS: &[&str] = &[
    "path",
    "interval",
    "timeout",
    "unhealthy_after",
    "healthy_after",
];

/// Backend names → ids, with "did you mean" for unknown names.
#[derive(Clone, Copy)]
pub(super) struct BackendNames<'a>(pub(super) &'a [BackendConfig]);

impl BackendNames<'_> {
    pub(super) fn find(&self, name: &str) -> Option<BackendId> {
        self.0
            .iter()
            .position(|b| b.name == name)
            .map(BackendId::new)
    }

    pub(super) fn hint_for(&self, name: &str) -> String {
        let defined: Vec<&str> = self.0.iter().map(|b| b.name.as_str()).collect();
        let otherwise = if defined.is_empty() {
            format!("define it: [backends.{name}] with url = \"http://host:port\"")
        } else {
            format!(
                "define it with [backends.{name}] and a url, or use one of: {}",
                defined.join(", ")
            )
        };
        suggest(name, defined.iter().copied(), otherwise)
    }
}

pub(super) fn read_backends(p: &mut Problems, root: &Table<'_, '_>) -> Vec<BackendConfig> {
    let t = root.table(p, "backends", "[backends]".into());
    t.entries()
        .into_iter()
        .map(|(name, at, v)| read_backend(p, name, at, v))
        .collect()
}

/// Always returns a backend so ids stay aligned with names; a broken one has
/// placeholder fields and its problems recorded.
fn read_backend(p: &mut Problems, name: &str, name_at: usize, v: &Value<'_>) -> BackendConfig {
    if !valid_backend_name(name) {
        p.add(
            name_at,
            format!("invalid backend name \"{name}\""),
            "use letters, digits, '-', '_' and '.', like [backends.legacy]",
        );
    }
    let table_name = format!("[backends.{name}]");
    let hint = format!("write it as a table: {table_name} with url = \"http://host:port\"");
    let t = Table {
        at: v.span().start,
        entries: expect_table(p, v, &hint),
        name: table_name,
    };
    t.check_keys(p, BACKEND_KEYS);

    let url = match t.get("url") {
        Some(v) => backend_url(p, v),
        None => {
            if t.entries.is_some() {
                p.add(
                    t.at,
                    format!("backend \"{name}\" has no url"),
                    "add url = \"http://host:port\" to it",
                );
            }
            None
        }
    };
    let (url, parsed) = url.unwrap_or_else(|| {
        let placeholder = BackendUrl {
            scheme: Scheme::HTTP,
            authority: Authority::from_static("invalid"),
            path_prefix: String::new(),
        };
        (String::new(), placeholder)
    });
    let server_name_hint =
        "write a host name, like \"api.internal\", or \"\" to use the URL's host";
    let pool = read_pool(p, &t);
    BackendConfig {
        pool,
        name: name.to_owned(),
        url,
        scheme: parsed.scheme,
        authority: parsed.authority,
        path_prefix: parsed.path_prefix,
        connect_timeout: field(p, &t, "connect_timeout", positive_duration)
            .unwrap_or(Duration::from_secs(2)),
        timeout: field(p, &t, "timeout", positive_duration).unwrap_or(Duration::from_secs(30)),
        preserve_host: field(p, &t, "preserve_host", expect_bool).unwrap_or(true),
        protocol: field(p, &t, "protocol", protocol).unwrap_or(Protocol::Auto),
        ca_file: field(p, &t, "ca_file", |p, v| {
            optional_str(
                p,
                v,
                "write the path of a PEM file, or \"\" for the default roots",
            )
        })
        .flatten()
        .map(PathBuf::from),
        tls_server_name: field(p, &t, "tls_server_name", |p, v| {
            let name = optional_str(p, v, server_name_hint)?;
            if let Some(n) = &name
                && valid_hostname(&n.to_ascii_lowercase()).is_err()
            {
                p.add(
                    v.span().start,
                    format!("invalid TLS server name \"{n}\""),
                    server_name_hint,
                );
                return None;
            }
            Some(name)
        })
        .flatten(),
        tls_insecure_skip_verify: field(p, &t, "tls_insecure_skip_verify", expect_bool)
            .unwrap_or(false),
        outlier: {
            let outlier = t.table(p, "outlier", format!("[backends.{name}.outlier]"));
            read_outlier(p, &outlier)
        },
        health: t.get("health").is_some().then(|| {
            let health = t.table(p, "health", format!("[backends.{name}.health]"));
            read_health(p, &health)
        }),
    }
}

fn read_outlier(p: &mut Problems, t: &Table<'_, '_>) -> OutlierConfig {
    t.check_keys(p, OUTLIER_KEYS);
    let default = OutlierConfig::default();
    let hint = "write a count of failures in a row, or 0 to turn ejection off";
    let outlier = OutlierConfig {
        consecutive_failures: field(p, t, "consecutive_failures", |p, v| {
            int_in(p, v, 0, 1_000_000, hint)
        })
        .map_or(default.consecutive_failures, |n| n as u32),
        ejection: field(p, t, "ejection", positive_duration).unwrap_or(default.ejection),
        max_ejection: field(p, t, "max_ejection", positive_duration)
            .unwrap_or(default.max_ejection),
    };
    if outlier.max_ejection < outlier.ejection {
        p.add(
            t.at,
            format!("max_ejection is shorter than ejection in {}", t.name),
            "make max_ejection at least as long as ejection",
        );
    }
    outlier
}

fn read_health(p: &mut Problems, t: &Table<'_, '_>) -> HealthConfig {
    t.check_keys(p, HEALTH_KEYS);
    let count = "write a count of checks in a row, from 1";
    let path_hint = "write an absolute path, like \"/health\"";
    let path = field(p, t, "path", |p, v| {
        let s = expect_str(p, v, "a path string", path_hint)?;
        if !s.starts_with('/') || http::uri::PathAndQuery::try_from(s).is_err() {
            p.add(
                v.span().start,
                format!("invalid health path \"{s}\""),
                path_hint,
            );
            return None;
        }
        Some(s.to_owned())
    });
    HealthConfig {
        path: path.unwrap_or_else(|| "/health".to_owned()),
        interval: field(p, t, "interval", positive_duration).unwrap_or(Duration::from_secs(5)),
        timeout: field(p, t, "timeout", positive_duration).unwrap_or(Duration::from_secs(1)),
        unhealthy_after: field(p, t, "unhealthy_after", |p, v| int_in(p, v, 1, 1000, count))
            .map_or(3, |n| n as u32),
        healthy_after: field(p, t, "healthy_after", |p, v| int_in(p, v, 1, 1000, count))
            .map_or(2, |n| n as u32),
    }
}

fn protocol(p: &mut Problems, v: &Value<'_>) -> Option<Protocol> {
    let hint = "write \"http1\", \"http2\" or \"auto\"";
    match expect_str(p, v, "a string", hint)? {
        "http1" => Some(Protocol::Http1),
        "http2" => Some(Protocol::Http2),
        "auto" => Some(Protocol::Auto),
        other => {
            let hint = suggest(other, ["http1", "http2", "auto"], hint.to_owned());
            p.add(
                v.span().start,
                format!("unknown protocol \"{other}\""),
                hint,
            );
            None
        }
    }
}

/// The URL as written, and parsed.
fn backend_url(p: &mut Problems, v: &Value<'_>) -> Option<(String, BackendUrl)> {
    let hint = "write an http or https URL with a host, like \"http://127.0.0.1:3001\"";
    let s = expect_str(p, v, "a URL string", hint)?;
    match validate::backend_url(s) {
        Ok(parsed) => Some((s.to_owned(), parsed)),
        Err(why) => {
            let message = format!("invalid backend url \"{s}\": {why}");
            p.add(v.span().start, message, hint);
            None
        }
    }
}

/// `max_connections`, `max_idle` and `idle_timeout` of `[backends.NAME]`.
fn read_pool(p: &mut Problems, t: &Table<'_, '_>) -> PoolConfig {
    let defaults = PoolConfig::default();
    let count = |p: &mut Problems, v: &Value<'_>, hint: &str| int_in(p, v, 0, 1_000_000, hint);
    PoolConfig {
        max_connections: field(p, t, "max_connections", |p, v| {
            count(
                p,
                v,
                "write a number of connections, like 1024, or 0 for no cap",
            )
        })
        .unwrap_or(defaults.max_connections),
        max_idle: field(p, t, "max_idle", |p, v| {
            count(p, v, "write a number of idle connections to keep, like 64")
        })
        .unwrap_or(defaults.max_idle),
        idle_timeout: field(p, t, "idle_timeout", positive_duration)
            .unwrap_or(defaults.idle_timeout),
    }
}
