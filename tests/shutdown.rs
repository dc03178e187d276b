//! Graceful shutdown of the real binary (SPEC §1, §5): on SIGTERM `/readyz`
//! turns 503, new connections are refused, the request in flight finishes,
//! and the process exits 0.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure
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

/// An open WebSocket tunnel keeps working through a graceful shutdown, and
/// the shutdown ends once it closes (in-process: `Running::shutdown`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_an_open_websocket_then_finishes_when_it_closes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (ws_addr, echo) = support::ws_echo_backend().await;
    let legacy = TestBackend::start("legacy").await;
    // Longer than DEADLINE: a shutdown that ends within DEADLINE of the close
    // ended because the tunnel closed, not because the timeout ran out.
    let proxy = support::TestProxy::start(&support::config_with_server(
        "shutdown_timeout = \"30s\"",
        &legacy.url(),
        &legacy.url(),
        &support::ws_route(ws_addr),
    ))
    .await;
    let support::TestProxy {
        running,
        addr,
        admin,
        dir: _dir,
        ..
    } = proxy;

    let (mut ws, response) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake failed");
    assert_eq!(response.status(), 101);

    async fn round_trip<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("no echo in time")
            .expect("the tunnel ended")
            .expect("websocket error");
        assert_eq!(echoed, Message::text(text));
    }
    round_trip(&mut ws, "before shutdown").await;

    let shutdown = tokio::spawn(running.shutdown());
    // The shutdown has begun: not ready, and the listener is closed.
    eventually(DEADLINE, "/readyz answers 503", || async move {
        try_get(&format!("http://{admin}/readyz"))
            .await
            .is_some_and(|a| a.status == 503)
    })
    .await;
    eventually(DEADLINE, "new connections are refused", || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;

    // The tunnel still carries messages both ways, and the shutdown waits.
    round_trip(&mut ws, "during shutdown").await;
    assert!(
        !shutdown.is_finished(),
        "the shutdown finished with a WebSocket still open"
    );
    let health = try_get(&format!("http://{admin}/healthz")).await;
    assert!(
        health.is_some_and(|a| a.status == 200),
        "the admin API stopped while a tunnel was open"
    );
    assert!(!shutdown.is_finished());

    // Close the WebSocket: the close handshake, then the connection ends.
    ws.close(None).await.unwrap();
    for _ in 0..4 {
        match tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("close handshake timed out")
        {
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    drop(ws);
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .expect("the shutdown did not finish after the WebSocket closed")
        .unwrap();
    // A read error (the tunnel cut once closed) ends the echo; that is fine here.
    let _ = tokio::time::timeout(DEADLINE, echo)
        .await
        .expect("the echo server did not finish")
        .unwrap();
    assert_eq!(legacy.count(), 0);
}
