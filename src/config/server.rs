//! `[server]` and `[server.tls]`.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

use super::reader::{
    Problems, Table, Value, duration, expect_array, expect_bool, expect_str, field, file_path,
    int_in, optional_str, positive_duration, size, socket_addr,
};
use super::validate::{header_name, valid_env_name};
use super::{ServerConfig, TlsConfig};
use crate::cidr::Cidr;

const SERVER_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "admin_token_env",
    "debug_headers",
    "max_request_body",
    "max_header_size",
    "header_read_timeout",
    "idle_timeout",
    "max_connections",
    "workers",
    "shutdown_timeout",
    "trusted_proxies",
    "tls",
    "force_header",
    "state_file",
];

pub(super) fn read_server(p: &mut Problems, root: &Table<'_, '_>) -> ServerConfig {
    let t = root.table(p, "server", "[server]".into());
    t.check_keys(p, SERVER_KEYS);
    let connections_hint = "write a whole number of at least 1, like 10000";
    ServerConfig {
        listen: field(p, &t, "listen", socket_addr).unwrap_or(([0, 0, 0, 0], 8080).into()),
        admin_listen: field(p, &t, "admin_listen", socket_addr)
            .unwrap_or(([127, 0, 0, 1], 9901).into()),
        admin_token_env: field(p, &t, "admin_token_env", admin_token_env).flatten(),
        debug_headers: field(p, &t, "debug_headers", expect_bool).unwrap_or(true),
        max_request_body: field(p, &t, "max_request_body", size).unwrap_or(10 << 20),
        max_header_size: field(p, &t, "max_header_size", |p, v| {
            size_in(p, v, MIN_HEADER_SIZE, MAX_HEADER_SIZE)
        })
        .unwrap_or(64 << 10),
        header_read_timeout: field(p, &t, "header_read_timeout", positive_duration)
            .unwrap_or(Duration::from_secs(10)),
        idle_timeout: field(p, &t, "idle_timeout", positive_duration)
            .unwrap_or(Duration::from_secs(60)),
        max_connections: field(p, &t, "max_connections", |p, v| {
            int_in(p, v, 1, i64::from(u32::MAX), connections_hint)
        })
        .unwrap_or(10_000),
        workers: field(p, &t, "workers", |p, v| {
            int_in(
                p,
                v,
                0,
                1024,
                "write a number of threads, or 0 for one per core",
            )
        })
        .unwrap_or(0),
        shutdown_timeout: field(p, &t, "shutdown_timeout", duration)
            .unwrap_or(Duration::from_secs(30)),
        trusted_proxies: field(p, &t, "trusted_proxies", trusted_proxies).unwrap_or_default(),
        tls: read_tls(p, &t),
        force_header: field(p, &t, "force_header", force_header).flatten(),
        state_file: field(p, &t, "state_file", |p, v| {
            let hint =
                "write a file path, like \"/var/lib/strangler/state.json\", or \"\" for none";
            optional_str(p, v, hint).map(|s| s.map(PathBuf::from))
        })
        .flatten(),
    }
}

/// A header name, `""` meaning none.
fn force_header(p: &mut Problems, v: &Value<'_>) -> Option<Option<HeaderName>> {
    let hint = "write a header name, like \"x-strangler-force\", or \"\" for none";
    let Some(name) = optional_str(p, v, hint)? else {
        return Some(None);
    };
    match header_name(&name) {
        Some(header) => Some(Some(header)),
        None => {
            p.add(
                v.span().start,
                format!("invalid header name \"{name}\""),
                hint,
            );
            None
        }
    }
}

/// Bounds of `max_header_size`: hyper's head buffer needs at least 8 KiB, and
/// more than 1 MiB per connection is a memory lever for an attacker.
const MIN_HEADER_SIZE: u64 = 8 << 10;
const MAX_HEADER_SIZE: u64 = 1 << 20;

fn size_in(p: &mut Problems, v: &Value<'_>, min: u64, max: u64) -> Option<u64> {
    let n = size(p, v)?;
    if !(min..=max).contains(&n) {
        p.add(
            v.span().start,
            format!("size {n} is out of range"),
            format!(
                "write a size from {} KiB to {} KiB, like \"64KiB\"",
                min >> 10,
                max >> 10
            ),
        );
        return None;
    }
    Some(n)
}

/// `trusted_proxies`: a list of CIDRs (or single addresses).
fn trusted_proxies(p: &mut Problems, v: &Value<'_>) -> Option<Vec<Cidr>> {
    let hint = "write a list of CIDRs, like [\"10.0.0.0/8\", \"fd00::/8\"]";
    let items = expect_array(p, v, "a list of CIDRs", hint)?;
    let mut blocks = Vec::with_capacity(items.len());
    for item in items {
        let Some(s) = expect_str(p, item, "a CIDR string", hint) else {
            continue;
        };
        match Cidr::parse(s) {
            Ok(block) => blocks.push(block),
            Err(why) => p.add(item.span().start, format!("invalid CIDR \"{s}\""), why),
        }
    }
    Some(blocks)
}

/// The name of an environment variable, `""` meaning none.
fn admin_token_env(p: &mut Problems, v: &Value<'_>) -> Option<Option<String>> {
    let hint = "write the name of an environment variable, like \"STRANGLER_ADMIN_TOKEN\", or \"\" for none";
    let name = optional_str(p, v, hint)?;
    if let Some(n) = &name
        && !valid_env_name(n)
    {
        p.add(
            v.span().start,
            format!("\"{n}\" is not a valid environment variable name"),
            hint,
        );
        return None;
    }
    Some(name)
}

const TLS_KEYS: &[&str] = &["cert_file", "key_file"];

fn read_tls(p: &mut Problems, server: &Table<'_, '_>) -> Option<TlsConfig> {
    let t = server.table(p, "tls", "[server.tls]".into());
    t.entries?;
    t.check_keys(p, TLS_KEYS);
    let mut required = |key: &str, example: &str| {
        if t.get(key).is_none() {
            p.add(
                t.at,
                format!("[server.tls] has no {key}"),
                format!("add {key} = \"{example}\", or remove [server.tls] to serve plain HTTP"),
            );
        }
        field(p, &t, key, file_path)
    };
    let cert_file = required("cert_file", "/etc/strangler/tls.crt");
    let key_file = required("key_file", "/etc/strangler/tls.key");
    Some(TlsConfig {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}
