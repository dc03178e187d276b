//! The cost of a reload of a large route file: parse and validate the TOML,
//! then compile the snapshot (backends reused, route handles carried over,
//! the router built), as `reload::build` does on every reload. Run with
//! `cargo bench --bench reload`; the target is under 50 ms at 10,000
//! routes.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use strangler::config;
use strangler::route::Router;
use strangler::snapshot::Snapshot;

// The binary's allocator, so allocation costs what it costs in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A config file with `n` routes `/svc{i}/api`, a mix of what real files
/// hold: every third weighted and sticky (the others all-legacy or all-new:
/// a partial weight without a sticky key draws a warning), every fifth with
/// a method condition, every seventh with a fallback table.
fn file_with_routes(n: usize) -> String {
    let mut text = String::from(
        "[backends.legacy]\nurl = \"http://127.0.0.1:3001\"\n[backends.new]\nurl = \"http://127.0.0.1:3002\"\n",
    );
    for i in 0..n {
        let weight = if i % 3 == 0 { i % 101 } else { i % 2 * 100 };
        let _ = write!(
            text,
            "\n[[routes]]\npath = \"/svc{i}/api\"\nweight = {weight}\n"
        );
        if i % 3 == 0 {
            text.push_str("sticky = \"header:x-user-id\"\n");
        }
        if i % 5 == 0 {
            text.push_str("methods = [\"GET\", \"POST\"]\n");
        }
        if i % 7 == 0 {
            text.push_str("[routes.fallback]\non_status = [502, 503]\n");
        }
    }
    text
}

fn bench_reload(c: &mut Criterion) {
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for n in [1_000, 10_000] {
        let text = file_with_routes(n);
        let path = Path::new("bench.toml");
        let old = Snapshot::new(config::parse(&text, path).unwrap(), None).unwrap();
        group.bench_with_input(BenchmarkId::new("parse", n), &text, |b, text| {
            b.iter(|| config::parse(text, path).unwrap())
        });
        let parsed = config::parse(&text, path).unwrap();
        group.bench_with_input(BenchmarkId::new("router", n), &parsed, |b, parsed| {
            b.iter(|| Router::new(&parsed.routes))
        });
        group.bench_with_input(BenchmarkId::new("compile", n), &parsed, |b, parsed| {
            b.iter(|| Snapshot::new(parsed.clone(), Some(&old)).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("parse_and_compile", n),
            &text,
            |b, text| {
                b.iter(|| Snapshot::new(config::parse(text, path).unwrap(), Some(&old)).unwrap())
            },
        );
        // What a reload also pays once the last request holding the old
        // snapshot lets go of it.
        group.bench_with_input(BenchmarkId::new("drop", n), &parsed, |b, parsed| {
            b.iter_batched(
                || Snapshot::new(parsed.clone(), Some(&old)).unwrap(),
                drop,
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_reload);
criterion_main!(benches);
