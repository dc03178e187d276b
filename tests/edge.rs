//! Edge hardening: what an attacker, a load balancer and a sloppy backend can
//! do to the proxy. Each attack asserts two things: the proxy kept serving
//! other clients, and nothing unintended reached the backend (counted).
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use support::{DEADLINE, TestBackend, TestProxy, config_with, config_with_server, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

// === helpers ===

/// Reads until the peer closes; returns what it sent. Panics after DEADLINE.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
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

/// Reads one HTTP/1.1 response head (and whatever body came with it in the
/// same reads, up to its end when it has a Content-Length). Panics after DEADLINE.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = find(&all, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&all[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if all.len() >= end + 4 + len {
                    break;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("no response from the proxy");
    String::from_utf8_lossy(&all).into_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status code of a raw HTTP/1.1 response.
fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {response:?}"))
}

/// Sends `raw` on a fresh connection and returns the first response.
async fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    read_response(&mut stream).await
}

/// A plain GET through the proxy still answers 200: it kept serving.
async fn still_serves(proxy: &TestProxy) {
    let answer = get(&proxy.url("/still-serving")).await;
    assert_eq!(answer.status, 200, "the proxy stopped serving");
}

async fn h2_connect(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    (client, connection)
}

// === idle connections ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_answering_pings_are_closed_on_both_listeners() {
    let legacy = TestBackend::start("legacy").await;
    let toml = config_with_server("idle_timeout = \"300ms\"", &legacy.url(), &legacy.url(), "");
    let proxy = TestProxy::start(&toml).await;
    for addr in [proxy.addr, proxy.admin] {
        // The h2 client answers the proxy's PINGs on its own; it never sends a request.
        let (_client, connection) = h2_connect(addr).await;
        let closed = timeout(DEADLINE, connection).await;
        assert!(closed.is_ok(), "an idle h2 connection to {addr} was kept open");
    }
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_is_not_idle() {
    let slow = TestBackend::with_handler("legacy", |_| async {
        tokio::time::sleep(Duration::from_millis(900)).await;
        http::Response::new(strangler::body::full("slow"))
    })
    .await;
    let toml = config_with_server("idle_timeout = \"200ms\"", &slow.url(), &slow.url(), "");
    let proxy = TestProxy::start(&toml).await;
    let (client, _connection) = h2_connect(proxy.addr).await;
    let mut client = timeout(DEADLINE, client.ready()).await.unwrap().unwrap();
    let request = http::Request::get(format!("http://{}/slow", proxy.addr))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = timeout(DEADLINE, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = timeout(DEADLINE, body.data()).await.unwrap() {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, b"slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_keep_alive_connections_are_closed() {
    let legacy = TestBackend::start("legacy").await;
    // header_read_timeout is long: idle_timeout alone must close the connection.
    let toml = config_with_server(
        "idle_timeout = \"300ms\"\nheader_read_timeout = \"1h\"",
        &legacy.url(),
        &legacy.url(),
        "",
    );
    let proxy = TestProxy::start(&toml).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /a HTTP/1.1\r\nhost: a.test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&read_response(&mut stream).await), 200);
    read_until_closed(&mut stream).await;
    assert_eq!(legacy.count(), 1);
}
