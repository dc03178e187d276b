//! The admin API (SPEC §5) and the metrics it exposes (SPEC §7).
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use http_body_util::Full;
use serde_json::{Value, json};
use support::{
    Answer, Binary, TestBackend, TestProxy, backends_with, config_with, config_with_server, get,
    request, send,
};

async fn post(url: &str) -> Answer {
    ask("POST", url, None).await
}

/// `method url`, with `authorization` when given.
async fn ask(method: &str, url: &str, authorization: Option<&str>) -> Answer {
    let mut builder = request(method, url);
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    send(builder.body(Full::default()).unwrap()).await
}

fn is_rfc3339_utc(s: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SS, then fraction and offset or Z.
    let b = s.as_bytes();
    b.len() >= 20
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}

// === health, readiness, config ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_unknown_paths() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), "")).await;

    let health = get(&proxy.admin_url("/healthz")).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.text().trim(), "ok");
    assert_eq!(get(&proxy.admin_url("/readyz")).await.status, 200);

    let unknown = get(&proxy.admin_url("/nope")).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"].is_string(), "{}", unknown.text());
    // The admin API is not the proxy: its paths are not forwarded.
    assert_eq!(legacy.count() + new.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_version_generation_and_path() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let text = config_with(&legacy.url(), &new.url(), "");
    let proxy = TestProxy::start(&text).await;

    let answer = get(&proxy.admin_url("/config")).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        answer.headers
    );
    let config = answer.json();
    let version = config["version"].as_str().unwrap();
    assert_eq!(version.len(), 64);
    assert!(
        version
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(version, support::sha256_hex(text.as_bytes()));
    assert_eq!(config["generation"], 1);
    let loaded_at = config["loaded_at"].as_str().unwrap();
    assert!(is_rfc3339_utc(loaded_at), "loaded_at {loaded_at:?}");
    assert_eq!(config["path"], proxy.path.display().to_string());
    assert_eq!(config["last_error"], Value::Null);
    assert_eq!(config["overrides"], json!({"routes": {}, "flags": {}}));
    let keys: BTreeSet<&str> = config
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "version",
            "generation",
            "loaded_at",
            "path",
            "last_error",
            "overrides",
            "last_error_at",
            "restart_required",
        ])
    );
}

// === routes ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_list_effective_weights_flags_and_counts() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let rest = r#"
[flags]
on = true
off = false

[[routes]]
name = "old"
path = "/old"
weight = 0

[[routes]]
name = "moved"
path = "/moved"
weight = 100

[[routes]]
name = "flag-on"
path = "/on"
flag = "on"
weight = 100

[[routes]]
name = "flag-off"
path = "/off"
flag = "off"
weight = 100

[[routes]]
path = "/half"
weight = 12.5
"#;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), rest)).await;
    let sent = [("/old/a", 3), ("/moved/b", 2), ("/on", 4), ("/off/x", 5)];
    for (path, times) in sent {
        for _ in 0..times {
            assert_eq!(get(&proxy.url(path)).await.status, 200);
        }
    }

    let answer = get(&proxy.admin_url("/routes")).await;
    assert_eq!(answer.status, 200);
    let routes = answer.json();
    let routes = routes.as_array().unwrap();
    let by_name = |name: &str| {
        routes
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no route {name} in {routes:?}"))
            .clone()
    };
    let requests = |route: &Value| {
        (
            route["requests"]["legacy"].clone(),
            route["requests"]["new"].clone(),
        )
    };

    let old = by_name("old");
    assert_eq!(old["path"], "/old");
    assert_eq!(old["weight"], 0.0);
    assert_eq!(old["flag"], Value::Null);
    assert_eq!(old["legacy"], "legacy");
    assert_eq!(old["new"], "new");
    assert_eq!(requests(&old), (json!(3), json!(0)));

    let moved = by_name("moved");
    assert_eq!(moved["weight"], 100.0);
    assert_eq!(requests(&moved), (json!(0), json!(2)));

    let on = by_name("flag-on");
    assert_eq!(on["weight"], 100.0);
    assert_eq!(on["flag"], json!({"name": "on", "value": true}));
    assert_eq!(requests(&on), (json!(0), json!(4)));

    // A false flag sends everything to legacy: its effective weight is 0.
    let off = by_name("flag-off");
    assert_eq!(off["weight"], 0.0);
    assert_eq!(off["flag"], json!({"name": "off", "value": false}));
    assert_eq!(requests(&off), (json!(5), json!(0)));

    // The name defaults to the path; fractional weights survive.
    let half = by_name("/half");
    assert_eq!(half["path"], "/half");
    assert_eq!(half["weight"], 12.5);
    assert_eq!(requests(&half), (json!(0), json!(0)));

    for name in ["old", "moved", "flag-on", "flag-off", "/half"] {
        let route = by_name(name);
        for key in [
            "name", "path", "weight", "flag", "legacy", "new", "requests",
        ] {
            assert!(
                route.get(key).is_some(),
                "route {name} has no {key}: {route}"
            );
        }
    }
    assert_eq!(legacy.count(), 3 + 5);
    assert_eq!(new.count(), 2 + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_counts_survive_a_reload() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let routes = |weight| format!("[[routes]]\nname = \"r\"\npath = \"/r\"\nweight = {weight}\n");
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), &routes(0))).await;
    for _ in 0..3 {
        get(&proxy.url("/r")).await;
    }
    get(&proxy.url("/other")).await;
    std::fs::write(
        &proxy.path,
        config_with(&legacy.url(), &new.url(), &routes(100)),
    )
    .unwrap();
    assert_eq!(post(&proxy.admin_url("/reload")).await.status, 200);
    for _ in 0..2 {
        get(&proxy.url("/r")).await;
    }

    let routes = get(&proxy.admin_url("/routes")).await.json();
    let route = |name: &str| {
        routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(route("r")["weight"], 100.0);
    assert_eq!(route("r")["requests"]["legacy"], 3);
    assert_eq!(route("r")["requests"]["new"], 2);
    assert_eq!(route("_default")["requests"]["legacy"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_are_refused() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), "")).await;
    // GET must not reload: a crawler or a prefetch would otherwise reload.
    let answer = get(&proxy.admin_url("/reload")).await;
    assert!(answer.status.is_client_error(), "{}", answer.status);
    assert_ne!(answer.status, 200);
    assert_eq!(post(&proxy.admin_url("/config")).await.status, 405);
    let config = get(&proxy.admin_url("/config")).await.json();
    assert_eq!(config["generation"], 1);
}

// === metrics ===

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format: `name{l="v",...} value`, `#` lines
/// skipped. Panics on a line it cannot read.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(parse_sample)
        .collect()
}

fn parse_sample(line: &str) -> Sample {
    let bytes = line.as_bytes();
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    let mut labels = BTreeMap::new();
    let mut i = name_end;
    if bytes[i] == b'{' {
        i += 1;
        // `key="value"` pairs, comma-separated; values may hold escapes.
        while bytes[i] != b'}' {
            if bytes[i] == b',' {
                i += 1;
                continue;
            }
            let eq = i + line[i..]
                .find("=\"")
                .unwrap_or_else(|| panic!("bad label: {line:?}"));
            let key = line[i..eq].to_owned();
            i = eq + 2;
            let mut value = String::new();
            while bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    value.push(if bytes[i + 1] == b'n' {
                        '\n'
                    } else {
                        char::from(bytes[i + 1])
                    });
                    i += 2;
                } else {
                    let c = line[i..].chars().next().unwrap();
                    value.push(c);
                    i += c.len_utf8();
                }
            }
            i += 1;
            assert!(
                labels.insert(key, value).is_none(),
                "repeated label: {line:?}"
            );
        }
        i += 1;
    }
    let value = line[i..]
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    Sample {
        name: line[..name_end].to_owned(),
        labels,
        value: value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line:?}")),
    }
}

async fn metrics(admin: SocketAddr) -> Vec<Sample> {
    let answer = get(&format!("http://{admin}/metrics")).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        answer.headers
    );
    parse_prometheus(&answer.text())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The value of the sample `name{pairs}`; panics when it is not there.
fn value(samples: &[Sample], name: &str, pairs: &[(&str, &str)]) -> f64 {
    let wanted = labels(pairs);
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .unwrap_or_else(|| panic!("no sample {name}{wanted:?}"))
        .value
}

/// Every sample of `name`, as (labels, value).
fn family(samples: &[Sample], name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| (s.labels.clone(), s.value))
        .collect()
}

fn label_names(samples: &[Sample], name: &str) -> BTreeSet<Vec<String>> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.labels.keys().cloned().collect())
        .collect()
}

#[test]
fn the_parser_reads_what_prometheus_writes() {
    let samples = parse_prometheus(
        "# HELP x_total X.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"u,o}te\"} 3\nup 1\nh_bucket{le=\"+Inf\"} 2.5\n# EOF\n",
    );
    assert_eq!(
        samples,
        vec![
            Sample {
                name: "x_total".into(),
                labels: labels(&[("a", "1"), ("b", "q\"u,o}te")]),
                value: 3.0
            },
            Sample {
                name: "up".into(),
                labels: BTreeMap::new(),
                value: 1.0
            },
            Sample {
                name: "h_bucket".into(),
                labels: labels(&[("le", "+Inf")]),
                value: 2.5
            },
        ]
    );
}

/// A backend named and answering `name`: `status` under `prefix`, else 200.
async fn failing_under(name: &str, prefix: &'static str, status: u16) -> TestBackend {
    TestBackend::answering(name, name.to_owned(), move |uri| {
        if uri.starts_with(prefix) { status } else { 200 }
    })
    .await
}

/// A legacy backend answering 404 under `/missing`, else 200.
async fn legacy_with_404() -> TestBackend {
    failing_under("legacy", "/missing", 404).await
}

/// A new backend answering 503 under `/fb`, else 200.
async fn new_with_503() -> TestBackend {
    failing_under("new", "/fb", 503).await
}

fn metrics_routes(old_weight: &str) -> String {
    format!(
        r#"
[[routes]]
name = "old"
path = "/old"
weight = {old_weight}

[[routes]]
name = "new"
path = "/new"
weight = 100

[[routes]]
name = "missing"
path = "/missing"
weight = 0

[[routes]]
name = "fb"
path = "/fb"
weight = 100

[routes.fallback]
enabled = true
on_status = [503]
"#
    )
}

/// [`legacy_with_404`], [`new_with_503`] and a proxy on [`metrics_routes`]
/// with the old route at weight 0.
async fn metrics_setup() -> (TestBackend, TestBackend, TestProxy) {
    let legacy = legacy_with_404().await;
    let new = new_with_503().await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        &metrics_routes("0"),
    ))
    .await;
    (legacy, new, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_families_labels_and_counts() {
    let (_legacy, _new, proxy) = metrics_setup().await;

    // Before any request: every reload result exists, at 0.
    let before = metrics(proxy.admin).await;
    assert_eq!(
        value(
            &before,
            "strangler_config_reloads_total",
            &[("result", "success")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &before,
            "strangler_config_reloads_total",
            &[("result", "failure")]
        ),
        0.0
    );

    // (path, times, status the client gets, backend that answered)
    let mix = [
        ("/old/a", 3, 200, "legacy"),
        ("/new/b", 2, 200, "new"),
        ("/missing/c", 1, 404, "legacy"),
        ("/fb/d", 2, 200, "legacy"),
        ("/elsewhere", 1, 200, "legacy"),
    ];
    for (path, times, status, backend) in mix {
        for _ in 0..times {
            let answer = get(&proxy.url(path)).await;
            assert_eq!(answer.status, status, "{path}: {}", answer.text());
            assert_eq!(
                answer.header("x-strangler-backend"),
                Some(backend),
                "{path}"
            );
        }
    }

    let samples = metrics(proxy.admin).await;
    let rbc = |r: &str, b: &str, c: &str| labels(&[("route", r), ("backend", b), ("code", c)]);
    let mut requests = family(&samples, "strangler_requests_total");
    requests.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (rbc("old", "legacy", "200"), 3.0),
        (rbc("new", "new", "200"), 2.0),
        (rbc("missing", "legacy", "404"), 1.0),
        (rbc("fb", "legacy", "200"), 2.0),
        (rbc("_default", "legacy", "200"), 1.0),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(requests, expected);

    // Histogram: _count and _sum per (route, backend); buckets add `le`.
    let pairs = [
        ("old", "legacy", 3.0),
        ("new", "new", 2.0),
        ("missing", "legacy", 1.0),
        ("fb", "legacy", 2.0),
        ("_default", "legacy", 1.0),
    ];
    let name = "strangler_request_duration_seconds";
    assert_eq!(
        family(&samples, &format!("{name}_count")).len(),
        pairs.len()
    );
    assert_eq!(family(&samples, &format!("{name}_sum")).len(), pairs.len());
    for (route, backend, count) in pairs {
        let rb = [("route", route), ("backend", backend)];
        assert_eq!(
            value(&samples, &format!("{name}_count"), &rb),
            count,
            "{route}/{backend}"
        );
        let sum = value(&samples, &format!("{name}_sum"), &rb);
        assert!(sum > 0.0 && sum.is_finite(), "{route}/{backend} sum {sum}");
        let inf = [("route", route), ("backend", backend), ("le", "+Inf")];
        assert_eq!(value(&samples, &format!("{name}_bucket"), &inf), count);
        // Cumulative buckets never decrease.
        let mut buckets: Vec<(f64, f64)> = family(&samples, &format!("{name}_bucket"))
            .into_iter()
            .filter(|(l, _)| l["route"] == route && l["backend"] == backend)
            .map(|(l, v)| (l["le"].parse::<f64>().unwrap(), v))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.len() > 1);
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    }
    for (family_name, names) in [
        ("strangler_requests_total", vec!["backend", "code", "route"]),
        (
            "strangler_request_duration_seconds_bucket",
            vec!["backend", "le", "route"],
        ),
        (
            "strangler_request_duration_seconds_sum",
            vec!["backend", "route"],
        ),
        (
            "strangler_request_duration_seconds_count",
            vec!["backend", "route"],
        ),
        ("strangler_fallbacks_total", vec!["reason", "route"]),
        (
            "strangler_attempts_total",
            vec!["backend", "result", "route"],
        ),
        ("strangler_config_reloads_total", vec!["result"]),
        ("strangler_route_new_weight", vec!["route"]),
    ] {
        let names: Vec<String> = names.into_iter().map(String::from).collect();
        assert_eq!(
            label_names(&samples, family_name),
            BTreeSet::from([names]),
            "{family_name}"
        );
    }

    assert_eq!(
        family(&samples, "strangler_fallbacks_total"),
        vec![(labels(&[("route", "fb"), ("reason", "status")]), 2.0)]
    );
    // SPEC §7 (v2): every attempt, including new's failed ones that were replayed.
    let rbr =
        |r: &str, b: &str, res: &str| labels(&[("route", r), ("backend", b), ("result", res)]);
    let mut attempts = family(&samples, "strangler_attempts_total");
    attempts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (rbr("old", "legacy", "ok"), 3.0),
        (rbr("new", "new", "ok"), 2.0),
        (rbr("missing", "legacy", "ok"), 1.0),
        (rbr("fb", "new", "status"), 2.0),
        (rbr("fb", "legacy", "ok"), 2.0),
        (rbr("_default", "legacy", "ok"), 1.0),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(attempts, expected);
    let mut weights = family(&samples, "strangler_route_new_weight");
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = vec![
        (labels(&[("route", "old")]), 0.0),
        (labels(&[("route", "new")]), 100.0),
        (labels(&[("route", "missing")]), 0.0),
        (labels(&[("route", "fb")]), 100.0),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(weights, expected);
    assert_eq!(
        value(
            &samples,
            "strangler_config_reloads_total",
            &[("result", "success")]
        ),
        0.0
    );

    // Nothing but strangler's families.
    let allowed = [
        "strangler_requests_total",
        "strangler_request_duration_seconds_bucket",
        "strangler_request_duration_seconds_sum",
        "strangler_request_duration_seconds_count",
        "strangler_fallbacks_total",
        "strangler_attempts_total",
        "strangler_config_reloads_total",
        "strangler_route_new_weight",
        "strangler_backend_available",
        "strangler_backend_ejections_total",
    ];
    for sample in &samples {
        assert!(
            allowed.contains(&sample.name.as_str()),
            "unexpected {sample:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_gauge_follows_a_reload() {
    let (legacy, new, proxy) = metrics_setup().await;
    let weight = |samples: &[Sample], route| {
        value(samples, "strangler_route_new_weight", &[("route", route)])
    };
    assert_eq!(weight(&metrics(proxy.admin).await, "old"), 0.0);

    // A weight change and a removed route.
    let rest = metrics_routes("25.5").replace("name = \"missing\"", "name = \"gone\"");
    std::fs::write(&proxy.path, config_with(&legacy.url(), &new.url(), &rest)).unwrap();
    let answer = post(&proxy.admin_url("/reload")).await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    let samples = metrics(proxy.admin).await;
    assert_eq!(weight(&samples, "old"), 25.5);
    assert_eq!(weight(&samples, "gone"), 0.0);
    assert!(
        !family(&samples, "strangler_route_new_weight")
            .iter()
            .any(|(l, _)| l["route"] == "missing"),
        "a removed route keeps no weight gauge"
    );
    assert_eq!(
        value(
            &samples,
            "strangler_config_reloads_total",
            &[("result", "success")]
        ),
        1.0
    );

    // A failed reload changes no gauge.
    std::fs::write(&proxy.path, "[server\n").unwrap();
    assert_eq!(post(&proxy.admin_url("/reload")).await.status, 400);
    let samples = metrics(proxy.admin).await;
    assert_eq!(weight(&samples, "old"), 25.5);
    assert_eq!(
        value(
            &samples,
            "strangler_config_reloads_total",
            &[("result", "failure")]
        ),
        1.0
    );
}

// === token ===

/// The token test runs the real binary: setting an env var in this process
/// would need `unsafe`, which the crate forbids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_everything_but_health() {
    let var = format!("STRANGLER_TEST_TOKEN_{}", std::process::id());
    let token = "s3cret-token";
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let server = format!("admin_token_env = \"{var}\"");
    let backends = backends_with(&legacy.url(), &new.url(), "");
    let mut proxy = Binary::start_with_env(&server, &backends, &[(&var, token)]).await;
    assert!(proxy.text.contains(&var));
    let url = |path: &str| proxy.admin_url(path);

    let guarded = [
        ("GET", "/config"),
        ("GET", "/metrics"),
        ("GET", "/routes"),
        ("POST", "/reload"),
        // (v2) the status page, its history and the file's bytes too.
        ("GET", "/"),
        ("GET", "/status/history"),
        ("GET", "/config/source"),
    ];
    let bearer = format!("Bearer {token}");
    let wrong = [
        None,
        Some("Bearer wrong"),
        Some("Bearer "),
        Some(token),
        Some("Bearer s3cret-tokenX"),
        Some("Bearer s3cret-toke"),
        Some("Basic czNjcmV0LXRva2Vu"),
    ];
    for (method, path) in guarded {
        for authorization in wrong {
            let answer = ask(method, &url(path), authorization).await;
            assert_eq!(answer.status, 401, "{method} {path} with {authorization:?}");
            assert!(answer.json()["error"].is_string());
        }
        let answer = ask(method, &url(path), Some(&bearer)).await;
        assert_eq!(answer.status, 200, "{method} {path}: {}", answer.text());
    }
    // The unauthorised POSTs /reload did not reload; the authorised one did.
    let config = ask("GET", &url("/config"), Some(&bearer)).await.json();
    assert_eq!(config["generation"], 2);

    // `diff` sends the token from the variable the file names.
    let diff = |token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_strangler"));
        command
            .args(["diff", "-c", proxy.path.to_str().unwrap(), "--admin"])
            .arg(proxy.admin.to_string())
            .env("RUST_LOG", "warn")
            .env_remove(&var);
        if let Some(token) = token {
            command.env(&var, token);
        }
        command.output().unwrap()
    };
    let out = tokio::task::block_in_place(|| diff(Some(token)));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = tokio::task::block_in_place(|| diff(None));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );

    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(&url(path)).await.status, 200, "{path}");
        assert_eq!(
            ask("GET", &url(path), Some("Bearer wrong")).await.status,
            200,
            "{path}"
        );
    }
    // An unknown path does not reveal itself without the token.
    assert_eq!(get(&url("/nope")).await.status, 401);
    assert_eq!(ask("GET", &url("/nope"), Some(&bearer)).await.status, 404);
    assert!(proxy.exited().is_none());
}

/// Without the variable set, the admin API fails closed (SPEC §2): `run`
/// refuses to start (tests/edge.rs), and a proxy that got there anyway (a
/// reload naming a new variable) refuses every guarded endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_env_unset_fails_closed() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let var = format!("STRANGLER_TEST_TOKEN_UNSET_{}", std::process::id());
    assert!(std::env::var_os(&var).is_none());
    let server = format!("admin_token_env = \"{var}\"");
    let text = config_with_server(&server, &legacy.url(), &new.url(), "");
    let proxy = TestProxy::start(&text).await;
    assert_eq!(get(&proxy.admin_url("/config")).await.status, 401);
    assert_eq!(post(&proxy.admin_url("/reload")).await.status, 401);
    assert_eq!(get(&proxy.admin_url("/healthz")).await.status, 200);
}

// === request ids on admin errors ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_404_carries_a_request_id() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), "")).await;

    let unknown = get(&proxy.admin_url("/nope")).await;
    assert_eq!(unknown.status, 404);
    let json = unknown.json();
    assert!(json["error"].is_string(), "{json}");
    assert!(
        json["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "404 without a request id: {json}"
    );

    let answer = send(
        request("GET", &proxy.admin_url("/nope"))
            .header("x-request-id", "abc")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["request_id"], "abc", "{}", answer.text());
}

/// The real binary with an admin token in `var`; returns it and the token.
async fn binary_with_token(var: &str, token: &str) -> (Binary, TestBackend, TestBackend) {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let server = format!("admin_token_env = \"{var}\"");
    let backends = backends_with(&legacy.url(), &new.url(), "");
    let proxy = Binary::start_with_env(&server, &backends, &[(var, token)]).await;
    (proxy, legacy, new)
}

/// The `Bearer` scheme is case-insensitive (RFC 9110 §11.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_bearer_scheme_is_case_insensitive() {
    let var = format!("STRANGLER_TEST_TOKEN_CASE_{}", std::process::id());
    let token = "lower-case-token";
    let (mut proxy, _legacy, _new) = binary_with_token(&var, token).await;
    let url = proxy.admin_url("/routes");
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let answer = ask("GET", &url, Some(&format!("{scheme} {token}"))).await;
        assert_eq!(answer.status, 200, "scheme {scheme:?}: {}", answer.text());
    }
    let refused = ask("GET", &url, Some("bearer wrong")).await;
    assert_eq!(refused.status, 401);
    assert!(proxy.exited().is_none());
}

/// A 401 is an error made by strangler too: its JSON carries a request id,
/// the client's `x-request-id` when it sent one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_401_carries_a_request_id() {
    let var = format!("STRANGLER_TEST_TOKEN_401_{}", std::process::id());
    let (mut proxy, _legacy, _new) = binary_with_token(&var, "t0ken").await;
    let url = proxy.admin_url("/routes");

    let refused = ask("GET", &url, Some("Bearer wrong")).await;
    assert_eq!(refused.status, 401);
    let json = refused.json();
    assert!(json["error"].is_string(), "{json}");
    assert!(
        json["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "the 401 JSON has no request id: {json}"
    );
    let refused = send(
        request("GET", &url)
            .header("x-request-id", "abc")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.json()["request_id"],
        "abc",
        "the 401 JSON ignores x-request-id: {}",
        refused.text()
    );
    assert!(proxy.exited().is_none());
}

// === new's failures in /routes ===

/// SPEC §5 `/routes`: new's failed attempts are counted even when legacy
/// answered after them, and when the client got new's own failure (a POST,
/// which is not replayed): `errors` cannot hide a broken new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_count_new_failures_whoever_answered() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_status("new", 503).await;
    let routes = "[[routes]]\nname = \"pay\"\npath = \"/pay\"\nweight = 100\n";
    // No ejection: every request tries new.
    let new_keys = "[backends.new.outlier]\nconsecutive_failures = 0";
    let config = support::config_with_new(&legacy.url(), &new.url(), new_keys, routes);
    let proxy = TestProxy::start(&config).await;
    // Three POSTs: new's 503 reaches the client (POST is not replayed).
    for _ in 0..3 {
        let answer = support::send_body("POST", &proxy.url("/pay/1"), b"{}").await;
        assert_eq!(answer.status, 503);
        assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    }
    // Two GETs: new fails, legacy answers.
    for _ in 0..2 {
        let answer = get(&proxy.url("/pay/2")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    }
    let routes = get(&proxy.admin_url("/routes")).await.json();
    let pay = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pay")
        .unwrap();
    assert_eq!(pay["requests"]["new"], 3, "{pay}");
    assert_eq!(pay["requests"]["legacy"], 2, "{pay}");
    assert_eq!(pay["requests"]["new_failed"], 5, "{pay}");
    assert_eq!(
        pay["attempts"]["new"],
        json!({"total": 5, "failed": 5}),
        "{pay}"
    );
    assert_eq!(
        pay["attempts"]["legacy"],
        json!({"total": 2, "failed": 0}),
        "{pay}"
    );
}
