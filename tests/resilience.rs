//! Resilience (SPEC v2 §3.3, §3.4), over real sockets: a new backend killed
//! under load, stale pooled connections, a new that dies mid-answer, streaming
//! uploads and their replay, HTTP/2 `:authority`, and gRPC-like streams
//! through a fallback route.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{
    Answer, DEADLINE, Killed, RawBackend, Recorded, TestBackend, TestProxy, assert_proxy_error,
    client, config_with, eventually, free_port, get, get_with, request, send_body, send_with,
    sha256_hex, try_get,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

// === helpers ===

/// Reads a request head from `stream`: the head, and the body bytes that came
/// with it. `None` when the peer closes first.
async fn read_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A new backend that reads each request head, then closes the connection.
async fn closing_after_head() -> RawBackend {
    RawBackend::start(|mut stream| async move {
        let _ = read_head(&mut stream).await;
    })
    .await
}

/// One route `/api` named `api` sending everything to new, with `fallback` as
/// the body of its `[routes.fallback]` table (empty: no table).
fn api_route(fallback: &str) -> String {
    let table = if fallback.is_empty() {
        String::new()
    } else {
        format!("[routes.fallback]\n{fallback}")
    };
    format!("[[routes]]\nname = \"api\"\npath = \"/api\"\nweight = 100\n{table}\n")
}

async fn api_proxy(legacy: &str, new: &str, fallback: &str) -> TestProxy {
    TestProxy::start(&config_with(legacy, new, &api_route(fallback))).await
}

/// `len` bytes of a fixed pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A config with the `legacy` backend and an HTTP/2 `new` backend at `new`
/// (`preserve_host` as given), then `rest`.
fn h2_config(legacy: &str, new: SocketAddr, preserve_host: bool, rest: &str) -> String {
    let new_keys =
        format!("protocol = \"http2\"\npreserve_host = {preserve_host}\ntimeout = \"5s\"");
    support::config_with_new(legacy, &format!("http://{new}"), &new_keys, rest)
}

// === 1. new killed under load ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_killed_under_load_loses_no_request() {
    const TASKS: usize = 4;
    const PER_TASK: usize = 500;
    const KILL_AFTER: usize = 500;

    let legacy = TestBackend::start("legacy").await;
    let new_addr = format!("127.0.0.1:{}", free_port());
    let mut new = Killed(
        Command::new(env!("CARGO_BIN_EXE_strangler"))
            .args(["echo", "--name", "new", "--listen", &new_addr])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let new_url = format!("http://{new_addr}");
    let probe = format!("{new_url}/probe");
    eventually(DEADLINE, "the echo backend answers", || {
        let probe = probe.clone();
        async move { try_get(&probe).await.is_some_and(|a| a.status == 200) }
    })
    .await;
    let proxy = api_proxy(&legacy.url(), &new_url, "").await;

    let answered = Arc::new(AtomicUsize::new(0));
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let kill_tx = Arc::new(Mutex::new(Some(kill_tx)));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let path = format!("/api/load/{t}");
        let url = proxy.url(&path);
        let answered = answered.clone();
        let kill_tx = kill_tx.clone();
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut failures = Vec::new();
            let (mut from_new, mut from_legacy) = (0usize, 0usize);
            for i in 0..PER_TASK {
                let outcome = timeout(DEADLINE, async {
                    let response = client
                        .request(Request::get(&url).body(Full::default()).unwrap())
                        .await
                        .map_err(|e| format!("request: {e:?}"))?;
                    let (parts, body) = response.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map_err(|e| format!("body: {e:?}"))?
                        .to_bytes();
                    Ok::<_, String>(Answer {
                        status: parts.status,
                        headers: parts.headers,
                        body,
                    })
                })
                .await
                .unwrap_or_else(|_| Err("timed out".to_owned()));
                match outcome {
                    Ok(answer) if answer.status == 200 => {
                        match answer.header("x-strangler-backend") {
                            Some("new") => {
                                let json: serde_json::Value = serde_json::from_slice(&answer.body)
                                    .unwrap_or(serde_json::Value::Null);
                                if json["name"] == "new" && json["path"] == path.as_str() {
                                    from_new += 1;
                                } else {
                                    failures.push(format!("#{i}: bad body from new: {answer:?}"));
                                }
                            }
                            Some("legacy") if answer.body == "legacy" => from_legacy += 1,
                            _ => failures.push(format!("#{i}: unexpected answer {answer:?}")),
                        }
                    }
                    Ok(answer) => failures.push(format!("#{i}: status {answer:?}")),
                    Err(e) => failures.push(format!("#{i}: {e}")),
                }
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER
                    && let Some(tx) = kill_tx.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            }
            (failures, from_new, from_legacy)
        }));
    }
    timeout(DEADLINE * 3, kill_rx)
        .await
        .expect("500 answers")
        .unwrap();
    new.0.kill().unwrap();

    let (mut failures, mut from_new, mut from_legacy) = (Vec::new(), 0, 0);
    for task in tasks {
        let (f, n, l) = timeout(DEADLINE * 6, task).await.unwrap().unwrap();
        failures.extend(f);
        from_new += n;
        from_legacy += l;
    }
    assert!(
        failures.is_empty(),
        "{} failed or truncated answers, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(from_new + from_legacy, TASKS * PER_TASK);
    assert!(from_new > 0, "no answer from new");
    assert!(from_legacy > 0, "no answer from legacy");
}

// === 2. stale pooled connections ===

/// An HTTP/1.1 keep-alive backend answering 200 `name` to the first request
/// of each connection and closing the connection when a second request
/// arrives on it, without answering: what a backend that closes idle
/// keep-alive connections does when its close crosses the proxy's next
/// request on the wire, made exact. Counts the requests it answered and the
/// ones it dropped.
async fn closing_on_reuse(name: &'static str) -> (RawBackend, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let answered = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (counter, drops) = (answered.clone(), dropped.clone());
    let backend = RawBackend::start(move |mut stream| {
        let counter = counter.clone();
        let drops = drops.clone();
        async move {
            if read_head(&mut stream).await.is_none() {
                return;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n{name}",
                name.len()
            );
            // Counted before it is written, so the count is in place before
            // the client can have the answer; taken back if it was not sent.
            counter.fetch_add(1, Ordering::SeqCst);
            if stream.write_all(head.as_bytes()).await.is_err() {
                counter.fetch_sub(1, Ordering::SeqCst);
            }
            // The next request on this connection is read, then dropped.
            if read_head(&mut stream).await.is_some() {
                drops.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await;
    (backend, answered, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_pooled_connections_never_give_502() {
    const REQUESTS: usize = 20;
    let (legacy, legacy_count, legacy_dropped) = closing_on_reuse("legacy").await;
    let (new, new_count, new_dropped) = closing_on_reuse("new").await;
    let (other, other_count, other_dropped) = closing_on_reuse("other").await;
    let rest = format!(
        r#"[backends.other]
url = "{}"

[[routes]]
name = "fb"
path = "/fb"
weight = 100

[[routes]]
name = "nofb"
path = "/nofb"
new = "other"
weight = 100
[routes.fallback]
enabled = false
"#,
        other.url()
    );
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), &rest)).await;

    let run = |path: &'static str, route: &'static str, backend: &'static str| {
        let url = proxy.url(path);
        async move {
            for i in 0..REQUESTS {
                let answer = get(&url).await;
                assert_eq!(answer.status, 200, "{route} #{i}: {answer:?}");
                assert_eq!(answer.body, backend, "{route} #{i}");
                assert_eq!(answer.header("x-strangler-route"), Some(route));
                assert_eq!(answer.header("x-strangler-fallback"), None, "{route} #{i}");
            }
        }
    };
    tokio::join!(
        run("/fb/x", "fb", "new"),
        run("/nofb/x", "nofb", "other"),
        run("/elsewhere", "_default", "legacy"),
    );
    assert_eq!(new_count.load(Ordering::SeqCst), REQUESTS);
    assert_eq!(other_count.load(Ordering::SeqCst), REQUESTS);
    assert_eq!(legacy_count.load(Ordering::SeqCst), REQUESTS);
    // Every second request met a pooled connection that the backend closed
    // on it, and was sent once more on a fresh connection, which answered:
    // each connection answered exactly one request.
    for (backend, dropped) in [
        (&legacy, &legacy_dropped),
        (&new, &new_dropped),
        (&other, &other_dropped),
    ] {
        assert_eq!(dropped.load(Ordering::SeqCst), REQUESTS / 2);
        assert_eq!(backend.connection_count(), REQUESTS);
    }
}

// === 3. mid-answer death ===

#[tokio::test]
async fn get_to_new_closing_after_the_head_is_replayed() {
    let legacy = TestBackend::start("legacy").await;
    let new = closing_after_head().await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "").await;
    let answer = get(&proxy.url("/api/x")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "legacy");
    assert_eq!(answer.header("x-strangler-fallback"), Some("reset"));
    assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
    assert_eq!(legacy.count(), 1);
    // The pooled try, then once more on a fresh connection.
    assert_eq!(new.connection_count(), 2);
}

#[tokio::test]
async fn post_to_new_closing_after_the_head_is_502_without_replay_methods() {
    let legacy = TestBackend::start("legacy").await;
    let new = closing_after_head().await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "").await;
    let answer = send_body("POST", &proxy.url("/api/x"), b"order=1").await;
    assert_proxy_error(&answer, 502);
    assert_eq!(legacy.count(), 0);
    assert_eq!(new.connection_count(), 1);
}

#[tokio::test]
async fn post_to_new_closing_after_the_head_is_replayed_with_replay_methods() {
    let legacy = TestBackend::start("legacy").await;
    let new = closing_after_head().await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "replay_methods = [\"POST\"]\n").await;
    let answer = send_body("POST", &proxy.url("/api/x"), b"order=1").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "legacy");
    assert_eq!(answer.header("x-strangler-fallback"), Some("reset"));
    assert_eq!(legacy.count(), 1);
    let seen = legacy.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_sha256, sha256_hex(b"order=1"));
    assert_eq!(new.connection_count(), 2);
}

#[tokio::test]
async fn answer_cut_off_mid_body_is_replayed_under_hold_response() {
    let legacy = TestBackend::start("legacy").await;
    let new = RawBackend::start(|mut stream| async move {
        if read_head(&mut stream).await.is_some() {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                .await;
            let _ = stream.flush().await;
        }
    })
    .await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "").await;
    let answer = get(&proxy.url("/api/x")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.body, "legacy",
        "the client sees only legacy's answer"
    );
    assert_eq!(answer.header("x-strangler-fallback"), Some("reset"));
    assert_eq!(answer.header("content-length"), Some("6"));
    assert_eq!(legacy.count(), 1);
    assert_eq!(new.connection_count(), 1);
}

#[tokio::test]
async fn answer_over_hold_response_streams_from_its_first_byte() {
    let legacy = TestBackend::start("legacy").await;
    let (rest_tx, rest_rx) = oneshot::channel::<()>();
    let rest_rx = Arc::new(Mutex::new(Some(rest_rx)));
    let body = pattern(1000);
    let sent = body.clone();
    let new = RawBackend::start(move |mut stream| {
        let rest_rx = rest_rx.lock().unwrap().take();
        let sent = sent.clone();
        async move {
            let Some(rest_rx) = rest_rx else { return };
            if read_head(&mut stream).await.is_none() {
                return;
            }
            let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
            head.extend_from_slice(&sent[..10]);
            stream.write_all(&head).await.unwrap();
            stream.flush().await.unwrap();
            // The rest only once the client has the first bytes.
            if rest_rx.await.is_ok() {
                stream.write_all(&sent[10..]).await.unwrap();
                stream.flush().await.unwrap();
            }
        }
    })
    .await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "hold_response = \"16\"\n").await;
    let response = timeout(
        DEADLINE,
        client().request(
            Request::get(proxy.url("/api/big"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await
    .expect("the head arrives before the body is whole")
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-strangler-backend"], "new");
    let mut body_stream = response.into_body();
    let mut got = Vec::new();
    while got.len() < 10 {
        let frame = timeout(DEADLINE, body_stream.frame())
            .await
            .expect("the first bytes arrive before the rest is sent")
            .expect("body ended early")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(got, body[..10]);
    rest_tx.send(()).unwrap();
    let rest = timeout(DEADLINE, body_stream.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    got.extend_from_slice(&rest);
    assert_eq!(got, body);
    assert_eq!(legacy.count(), 0);
    assert_eq!(new.connection_count(), 1);
}

// === 4. streaming upload ===

#[tokio::test]
async fn upload_reaches_new_before_the_client_has_finished() {
    let legacy = TestBackend::start("legacy").await;
    let (first_tx, mut first_rx) = mpsc::channel::<Bytes>(1);
    let new = RawBackend::start(move |stream| {
        let first_tx = first_tx.clone();
        async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let first_tx = first_tx.clone();
                async move {
                    let mut body = request.into_body();
                    let mut total = 0usize;
                    let mut told = false;
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Ok(data) = frame.into_data() {
                            total += data.len();
                            if !told {
                                told = true;
                                let _ = first_tx.send(data).await;
                            }
                        }
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(total.to_string()))))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "replay_methods = [\"*\"]\n").await;

    let (chunks, chunks_rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let stream = Box::pin(futures_util::stream::unfold(
        chunks_rx,
        |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
    ));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let upload = request("POST", &proxy.url("/api/upload"))
        .body(StreamBody::new(stream))
        .unwrap();
    let answer = tokio::spawn(async move { send_with(&client, upload).await });

    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"chunk-one;"))))
        .await
        .unwrap();
    let first = timeout(DEADLINE, first_rx.recv())
        .await
        .expect("new sees the first chunk while the upload goes on")
        .unwrap();
    assert_eq!(first, "chunk-one;");
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"chunk-two"))))
        .await
        .unwrap();
    drop(chunks);
    let answer = timeout(DEADLINE, answer).await.unwrap().unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "19");
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    assert_eq!(legacy.count(), 0);
}

#[tokio::test]
async fn upload_cut_off_by_a_reset_is_replayed_whole() {
    const LEN: usize = 100 * 1024;
    let legacy = TestBackend::start("legacy").await;
    let new = RawBackend::start(|mut stream| async move {
        let Some((_, mut body)) = read_head(&mut stream).await else {
            return;
        };
        let mut chunk = [0u8; 8192];
        while body.len() < LEN / 2 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        // Dropped with the rest unread: the kernel resets the connection.
    })
    .await;
    let proxy = api_proxy(&legacy.url(), &new.url(), "replay_methods = [\"*\"]\n").await;
    let upload = pattern(LEN);
    let answer = send_body("POST", &proxy.url("/api/upload"), &upload).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, "legacy");
    assert_eq!(answer.header("x-strangler-fallback"), Some("reset"));
    assert_eq!(legacy.count(), 1);
    let seen = legacy.last();
    assert_eq!(seen.body_len, LEN);
    assert_eq!(seen.body_sha256, sha256_hex(&upload));
    assert_eq!(new.connection_count(), 2);
}

#[tokio::test]
async fn upload_over_max_body_is_not_replayed() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_status("new", 503).await;
    let proxy = api_proxy(
        &legacy.url(),
        &new.url(),
        "replay_methods = [\"*\"]\nmax_body = \"1KiB\"\n",
    )
    .await;
    let upload = pattern(64 * 1024);
    let answer = send_body("POST", &proxy.url("/api/upload"), &upload).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body, "new");
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    assert_eq!(answer.header("x-strangler-fallback"), None);
    assert_eq!(legacy.count(), 0);
    assert_eq!(new.count(), 1);
    assert_eq!(new.last().body_sha256, sha256_hex(&upload));
}

// === 5. HTTP/2 authority ===

/// What the h2 backend saw of one request: `:authority` and `host`.
#[derive(Debug, Clone)]
struct H2Seen {
    authority: String,
    host: Option<String>,
}

/// An h2c backend enforcing RFC 9113 §8.3.1: a request whose `host` differs
/// from its `:authority` is reset; any other gets 200 with the authority as
/// its body.
async fn h2_authority_backend() -> (RawBackend, Recorded<H2Seen>) {
    let seen = Recorded::default();
    let record = seen.clone();
    let backend = RawBackend::start(move |stream| {
        let record = record.clone();
        async move {
            let Ok(mut conn) = h2::server::handshake(stream).await else {
                return;
            };
            while let Some(Ok((request, mut respond))) = conn.accept().await {
                let authority = request
                    .uri()
                    .authority()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let host = request
                    .headers()
                    .get(http::header::HOST)
                    .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
                record.push(H2Seen {
                    authority: authority.clone(),
                    host: host.clone(),
                });
                if host.is_some_and(|h| h != authority) {
                    respond.send_reset(h2::Reason::PROTOCOL_ERROR);
                    continue;
                }
                let Ok(mut send) = respond.send_response(Response::new(()), false) else {
                    continue;
                };
                let _ = send.send_data(Bytes::from(authority), true);
            }
        }
    })
    .await;
    (backend, seen)
}

#[tokio::test]
async fn http2_backend_gets_the_preserved_host_as_authority() {
    let legacy = TestBackend::start("legacy").await;
    let (new, seen) = h2_authority_backend().await;
    let proxy = TestProxy::start(&h2_config(&legacy.url(), new.addr, true, &api_route(""))).await;
    let answer = get_with(&proxy.url("/api/h"), &[("host", "app.example.test")]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    assert_eq!(answer.body, "app.example.test");
    assert_eq!(seen.count(), 1);
    assert_eq!(seen.last().authority, "app.example.test");
    assert_eq!(seen.last().host, None, "no Host header over HTTP/2");
    assert_eq!(legacy.count(), 0);
}

#[tokio::test]
async fn http2_backend_gets_its_own_host_as_authority() {
    let legacy = TestBackend::start("legacy").await;
    let (new, seen) = h2_authority_backend().await;
    let proxy = TestProxy::start(&h2_config(&legacy.url(), new.addr, false, &api_route(""))).await;
    let answer = get_with(&proxy.url("/api/h"), &[("host", "app.example.test")]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    assert_eq!(answer.body, new.addr.to_string());
    assert_eq!(seen.count(), 1);
    assert_eq!(seen.last().authority, new.addr.to_string());
    assert_eq!(seen.last().host, None, "no Host header over HTTP/2");
    assert_eq!(legacy.count(), 0);
}

// === 6. gRPC-like streams through a fallback route ===

/// An h2c backend echoing each DATA frame of a request as it arrives, then
/// ending the answer with the trailer `grpc-status: 0`.
async fn h2_echo_backend() -> RawBackend {
    RawBackend::start(|stream| async move {
        let Ok(mut conn) = h2::server::handshake(stream).await else {
            return;
        };
        while let Some(Ok((request, mut respond))) = conn.accept().await {
            tokio::spawn(async move {
                let head = Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap();
                let mut send = respond.send_response(head, false)?;
                let mut body = request.into_body();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                    send.send_data(chunk, false)?;
                }
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                send.send_trailers(trailers)?;
                Ok::<_, h2::Error>(())
            });
        }
    })
    .await
}

/// An h2c connection to `addr`.
async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    timeout(DEADLINE, client.ready()).await.unwrap().unwrap()
}

/// A gRPC-like request to `path` on the proxy at `addr`.
fn grpc_request(addr: SocketAddr, path: &str) -> Request<()> {
    Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Reads `len` bytes of `body`, within [`DEADLINE`].
async fn read_exactly(body: &mut h2::RecvStream, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        let chunk = timeout(DEADLINE, body.data())
            .await
            .expect("echo within the deadline")
            .expect("stream ended early")
            .unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    got
}

async fn grpc_proxy() -> (TestBackend, RawBackend, TestProxy) {
    let legacy = TestBackend::start("legacy").await;
    let new = h2_echo_backend().await;
    let proxy = TestProxy::start(&h2_config(
        &legacy.url(),
        new.addr,
        false,
        &api_route("enabled = true\n"),
    ))
    .await;
    (legacy, new, proxy)
}

#[tokio::test]
async fn grpc_like_bidi_stream_through_a_fallback_route() {
    let (legacy, _new, proxy) = grpc_proxy().await;
    let mut client = h2_client(proxy.addr).await;
    let (response, mut send) = client
        .send_request(grpc_request(proxy.addr, "/api/echo.Echo/Chat"), false)
        .unwrap();
    send.send_data(Bytes::from_static(b"message one"), false)
        .unwrap();
    let response = timeout(DEADLINE, response)
        .await
        .expect("the answer's head before the request ends")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-strangler-backend"], "new");
    let mut body = response.into_body();
    assert_eq!(read_exactly(&mut body, 11).await, b"message one");
    send.send_data(Bytes::from_static(b"message two"), false)
        .unwrap();
    assert_eq!(read_exactly(&mut body, 11).await, b"message two");
    send.send_data(Bytes::new(), true).unwrap();
    let end = timeout(DEADLINE, body.data()).await.unwrap();
    assert!(end.is_none(), "no more data: {end:?}");
    let trailers = timeout(DEADLINE, body.trailers())
        .await
        .unwrap()
        .unwrap()
        .expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(legacy.count(), 0);
}

#[tokio::test]
async fn grpc_like_unary_call_gets_its_trailers() {
    let (legacy, _new, proxy) = grpc_proxy().await;
    let mut client = h2_client(proxy.addr).await;
    let (response, mut send) = client
        .send_request(grpc_request(proxy.addr, "/api/echo.Echo/Unary"), false)
        .unwrap();
    send.send_data(Bytes::from_static(b"\0\0\0\0\x05hello"), true)
        .unwrap();
    let response = timeout(DEADLINE, response).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    assert_eq!(read_exactly(&mut body, 10).await, b"\0\0\0\0\x05hello");
    let end = timeout(DEADLINE, body.data()).await.unwrap();
    assert!(end.is_none(), "no more data: {end:?}");
    let trailers = timeout(DEADLINE, body.trailers())
        .await
        .unwrap()
        .unwrap()
        .expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(legacy.count(), 0);
}
