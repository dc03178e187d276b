//! Shadow traffic (SPEC §2 `[routes.shadow]`, §3.7, §5 `/shadow`, §6
//! `x-strangler-shadow`, §7 `strangler_shadow_total`), over real sockets:
//! what is mirrored where, what the client sees of it (nothing), what is
//! compared, learned and counted.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::Full;
use serde_json::{Value, json};
use strangler::body as pbody;
use support::{
    Binary, DEADLINE, Seen, TestBackend, TestProxy, backends_with, config_with, dead_addr,
    eventually, get, request, send, send_body, sha256_hex,
};
use tokio::sync::Semaphore;

// === helpers ===

/// A backend answering `body(request)` as `application/json`.
async fn json_backend<F>(name: &str, body: F) -> TestBackend
where
    F: Fn(&Seen) -> Value + Send + Sync + 'static,
{
    let body = Arc::new(body);
    TestBackend::with_handler(name, move |seen| {
        let value = body(seen);
        async move { json_response(&value) }
    })
    .await
}

fn json_response(value: &Value) -> Response<pbody::ProxyBody> {
    let mut response = Response::new(pbody::full(value.to_string()));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// A backend answering `value` only once the test adds a permit to `gate`.
async fn gated_backend(name: &str, gate: Arc<Semaphore>, value: Value) -> TestBackend {
    TestBackend::with_handler(name, move |_| {
        let gate = gate.clone();
        let value = value.clone();
        async move {
            let _permit = gate.acquire().await.unwrap();
            json_response(&value)
        }
    })
    .await
}

/// One route `api` on `/api` at `weight`, with `[routes.shadow]` keys `shadow`.
fn shadow_route(weight: u32, shadow: &str) -> String {
    format!(
        "[[routes]]\nname = \"api\"\npath = \"/api\"\nweight = {weight}\n\n[routes.shadow]\n{shadow}\n"
    )
}

/// The route `api` of `GET /shadow`.
/// A proxy in front of `legacy` and `new` with [`shadow_route`]'s route.
async fn start_shadowed(
    legacy: &TestBackend,
    new: &TestBackend,
    weight: u32,
    shadow: &str,
) -> TestProxy {
    TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        &shadow_route(weight, shadow),
    ))
    .await
}

async fn shadow_of(proxy: &TestProxy) -> Value {
    let all = get(&proxy.admin_url("/shadow")).await.json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "api")
        .cloned()
        .unwrap_or_else(|| panic!("no route api in {all}"))
}

/// Waits until the route has `n` results in all and no shadow in flight.
async fn settled(proxy: &TestProxy, n: u64) -> Value {
    let within = DEADLINE;
    let start = tokio::time::Instant::now();
    loop {
        let last = shadow_of(proxy).await;
        let counts = last["counts"].as_object().unwrap();
        let total: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
        if total >= n && last["inflight"] == 0 {
            assert_eq!(total, n, "more results than requests: {last}");
            return last;
        }
        assert!(
            start.elapsed() < within,
            "not {n} results within {within:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counts(shadow: &Value) -> [u64; 4] {
    ["match", "mismatch", "error", "skipped"].map(|r| shadow["counts"][r].as_u64().unwrap())
}

async fn metrics(proxy: &TestProxy) -> String {
    get(&proxy.admin_url("/metrics")).await.text()
}

/// The value of the metric line starting with `series` (`name{labels}`).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

async fn reload(proxy: &TestProxy) {
    let answer = send(
        request("POST", &proxy.admin_url("/reload"))
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn shadow_header(seen: &Seen) -> Option<&str> {
    seen.headers
        .get("x-strangler-shadow")
        .and_then(|v| v.to_str().ok())
}

// === what is mirrored, where ===

#[tokio::test]
async fn a_legacy_served_get_is_mirrored_to_new_and_counted_only_as_shadow() {
    let legacy = json_backend("legacy", |seen| json!({"path": seen.uri, "side": "same"})).await;
    let new = json_backend("new", |seen| json!({"side": "same", "path": seen.uri})).await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100\nnoise_sample = 0").await;

    let answer = get(&proxy.url("/api/items?q=1")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
    assert_eq!(answer.json()["path"], "/api/items?q=1");
    let shadow = settled(&proxy, 1).await;
    assert_eq!(counts(&shadow), [1, 0, 0, 0], "{shadow}");
    assert_eq!(shadow["match_rate"], 1.0);

    let mirrored = new.seen.last();
    assert_eq!(new.seen.count(), 1);
    assert_eq!(mirrored.uri, "/api/items?q=1");
    assert_eq!(shadow_header(&mirrored), Some("1"));
    assert!(mirrored.headers.get("x-forwarded-for").is_some());
    assert_eq!(legacy.seen.count(), 1);
    assert_eq!(shadow_header(&legacy.seen.last()), None);

    // Out of the route's counters and the request and attempt metrics.
    let routes = get(&proxy.admin_url("/routes")).await.json();
    assert_eq!(
        routes[0]["requests"],
        json!({"legacy": 1, "new": 0, "errors": 0, "new_failed": 0})
    );
    assert_eq!(
        routes[0]["attempts"]["new"],
        json!({"total": 0, "failed": 0})
    );
    assert_eq!(routes[0]["stats"]["new"]["attempts"], 0);
    let text = metrics(&proxy).await;
    for family in ["strangler_requests_total{", "strangler_attempts_total{"] {
        let lines = text.lines().filter(|l| l.starts_with(family));
        assert!(
            lines.clone().all(|l| !l.contains(r#"backend="new""#)),
            "{text}"
        );
        assert_eq!(lines.count(), 1, "{text}");
    }
    assert_eq!(
        metric(
            &text,
            r#"strangler_shadow_total{route="api",result="match"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_client_cannot_pass_its_request_off_as_a_shadow() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), "")).await;
    let answer = support::get_with(&proxy.url("/x"), &[("x-strangler-shadow", "1")]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(shadow_header(&legacy.seen.last()), None);
}

#[tokio::test]
async fn a_new_served_request_is_mirrored_to_legacy_without_the_rewrite() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let new = json_backend("new", |_| json!({"a": 1})).await;
    let route = "[[routes]]\nname = \"api\"\npath = \"/api\"\nweight = 100\nrewrite = \"/v2\"\n\n[routes.shadow]\npercent = 100\nnoise_sample = 0\n";
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), route)).await;

    let answer = get(&proxy.url("/api/x")).await;
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    settled(&proxy, 1).await;
    assert_eq!(new.seen.last().uri, "/v2/x");
    assert_eq!(shadow_header(&new.seen.last()), None);
    assert_eq!(legacy.seen.last().uri, "/api/x");
    assert_eq!(shadow_header(&legacy.seen.last()), Some("1"));
}

#[tokio::test]
async fn the_client_does_not_wait_for_a_slow_shadow() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let gate = Arc::new(Semaphore::new(0));
    let new = gated_backend("new", gate.clone(), json!({"a": 1})).await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100\nnoise_sample = 0").await;

    // The shadow's answer is held until the test releases it: the client's
    // answer arrives while new still holds it.
    let answer = get(&proxy.url("/api/slow")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({"a": 1}));
    eventually(DEADLINE, "new saw the shadow request", || async {
        new.seen.count() == 1
    })
    .await;
    let shadow = shadow_of(&proxy).await;
    assert_eq!(shadow["inflight"], 1, "{shadow}");
    assert_eq!(counts(&shadow), [0, 0, 0, 0]);
    // A second request is answered too while both shadows are held (a
    // client waiting for its shadow would time out here).
    assert_eq!(get(&proxy.url("/api/slow")).await.status, 200);
    eventually(DEADLINE, "new saw both shadow requests", || async {
        new.seen.count() == 2
    })
    .await;

    gate.add_permits(2);
    let shadow = settled(&proxy, 2).await;
    assert_eq!(counts(&shadow), [2, 0, 0, 0], "{shadow}");
}

#[tokio::test]
async fn posts_are_not_mirrored_by_default() {
    let legacy = json_backend("legacy", |_| json!({"ok": true})).await;
    let new = json_backend("new", |_| json!({"ok": true})).await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100").await;

    let answer = send_body("POST", &proxy.url("/api/orders"), b"{\"n\": 1}").await;
    assert_eq!(answer.status, 200);
    // Barrier: a GET after it is mirrored; once it is counted with nothing
    // in flight, a mirrored POST would have been counted too (its slot is
    // taken before its answer).
    get(&proxy.url("/api/orders")).await;
    let shadow = settled(&proxy, 1).await;
    assert_eq!(counts(&shadow), [1, 0, 0, 0], "{shadow}");
    assert!(new.seen.all().iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn a_mirrored_body_is_sent_whole_and_one_over_max_body_is_skipped() {
    let legacy = json_backend("legacy", |seen| json!({"len": seen.body_len})).await;
    let new = json_backend("new", |seen| json!({"len": seen.body_len})).await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        &shadow_route(
            0,
            "percent = 100\nmethods = [\"POST\"]\nmax_body = 16\nnoise_sample = 0",
        ),
    ))
    .await;

    send_body("POST", &proxy.url("/api/in"), b"0123456789").await;
    let shadow = settled(&proxy, 1).await;
    assert_eq!(counts(&shadow), [1, 0, 0, 0], "{shadow}");
    assert_eq!(new.seen.last().body_sha256, sha256_hex(b"0123456789"));
    assert_eq!(shadow_header(&new.seen.last()), Some("1"));

    let answer = send_body("POST", &proxy.url("/api/in"), &[b'x'; 100]).await;
    assert_eq!(
        answer.json(),
        json!({"len": 100}),
        "the client is served as usual"
    );
    let shadow = settled(&proxy, 2).await;
    assert_eq!(counts(&shadow), [1, 0, 0, 1], "{shadow}");
    assert_eq!(shadow["skipped"]["body"], 1);
    assert_eq!(new.seen.count(), 1);
}

// === what is compared ===

#[tokio::test]
async fn a_differing_field_shows_in_shadow_and_in_the_metric() {
    let legacy = json_backend("legacy", |_| json!({"id": 7, "item": {"price": 10}})).await;
    let new = json_backend("new", |_| json!({"item": {"price": 11}, "id": 7})).await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100\nnoise_sample = 0").await;

    for _ in 0..3 {
        let answer = get(&proxy.url("/api/p")).await;
        assert_eq!(
            answer.json()["item"]["price"],
            10,
            "the client gets legacy's"
        );
    }
    let shadow = settled(&proxy, 3).await;
    assert_eq!(counts(&shadow), [0, 3, 0, 0], "{shadow}");
    assert_eq!(shadow["match_rate"], 0.0);
    assert_eq!(
        shadow["fields"],
        json!([{"field": "$.item.price", "count": 3}])
    );
    let samples = shadow["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0]["method"], "GET");
    assert_eq!(samples[0]["path"], "/api/p");
    assert_eq!(samples[0]["served"], "legacy");
    assert_eq!(samples[0]["status"], json!({"legacy": 200, "new": 200}));
    assert_eq!(
        samples[0]["differences"],
        json!([{"path": "$.item.price", "legacy": "10", "new": "11"}])
    );
    let text = metrics(&proxy).await;
    assert_eq!(
        metric(
            &text,
            r#"strangler_shadow_total{route="api",result="mismatch"}"#
        ),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test]
async fn with_ignore_json_the_same_field_matches() {
    let legacy = json_backend("legacy", |_| json!({"items": [{"id": 1, "at": "t1"}]})).await;
    let new = json_backend("new", |_| json!({"items": [{"id": 1, "at": "t2"}]})).await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        &shadow_route(
            0,
            "percent = 100\nnoise_sample = 0\nignore_json = [\"$.items[*].at\"]",
        ),
    ))
    .await;

    get(&proxy.url("/api/a")).await;
    get(&proxy.url("/api/b")).await;
    let shadow = settled(&proxy, 2).await;
    assert_eq!(counts(&shadow), [2, 0, 0, 0], "{shadow}");
    assert_eq!(shadow["noise"], json!([]));
}

/// Legacy and new both answering `{"id": 1, "nonce": <random>}`.
async fn nonce_backends() -> (TestBackend, TestBackend) {
    let nonce = || json!({"id": 1, "nonce": fastrand::u64(..)});
    let legacy = json_backend("legacy", move |_| nonce()).await;
    let new = json_backend("new", move |_| nonce()).await;
    (legacy, new)
}

#[tokio::test]
async fn a_random_nonce_is_learned_as_noise_and_kept_across_reloads() {
    let (legacy, new) = nonce_backends().await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100\nnoise_sample = 100").await;

    get(&proxy.url("/api/n")).await;
    let shadow = settled(&proxy, 1).await;
    assert_eq!(shadow["noise"], json!(["$.nonce"]), "{shadow}");
    assert_eq!(counts(&shadow), [1, 0, 0, 0], "learned before comparing");
    // The second request to the serving side is a shadow request too.
    assert_eq!(legacy.seen.count(), 2);
    assert_eq!(shadow_header(&legacy.seen.last()), Some("1"));

    // No more sampling: what was learned is kept across a reload.
    std::fs::write(
        &proxy.path,
        config_with(
            &legacy.url(),
            &new.url(),
            &shadow_route(0, "percent = 100\nnoise_sample = 0"),
        ),
    )
    .unwrap();
    reload(&proxy).await;
    for _ in 0..3 {
        get(&proxy.url("/api/n")).await;
    }
    let shadow = settled(&proxy, 4).await;
    assert_eq!(counts(&shadow), [4, 0, 0, 0], "{shadow}");
    assert_eq!(shadow["noise"], json!(["$.nonce"]));
    assert_eq!(legacy.seen.count(), 5);
}

#[tokio::test]
async fn without_noise_learning_a_random_nonce_is_a_mismatch() {
    let (legacy, new) = nonce_backends().await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100\nnoise_sample = 0").await;
    get(&proxy.url("/api/n")).await;
    let shadow = settled(&proxy, 1).await;
    assert_eq!(counts(&shadow), [0, 1, 0, 0], "{shadow}");
    assert_eq!(shadow["fields"][0]["field"], "$.nonce");
}

// === failures and limits ===

#[tokio::test]
async fn new_down_is_an_error_the_client_sees_nothing_of() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let new = dead_addr();
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url,
        &shadow_route(0, "percent = 100"),
    ))
    .await;

    for _ in 0..6 {
        let answer = get(&proxy.url("/api/x")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-strangler-fallback"), None);
        assert_eq!(answer.json(), json!({"a": 1}));
    }
    let shadow = settled(&proxy, 6).await;
    assert_eq!(counts(&shadow), [0, 0, 6, 0], "{shadow}");
    // Not counted in new's health: 6 connect errors would have ejected it.
    let backends = get(&proxy.admin_url("/backends")).await.json();
    let new = backends
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "new")
        .unwrap();
    assert_eq!(new["state"], "available", "{new}");
    assert_eq!(new["consecutive_failures"], 0, "{new}");
    let text = metrics(&proxy).await;
    assert_eq!(
        metric(
            &text,
            r#"strangler_shadow_total{route="api",result="error"}"#
        ),
        Some(6.0)
    );
    assert!(!text.contains(r#"strangler_attempts_total{route="api",backend="new""#));
}

#[tokio::test]
async fn a_5xx_from_the_shadow_is_an_error_when_the_served_answer_was_not() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let new = TestBackend::with_status("new", 503).await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100").await;
    get(&proxy.url("/api/x")).await;
    let shadow = settled(&proxy, 1).await;
    assert_eq!(counts(&shadow), [0, 0, 1, 0], "{shadow}");
}

#[tokio::test]
async fn after_a_fallback_the_shadow_goes_to_new_which_did_not_serve() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let new = TestBackend::with_status("new", 503).await;
    let proxy = start_shadowed(&legacy, &new, 100, "percent = 100\nnoise_sample = 0").await;
    let answer = get(&proxy.url("/api/x")).await;
    assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    let shadow = settled(&proxy, 1).await;
    assert_eq!(counts(&shadow), [0, 0, 1, 0], "{shadow}");
    let seen = new.seen.all();
    assert_eq!(seen.len(), 2, "the request, then its shadow");
    assert_eq!(shadow_header(&seen[0]), None);
    assert_eq!(shadow_header(&seen[1]), Some("1"));
    assert_eq!(legacy.seen.count(), 1, "only the replay");
}

#[tokio::test]
async fn head_is_mirrored_and_compared_by_status_and_headers() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let new = json_backend("new", |_| json!({"a": 2})).await;
    let proxy = start_shadowed(&legacy, &new, 0, "percent = 100\nnoise_sample = 0").await;
    let answer = send(
        request("HEAD", &proxy.url("/api/x"))
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let shadow = settled(&proxy, 1).await;
    assert_eq!(counts(&shadow), [1, 0, 0, 0], "{shadow}");
    assert_eq!(new.seen.last().method, "HEAD");
}

#[tokio::test]
async fn over_max_inflight_against_a_slow_shadow_is_skipped() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let gate = Arc::new(Semaphore::new(0));
    let new = gated_backend("new", gate.clone(), json!({"a": 1})).await;
    let proxy = start_shadowed(
        &legacy,
        &new,
        0,
        "percent = 100\nmax_inflight = 1\nnoise_sample = 0",
    )
    .await;

    get(&proxy.url("/api/1")).await;
    for _ in 0..2 {
        assert_eq!(get(&proxy.url("/api/2")).await.status, 200);
    }
    let shadow = shadow_of(&proxy).await;
    assert_eq!(shadow["inflight"], 1);
    assert_eq!(shadow["skipped"]["max_inflight"], 2, "{shadow}");
    gate.add_permits(1);
    let shadow = settled(&proxy, 3).await;
    assert_eq!(counts(&shadow), [1, 0, 0, 2], "{shadow}");
    assert_eq!(new.seen.count(), 1);
}

#[tokio::test]
async fn the_metric_counts_each_result_exactly() {
    let legacy = json_backend("legacy", |seen| json!({"path": seen.uri})).await;
    let new = json_backend("new", |seen| {
        if seen.uri.starts_with("/api/diff") {
            json!({"path": "other"})
        } else {
            json!({"path": seen.uri})
        }
    })
    .await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        &shadow_route(
            0,
            "percent = 100\nmethods = [\"GET\", \"POST\"]\nmax_body = 64\nnoise_sample = 0",
        ),
    ))
    .await;

    for path in [
        "/api/same/1",
        "/api/same/2",
        "/api/same/3",
        "/api/diff/1",
        "/api/diff/2",
    ] {
        get(&proxy.url(path)).await;
    }
    send_body("POST", &proxy.url("/api/big"), &[0; 65]).await;
    settled(&proxy, 6).await;
    let text = metrics(&proxy).await;
    let series = |result: &str| {
        metric(
            &text,
            &format!(r#"strangler_shadow_total{{route="api",result="{result}"}}"#),
        )
    };
    assert_eq!(series("match"), Some(3.0), "{text}");
    assert_eq!(series("mismatch"), Some(2.0), "{text}");
    assert_eq!(series("skipped"), Some(1.0), "{text}");
    assert_eq!(series("error"), None, "{text}");
    assert_eq!(
        metric(
            &text,
            r#"strangler_requests_total{route="api",backend="legacy",code="200"}"#
        ),
        Some(6.0)
    );
}

#[tokio::test]
async fn a_route_at_zero_percent_mirrors_nothing_and_routes_without_shadow_are_not_shown() {
    let legacy = json_backend("legacy", |_| json!({"a": 1})).await;
    let new = json_backend("new", |_| json!({"a": 1})).await;
    let rest = format!(
        "{}\n[[routes]]\nname = \"plain\"\npath = \"/plain\"\n",
        shadow_route(0, "percent = 0")
    );
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), &rest)).await;
    for _ in 0..5 {
        get(&proxy.url("/api/x")).await;
        get(&proxy.url("/plain/x")).await;
    }
    let all = get(&proxy.admin_url("/shadow")).await.json();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    assert_eq!(counts(&all[0]), [0, 0, 0, 0]);
    assert_eq!(all[0]["percent"], 0.0);
    assert_eq!(new.seen.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatches_are_logged_at_most_once_a_second() {
    let legacy = json_backend("legacy", |_| json!({"v": 1})).await;
    let new = json_backend("new", |_| json!({"v": 2})).await;
    let proxy = Binary::start_with(
        "",
        &backends_with(
            &legacy.url(),
            &new.url(),
            &shadow_route(0, "percent = 100\nnoise_sample = 0"),
        ),
        &[],
        &["--log-format", "json"],
    )
    .await;
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/api/m")).await.status, 200);
    }
    let shadow_url = proxy.admin_url("/shadow");
    eventually(DEADLINE, "20 mismatches counted", || async {
        get(&shadow_url).await.json()[0]["counts"]["mismatch"] == 20
    })
    .await;
    let seconds = started.elapsed().as_secs();
    let mismatch_lines: Vec<Value> = proxy
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["fields"]["message"] == "shadow mismatch")
        .collect();
    assert!(!mismatch_lines.is_empty());
    assert!(
        mismatch_lines.len() as u64 <= seconds + 1,
        "{} lines in {seconds}s",
        mismatch_lines.len()
    );
    let fields = &mismatch_lines[0]["fields"];
    assert_eq!(fields["route"], "api", "{fields}");
    assert_eq!(fields["path"], "/api/m", "{fields}");
    assert_eq!(fields["first"], "$.v", "{fields}");
    assert_eq!(mismatch_lines[0]["level"], "INFO");
}
