//! Backend health (SPEC §3.2 "Unhealthy new", §3.5, §5 `/backends`, §7):
//! passive ejection, the half-open trial, active checks, and reloads.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Response, StatusCode};
use serde_json::Value;
use support::{Answer, TestBackend, TestProxy, assert_proxy_error, eventually, get, request, send};

const WITHIN: Duration = Duration::from_secs(10);

/// A backend that reads the request and never answers.
async fn silent(name: &str) -> TestBackend {
    TestBackend::with_handler(name, |_| std::future::pending()).await
}

/// `legacy` and `new` (with `new_extra` added to its table), a route `/api`
/// with fallback and a route `/strict` without, both all on new.
fn config(legacy: &TestBackend, new: &TestBackend, new_extra: &str) -> String {
    let routes = r#"
[[routes]]
name = "api"
path = "/api"
weight = 100
[routes.fallback]
enabled = true

[[routes]]
name = "strict"
path = "/strict"
weight = 100
[routes.fallback]
enabled = false
"#;
    support::config_with_new(&legacy.url(), &new.url(), new_extra, routes)
}

async fn backend_json(proxy: &TestProxy, name: &str) -> Value {
    let all = get(&proxy.admin_url("/backends")).await.json();
    let found = all.as_array().unwrap().iter().find(|b| b["name"] == name);
    found
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in {all}"))
}

async fn state(proxy: &TestProxy, name: &str) -> String {
    backend_json(proxy, name).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn assert_unhealthy_fallback(answer: &Answer) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "legacy");
    assert_eq!(answer.header("x-strangler-fallback"), Some("unhealthy"));
    assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
}

async fn post(url: &str) -> Answer {
    send(
        request("POST", url)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")))
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejected_new_is_skipped_or_503() {
    let legacy = TestBackend::start("legacy").await;
    let new = silent("new").await;
    let extra =
        "timeout = \"300ms\"\n[backends.new.outlier]\nconsecutive_failures = 3\nejection = \"1m\"";
    let proxy = TestProxy::start(&config(&legacy, &new, extra)).await;

    for _ in 0..3 {
        let answer = get(&proxy.url("/api/x")).await;
        assert_eq!(answer.header("x-strangler-fallback"), Some("timeout"));
    }
    assert_eq!(new.count(), 3);
    assert_unhealthy_fallback(&get(&proxy.url("/api/x")).await);
    assert_unhealthy_fallback(&post(&proxy.url("/api/x")).await);
    let strict = get(&proxy.url("/strict")).await;
    assert_proxy_error(&strict, 503);
    assert_eq!(new.count(), 3, "an ejected new is not tried");

    let json = backend_json(&proxy, "new").await;
    assert_eq!(json["state"], "ejected");
    assert_eq!(json["ejections"], 1);
    assert!(json["ejected_until"].is_string(), "{json}");
    assert_eq!(json["health"], Value::Null);
    assert_eq!(backend_json(&proxy, "legacy").await["state"], "available");

    let routes = get(&proxy.admin_url("/routes")).await.json();
    let api = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "api");
    assert_eq!(api.unwrap()["new_available"], false);

    let metrics = get(&proxy.admin_url("/metrics")).await.text();
    assert!(metrics.contains("strangler_backend_available{backend=\"new\"} 0"));
    assert!(metrics.contains("strangler_backend_available{backend=\"legacy\"} 1"));
    assert!(metrics.contains("strangler_backend_ejections_total{backend=\"new\"} 1"));
    assert!(metrics.contains("strangler_fallbacks_total{route=\"api\",reason=\"unhealthy\"} 2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_admits_one_trial_and_doubles_on_failure() {
    let legacy = TestBackend::start("legacy").await;
    let new = silent("new").await;
    let extra = "timeout = \"300ms\"\n[backends.new.outlier]\nconsecutive_failures = 1\nejection = \"400ms\"\nmax_ejection = \"1m\"";
    let proxy = TestProxy::start(&config(&legacy, &new, extra)).await;

    get(&proxy.url("/api/x")).await;
    assert_eq!(backend_json(&proxy, "new").await["ejections"], 1);
    eventually(WITHIN, "new half-open", || async {
        state(&proxy, "new").await == "half_open"
    })
    .await;

    let url = proxy.url("/api/trial");
    let trial = tokio::spawn(async move { get(&url).await });
    eventually(WITHIN, "the trial reached new", || async {
        new.count() == 2
    })
    .await;
    assert_unhealthy_fallback(&get(&proxy.url("/api/other")).await);
    let trial = trial.await.unwrap();
    assert_eq!(trial.header("x-strangler-fallback"), Some("timeout"));
    assert_eq!(new.count(), 2, "one trial at a time");

    let json = backend_json(&proxy, "new").await;
    assert_eq!(json["state"], "ejected");
    assert_eq!(json["ejections"], 2);
    assert!(json["ejected_until"].is_string(), "{json}");
    // The doubled length is a pure function of the clock, proved at exact
    // instants by `failed_trial_doubles_up_to_the_cap_and_success_resets` in src/backend/health_tests.rs.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_check_marks_unhealthy_and_back() {
    let legacy = TestBackend::start("legacy").await;
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let new = TestBackend::with_handler("new", move |seen| {
        let status = if seen.uri == "/health" && !flag.load(Ordering::SeqCst) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        async move {
            let mut response = Response::new(strangler::body::full("new"));
            *response.status_mut() = status;
            response
        }
    })
    .await;
    let extra = "[backends.new.health]\npath = \"/health\"\ninterval = \"50ms\"\ntimeout = \"500ms\"\nunhealthy_after = 2\nhealthy_after = 2";
    let proxy = TestProxy::start(&config(&legacy, &new, extra)).await;

    eventually(WITHIN, "a first good check", || async {
        backend_json(&proxy, "new").await["health"]["last_result"] == "ok"
    })
    .await;
    assert_eq!(get(&proxy.url("/api")).await.text(), "new");

    healthy.store(false, Ordering::SeqCst);
    eventually(WITHIN, "new unhealthy", || async {
        state(&proxy, "new").await == "unhealthy"
    })
    .await;
    assert_eq!(
        backend_json(&proxy, "new").await["health"]["last_result"],
        "status-503"
    );
    assert_unhealthy_fallback(&get(&proxy.url("/api")).await);
    assert_proxy_error(&get(&proxy.url("/strict")).await, 503);

    healthy.store(true, Ordering::SeqCst);
    eventually(WITHIN, "new available again", || async {
        state(&proxy, "new").await == "available"
    })
    .await;
    assert_eq!(get(&proxy.url("/api")).await.text(), "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_survives_a_reload_that_changes_the_backend() {
    let legacy = TestBackend::start("legacy").await;
    let new = silent("new").await;
    let outlier = "[backends.new.outlier]\nconsecutive_failures = 1\nejection = \"1m\"";
    let proxy = TestProxy::start(&config(
        &legacy,
        &new,
        &format!("timeout = \"300ms\"\n{outlier}"),
    ))
    .await;
    get(&proxy.url("/api")).await;
    assert_eq!(state(&proxy, "new").await, "ejected");

    let changed = config(&legacy, &new, &format!("timeout = \"250ms\"\n{outlier}"));
    std::fs::write(&proxy.path, changed).unwrap();
    let reload = send(
        request("POST", &proxy.admin_url("/reload"))
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(reload.status, 200, "{reload:?}");

    let json = backend_json(&proxy, "new").await;
    assert_eq!(json["state"], "ejected");
    assert_eq!(json["ejections"], 1);
    assert_unhealthy_fallback(&get(&proxy.url("/api")).await);
    assert_eq!(new.count(), 1);
}
