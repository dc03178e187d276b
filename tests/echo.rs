//! `strangler echo` (SPEC §1): the small echo backend, run as a user runs it.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use http_body_util::Full;
use support::{DEADLINE, Killed, eventually, get, request, send, try_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_describes_requests_and_fails_under_fail_path() {
    let addr: SocketAddr = ([127, 0, 0, 1], support::free_port()).into();
    let child = Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args(["echo", "--name", "X", "--listen", &addr.to_string()])
        .args(["--fail-path", "/bad"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strangler echo");
    let mut child = Killed(child);
    let base = format!("http://{addr}");
    let health = format!("{base}/health");
    eventually(DEADLINE, "the echo backend answers", || {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("strangler echo exited with {status}");
        }
        let health = health.clone();
        async move { try_get(&health).await.is_some() }
    })
    .await;

    let answer = get(&health).await;
    assert_eq!(answer.status, 200, "{answer:?}");

    let answer = send(
        request("POST", &format!("{base}/a/b?q=1"))
            .header("x-custom", "custom-value")
            .body(Full::from("12345"))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let json = answer.json();
    assert_eq!(json["name"], "X", "{json}");
    assert_eq!(json["method"], "POST", "{json}");
    assert_eq!(json["path"], "/a/b", "{json}");
    assert_eq!(json["query"], "q=1", "{json}");
    assert_eq!(json["headers"]["x-custom"], "custom-value", "{json}");
    assert_eq!(json["body_length"], 5, "{json}");

    // --fail-path is segment-aware: /bad/x fails, /badx does not.
    let answer = get(&format!("{base}/bad/x")).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.json()["name"], "X");
    let answer = get(&format!("{base}/badx")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["path"], "/badx");
    drop(child);
}
