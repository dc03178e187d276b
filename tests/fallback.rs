//! Fallback from new to legacy (SPEC §2 `[routes.fallback]`, §3.4, §6, §7),
//! over real sockets: when a failed attempt is replayed, with which body, what
//! the client sees, and what is counted.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::StreamBody;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{
    Answer, Seen, TestBackend, TestProxy, assert_proxy_error, config_with, dead_addr, get,
    get_with, request, send_body, send_with, sha256_hex,
};

// === helpers ===

/// `len` pseudo-random bytes, the same for the same `seed`.
fn random_body(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

/// A backend answering `status` with `body` to every request.
async fn answering(name: &str, status: u16, body: &'static str) -> TestBackend {
    TestBackend::answering(name, body, move |_| status).await
}

/// A new backend answering "NEW-FAILED" with the status named by the last
/// path segment.
async fn new_failing_as_the_path_says() -> TestBackend {
    TestBackend::answering("new", "NEW-FAILED", |uri| {
        uri.rsplit('/').next().unwrap().parse().unwrap()
    })
    .await
}

/// A backend that reads the request and never answers.
async fn silent(name: &str) -> TestBackend {
    TestBackend::with_handler(name, |_| std::future::pending()).await
}

/// One route `/api` named `name` sending everything to new, with `fallback`
/// as the body of its `[routes.fallback]` table (empty: no table).
fn one_route(name: &str, fallback: &str) -> String {
    let table = if fallback.is_empty() {
        String::new()
    } else {
        format!("[routes.fallback]\n{fallback}")
    };
    format!("[[routes]]\nname = \"{name}\"\npath = \"/api\"\nweight = 100\n{table}\n")
}

/// Like [`config_with`], with each backend's `timeout` as given (empty: the
/// default).
fn config_timeouts(
    legacy: &str,
    legacy_timeout: &str,
    new: &str,
    new_timeout: &str,
    rest: &str,
) -> String {
    let timeout = |t: &str| {
        if t.is_empty() {
            String::new()
        } else {
            format!("timeout = \"{t}\"\n")
        }
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[backends.legacy]
url = "{legacy}"
{}
[backends.new]
url = "{new}"
{}
{rest}
"#,
        timeout(legacy_timeout),
        timeout(new_timeout)
    )
}

/// A proxy in front of `legacy` and `new` with the route `api` of
/// [`one_route`] and its `fallback`.
async fn api_proxy(legacy: &str, new: &str, fallback: &str) -> TestProxy {
    TestProxy::start(&config_with(legacy, new, &one_route("api", fallback))).await
}

/// Like [`api_proxy`], with new's timeout at 300ms, for a silent new.
async fn api_proxy_new_timeout(legacy: &str, new: &str, fallback: &str) -> TestProxy {
    let route = one_route("api", fallback);
    TestProxy::start(&config_timeouts(legacy, "", new, "300ms", &route)).await
}

/// `method url` with `body` sent chunked (no Content-Length), `chunk` bytes a frame.
async fn send_chunked(method: &str, url: &str, body: &[u8], chunk: usize) -> Answer {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = body
        .chunks(chunk)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let client = Client::builder(TokioExecutor::new()).build_http();
    send_with(&client, request(method, url).body(body).unwrap()).await
}

/// Asserts `answer` is new's own answer, passed through: `status` with
/// `body`, and no fallback.
fn assert_not_replayed(answer: &Answer, status: u16, body: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.text());
    assert_eq!(answer.text(), body);
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    assert_eq!(answer.header("x-strangler-fallback"), None);
}

/// Asserts `answer` is the test backend `legacy`'s 200, replayed after a
/// failure for `reason`.
fn assert_replayed(answer: &Answer, legacy: &str, reason: &str) {
    assert_eq!(answer.status, 200, "body: {}", answer.text());
    assert_eq!(answer.text(), legacy);
    assert_eq!(answer.header("x-strangler-backend"), Some(legacy));
    assert_eq!(answer.header("x-strangler-fallback"), Some(reason));
}

/// Asserts a backend saw exactly `body`.
fn assert_body(seen: &Seen, body: &[u8]) {
    assert_eq!(seen.body_len, body.len());
    assert_eq!(seen.body_sha256, sha256_hex(body));
}

/// The value of the sample `name{labels}` in Prometheus text, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

// === status fallback ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_failing_with_503_is_replayed_to_legacy_with_the_same_body() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "").await;
    let body = random_body(100 * 1024, 1);

    let answer = send_body("PUT", &proxy.url("/api/items/7?x=1"), &body).await;

    assert_replayed(&answer, "legacy", "status-503");
    assert!(!answer.text().contains("NEW-FAILED"));
    assert_eq!(answer.header("x-strangler-route"), Some("api"));
    assert_eq!(new.count(), 1);
    assert_eq!(legacy.count(), 1);
    let (to_new, to_legacy) = (new.last(), legacy.last());
    assert_body(&to_new, &body);
    assert_eq!(to_legacy.method, "PUT");
    assert_eq!(to_legacy.uri, "/api/items/7?x=1");
    assert_body(&to_legacy, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_goes_to_legacy_without_the_rewrite() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let rest = "[[routes]]\nname = \"rw\"\npath = \"/api\"\nweight = 100\nrewrite = \"/v2\"\n";
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), rest)).await;

    let answer = get(&proxy.url("/api/users?id=3")).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    assert_eq!(new.last().uri, "/v2/users?id=3");
    assert_eq!(legacy.last().uri, "/api/users?id=3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_failing_with_503_is_not_replayed_by_default() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "").await;

    let answer = send_body("POST", &proxy.url("/api/orders"), b"order").await;

    assert_not_replayed(&answer, 503, "NEW-FAILED");
    assert_eq!(new.count(), 1);
    assert_eq!(legacy.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_failing_with_503_is_replayed_when_every_method_is() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "replay_methods = [\"*\"]").await;
    let body = random_body(20 * 1024, 2);

    let answer = send_body("POST", &proxy.url("/api/orders"), &body).await;

    assert_replayed(&answer, "legacy", "status-503");
    assert_eq!(legacy.count(), 1);
    assert_eq!(legacy.last().method, "POST");
    assert_body(&legacy.last(), &body);
    assert_body(&new.last(), &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_an_unreachable_new_is_replayed_by_default() {
    let legacy = TestBackend::start("legacy").await;
    let unreachable = dead_addr();
    let new_url = unreachable.url.clone();
    let proxy = api_proxy(&legacy.url(), &new_url, "").await;
    let body = random_body(30 * 1024, 3);

    let answer = send_body("POST", &proxy.url("/api/orders"), &body).await;

    assert_replayed(&answer, "legacy", "connect");
    assert_eq!(legacy.count(), 1);
    let seen = legacy.last();
    assert_eq!(seen.method, "POST");
    assert_body(&seen, &body);
}

// === timeout ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_to_a_new_that_times_out_is_replayed() {
    let legacy = TestBackend::start("legacy").await;
    let new = silent("new").await;
    let proxy = api_proxy_new_timeout(&legacy.url(), &new.url(), "").await;

    let answer = get(&proxy.url("/api/slow")).await;

    assert_replayed(&answer, "legacy", "timeout");
    assert_eq!(new.count(), 1);
    assert_eq!(legacy.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_a_new_that_times_out_is_not_replayed() {
    let legacy = TestBackend::start("legacy").await;
    let new = silent("new").await;
    let proxy = api_proxy_new_timeout(&legacy.url(), &new.url(), "").await;

    let answer = send_body("POST", &proxy.url("/api/slow"), b"charge the card").await;

    assert_proxy_error(&answer, 504);
    assert_eq!(answer.header("x-strangler-fallback"), None);
    assert_eq!(new.count(), 1);
    assert_eq!(legacy.count(), 0);
}

// === which failures count ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_statuses_in_on_status_fall_back() {
    let legacy = TestBackend::start("legacy").await;
    let new = new_failing_as_the_path_says().await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "on_status = [500]").await;

    let passed = get(&proxy.url("/api/503")).await;
    assert_not_replayed(&passed, 503, "NEW-FAILED");
    assert_eq!(legacy.count(), 0);

    let replayed = get(&proxy.url("/api/500")).await;
    assert_replayed(&replayed, "legacy", "status-500");
    assert_eq!(legacy.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_on_connect_error_an_unreachable_new_is_a_502() {
    let legacy = TestBackend::start("legacy").await;
    let unreachable = dead_addr();
    let new_url = unreachable.url.clone();
    let proxy = api_proxy(&legacy.url(), &new_url, "on_connect_error = false").await;

    let answer = get(&proxy.url("/api/x")).await;
    assert_proxy_error(&answer, 502);
    assert_eq!(answer.header("x-strangler-fallback"), None);

    // A request id sent by the client is the one in the error body.
    let answer = get_with(&proxy.url("/api/x"), &[("x-request-id", "req-fallback-1")]).await;
    assert_proxy_error(&answer, 502);
    assert_eq!(answer.json()["request_id"], "req-fallback-1");
    assert_eq!(legacy.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_on_timeout_a_silent_new_is_a_504() {
    let legacy = TestBackend::start("legacy").await;
    let new = silent("new").await;
    let proxy = api_proxy_new_timeout(&legacy.url(), &new.url(), "on_timeout = false").await;

    let answer = get(&proxy.url("/api/slow")).await;

    assert_proxy_error(&answer, 504);
    assert_eq!(answer.header("x-strangler-fallback"), None);
    assert_eq!(new.count(), 1);
    assert_eq!(legacy.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_fallback_never_replays() {
    let legacy = TestBackend::start("legacy").await;
    let failing = answering("new", 503, "NEW-FAILED").await;
    let silent_new = silent("new").await;
    let unreachable = dead_addr();
    let dead = unreachable.url.clone();
    let disabled = "enabled = false";

    let proxy = api_proxy(&legacy.url(), &dead, disabled).await;
    let answer = get(&proxy.url("/api/x")).await;
    assert_proxy_error(&answer, 502);
    assert_eq!(answer.header("x-strangler-fallback"), None);

    let proxy = api_proxy_new_timeout(&legacy.url(), &silent_new.url(), disabled).await;
    let answer = get(&proxy.url("/api/x")).await;
    assert_proxy_error(&answer, 504);
    assert_eq!(answer.header("x-strangler-fallback"), None);

    let proxy = api_proxy(&legacy.url(), &failing.url(), disabled).await;
    let answer = get(&proxy.url("/api/x")).await;
    assert_not_replayed(&answer, 503, "NEW-FAILED");

    assert_eq!(legacy.count(), 0);
}

// === max_body ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_with_content_length_streams_and_is_not_replayed() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "max_body = \"1KiB\"").await;
    let body = random_body(8 * 1024, 4);

    let answer = send_body("PUT", &proxy.url("/api/blob"), &body).await;

    assert_not_replayed(&answer, 503, "NEW-FAILED");
    assert_eq!(legacy.count(), 0);
    assert_eq!(new.count(), 1);
    assert_body(&new.last(), &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_max_body_streams_whole_and_is_not_replayed() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "max_body = \"1KiB\"").await;
    let body = random_body(8 * 1024, 5);

    // Chunks that do not divide the limit, so the limit falls inside a chunk.
    let answer = send_chunked("PUT", &proxy.url("/api/blob"), &body, 700).await;

    // No declared length reached new: the client's body was chunked, and so was new's.
    let to_new = new.last();
    assert!(!to_new.headers.contains_key("content-length"));
    assert_eq!(to_new.headers["transfer-encoding"], "chunked");
    assert_not_replayed(&answer, 503, "NEW-FAILED");
    assert_eq!(legacy.count(), 0);
    assert_eq!(new.count(), 1);
    assert_body(&new.last(), &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_exactly_max_body_is_held_and_replayed() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "max_body = \"1KiB\"").await;
    let body = random_body(1024, 6);

    let with_length = send_body("PUT", &proxy.url("/api/blob"), &body).await;
    let chunked = send_chunked("PUT", &proxy.url("/api/blob"), &body, 300).await;

    for answer in [&with_length, &chunked] {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    }
    assert_eq!(legacy.count(), 2);
    for seen in &legacy.seen.all() {
        assert_eq!(seen.body_sha256, sha256_hex(&body));
    }
}

// === inheritance from [defaults.fallback] ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_fallback_keys_override_defaults_key_by_key() {
    let legacy = TestBackend::start("legacy").await;
    let new = new_failing_as_the_path_says().await;
    // Ejection off: new fails on purpose, case after case.
    let rest = r#"
[backends.new.outlier]
consecutive_failures = 0

[defaults.fallback]
on_status = [502]

[[routes]]
name = "inherits"
path = "/inherits"
weight = 100

[[routes]]
name = "disabled"
path = "/disabled"
weight = 100
[routes.fallback]
enabled = false

[[routes]]
name = "any-method"
path = "/any-method"
weight = 100
[routes.fallback]
replay_methods = ["*"]

[[routes]]
name = "own-status"
path = "/own-status"
weight = 100
[routes.fallback]
on_status = [503]
"#;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), rest)).await;

    // (method, path, expected x-strangler-fallback)
    let cases: &[(&str, &str, Option<&str>)] = &[
        // on_status from defaults; replay_methods built in.
        ("GET", "/inherits/502", Some("status-502")),
        ("GET", "/inherits/503", None),
        ("POST", "/inherits/502", None),
        // enabled overridden; nothing falls back.
        ("GET", "/disabled/502", None),
        // replay_methods overridden, on_status still from defaults.
        ("POST", "/any-method/502", Some("status-502")),
        ("POST", "/any-method/503", None),
        // on_status overridden: replaces, not merges with, the default list.
        ("GET", "/own-status/503", Some("status-503")),
        ("GET", "/own-status/502", None),
        ("POST", "/own-status/503", None),
    ];
    for &(method, path, expected) in cases {
        let before = legacy.count();
        let answer = send_body(method, &proxy.url(path), b"payload").await;
        let what = format!("{method} {path}");
        assert_eq!(answer.header("x-strangler-fallback"), expected, "{what}");
        match expected {
            Some(_) => {
                assert_eq!(answer.status, 200, "{what}");
                assert_eq!(answer.text(), "legacy", "{what}");
                assert_eq!(legacy.count(), before + 1, "{what}");
            }
            None => {
                let code: u16 = path.rsplit('/').next().unwrap().parse().unwrap();
                assert_eq!(answer.status, code, "{what}");
                assert_eq!(answer.text(), "NEW-FAILED", "{what}");
                assert_eq!(legacy.count(), before, "{what}");
            }
        }
    }
}

// === legacy fails too ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_legacy_fails_too_the_client_gets_legacys_answer() {
    let legacy = answering("legacy", 500, "LEGACY-FAILED").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "").await;

    let answer = get(&proxy.url("/api/x")).await;

    assert_eq!(answer.status, 500);
    assert_eq!(answer.text(), "LEGACY-FAILED");
    assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
    assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    assert_eq!(new.count(), 1);
    assert_eq!(legacy.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_legacy_is_unreachable_too_the_client_gets_a_502() {
    let new = answering("new", 503, "NEW-FAILED").await;
    let unreachable = dead_addr();
    let legacy_url = unreachable.url.clone();
    let proxy = api_proxy(&legacy_url, &new.url(), "").await;

    let answer = get(&proxy.url("/api/x")).await;

    assert_proxy_error(&answer, 502);
    assert!(!answer.text().contains("NEW-FAILED"));
    assert_eq!(new.count(), 1);
}

// === legacy chosen first ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_legacy_chosen_by_weight_is_never_a_fallback() {
    let legacy = answering("legacy", 503, "LEGACY-FAILED").await;
    let new = TestBackend::start("new").await;
    let rest = "[[routes]]\nname = \"api\"\npath = \"/api\"\nweight = 0\n";
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), rest)).await;

    for _ in 0..5 {
        let answer = get(&proxy.url("/api/x")).await;
        assert_eq!(answer.status, 503);
        assert_eq!(answer.text(), "LEGACY-FAILED");
        assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
        assert_eq!(answer.header("x-strangler-fallback"), None);
    }
    assert_eq!(legacy.count(), 5);
    assert_eq!(new.count(), 0);
}

// === metrics and /routes ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallbacks_are_counted_in_metrics_and_routes() {
    let legacy = TestBackend::start("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        &one_route("metered", ""),
    ))
    .await;

    for _ in 0..3 {
        let answer = get(&proxy.url("/api/x")).await;
        assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    }
    // Not replayed: counted as new's 503, not as a fallback.
    let passed = send_body("POST", &proxy.url("/api/x"), b"once").await;
    assert_eq!(passed.status, 503);

    let metrics = get(&proxy.admin_url("/metrics")).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let value = |series: &str| sample(&text, series);
    assert_eq!(
        value(r#"strangler_fallbacks_total{route="metered",reason="status"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"strangler_requests_total{route="metered",backend="legacy",code="200"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"strangler_requests_total{route="metered",backend="new",code="503"}"#),
        Some(1.0),
        "{text}"
    );
    for reason in ["connect", "timeout"] {
        let series = format!(r#"strangler_fallbacks_total{{route="metered",reason="{reason}"}}"#);
        assert!(matches!(value(&series), None | Some(0.0)), "{text}");
    }

    let routes = get(&proxy.admin_url("/routes")).await;
    assert_eq!(routes.status, 200);
    let routes = routes.json();
    let route = routes
        .as_array()
        .expect("/routes is an array")
        .iter()
        .find(|r| r["name"] == "metered")
        .expect("route in /routes");
    assert_eq!(route["fallbacks"]["total"], 3, "{route}");
    assert_eq!(route["fallbacks"]["status"], 3, "{route}");
    assert_eq!(route["fallbacks"]["connect"], 0, "{route}");
    assert_eq!(route["requests"]["legacy"], 3, "{route}");
    assert_eq!(route["requests"]["new"], 1, "{route}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_legacy_times_out_too_the_client_gets_a_504() {
    let legacy = silent("legacy").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let route = one_route("api", "");
    let config = config_timeouts(&legacy.url(), "300ms", &new.url(), "", &route);
    let proxy = TestProxy::start(&config).await;

    let answer = get(&proxy.url("/api/x")).await;

    assert_proxy_error(&answer, 504);
    assert!(!answer.text().contains("NEW-FAILED"));
    assert_eq!(new.count(), 1);
    assert_eq!(legacy.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_goes_to_the_routes_own_legacy() {
    let default_legacy = TestBackend::start("legacy").await;
    let old_billing = TestBackend::start("old-billing").await;
    let new = answering("new", 503, "NEW-FAILED").await;
    let rest = format!(
        r#"
[backends.old-billing]
url = "{}"

[[routes]]
name = "billing"
path = "/billing"
weight = 100
legacy = "old-billing"
"#,
        old_billing.url()
    );
    let proxy = TestProxy::start(&config_with(&default_legacy.url(), &new.url(), &rest)).await;

    let answer = get(&proxy.url("/billing/invoices")).await;

    assert_replayed(&answer, "old-billing", "status-503");
    assert_eq!(old_billing.count(), 1);
    assert_eq!(default_legacy.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_is_not_replayed_even_on_connect_error() {
    let legacy = TestBackend::start("legacy").await;
    let unreachable = dead_addr();
    let new_url = unreachable.url.clone();
    let proxy = api_proxy(&legacy.url(), &new_url, "max_body = \"1KiB\"").await;
    let body = random_body(8 * 1024, 7);

    // The body streamed into the failed attempt and is gone: nothing to replay.
    let answer = send_body("PUT", &proxy.url("/api/blob"), &body).await;

    assert_proxy_error(&answer, 502);
    assert_eq!(answer.header("x-strangler-fallback"), None);
    assert_eq!(legacy.count(), 0);
}
