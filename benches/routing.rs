//! Micro-benchmarks of the request path's pure parts: normalise, match, decide.
//! Run with `cargo bench --bench routing`.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

use std::fmt::Write;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use strangler::config::{self, Config};
use strangler::route::{self, RequestInfo, Router};

// The binary's allocator, so allocation costs what it costs in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A config with `n` routes `/svc{i}/api`, every third one sticky on a header.
fn config_with_routes(n: usize) -> Config {
    let mut text = String::from(
        "[backends.legacy]\nurl = \"http://127.0.0.1:3001\"\n[backends.new]\nurl = \"http://127.0.0.1:3002\"\n",
    );
    for i in 0..n {
        let _ = write!(text, "[[routes]]\npath = \"/svc{i}/api\"\nweight = 25\n");
        if i % 3 == 0 {
            text.push_str("sticky = \"header:x-user-id\"\n");
        }
    }
    config::parse(&text, Path::new("bench.toml")).expect("bench config is valid")
}

fn bench_decide(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("x-user-id", HeaderValue::from_static("user-12345"));
    for n in [10, 10_000] {
        let config = config_with_routes(n);
        let router = Router::new(&config.routes);
        let path = format!("/svc{}/api/orders/42", n / 2 - n / 2 % 3);
        let method = Method::GET;
        c.bench_function(&format!("decide/{n}-routes"), |b| {
            b.iter(|| {
                let info = RequestInfo {
                    method: &method,
                    path: black_box(&path),
                    query: None,
                    host: Some("api.example.com"),
                    headers: &headers,
                    client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                };
                let inputs = route::Inputs {
                    draw: 1234,
                    now: SystemTime::UNIX_EPOCH,
                };
                black_box(route::decide(&config, &router, &info, inputs, |_| {
                    route::RouteRuntime::default()
                }))
            })
        });
    }
}

fn bench_normalize(c: &mut Criterion) {
    c.bench_function("normalize/clean", |b| {
        b.iter(|| black_box(route::normalize_path(black_box("/api/v1/users/42/orders"))))
    });
    c.bench_function("normalize/dirty", |b| {
        b.iter(|| {
            black_box(route::normalize_path(black_box(
                "/api//v1/./users/%2e%2e/users/42",
            )))
        })
    });
}

fn bench_hash(c: &mut Criterion) {
    c.bench_function("sticky_bucket", |b| {
        b.iter(|| {
            black_box(route::sticky_bucket(
                black_box("checkout"),
                black_box(b"user-12345"),
            ))
        })
    });
}

criterion_group!(benches, bench_decide, bench_normalize, bench_hash);
criterion_main!(benches);
