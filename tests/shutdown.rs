//! Graceful shutdown of the real binary (SPEC §1, §5): on SIGTERM `/readyz`
//! turns 503, new connections are refused, the request in flight finishes,
//! and the process exits 0.
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::{BodyExt, Full};
use strangler::body as pbody;
use support::{Answer, DEADLINE, TestBackend, client, eventually, get};
use tokio::sync::Notify;

/// A loopback port nothing listens on (bound, read, released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `strangler run` child, killed on every exit path.
struct Proxy {
    child: Child,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn spawn(config: &Path, log: &Path) -> Proxy {
        let child = Command::new(env!("CARGO_BIN_EXE_strangler"))
            .arg("run")
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Proxy { child }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The exit status, waiting at most `within`.
    async fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if start.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `GET url`, or `None` when the connection or request fails.
async fn try_get(url: &str) -> Option<Answer> {
    let response = tokio::time::timeout(
        DEADLINE,
        client().request(Request::get(url).body(Full::default()).unwrap()),
    )
    .await
    .ok()?
    .ok()?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_0() {
    let release = Arc::new(Notify::new());
    let legacy = held_backend(release.clone()).await;
    let (port, admin_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strangler.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
shutdown_timeout = "10s"

[backends.legacy]
url = "{}"
timeout = "20s"

[backends.new]
url = "http://127.0.0.1:1"
"#,
            legacy.url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("strangler.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut proxy = Proxy::spawn(&path, &log_path);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    eventually(DEADLINE, "the proxy is ready", || {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("strangler exited with {status}:\n{}", log());
        }
        async move {
            try_get(&format!("http://{admin}/readyz"))
                .await
                .is_some_and(|a| a.status == 200)
        }
    })
    .await;

    // A request the backend holds.
    let in_flight = tokio::spawn(async move { get(&format!("http://{addr}/slow")).await });
    eventually(DEADLINE, "the backend has the request", || async {
        legacy.count() == 1
    })
    .await;

    proxy.signal("TERM");
    eventually(DEADLINE, "/readyz answers 503 while draining", || async {
        try_get(&format!("http://{admin}/readyz"))
            .await
            .is_some_and(|a| a.status == 503)
    })
    .await;
    assert!(!in_flight.is_finished(), "the request is still held");
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "the process waits for the request in flight:\n{}",
        log()
    );
    // New connections are refused once the listener is closed.
    eventually(DEADLINE, "new connections are refused", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    // `/healthz` stays up while the process runs.
    let health = try_get(&format!("http://{admin}/healthz")).await;
    assert!(health.is_some_and(|a| a.status == 200));

    release.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "legacy");

    let status = proxy.exit_within(DEADLINE).await;
    let status = status.unwrap_or_else(|| panic!("no exit within {DEADLINE:?}:\n{}", log()));
    assert!(status.success(), "exit {status}:\n{}", log());
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
    let (port, admin_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strangler.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
shutdown_timeout = "10s"

[backends.legacy]
url = "{}"

[backends.new]
url = "http://127.0.0.1:1"
"#,
            legacy.url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("strangler.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut proxy = Proxy::spawn(&path, &log_path);
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    eventually(DEADLINE, "the proxy is ready", || {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("strangler exited with {status}:\n{}", log());
        }
        async move {
            try_get(&format!("http://{admin}/readyz"))
                .await
                .is_some_and(|a| a.status == 200)
        }
    })
    .await;
    // A served request leaves an idle keep-alive connection open: it must
    // not hold the process up.
    let client = client();
    let answer = support::send_with(
        &client,
        Request::get(format!("http://127.0.0.1:{port}/"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);

    proxy.signal(signal);
    let status = proxy.exit_within(DEADLINE).await;
    let status = status.unwrap_or_else(|| panic!("no exit within {DEADLINE:?}:\n{}", log()));
    assert!(status.success(), "exit {status}:\n{}", log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_the_drain() {
    // Never released: only shutdown_timeout ends the wait.
    let release = Arc::new(Notify::new());
    let legacy = held_backend(release.clone()).await;
    let (port, admin_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strangler.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
shutdown_timeout = "200ms"

[backends.legacy]
url = "{}"
timeout = "60s"

[backends.new]
url = "http://127.0.0.1:1"
"#,
            legacy.url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("strangler.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut proxy = Proxy::spawn(&path, &log_path);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    eventually(DEADLINE, "the proxy is ready", || {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("strangler exited with {status}:\n{}", log());
        }
        async move {
            try_get(&format!("http://{admin}/readyz"))
                .await
                .is_some_and(|a| a.status == 200)
        }
    })
    .await;
    let in_flight = tokio::spawn(async move { try_get(&format!("http://{addr}/stuck")).await });
    eventually(DEADLINE, "the backend has the request", || async {
        legacy.count() == 1
    })
    .await;

    proxy.signal("TERM");
    let status = proxy.exit_within(DEADLINE).await;
    let status = status.unwrap_or_else(|| panic!("no exit within {DEADLINE:?}:\n{}", log()));
    assert!(status.success(), "exit {status}:\n{}", log());
    // The request cut off by the timeout is not answered 200.
    let answer = in_flight.await.unwrap();
    assert!(
        answer.as_ref().is_none_or(|a| a.status != 200),
        "{answer:?}"
    );
    assert!(
        log().contains("shutdown_timeout"),
        "the cut-off is logged:\n{}",
        log()
    );
}
