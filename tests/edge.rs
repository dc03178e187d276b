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

/// A proxy whose route `path` has `sloppy` as its legacy; every other path
/// goes to a well-behaved backend, returned to keep it alive.
async fn behind_sloppy(sloppy: &Scripted, path: &str) -> (TestBackend, TestProxy) {
    let fine = TestBackend::start("fine").await;
    let proxy = TestProxy::start(&config_with(
        &fine.url(),
        &fine.url(),
        &format!(
            "[backends.sloppy]\nurl = \"{}\"\n\n[[routes]]\npath = \"{path}\"\nlegacy = \"sloppy\"\n",
            sloppy.url()
        ),
    ))
    .await;
    (fine, proxy)
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
        assert!(
            closed.is_ok(),
            "an idle h2 connection to {addr} was kept open"
        );
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

// === a scripted raw backend ===

/// What a [`Scripted`] backend received on its connections.
#[derive(Default)]
struct Received {
    /// Each request head, as sent on the wire.
    heads: Vec<String>,
    /// Bytes that came after a head on the same connection (body, tunnel
    /// traffic, smuggled requests).
    after: Vec<u8>,
    /// Connections that the proxy closed.
    closed: usize,
}

/// A raw backend that reads one request head per connection, answers it with
/// fixed bytes, then records whatever else arrives until the proxy closes.
struct Scripted {
    raw: support::RawBackend,
    received: std::sync::Arc<std::sync::Mutex<Received>>,
}

impl Scripted {
    async fn start(answer: &'static [u8]) -> Scripted {
        let received = std::sync::Arc::new(std::sync::Mutex::new(Received::default()));
        let record = received.clone();
        let raw = support::RawBackend::start(move |mut stream| {
            let record = record.clone();
            async move {
                let mut all = Vec::new();
                let mut buf = [0u8; 4096];
                let mut answered = false;
                loop {
                    if !answered && let Some(end) = find(&all, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&all[..end + 4]).into_owned();
                        let rest = all.split_off(end + 4);
                        all.clear();
                        {
                            let mut r = record.lock().unwrap();
                            r.heads.push(head);
                            r.after.extend_from_slice(&rest);
                        }
                        answered = true;
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) if answered => {
                            record.lock().unwrap().after.extend_from_slice(&buf[..n])
                        }
                        Ok(n) => all.extend_from_slice(&buf[..n]),
                    }
                }
                record.lock().unwrap().closed += 1;
            }
        })
        .await;
        Scripted { raw, received }
    }

    fn url(&self) -> String {
        self.raw.url()
    }

    fn heads(&self) -> Vec<String> {
        self.received.lock().unwrap().heads.clone()
    }

    fn after(&self) -> Vec<u8> {
        self.received.lock().unwrap().after.clone()
    }

    async fn wait_closed(&self, connections: usize) {
        let received = self.received.clone();
        support::eventually(DEADLINE, "the backend connection is closed", move || {
            let received = received.clone();
            async move { received.lock().unwrap().closed >= connections }
        })
        .await;
    }
}

// === upgrades ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_is_not_forwarded_and_an_unasked_101_is_a_502() {
    let backend = Scripted::start(
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n",
    )
    .await;
    let (_fine, proxy) = behind_sloppy(&backend, "/up").await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(
            b"GET /up HTTP/1.1\r\nhost: a.test\r\nconnection: Upgrade, HTTP2-Settings\r\n\
              upgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_response(&mut client).await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    // What would be smuggled through a tunnel, had there been one.
    let _ = client
        .write_all(
            b"GET /internal/admin HTTP/1.1\r\nhost: a.test\r\nx-forwarded-for: 1.2.3.4\r\n\r\n",
        )
        .await;
    backend.wait_closed(1).await;
    let heads = backend.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_lowercase();
    assert!(!head.contains("upgrade"), "h2c upgrade forwarded: {head}");
    assert!(!head.contains("http2-settings"), "{head}");
    assert!(backend.after().is_empty(), "bytes reached the backend raw");
    still_serves(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_naming_another_protocol_is_a_502_and_nothing_is_tunnelled() {
    let backend = Scripted::start(
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n",
    )
    .await;
    let (_fine, proxy) = behind_sloppy(&backend, "/ws").await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nhost: a.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
              sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_response(&mut client).await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    let _ = client
        .write_all(b"GET /internal/admin HTTP/1.1\r\nhost: a.test\r\n\r\n")
        .await;
    backend.wait_closed(1).await;
    let heads = backend.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].to_lowercase().contains("upgrade: websocket"));
    assert!(backend.after().is_empty(), "bytes reached the backend raw");
    still_serves(&proxy).await;
}

// === response framing ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_te_and_cl_is_forwarded_without_its_content_length() {
    let backend = Scripted::start(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let proxy = TestProxy::start(&config_with(&backend.url(), &backend.url(), "")).await;
    let answer = get(&proxy.url("/framing")).await;
    assert_eq!(answer.status, 200);
    assert_ne!(answer.header("content-length"), Some("3"));
    assert_eq!(answer.text(), "hello");
    assert_eq!(backend.heads().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_two_content_lengths_is_a_502() {
    let backend =
        Scripted::start(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 5\r\n\r\nhello")
            .await;
    let (_fine, proxy) = behind_sloppy(&backend, "/two").await;
    let answer = get(&proxy.url("/two")).await;
    assert_eq!(answer.status, 502);
    still_serves(&proxy).await;
}

// === Host ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hosts_and_targets_are_400_and_never_forwarded() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &legacy.url(), "")).await;
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a.test\r\nhost: b.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a.test evil\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: user@evil.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: evil.test/x?y\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a.test:port\r\n\r\n",
        b"GET http://user@a.test/ HTTP/1.1\r\nhost: a.test\r\n\r\n",
        b"GET ftp://a.test/ HTTP/1.1\r\nhost: a.test\r\n\r\n",
        b"GET /a%00b HTTP/1.1\r\nhost: a.test\r\n\r\n",
        b"GET /a?x=%00 HTTP/1.1\r\nhost: a.test\r\n\r\n",
    ];
    for raw in cases {
        let answer = raw_exchange(proxy.addr, raw).await;
        let shown = String::from_utf8_lossy(raw);
        assert_eq!(status_of(&answer), 400, "{shown}: {answer}");
        let lower = answer.to_lowercase();
        assert!(lower.contains("\"error\""), "{shown}: {answer}");
        assert!(!lower.contains("x-strangler-backend"), "{shown}: {answer}");
    }
    assert_eq!(legacy.count(), 0, "a bad request reached the backend");
    // HTTP/1.0 needs no Host; a good one passes.
    assert_eq!(
        status_of(&raw_exchange(proxy.addr, b"GET / HTTP/1.0\r\n\r\n").await),
        200
    );
    let ok = raw_exchange(
        proxy.addr,
        b"GET http://a.test/ HTTP/1.1\r\nhost: a.test\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ok), 200);
    assert_eq!(legacy.count(), 2);
}

// === HTTP/2 to HTTP/1.1 ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_crumbs_from_h2_reach_an_http1_backend_joined() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &legacy.url(), "")).await;
    let (client, _connection) = h2_connect(proxy.addr).await;
    let mut client = timeout(DEADLINE, client.ready()).await.unwrap().unwrap();
    let request = http::Request::get(format!("http://{}/c", proxy.addr))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = timeout(DEADLINE, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let seen = legacy.last();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2; c=3"]);
}

// === admin token ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_to_start_when_the_admin_token_variable_is_unset_or_empty() {
    let var = format!("STRANGLER_EDGE_TOKEN_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strangler.toml");
    let text = config_with_server(
        &format!("admin_token_env = \"{var}\""),
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "",
    );
    std::fs::write(&path, text).unwrap();
    for value in [None, Some("")] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_strangler"));
        command.arg("run").arg("-c").arg(&path).env_remove(&var);
        if let Some(value) = value {
            command.env(&var, value);
        }
        let output = timeout(
            DEADLINE,
            tokio::task::spawn_blocking(move || command.output()),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        assert!(
            !output.status.success(),
            "{value:?}: started with an open admin API"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&var),
            "{value:?}: the error does not name {var}: {stderr}"
        );
    }
}

// === config bounds ===

#[test]
fn durations_over_30_days_are_refused_with_their_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strangler.toml");
    std::fs::write(
        &path,
        "[server]\nheader_read_timeout = \"5000000000000000h\"\nshutdown_timeout = \"721h\"\n\
         idle_timeout = \"720h\"\n\n[backends.legacy]\nurl = \"http://127.0.0.1:1\"\ntimeout = \"99999999h\"\n",
    )
    .unwrap();
    let errors = strangler::config::load(&path).unwrap_err().to_string();
    assert!(
        errors.contains("strangler.toml:2:23: duration \"5000000000000000h\" is out of range"),
        "{errors}"
    );
    assert!(
        errors.contains("strangler.toml:3:20: duration \"721h\" is out of range"),
        "{errors}"
    );
    assert!(
        errors.contains("strangler.toml:8:11: duration \"99999999h\" is out of range"),
        "{errors}"
    );
    // 30 days itself is fine.
    assert!(!errors.contains(":4:"), "{errors}");
}

// === memory ===

/// The resident set of process `pid`, in KiB, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Open file descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// 300 connections each send a PUT head declaring 1 MiB to a fallback route
/// (about 20 KB in all) and nothing more. Copy memory is reserved as bytes
/// arrive: the proxy's RSS stays flat, and the copy budget (256 MiB, less
/// than the 300 MiB declared) is still there for a legitimate PUT, which
/// falls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_only_requests_cannot_pin_copy_memory() {
    const HEADS: usize = 300;
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::answering("new", "down", |_| 503).await;
    let backends = support::backends_with(
        &legacy.url(),
        &new.url(),
        "[[routes]]\npath = \"/up\"\nweight = 100\n",
    );
    let proxy = support::Binary::start("", &backends).await;
    let pid = proxy.pid();
    let url = proxy.url("/up");
    let put = |body: &'static [u8]| support::send_body("PUT", &url, body);
    assert_eq!(put(&[b'x'; 1024]).await.status, 200);
    let before = rss_kib(pid);

    let mut held = Vec::new();
    for _ in 0..HEADS {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream
            .write_all(b"PUT /up HTTP/1.1\r\nhost: a.test\r\ncontent-length: 1048576\r\n\r\nx")
            .await
            .unwrap();
        held.push(stream);
    }
    // Every head has reached new: the proxy holds all of them now.
    let reached = async {
        while new.connection_count() < HEADS {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if timeout(DEADLINE, reached).await.is_err() {
        panic!(
            "{} of {HEADS} heads reached new; proxy fds {}:\n{}",
            new.connection_count(),
            fds(pid),
            proxy.log()
        );
    }
    let during = rss_kib(pid);
    let answer = put(&[b'y'; 1024]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    assert_eq!(answer.text(), "legacy");
    let grown = during.saturating_sub(before);
    eprintln!("RSS before {before} KiB, with {HEADS} head-only PUTs {during} KiB (+{grown} KiB)");
    assert!(
        grown < 48 * 1024,
        "RSS grew by {grown} KiB for {HEADS} heads declaring 1 MiB each"
    );
    drop(held);
}

/// 2,000 connections that send nothing, opened then dropped, in waves: the
/// proxy serves throughout, its file descriptors come back to where they
/// started, an idle connection costs little, and later waves do not grow
/// what the first left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_opened_and_dropped() {
    const CONNECTIONS: usize = 2_000;
    const WAVES: usize = 4;
    let legacy = TestBackend::start("legacy").await;
    let backends = support::backends_with(&legacy.url(), &legacy.url(), "");
    let proxy = support::Binary::start("", &backends).await;
    let pid = proxy.pid();
    assert_eq!(get(&proxy.url("/warm")).await.status, 200);
    let (rss_before, fds_before) = (rss_kib(pid), fds(pid));

    // Several waves: later ones must not grow what the first left. RSS does
    // not fall back all the way after a wave (the allocator keeps freed
    // pages, MADV_FREE, until the system needs them, and the level wanders by
    // 10 MiB or more with thread scheduling), so "flat" is an envelope.
    let mut after = Vec::new();
    let mut peaks = Vec::new();
    for wave in 0..WAVES {
        let mut idle = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            idle.push(TcpStream::connect(proxy.addr).await.unwrap());
        }
        support::eventually(DEADLINE, "the proxy accepted every connection", || async {
            // Give or take a pooled backend connection.
            fds(pid) + 5 >= fds_before + CONNECTIONS
        })
        .await;
        peaks.push(rss_kib(pid));
        // Meanwhile it serves.
        assert_eq!(get(&proxy.url("/during")).await.status, 200, "wave {wave}");
        drop(idle);
        support::eventually(DEADLINE, "the proxy closed every connection", || async {
            fds(pid) <= fds_before + 2
        })
        .await;
        assert_eq!(get(&proxy.url("/after")).await.status, 200, "wave {wave}");
        after.push(rss_kib(pid));
    }
    eprintln!(
        "RSS before {rss_before} KiB; {CONNECTIONS} idle connections: peaks {peaks:?} KiB, after each wave {after:?} KiB"
    );
    for peak in &peaks {
        let per_connection = peak.saturating_sub(rss_before) / CONNECTIONS as u64;
        assert!(
            per_connection <= 48,
            "{per_connection} KiB per idle connection"
        );
    }
    // Every level stays inside one wave's envelope (32 KiB a connection over
    // the start), and the later waves do not all end above the first.
    for level in after.iter().chain(&peaks) {
        assert!(
            *level <= rss_before + 64 * 1024,
            "RSS outgrew one wave: peaks {peaks:?}, after {after:?}"
        );
    }
    let lowest_later = after[1..].iter().min().copied().unwrap_or(0);
    assert!(
        lowest_later <= after[0] + 16 * 1024,
        "RSS grew from wave to wave: peaks {peaks:?}, after {after:?}"
    );
}

// === request smuggling ===

/// Each classic smuggling form, followed in the same write by a request that
/// must never reach the backend as its own (`/smuggled`). Expected: what the
/// client gets (status lines in order) and exactly what the backend got
/// (method, path, body length). The proxy re-frames every request it
/// forwards, so the backend can never read the bytes differently from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_attempts_reach_the_backend_as_intended_or_not_at_all() {
    type Case = (
        &'static str,
        &'static [u8],
        &'static [&'static str],
        &'static [(&'static str, &'static str, usize)],
    );
    const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nhost: a.test\r\n\r\n";
    let legacy = TestBackend::start("legacy").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &legacy.url(), "")).await;
    let cases: &[Case] = &[
        // Transfer-Encoding wins (RFC 9112 §6.3) and the connection closes
        // after the answer: what follows is never read as a request.
        (
            "CL+TE",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ncontent-length: 40\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a.test\r\n\r\n",
            &["200"],
            &[("POST", "/a", 0)],
        ),
        (
            "two Content-Lengths",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ncontent-length: 5\r\ncontent-length: 40\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nhost: a.test\r\n\r\n",
            &["400"],
            &[],
        ),
        (
            "Content-Length: +5",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ncontent-length: +5\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nhost: a.test\r\n\r\n",
            &["400"],
            &[],
        ),
        (
            "obs-fold",
            b"GET /a HTTP/1.1\r\nhost: a.test\r\nx-foo: a\r\n transfer-encoding: chunked\r\n\r\n",
            &["400"],
            &[],
        ),
        (
            "space before colon",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding : chunked\r\ncontent-length: 5\r\n\r\nhello",
            &["400"],
            &[],
        ),
        // A bare LF ends lines as CRLF does (RFC 9112 §2.2 allows it); the
        // request is re-framed on its way, so nothing can hide in it.
        (
            "bare LF",
            b"GET /a HTTP/1.1\nhost: a.test\n\n",
            &["200"],
            &[("GET", "/a", 0)],
        ),
        (
            "invalid chunk size",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: a.test\r\n\r\n",
            &["400"],
            &[],
        ),
        (
            "chunk size overflow",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
            &["400"],
            &[],
        ),
        // Extensions are dropped: the backend gets the 5 bytes, framed anew.
        (
            "chunk extension",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked\r\n\r\n5;ext=\"0\\r\\n\\r\\n\"\r\nhello\r\n0\r\n\r\n",
            &["200"],
            &[("POST", "/a", 5)],
        ),
        (
            "Transfer-Encoding not ending in chunked",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &["400"],
            &[],
        ),
        (
            "Transfer-Encoding: xchunked",
            b"POST /a HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &["400"],
            &[],
        ),
    ];
    assert!(SMUGGLED.contains("/smuggled"));
    for (name, raw, statuses, expected) in cases {
        let before = legacy.count();
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let all = String::from_utf8_lossy(&read_until_closed_or(&mut stream).await).into_owned();
        let got: Vec<_> = all
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &all[i + 9..i + 12])
            .collect();
        assert_eq!(&got, statuses, "{name}: {all}");
        assert!(
            !all.to_lowercase().contains("x-strangler-backend") || statuses == &["200"],
            "{name}: {all}"
        );
        still_serves(&proxy).await;
        let seen: Vec<_> = legacy.seen.all()[before..]
            .iter()
            .filter(|s| s.uri != "/still-serving")
            .map(|s| (s.method.to_string(), s.uri.clone(), s.body_len))
            .collect();
        let expected: Vec<_> = expected
            .iter()
            .map(|(m, p, n)| (m.to_string(), p.to_string(), *n))
            .collect();
        assert_eq!(seen, expected, "{name}: the backend got something else");
    }
}

/// Reads until the peer closes, or for at most 2 s (a kept-alive connection).
async fn read_until_closed_or(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = timeout(Duration::from_secs(2), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    all
}

// === client faults ===

/// The value of the metric line `series` (labels included) in `text`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

/// A malformed body is the client's fault: 400, `backend="none"`, no
/// `x-strangler-backend`, even on a fallback route. A client that goes away
/// mid-upload is counted apart (499, `backend="none"`), never as a 502 of a
/// backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_faults_are_not_blamed_on_a_backend() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        "[[routes]]\nname = \"up\"\npath = \"/up\"\nweight = 100\n",
    ))
    .await;

    let malformed = raw_exchange(
        proxy.addr,
        b"PUT /up HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
    )
    .await;
    assert_eq!(status_of(&malformed), 400, "{malformed}");
    assert!(
        !malformed.to_lowercase().contains("x-strangler-backend"),
        "{malformed}"
    );
    assert!(malformed.contains("\"error\""), "{malformed}");

    let mut gone = TcpStream::connect(proxy.addr).await.unwrap();
    gone.write_all(b"PUT /up HTTP/1.1\r\nhost: a.test\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    // The head reached new before the client left.
    support::eventually(DEADLINE, "the upload reached new", || async {
        new.connection_count() > 0
    })
    .await;
    drop(gone);

    let metrics_url = proxy.admin_url("/metrics");
    support::eventually(DEADLINE, "the client that left is counted", || {
        let url = metrics_url.clone();
        async move {
            let text = get(&url).await.text();
            metric(
                &text,
                r#"strangler_requests_total{route="up",backend="none",code="499"}"#,
            ) == Some(1.0)
        }
    })
    .await;
    let text = get(&metrics_url).await.text();
    assert_eq!(
        metric(
            &text,
            r#"strangler_requests_total{route="up",backend="none",code="400"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("strangler_requests_total") && l.contains("code=\"502\"")),
        "a client fault was counted as a 502: {text}"
    );
    still_serves(&proxy).await;
}

// === HTTP/2 floods ===

/// Rapid reset (CVE-2023-44487): streams opened and reset at once, in bulk.
/// The proxy keeps serving others, and the backend gets at most one request
/// per stream opened (none of them twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rapid_reset_leaves_the_proxy_serving() {
    const STREAMS: usize = 2_000;
    let legacy = TestBackend::start("legacy").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &legacy.url(), "")).await;
    let (client, connection) = h2_connect(proxy.addr).await;
    let mut client = timeout(DEADLINE, client.ready()).await.unwrap().unwrap();
    let mut opened = 0;
    let flood = timeout(DEADLINE, async {
        for _ in 0..STREAMS {
            let request = http::Request::get(format!("http://{}/reset", proxy.addr))
                .body(())
                .unwrap();
            let Ok(ready) = client.clone().ready().await else {
                break;
            };
            client = ready;
            let Ok((_, mut stream)) = client.send_request(request, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            opened += 1;
        }
    })
    .await;
    assert!(flood.is_ok(), "the flood itself hung");
    still_serves(&proxy).await;
    let reached = legacy
        .seen
        .all()
        .iter()
        .filter(|s| s.uri == "/reset")
        .count();
    assert!(
        reached <= opened,
        "{reached} requests reached the backend for {opened} streams"
    );
    drop(client);
    let _ = timeout(DEADLINE, connection).await;
}

/// A HEADERS frame followed by CONTINUATION frames that never end the header
/// block: the proxy ends the connection once the block passes
/// `max_header_size`, forwards nothing, and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_continuation_flood_is_cut_off() {
    let legacy = TestBackend::start("legacy").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &legacy.url(), "")).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }
    // A literal header without indexing, new name "x-flood", a 1,000-byte value.
    let mut literal = vec![0x00, 7];
    literal.extend_from_slice(b"x-flood");
    literal.extend_from_slice(&[0x7f, 0xe9, 0x06]); // 127 + 873 = 1000, 7-bit prefix integer
    literal.extend_from_slice(&[b'a'; 1000]);
    // :method GET, :scheme http, :path / (static table indices 2, 6, 4).
    let mut first = vec![0x82, 0x86, 0x84];
    first.extend_from_slice(&literal);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend(frame(0x1, 0x1, 1, &first)); // HEADERS, END_STREAM, no END_HEADERS
    stream.write_all(&out).await.unwrap();
    let continuation = frame(0x9, 0, 1, &literal);
    let mut sent = 0usize;
    let cut_off = timeout(DEADLINE, async {
        // 10,000 frames: about 10 MB, far past max_header_size (64 KiB).
        for _ in 0..10_000 {
            if stream.write_all(&continuation).await.is_err() {
                return true;
            }
            sent += continuation.len();
        }
        false
    })
    .await
    .unwrap_or(false);
    // Either the proxy closed the connection mid-flood, or it reads the
    // rest and closes now; it never answers the request.
    let rest = read_until_closed_or(&mut stream).await;
    eprintln!("continuation flood: cut off {cut_off} after {sent} bytes");
    assert!(cut_off, "the proxy read {sent} bytes of one header block");
    assert!(!String::from_utf8_lossy(&rest).contains("legacy"));
    still_serves(&proxy).await;
    assert_eq!(legacy.seen.all().iter().filter(|s| s.uri == "/").count(), 0);
}

// === client address and rate limits ===

/// `GET /rl` with `X-Forwarded-For: xff` and `X-Forwarded-Proto: https`.
async fn get_as(proxy: &TestProxy, xff: &str) -> support::Answer {
    support::get_with(
        &proxy.url("/rl"),
        &[("x-forwarded-for", xff), ("x-forwarded-proto", "https")],
    )
    .await
}

const RATE_LIMITED: &str = "[[routes]]\nname = \"rl\"\npath = \"/rl\"\n\n\
    [routes.rate_limit]\nrps = 0.01\nburst = 1\nkey = \"ip\"\n";

/// A backend behind the proxy's [`RATE_LIMITED`] route, with `trusted` as
/// its `trusted_proxies`; and the config's text.
async fn rate_limited_behind(trusted: &str) -> (TestBackend, String, TestProxy) {
    let legacy = TestBackend::start("legacy").await;
    let toml = config_with_server(
        &format!("trusted_proxies = [\"{trusted}\"]"),
        &legacy.url(),
        &legacy.url(),
        RATE_LIMITED,
    );
    let proxy = TestProxy::start(&toml).await;
    (legacy, toml, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_and_its_buckets_survive_a_reload() {
    let (legacy, toml, proxy) = rate_limited_behind("127.0.0.1/32").await;

    assert_eq!(get_as(&proxy, "203.0.113.1").await.status, 200);
    let seen = legacy.last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.1, 127.0.0.1");
    assert_eq!(
        seen.headers["x-forwarded-proto"], "https",
        "a trusted proxy's proto is kept"
    );

    let limited = get_as(&proxy, "198.51.100.7, 203.0.113.1").await;
    assert_eq!(limited.status, 429, "{limited:?}");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(limited.json()["error"], "rate limit exceeded");
    assert!(limited.header("x-strangler-backend").is_none());
    // Another client behind the same load balancer has its own bucket.
    assert_eq!(get_as(&proxy, "203.0.113.2").await.status, 200);
    assert_eq!(legacy.count(), 2, "a limited request was forwarded");

    let metrics = get(&proxy.admin_url("/metrics")).await.text();
    assert_eq!(
        metric(&metrics, r#"strangler_rate_limited_total{route="rl"}"#),
        Some(1.0),
        "{metrics}"
    );

    // A reload that keeps the route's name keeps its buckets.
    std::fs::write(&proxy.path, format!("{toml}\n# touched\n")).unwrap();
    let reload = support::send_body("POST", &proxy.admin_url("/reload"), b"").await;
    assert_eq!(reload.status, 200, "{reload:?}");
    assert_eq!(get_as(&proxy, "203.0.113.1").await.status, 429);
    assert_eq!(legacy.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
    let (legacy, _, proxy) = rate_limited_behind("10.0.0.0/8").await;
    assert_eq!(get_as(&proxy, "203.0.113.1").await.status, 200);
    let seen = legacy.last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.1, 127.0.0.1");
    assert_eq!(
        seen.headers["x-forwarded-proto"], "http",
        "an untrusted proto is overwritten"
    );
    // A forged X-Forwarded-For does not buy a fresh bucket: the peer is the key.
    let limited = get_as(&proxy, "203.0.113.2").await;
    assert_eq!(limited.status, 429);
    assert_eq!(legacy.count(), 1);
}

#[test]
fn rate_limits_and_trusted_proxies_are_validated() {
    let text = config_with_server(
        "trusted_proxies = [\"10.0.0.0/33\", \"10.1.0.0/8\"]",
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "[[routes]]\npath = \"/a\"\n[routes.rate_limit]\nrps = 0\nburst = 0\nkey = \"cookie:x\"\n",
    );
    let errors = strangler::config::parse(&text, std::path::Path::new("s.toml"))
        .unwrap_err()
        .to_string();
    for expected in [
        "invalid CIDR \"10.0.0.0/33\"",
        "invalid CIDR \"10.1.0.0/8\"",
        "rps 0 is out of range",
        "burst 0 is out of range",
        "invalid rate limit key \"cookie:x\"",
    ] {
        assert!(errors.contains(expected), "{expected}: {errors}");
    }
}

// === backend connection limits ===

/// Eight requests at once to a slow backend capped at 2 connections: the
/// backend never sees more than 2, and every request is answered (each
/// waits for a free connection within connect_timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_capped() {
    let slow = TestBackend::with_handler("legacy", |_| async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        http::Response::new(strangler::body::full("legacy"))
    })
    .await;
    let toml = support::config_with_new(&slow.url(), &slow.url(), "", "").replace(
        "[backends.legacy]\n",
        "[backends.legacy]\nmax_connections = 2\nconnect_timeout = \"5s\"\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let url = proxy.url(&format!("/slow/{i}"));
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for request in requests {
        let answer = timeout(DEADLINE, request).await.unwrap().unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(slow.count(), 8);
    assert!(
        slow.connection_count() <= 2,
        "{} backend connections for a cap of 2",
        slow.connection_count()
    );
}

/// A pooled connection idle for the backend's `idle_timeout` is closed by
/// strangler, before the backend's own keep-alive timeout can race a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pooled_backend_connections_are_closed() {
    let backend = Scripted::start(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let toml = support::config_with_new(&backend.url(), &backend.url(), "", "").replace(
        "[backends.legacy]\n",
        "[backends.legacy]\nidle_timeout = \"200ms\"\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let answer = get(&proxy.url("/pooled")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "ok");
    backend.wait_closed(1).await;
    assert_eq!(backend.heads().len(), 1);
}

// === paths ===

/// `..%2f`, `%2F`, `%5C` and `\` are never decoded into a separator by
/// strangler: the route that matches is the one the raw segments name, and
/// the backend gets the path as the client wrote it (after dot-segment
/// normalisation, which only `.`/`..`/`%2E` segments take part in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_slashes_and_backslashes_never_become_separators() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(
        &legacy.url(),
        &new.url(),
        "[[routes]]\npath = \"/api\"\nweight = 100\n",
    ))
    .await;
    let cases: &[(&[u8], &str, &str)] = &[
        // Percent-encodings are normalised to upper case (RFC 3986 §6.2.2.1),
        // never decoded.
        (b"/api/..%2fadmin", "new", "/api/..%2Fadmin"),
        (b"/api/..%2Fadmin", "new", "/api/..%2Fadmin"),
        (b"/api%2f..%2fadmin", "legacy", "/api%2F..%2Fadmin"),
        (b"/api/..%5cadmin", "new", "/api/..%5Cadmin"),
        (b"/api/%2e%2e/admin", "legacy", "/admin"),
    ];
    for (path, backend, forwarded) in cases {
        let mut raw = b"GET ".to_vec();
        raw.extend_from_slice(path);
        raw.extend_from_slice(b" HTTP/1.1\r\nhost: a.test\r\n\r\n");
        let answer = raw_exchange(proxy.addr, &raw).await;
        let shown = String::from_utf8_lossy(path);
        assert_eq!(status_of(&answer), 200, "{shown}: {answer}");
        assert!(answer.ends_with(backend), "{shown}: {answer}");
        let seen = if *backend == "new" {
            new.last()
        } else {
            legacy.last()
        };
        assert_eq!(seen.uri, *forwarded, "{shown}");
    }
    let backslash = raw_exchange(
        proxy.addr,
        b"GET /api/..\\admin HTTP/1.1\r\nhost: a.test\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&backslash), 200, "{backslash}");
    assert_eq!(new.last().uri, "/api/..\\admin");
}

/// An HTTP/2 client that resets its stream while the backend is still
/// thinking is counted as gone (499, `backend="none"`), not as anything the
/// backend did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resets_its_stream_is_counted_as_gone() {
    let slow = TestBackend::with_handler("legacy", |_| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        http::Response::new(strangler::body::full("late"))
    })
    .await;
    let proxy = TestProxy::start(&config_with(&slow.url(), &slow.url(), "")).await;
    let (client, _connection) = h2_connect(proxy.addr).await;
    let mut client = timeout(DEADLINE, client.ready()).await.unwrap().unwrap();
    let request = http::Request::get(format!("http://{}/slow", proxy.addr))
        .body(())
        .unwrap();
    let (_response, mut stream) = client.send_request(request, true).unwrap();
    support::eventually(DEADLINE, "the request reached the backend", || async {
        slow.connection_count() > 0
    })
    .await;
    stream.send_reset(h2::Reason::CANCEL);
    let metrics_url = proxy.admin_url("/metrics");
    support::eventually(DEADLINE, "the reset request is counted as gone", || {
        let url = metrics_url.clone();
        async move {
            let text = get(&url).await.text();
            metric(
                &text,
                r#"strangler_requests_total{route="_default",backend="none",code="499"}"#,
            ) == Some(1.0)
        }
    })
    .await;
    let text = get(&metrics_url).await.text();
    assert!(
        !text.contains(r#"backend="legacy",code="#),
        "the reset was blamed on legacy: {text}"
    );
}

// === max_header_size ===

/// A head over `max_header_size` is a 431 and never forwarded, over HTTP/1.1
/// (whole or still arriving: the buffer stops there) and HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_max_header_size_are_431_and_never_forwarded() {
    let legacy = TestBackend::start("legacy").await;
    let toml = config_with_server(
        "max_header_size = \"16KiB\"",
        &legacy.url(),
        &legacy.url(),
        "",
    );
    let proxy = TestProxy::start(&toml).await;
    let big = "a".repeat(20 * 1024);

    let whole = format!("GET /big HTTP/1.1\r\nhost: a.test\r\nx-big: {big}\r\n\r\n");
    let answer = raw_exchange(proxy.addr, whole.as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");

    // A head that never ends: the proxy answers once 16 KiB are in, and
    // closes, rather than buffering on.
    let mut partial = TcpStream::connect(proxy.addr).await.unwrap();
    partial
        .write_all(b"GET /partial HTTP/1.1\r\nhost: a.test\r\n")
        .await
        .unwrap();
    let line = format!("x-more: {}\r\n", "b".repeat(1000));
    let mut refused = false;
    for _ in 0..64 {
        if partial.write_all(line.as_bytes()).await.is_err() {
            refused = true;
            break;
        }
    }
    let rest = String::from_utf8_lossy(&read_until_closed(&mut partial).await).into_owned();
    assert!(refused || rest.starts_with("HTTP/1.1 431"), "{rest}");

    // Within the limit: forwarded.
    let fine = format!(
        "GET /fine HTTP/1.1\r\nhost: a.test\r\nx-big: {}\r\n\r\n",
        &big[..8 * 1024]
    );
    assert_eq!(
        status_of(&raw_exchange(proxy.addr, fine.as_bytes()).await),
        200
    );

    // HTTP/2: the header list is bounded the same way.
    let (client, _connection) = h2_connect(proxy.addr).await;
    let mut client = timeout(DEADLINE, client.ready()).await.unwrap().unwrap();
    let request = http::Request::get(format!("http://{}/big-h2", proxy.addr))
        .header("x-big", big.as_str())
        .body(())
        .unwrap();
    let outcome = match client.send_request(request, true) {
        Ok((response, _)) => timeout(DEADLINE, response)
            .await
            .unwrap()
            .map(|r| r.status()),
        Err(error) => Err(error),
    };
    assert!(
        matches!(&outcome, Ok(status) if *status == 431) || outcome.is_err(),
        "{outcome:?}"
    );

    still_serves(&proxy).await;
    let uris: Vec<_> = legacy.seen.all().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(uris, ["/fine", "/still-serving"]);
}

/// The access log names the client address of SPEC §3.9: behind a trusted
/// load balancer, the forwarded one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_forwarded_client() {
    let legacy = TestBackend::start("legacy").await;
    let backends = support::backends_with(&legacy.url(), &legacy.url(), "");
    let proxy = support::Binary::start_with(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        &backends,
        &[],
        &["--log-format", "json"],
    )
    .await;
    let answer = support::get_with(
        &proxy.url("/logged"),
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-request-id", "edge-log-1"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    let mut client = None;
    support::eventually(DEADLINE, "the access log has the request", || {
        client = proxy
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|event| {
                event["target"] == "strangler::access"
                    && event["fields"]["request_id"] == "edge-log-1"
            })
            .map(|event| event["fields"]["client"].clone());
        let done = client.is_some();
        async move { done }
    })
    .await;
    assert_eq!(client.unwrap(), "203.0.113.9");
}

/// A client that stalls mid-upload on a fallback route gets 408 from the
/// proxy, with no `x-strangler-backend` and `backend="none"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_408_with_no_backend() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with_server(
        "header_read_timeout = \"300ms\"",
        &legacy.url(),
        &new.url(),
        "[[routes]]\nname = \"up\"\npath = \"/up\"\nweight = 100\n",
    ))
    .await;
    let mut stalled = TcpStream::connect(proxy.addr).await.unwrap();
    stalled
        .write_all(b"PUT /up HTTP/1.1\r\nhost: a.test\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = read_response(&mut stalled).await;
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(
        !answer.to_lowercase().contains("x-strangler-backend"),
        "{answer}"
    );
    assert!(answer.contains("\"error\""), "{answer}");
    let text = get(&proxy.admin_url("/metrics")).await.text();
    assert_eq!(
        metric(
            &text,
            r#"strangler_requests_total{route="up",backend="none",code="408"}"#
        ),
        Some(1.0),
        "{text}"
    );
    still_serves(&proxy).await;
}

/// Response framing a backend can get wrong: each is refused (502 before any
/// head went out) or cut off (the client's connection is closed rather than
/// left open with a body it cannot delimit), and the proxy keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_backend_framing_never_reaches_the_client_as_a_whole_answer() {
    let cases: &[(&str, &'static [u8], Option<u16>)] = &[
        (
            "Content-Length: +3",
            b"HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc",
            Some(502),
        ),
        (
            "an invalid chunk size",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            None,
        ),
        (
            "obs-fold",
            b"HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 2\r\n\r\nok",
            None,
        ),
    ];
    for (name, raw, status) in cases {
        let backend = Scripted::start(raw).await;
        let (_fine, proxy) = behind_sloppy(&backend, "/sloppy").await;
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client
            .write_all(b"GET /sloppy HTTP/1.1\r\nhost: a.test\r\n\r\n")
            .await
            .unwrap();
        let got = String::from_utf8_lossy(&read_until_closed_or(&mut client).await).into_owned();
        match status {
            Some(status) => assert_eq!(status_of(&got), *status, "{name}: {got}"),
            None => {
                // Either refused before the head, or the head went out and
                // the body was cut off with the connection.
                let whole = got.ends_with("abc") && got.contains("content-length: 3");
                assert!(!whole, "{name}: {got}");
                if !got.is_empty() && status_of(&got) == 200 {
                    // The connection was closed (read_until_closed_or saw EOF
                    // before its 2 s), not left waiting for bytes that never come.
                    let mut probe = [0u8; 1];
                    let eof = timeout(Duration::from_millis(100), client.read(&mut probe)).await;
                    assert!(
                        matches!(eof, Ok(Ok(0)) | Ok(Err(_))),
                        "{name}: connection left open: {got}"
                    );
                }
            }
        }
        still_serves(&proxy).await;
        // A GET broken before a whole answer is tried once more on a fresh
        // connection (a stale pooled one is the usual cause); never more.
        let heads = backend.heads().len();
        assert!((1..=2).contains(&heads), "{name}: {heads} requests");
    }
}

#[test]
fn an_empty_rate_limit_table_takes_the_spec_defaults() {
    let text = config_with(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "[[routes]]\npath = \"/a\"\n[routes.rate_limit]\n",
    );
    let config = strangler::config::parse(&text, std::path::Path::new("s.toml")).unwrap();
    assert_eq!(
        config.routes[0].rate_limit,
        Some(strangler::config::RateLimitConfig {
            rps: 100.0,
            burst: 200,
            key: strangler::config::RateKey::Ip,
        })
    );
    assert_eq!(
        config.routes[0].rate_limit.as_ref().map(|r| r.burst),
        Some(200)
    );
}
