//! End-to-end forwarding (SPEC §3.3, §6): headers both ways, body limits,
//! streaming without buffering, upgrades, absolute-form, proxy errors and h2c.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use strangler::body::{self as pbody, ProxyBody};
use support::{
    DEADLINE, TestBackend, TestProxy, assert_proxy_error, client, config_with, dead_addr, get,
    get_with, request, send, ws_echo_backend, ws_route,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// A proxy whose `_default` (legacy) is `legacy`.
async fn proxy_for(legacy: &TestBackend) -> TestProxy {
    TestProxy::start(&config_with(&legacy.url(), &legacy.url(), "")).await
}

/// A proxy with only a legacy backend at `legacy`: `server` is added to the
/// `[server]` table, `backend` to `[backends.legacy]`.
async fn legacy_only_proxy(legacy: &str, server: &str, backend: &str) -> TestProxy {
    TestProxy::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{server}

[backends.legacy]
url = "{legacy}"
{backend}
"#
    ))
    .await
}

/// Sends `GET url` and returns the response as soon as its head is in, its
/// body unread; `what` says what a missing head means.
async fn response_head(url: &str, what: &str) -> Response<Incoming> {
    tokio::time::timeout(
        DEADLINE,
        client().request(Request::get(url).body(Full::default()).unwrap()),
    )
    .await
    .expect(what)
    .unwrap()
}

/// Writes `bytes` on a fresh connection to `addr` and reads until the proxy
/// closes it (send `Connection: close`). A reset after some bytes ends the read.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The proxy may answer and close before reading everything (e.g. 413).
    let _ = stream.write_all(bytes).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "no EOF within {DEADLINE:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(error)) if !out.is_empty() => {
                eprintln!("read ended with {error}");
                break;
            }
            Ok(Err(error)) => panic!("read failed before any answer: {error}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 answer.
fn raw_status(answer: &str) -> u16 {
    let line = answer.lines().next().unwrap_or_default();
    let code = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .unwrap_or_else(|| panic!("not an HTTP/1.1 answer: {answer:?}"));
    code.parse().unwrap()
}

/// A header of a raw HTTP/1.1 answer (first occurrence, case-insensitive name).
fn raw_header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Asserts the proxy still serves an ordinary request.
async fn assert_still_serving(proxy: &TestProxy, backend: &TestBackend) {
    let answer = get(&proxy.url("/still-serving")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), backend.name);
    // By uri, not by count: a request refused mid-body before this one may
    // be recorded by the backend after it (it records a request once its
    // body ends, and a cut body ends when the connection does).
    let seen = backend.seen.all();
    assert_eq!(
        seen.iter().filter(|s| s.uri == "/still-serving").count(),
        1,
        "{seen:?}"
    );
}

// === headers ===

/// The hop-by-hop headers `HOP_REQUEST` sends (`x-hop` is named by `Connection`).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "x-hop",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// A request carrying every kind of hop-by-hop header, and end-to-end ones.
const HOP_REQUEST: &[u8] = b"GET /hop HTTP/1.1\r\n\
          Host: front.example\r\n\
          Connection: close, X-Hop\r\n\
          X-Hop: 1\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Authorization: Basic eDp5\r\n\
          Proxy-Connection: keep-alive\r\n\
          TE: gzip\r\n\
          Trailer: x-checksum\r\n\
          Upgrade: h2c\r\n\
          Authorization: Bearer end-to-end\r\n\
          Cookie: a=1\r\n\
          X-End: yes\r\n\
          \r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_headers_are_removed() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = proxy_for(&legacy).await;
    // Control: sent directly, the backend records every one of these headers.
    let direct = raw_exchange(legacy.addr, HOP_REQUEST).await;
    assert_eq!(raw_status(&direct), 200, "{direct}");
    let seen = legacy.last();
    for name in HOP_BY_HOP {
        assert!(seen.headers.contains_key(name), "control lacks {name}");
    }

    let answer = raw_exchange(proxy.addr, HOP_REQUEST).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(legacy.count(), 2);
    let seen = legacy.last();
    for name in HOP_BY_HOP {
        assert!(
            seen.headers.get(name).is_none(),
            "{name} reached the backend: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.headers["x-end"], "yes");
    assert_eq!(seen.headers["authorization"], "Bearer end-to-end");
    assert_eq!(seen.headers["cookie"], "a=1");
    assert_eq!(seen.uri, "/hop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_response_headers_are_removed() {
    let legacy = TestBackend::with_handler("legacy", |_| async {
        Response::builder()
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5, max=100")
            .header("proxy-authenticate", "Basic realm=\"x\"")
            .header("x-end", "yes")
            .header("cache-control", "no-store")
            .body(pbody::full("legacy"))
            .unwrap()
    })
    .await;
    // Control: the backend really sends them.
    let direct = get(&format!("{}/hop", legacy.url())).await;
    for name in ["connection", "x-hop", "keep-alive", "proxy-authenticate"] {
        assert!(direct.headers.contains_key(name), "control lacks {name}");
    }
    let proxy = proxy_for(&legacy).await;
    let answer = get_with(&proxy.url("/hop"), &[("x-end", "request")]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "legacy");
    for name in ["connection", "x-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            answer.headers.get(name).is_none(),
            "{name} reached the client: {:?}",
            answer.headers
        );
    }
    assert_eq!(answer.header("x-end"), Some("yes"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(legacy.last().headers["x-end"], "request");
    assert_eq!(legacy.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_and_request_id() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = proxy_for(&legacy).await;

    let answer = get_with(
        &proxy.url("/fwd"),
        &[
            ("host", "front.example:8080"),
            ("x-forwarded-for", "1.2.3.4"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    let seen = legacy.last();
    assert_eq!(seen.headers["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
    assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "front.example:8080");
    // preserve_host defaults to true.
    assert_eq!(seen.headers["host"], "front.example:8080");
    // A request id was made, sent on, and echoed.
    let made = seen.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(!made.is_empty());
    assert_eq!(answer.header("x-request-id"), Some(made.as_str()));

    // Without an earlier X-Forwarded-For, the client address alone; a second
    // request gets another id.
    let answer = get(&proxy.url("/fwd")).await;
    let seen = legacy.last();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], proxy.addr.to_string());
    let other = seen.headers["x-request-id"].to_str().unwrap();
    assert_ne!(other, made, "request ids must differ");
    assert_eq!(answer.header("x-request-id"), Some(other));

    // A client's id is passed through and echoed.
    let answer = get_with(&proxy.url("/fwd"), &[("x-request-id", "req-42")]).await;
    assert_eq!(legacy.last().headers["x-request-id"], "req-42");
    assert_eq!(answer.header("x-request-id"), Some("req-42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_host_false_sends_the_backend_authority() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = legacy_only_proxy(&legacy.url(), "", "preserve_host = false").await;
    let answer = get_with(&proxy.url("/h"), &[("host", "front.example")]).await;
    assert_eq!(answer.status, 200);
    let seen = legacy.last();
    assert_eq!(seen.headers["host"], legacy.addr.to_string());
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    assert_eq!(seen.headers["x-forwarded-host"], "front.example");
}

// === request bodies ===

const LIMIT: usize = 1024;

async fn limited_proxy(legacy: &TestBackend) -> TestProxy {
    let server = format!("max_request_body = {LIMIT}");
    legacy_only_proxy(&legacy.url(), &server, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_body_over_the_limit_is_413_without_contacting_the_backend() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = limited_proxy(&legacy).await;

    let answer = send(
        request("POST", &proxy.url("/upload"))
            .body(Full::from(vec![b'x'; LIMIT + 1]))
            .unwrap(),
    )
    .await;
    assert_proxy_error(&answer, 413);
    assert_eq!(legacy.count(), 0, "the backend was contacted");

    // At the limit, the body goes through whole.
    let body = vec![b'y'; LIMIT];
    let answer = send(
        request("POST", &proxy.url("/upload"))
            .body(Full::from(body.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let seen = legacy.last();
    assert_eq!(seen.body_len, LIMIT);
    assert_eq!(seen.body_sha256, support::sha256_hex(&body));
    assert_still_serving(&proxy, &legacy).await;
}

/// A raw `POST /upload` whose chunked body is `count` times `chunk` (512 bytes).
fn chunked_upload(chunk: &[u8; 512], count: usize) -> Vec<u8> {
    let mut raw = b"POST /upload HTTP/1.1\r\n\
                    Host: front.example\r\n\
                    Transfer-Encoding: chunked\r\n\
                    Connection: close\r\n\
                    \r\n"
        .to_vec();
    for _ in 0..count {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_413() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = limited_proxy(&legacy).await;

    // Four 512-byte chunks, no Content-Length: the limit is found while streaming.
    let chunk = [b'z'; 512];
    let raw = chunked_upload(&chunk, 4);
    let answer = raw_exchange(proxy.addr, &raw).await;
    assert_eq!(raw_status(&answer), 413, "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert!(json["error"].is_string(), "{json}");
    assert_eq!(
        json["request_id"],
        raw_header(&answer, "x-request-id").unwrap(),
        "{answer}"
    );
    assert!(
        legacy.seen.all().iter().all(|s| s.body_len <= LIMIT),
        "the backend got the whole oversized body"
    );

    // A chunked body within the limit streams through whole.
    let raw = chunked_upload(&chunk, 2);
    let answer = raw_exchange(proxy.addr, &raw).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(legacy.last().body_len, 1024);
    assert_still_serving(&proxy, &legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_400_and_the_proxy_keeps_serving() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = proxy_for(&legacy).await;
    let answer = raw_exchange(proxy.addr, b"GARBAGE\r\n\r\n").await;
    let status = raw_status(&answer);
    assert!((400..500).contains(&status), "{answer}");
    assert_eq!(legacy.count(), 0);
    assert_still_serving(&proxy, &legacy).await;
}

// === streaming responses ===

const BIG: u64 = 64 << 20;
const CHUNK: usize = 64 << 10;
/// A prime that does not divide the chunk size, so misplaced chunks show.
const PERIOD: usize = 251;

/// The pattern, long enough to take any `CHUNK`-long window at any phase.
fn pattern() -> Bytes {
    (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_response_streams_with_backpressure() {
    let produced = Arc::new(AtomicU64::new(0));
    let counter = produced.clone();
    let legacy = TestBackend::with_handler("legacy", move |_| {
        let counter = counter.clone();
        async move {
            let pattern = pattern();
            // Each chunk is made only when the proxy asks for it.
            let chunks = futures_util::stream::unfold(0u64, move |offset| {
                let counter = counter.clone();
                let pattern = pattern.clone();
                async move {
                    if offset >= BIG {
                        return None;
                    }
                    let phase = (offset % PERIOD as u64) as usize;
                    let chunk = pattern.slice(phase..phase + CHUNK);
                    counter.fetch_add(CHUNK as u64, Ordering::SeqCst);
                    Some((
                        Ok::<_, Infallible>(Frame::data(chunk)),
                        offset + CHUNK as u64,
                    ))
                }
            });
            Response::new(pbody::boxed(StreamBody::new(chunks)))
        }
    })
    .await;
    let proxy = proxy_for(&legacy).await;

    let response = response_head(
        &proxy.url("/big"),
        "no response head: the proxy may be buffering the body",
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let pattern = pattern();
    let mut received: u64 = 0;
    let check = |data: &Bytes, received: &mut u64| {
        for piece in data.chunks(CHUNK) {
            let phase = (*received % PERIOD as u64) as usize;
            assert!(
                piece == &pattern[phase..phase + piece.len()],
                "wrong bytes at offset {received}"
            );
            *received += piece.len() as u64;
        }
    };
    let first = next_data(&mut body).await.expect("no first chunk");
    check(&first, &mut received);

    // The client reads no more: the backend must stall once the buffers on
    // the way are full. Wait until its count stays put for 25 polls in a row.
    const STABLE_POLLS: u32 = 25;
    let mut last = produced.load(Ordering::SeqCst);
    let mut stable = 0;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = produced.load(Ordering::SeqCst);
        if now == last {
            stable += 1;
            if stable == STABLE_POLLS {
                break;
            }
        } else {
            stable = 0;
            last = now;
        }
    }
    assert_eq!(
        stable, STABLE_POLLS,
        "the backend kept producing ({last} bytes so far): nothing holds it back"
    );
    eprintln!("backend stalled after producing {last} bytes");
    assert!(
        last < 24 << 20,
        "the backend produced {last} bytes while the client read {received}: the proxy buffers"
    );

    // Now read the rest: exactly 64 MiB, in order.
    while let Some(data) = next_data(&mut body).await {
        check(&data, &mut received);
    }
    assert_eq!(received, BIG);
    assert_eq!(produced.load(Ordering::SeqCst), BIG);
}

/// The next data frame of `body` (trailers skipped), within [`DEADLINE`].
async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("no body frame in time: the proxy may be buffering")?
            .expect("body failed");
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_chunked_response_is_forwarded_chunk_by_chunk() {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let legacy = TestBackend::with_handler("legacy", move |_| {
        let gate = gate.clone();
        async move {
            let chunks = futures_util::stream::unfold(0u8, move |step| {
                let gate = gate.clone();
                async move {
                    let data = match step {
                        0 => Bytes::from_static(b"chunk-1;"),
                        1 => {
                            // Sent only once the client has chunk 1.
                            gate.notified().await;
                            Bytes::from_static(b"chunk-2.")
                        }
                        _ => return None,
                    };
                    Some((Ok::<_, Infallible>(Frame::data(data)), step + 1))
                }
            });
            Response::new(pbody::boxed(StreamBody::new(chunks)))
        }
    })
    .await;
    let proxy = proxy_for(&legacy).await;
    let response = response_head(
        &proxy.url("/slow"),
        "no response head before the body ended: the proxy buffers",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none());
    let mut body = response.into_body();
    let mut got = Vec::new();
    // Bounded: each frame carries at least one byte.
    while got.len() < 8 {
        let data = next_data(&mut body)
            .await
            .expect("body ended before chunk 1");
        got.extend_from_slice(&data);
    }
    assert_eq!(got, b"chunk-1;");
    release.notify_one();
    while let Some(data) = next_data(&mut body).await {
        got.extend_from_slice(&data);
    }
    assert_eq!(got, b"chunk-1;chunk-2.");
}

// === upgrades ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    let (ws_addr, echo) = ws_echo_backend().await;
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), &ws_route(ws_addr))).await;

    let (mut ws, response) = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr)),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake failed");
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["x-strangler-route"], "ws");
    assert_eq!(response.headers()["x-strangler-backend"], "ws");

    for message in [
        Message::text("hello through strangler"),
        Message::binary(vec![0u8, 1, 2, 253, 254, 255]),
        Message::text("second"),
    ] {
        ws.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("no echo in time")
            .expect("stream ended")
            .expect("websocket error");
        assert_eq!(echoed, message);
    }
    ws.close(None).await.unwrap();
    // The close handshake completes: the echo's Close, then the end.
    let mut closed = false;
    for _ in 0..4 {
        match tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("close handshake timed out")
        {
            Some(Ok(Message::Close(_))) => closed = true,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(error)) => panic!("unclean close: {error}"),
            None => break,
        }
    }
    assert!(closed, "no Close frame came back");
    tokio::time::timeout(DEADLINE, echo)
        .await
        .expect("echo server did not finish")
        .unwrap()
        .expect("the echo server failed to read");
    assert_eq!((legacy.count(), new.count()), (0, 0));
}

// === absolute-form ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_is_never_proxied_to_its_host() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let evil = TestBackend::start("evil").await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        r#"
[[routes]]
name = "x"
path = "/x"
weight = 100
"#,
    ))
    .await;
    for (path, backend) in [("/other", "legacy"), ("/x", "new")] {
        let raw = format!(
            "GET http://{evil}{path} HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n",
            evil = evil.addr
        );
        let answer = raw_exchange(proxy.addr, raw.as_bytes()).await;
        assert_eq!(raw_status(&answer), 200, "{answer}");
        assert_eq!(raw_header(&answer, "x-strangler-backend"), Some(backend));
        assert!(answer.ends_with(backend), "{answer}");
    }
    assert_eq!(
        evil.count(),
        0,
        "the proxy forwarded to the absolute URI's host"
    );
    assert_eq!(legacy.last().uri, "/other");
    assert_eq!(new.last().uri, "/x");
}

// === proxy errors ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_backend_is_502_json() {
    let dead = dead_addr();
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(&dead.url, &new.url(), "")).await;
    let answer = get(&proxy.url("/x")).await;
    assert_proxy_error(&answer, 502);
    assert_eq!(answer.header("x-strangler-route"), Some("_default"));

    let answer = get_with(&proxy.url("/x"), &[("x-request-id", "client-id-1")]).await;
    assert_proxy_error(&answer, 502);
    assert_eq!(answer.json()["request_id"], "client-id-1");
    assert_eq!(new.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_backend_is_504_json() {
    let legacy =
        TestBackend::with_handler("legacy", |_| std::future::pending::<Response<ProxyBody>>())
            .await;
    let proxy = legacy_only_proxy(&legacy.url(), "", "timeout = \"300ms\"").await;
    let answer = get(&proxy.url("/slow")).await;
    assert_proxy_error(&answer, 504);
    assert_eq!(
        legacy.count(),
        1,
        "the request should have reached the backend"
    );
    assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
}

// === HTTP/2 ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_works() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = proxy_for(&legacy).await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let body = Bytes::from_static(b"over h2c");
    let response = tokio::time::timeout(
        DEADLINE,
        h2.request(
            request("POST", &proxy.url("/h2?x=1"))
                .body(Full::new(body.clone()))
                .unwrap(),
        ),
    )
    .await
    .expect("h2c request timed out")
    .expect("h2c request failed");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-strangler-backend"], "legacy");
    let text = tokio::time::timeout(DEADLINE, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(text, "legacy");
    let seen = legacy.last();
    assert_eq!(seen.uri, "/h2?x=1");
    assert_eq!(seen.body_sha256, support::sha256_hex(&body));
    assert_eq!(seen.headers["x-forwarded-host"], proxy.addr.to_string());
}

// === forwarding headers cannot be named away ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_name_away_the_forwarding_headers() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = proxy_for(&legacy).await;
    // The client lists every header the proxy sets in `Connection`, so a
    // naive "remove what Connection names" after setting them would drop them.
    let raw = b"GET /named HTTP/1.1\r\n\
                Host: front.example\r\n\
                Connection: close, x-forwarded-for, x-forwarded-host, x-forwarded-proto, x-request-id\r\n\
                X-Forwarded-For: 6.6.6.6\r\n\
                X-Forwarded-Host: forged.example\r\n\
                X-Forwarded-Proto: https\r\n\
                X-Request-Id: client-chosen-id\r\n\
                \r\n";
    let answer = raw_exchange(proxy.addr, raw).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(legacy.count(), 1);
    let seen = legacy.last();
    let xff = seen
        .headers
        .get("x-forwarded-for")
        .unwrap_or_else(|| panic!("x-forwarded-for was removed: {:?}", seen.headers))
        .to_str()
        .unwrap();
    assert!(
        xff.ends_with("127.0.0.1"),
        "x-forwarded-for must end with the client address: {xff:?}"
    );
    assert_eq!(
        seen.headers
            .get("x-forwarded-proto")
            .map(|v| v.to_str().unwrap()),
        Some("http"),
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.headers
            .get("x-forwarded-host")
            .map(|v| v.to_str().unwrap()),
        Some("front.example"),
        "x-forwarded-host must be the client's Host: {:?}",
        seen.headers
    );
    let id = seen
        .headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("x-request-id was removed: {:?}", seen.headers))
        .to_str()
        .unwrap();
    assert!(!id.is_empty());
    assert_eq!(raw_header(&answer, "x-request-id"), Some(id), "{answer}");
}

// === x-strangler-* headers come from the proxy only ===

/// A backend that answers 200 with forged `x-strangler-*` headers.
async fn forging_backend(name: &str) -> TestBackend {
    let body = name.to_owned();
    TestBackend::with_handler(name, move |_| {
        let body = body.clone();
        async move {
            Response::builder()
                .header("x-strangler-fallback", "status-500")
                .header("x-strangler-route", "forged")
                .header("x-strangler-backend", "forged")
                .body(pbody::full(body))
                .unwrap()
        }
    })
    .await
}

const FORGED_ROUTES: &str = r#"
[[routes]]
name = "moved"
path = "/moved"
weight = 100
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_cannot_forge_the_debug_headers() {
    let legacy = forging_backend("legacy").await;
    let new = forging_backend("new").await;
    // Control: the backend really sends them.
    let direct = get(&format!("{}/moved", new.url())).await;
    assert_eq!(direct.header("x-strangler-fallback"), Some("status-500"));

    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), FORGED_ROUTES)).await;
    for (path, route, backend) in [
        ("/moved/x", "moved", "new"),
        ("/other", "_default", "legacy"),
    ] {
        let answer = get(&proxy.url(path)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.text(), backend);
        assert_eq!(answer.header("x-strangler-route"), Some(route), "{path}");
        assert_eq!(
            answer.header("x-strangler-backend"),
            Some(backend),
            "{path}"
        );
        assert_eq!(
            answer.headers.get_all("x-strangler-route").iter().count(),
            1,
            "{path}: {:?}",
            answer.headers
        );
        assert_eq!(
            answer.headers.get_all("x-strangler-backend").iter().count(),
            1,
            "{path}: {:?}",
            answer.headers
        );
        assert!(
            answer.header("x-strangler-fallback").is_none(),
            "{path}: a backend's x-strangler-fallback reached the client: {:?}",
            answer.headers
        );
    }

    // With debug_headers off, none of the three reaches the client.
    let proxy = TestProxy::start(&support::config_with_server(
        "debug_headers = false",
        &legacy.url(),
        &new.url(),
        FORGED_ROUTES,
    ))
    .await;
    for (path, backend) in [("/moved/x", "new"), ("/other", "legacy")] {
        let answer = get(&proxy.url(path)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.text(), backend);
        for name in [
            "x-strangler-route",
            "x-strangler-backend",
            "x-strangler-fallback",
        ] {
            assert!(
                answer.headers.get(name).is_none(),
                "{path}: {name} reached the client with debug_headers = false: {:?}",
                answer.headers
            );
        }
    }
}

// === a stalled request body ===

/// Reads one whole HTTP/1.1 answer (head and a `Content-Length` body) from
/// `stream`, within [`DEADLINE`]; an EOF or reset ends it early.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let complete = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = raw_header(&format!("{head}\r\n\r\n"), "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        body.len() >= length
    };
    while !complete(&out) {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "no whole answer within {DEADLINE:?}; got {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_on_a_fallback_route_is_408_json() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&support::config_with_server(
        "header_read_timeout = \"300ms\"",
        &legacy.url(),
        &new.url(),
        r#"
[[routes]]
name = "api"
path = "/api"
weight = 100
"#,
    ))
    .await;

    // The head is whole; the body promises 10 bytes, sends 2, then stalls.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"PUT /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(raw_status(&answer), 408, "{answer}");
    assert_eq!(
        raw_header(&answer, "content-type"),
        Some("application/json"),
        "{answer}"
    );
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    let object = json.as_object().unwrap();
    assert_eq!(object.len(), 2, "{json}");
    assert!(
        json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{json}"
    );
    let id = raw_header(&answer, "x-request-id").expect("x-request-id on the 408");
    assert!(!id.is_empty());
    assert_eq!(json["request_id"], id, "{answer}");
    drop(stream);

    // SPEC v2 §3.4: the body streams to new as it arrives, so new saw the
    // head (and never a whole body); the stalled request is not replayed.
    // new records the request when its body read fails, just after the 408.
    support::eventually(DEADLINE, "new saw the streamed request", || async {
        new.count() == 1
    })
    .await;
    assert_eq!(legacy.count(), 0, "legacy got the stalled request");
    // The proxy keeps serving, on the same route.
    let answer = get(&proxy.url("/api/y")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "new");
    assert_eq!(new.count(), 2);
}

// === h2c to the backend ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_backend_gets_h2c_and_te_trailers() {
    // `TestBackend` serves HTTP/1.1 and h2c with prior knowledge on one port.
    let legacy = TestBackend::start("legacy").await;
    let grpc = TestBackend::start("grpc").await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &legacy.url(),
        &format!(
            r#"
[backends.grpc]
url = "{}"
protocol = "http2"

[[routes]]
name = "grpc"
path = "/grpc"
new = "grpc"
weight = 100
"#,
            grpc.url()
        ),
    ))
    .await;
    let with_te = |path: &str| {
        request("POST", &proxy.url(path))
            .header("te", "trailers")
            .header("content-type", "application/grpc")
            .body(Full::from("payload"))
            .unwrap()
    };

    let answer = send(with_te("/grpc/Service/Method")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "grpc");
    let seen = grpc.last();
    assert_eq!(seen.version, Version::HTTP_2, "not h2c to an http2 backend");
    assert_eq!(
        seen.headers.get("te").map(|v| v.to_str().unwrap()),
        Some("trailers"),
        "TE: trailers must reach an HTTP/2 backend: {:?}",
        seen.headers
    );
    assert_eq!(seen.body_len, 7);

    // To an HTTP/1.1 backend (protocol default) TE is hop-by-hop: removed.
    let answer = send(with_te("/other")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.text(), "legacy");
    let seen = legacy.last();
    assert_eq!(seen.version, Version::HTTP_11);
    assert!(
        seen.headers.get("te").is_none(),
        "TE reached an HTTP/1.1 backend: {:?}",
        seen.headers
    );
}

// === backend connection pooling ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_pooled_and_kept_alive() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = proxy_for(&legacy).await;
    const REQUESTS: usize = 50;
    for i in 0..REQUESTS {
        // A fresh client connection each time: only the proxy's pool can
        // keep the backend connection.
        let answer = get(&proxy.url(&format!("/pooled/{i}"))).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.text(), "legacy");
    }
    assert_eq!(legacy.count(), REQUESTS);
    let connections = legacy.connection_count();
    assert!(
        (1..=2).contains(&connections),
        "{REQUESTS} sequential requests opened {connections} backend connections: no pooling"
    );
}
