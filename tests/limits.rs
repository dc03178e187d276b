//! The `[server]` connection limits: `header_read_timeout` (slowloris) and
//! `max_connections`.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::time::Duration;

use support::{DEADLINE, TestBackend, TestProxy, config_with, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; returns what it sent. Panics after DEADLINE.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the proxy did not close the connection");
    all
}

async fn proxy_with(server: &str) -> (TestProxy, TestBackend) {
    let legacy = TestBackend::start("legacy").await;
    let toml = config_with(&legacy.url(), &legacy.url(), "").replace(
        "admin_listen = \"127.0.0.1:0\"",
        &format!("admin_listen = \"127.0.0.1:0\"\n{server}"),
    );
    (TestProxy::start(&toml).await, legacy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_disconnected() {
    let (proxy, legacy) = proxy_with("header_read_timeout = \"300ms\"").await;
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let sent = read_until_closed(&mut silent).await;
    assert!(
        sent.is_empty() || sent.starts_with(b"HTTP/1.1 408"),
        "{sent:?}"
    );
    // The proxy still serves everyone else.
    assert_eq!(get(&proxy.url("/x")).await.status, 200);
    assert_eq!(legacy.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_head_is_disconnected() {
    let (proxy, legacy) = proxy_with("header_read_timeout = \"300ms\"").await;
    for partial in [
        &b"GET /slow HTTP/1.1\r\nHost: x\r\n"[..],
        b"P",
        b"PRI * HTTP/2.0\r\n",
    ] {
        let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
        slow.write_all(partial).await.unwrap();
        let sent = read_until_closed(&mut slow).await;
        assert!(
            !sent.starts_with(b"HTTP/1.1 200"),
            "a partial head must not be served: {sent:?}"
        );
    }
    assert_eq!(legacy.count(), 0, "no partial request reached the backend");
    assert_eq!(get(&proxy.url("/x")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_wait_for_a_free_slot() {
    let (proxy, legacy) = proxy_with("max_connections = 1").await;
    let request = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

    // The first connection is served and kept open (keep-alive).
    let mut first = TcpStream::connect(proxy.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, first.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    // The second one connects (kernel backlog) but is not served meanwhile.
    let mut second = TcpStream::connect(proxy.addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut buf)).await;
    assert!(early.is_err(), "served while the only slot was taken");
    assert_eq!(legacy.count(), 1);

    // Closing the first frees the slot: the second is served.
    drop(first);
    let n = tokio::time::timeout(DEADLINE, second.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(legacy.count(), 2);
}
