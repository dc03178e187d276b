//! Micro-benchmarks of the wave-2 parts of the request path: the statistics
//! window's update, the request body's copy (kept for a replay) and the
//! rate-limit check. Run with `cargo bench --bench hotspots`.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use strangler::bench_support::{self, RateLimiter, Window};
use strangler::config::{RateKey, RateLimitConfig};
use tokio::sync::Semaphore;

// The binary's allocator, so allocation costs what it costs in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One attempt counted in a 60 s window, as every answered request on a route
/// with live statistics does; and the summary a verdict reads.
fn bench_window(c: &mut Criterion) {
    let origin = Instant::now();
    let window = Window::new(Duration::from_secs(60), origin);
    let now = origin + Duration::from_millis(1500);
    window.record(now, false, Some(Duration::from_micros(900)));
    c.bench_function("window/record", |b| {
        b.iter(|| window.record(black_box(now), false, Some(Duration::from_micros(900))))
    });
    c.bench_function("window/record_failure_no_answer", |b| {
        b.iter(|| window.record(black_box(now), true, None))
    });
    c.bench_function("window/summary", |b| {
        b.iter(|| black_box(window.summary(black_box(now))))
    });
}

/// A request body streamed to the first backend with its copy kept (the
/// route can fall back), against the same body read without a copy; and the
/// copy sent again, as a fallback to legacy does.
fn bench_copy(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let budget = Arc::new(Semaphore::new(256 << 20));
    let mut group = c.benchmark_group("copy");
    for (size, chunk) in [
        (1024usize, 1024usize),
        (64 << 10, 16 << 10),
        (1 << 20, 16 << 10),
    ] {
        let chunks: Vec<Bytes> = (0..size / chunk)
            .map(|i| Bytes::from(vec![i as u8; chunk]))
            .collect();
        group.bench_with_input(BenchmarkId::new("no_copy", size), &chunks, |b, chunks| {
            b.iter(|| {
                runtime.block_on(async {
                    let frames = chunks
                        .iter()
                        .map(|c| {
                            Ok::<_, std::convert::Infallible>(http_body::Frame::data(c.clone()))
                        })
                        .collect::<Vec<_>>();
                    let body = strangler::body::boxed(http_body_util::StreamBody::new(
                        futures_util::stream::iter(frames),
                    ));
                    black_box(bench_support::drain(body).await)
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("tee", size), &chunks, |b, chunks| {
            b.iter(|| runtime.block_on(bench_support::copy_body(chunks, 1 << 20, &budget, false)))
        });
        group.bench_with_input(
            BenchmarkId::new("tee_and_resend", size),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    runtime.block_on(bench_support::copy_body(chunks, 1 << 20, &budget, true))
                })
            },
        );
    }
    group.finish();
}

/// One token taken from a bucket: the same key each time (a hot client), and
/// keys spread over 10,000 clients (the map at its working size).
fn bench_ratelimit(c: &mut Criterion) {
    let config = RateLimitConfig {
        rps: 1e9,
        burst: 1_000_000,
        key: RateKey::Ip,
    };
    let limiter = RateLimiter::default();
    let now = Instant::now();
    c.bench_function("ratelimit/take/one_key", |b| {
        b.iter(|| black_box(limiter.take(&config, black_box(b"10.0.0.1"), now)))
    });
    let keys: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256).into_bytes())
        .collect();
    let limiter = RateLimiter::default();
    for key in &keys {
        let _ = limiter.take(&config, key, now);
    }
    let mut i = 0;
    c.bench_function("ratelimit/take/10k_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(limiter.take(&config, &keys[i], now))
        })
    });
}

criterion_group!(benches, bench_window, bench_copy, bench_ratelimit);
criterion_main!(benches);
