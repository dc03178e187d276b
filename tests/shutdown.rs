//! Graceful shutdown of the real binary (SPEC §1, §5): on SIGTERM `/readyz`
//! turns 503, new connections are refused, the request in flight finishes,
//! and the process exits 0.
mod support;

use std::sync::Arc;

use http::Request;
use http_body_util::Full;
use strangler::body as pbody;
use support::{Binary, DEADLINE, TestBackend, client, eventually, get, try_get};
use tokio::sync::Notify;

/// A legacy backend that holds every request until `release` is notified.
async fn held_backend(release: Arc<Notify>) -> TestBackend {
    TestBackend::with_handler("legacy", move |_| {
        let release = release.clone();
        async move {
            release.notified().await;
            http::Response::new(pbody::full("legacy"))
        }
    })
    .await
}

/// `legacy` as the legacy backend, with `timeout` unless empty; new unreachable.
fn backends(legacy: &TestBackend, timeout: &str) -> String {
    let timeout = if timeout.is_empty() {
        String::new()
    } else {
        format!("timeout = \"{timeout}\"\n")
    };
    format!(
        "[backends.legacy]\nurl = \"{}\"\n{timeout}\n[backends.new]\nurl = \"http://127.0.0.1:1\"\n",
        legacy.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let release = Arc::new(Notify::new());
    let legacy = held_backend(release.clone()).await;
    let mut proxy = Binary::start("shutdown_timeout = \"10s\"", &backends(&legacy, "20s")).await;
    let addr = proxy.addr;

    // A request the backend holds.
    let in_flight = tokio::spawn(async move { get(&format!("http://{addr}/slow")).await });
    eventually(DEADLINE, "the backend has the request", || async {
        legacy.count() == 1
    })
    .await;

    proxy.signal("TERM");
    eventually(DEADLINE, "/readyz answers 503 while draining", || async {
        try_get(&proxy.admin_url("/readyz"))
            .await
            .is_some_and(|a| a.status == 503)
    })
    .await;
    assert!(!in_flight.is_finished(), "the request is still held");
    assert!(
        proxy.exited().is_none(),
        "the process waits for the request in flight:\n{}",
        proxy.log()
    );
    // New connections are refused once the listener is closed.
    eventually(DEADLINE, "new connections are refused", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    // `/healthz` stays up while the process runs.
    let health = try_get(&proxy.admin_url("/healthz")).await;
    assert!(health.is_some_and(|a| a.status == 200));

    release.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "legacy");

    proxy.assert_exits_0().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_when_idle_exits_0() {
    stop_when_idle("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_when_idle_exits_0() {
    stop_when_idle("INT").await;
}

async fn stop_when_idle(signal: &str) {
    let legacy = TestBackend::start("legacy").await;
    let mut proxy = Binary::start("shutdown_timeout = \"10s\"", &backends(&legacy, "")).await;
    // A served request leaves an idle keep-alive connection open: it must
    // not hold the process up.
    let client = client();
    let answer = support::send_with(
        &client,
        Request::get(proxy.url("/")).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);

    proxy.signal(signal);
    proxy.assert_exits_0().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_the_drain() {
    // Never released: only shutdown_timeout ends the wait.
    let release = Arc::new(Notify::new());
    let legacy = held_backend(release.clone()).await;
    let mut proxy = Binary::start("shutdown_timeout = \"200ms\"", &backends(&legacy, "60s")).await;
    let url = proxy.url("/stuck");
    let in_flight = tokio::spawn(async move { try_get(&url).await });
    eventually(DEADLINE, "the backend has the request", || async {
        legacy.count() == 1
    })
    .await;

    proxy.signal("TERM");
    proxy.assert_exits_0().await;
    // The request cut off by the timeout is not answered 200.
    let answer = in_flight.await.unwrap();
    assert!(
        answer.as_ref().is_none_or(|a| a.status != 200),
        "{answer:?}"
    );
    assert!(
        proxy.log().contains("shutdown_timeout"),
        "the cut-off is logged:\n{}",
        proxy.log()
    );
}
