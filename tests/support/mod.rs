//! Shared helpers for the integration tests: real backends and a real proxy on
//! 127.0.0.1 with ephemeral ports, the proxy's service driven without a port
//! ([`TestService`]), a small client, and `eventually`.
// Shared by every test crate through `mod support;`: `pub` is how a test
// crate's module exports, and each crate uses a different part of it.
#![allow(unreachable_pub)]
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::Digest;
use strangler::app::{self, Launch, Running};
use strangler::body::{self as pbody, ProxyBody};
use strangler::snapshot::Snapshot;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// Every test must finish; no single wait is longer than this.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// What a test backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// The HTTP version the request came in with.
    pub version: Version,
    /// Path and query as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// SHA-256 of the body, hex.
    pub body_sha256: String,
}

/// What a test backend saw, in order: shared between the backend's task and
/// the test.
#[derive(Debug)]
pub struct Recorded<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Recorded<T> {
    fn clone(&self) -> Self {
        Recorded(self.0.clone())
    }
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Recorded(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> Recorded<T> {
    pub fn push(&self, item: T) {
        self.0.lock().unwrap().push(item);
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn last(&self) -> T {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("backend saw no request")
    }

    /// Everything recorded so far, in order.
    pub fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

type Handler =
    Arc<dyn Fn(&Seen) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>> + Send + Sync>;

/// A backend on a loopback port whose every TCP connection is handed to a
/// handler, for faults that must be exact; stopped on drop.
pub struct RawBackend {
    pub addr: SocketAddr,
    /// TCP connections accepted so far.
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawBackend {
    pub async fn start<F, Fut>(handle: F) -> RawBackend
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(stream));
            }
        });
        RawBackend {
            addr,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many TCP connections the backend has accepted.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// An in-process HTTP/1.1 + h2c backend that records every request and answers
/// with `handler` (by default: 200, body = the backend's name).
pub struct TestBackend {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Recorded<Seen>,
    raw: RawBackend,
}

impl TestBackend {
    /// A backend answering 200 with its name as the body.
    pub async fn start(name: &str) -> TestBackend {
        let body_name = name.to_owned();
        TestBackend::with_handler(name, move |_| {
            let body_name = body_name.clone();
            async move { Response::new(pbody::full(body_name)) }
        })
        .await
    }

    /// A backend answering `status` with its name as the body.
    pub async fn with_status(name: &str, status: u16) -> TestBackend {
        TestBackend::answering(name, name.to_owned(), move |_| status).await
    }

    /// A backend answering `body` to every request, with the status
    /// `status_of(path and query)`.
    pub async fn answering<F>(name: &str, body: impl Into<Bytes>, status_of: F) -> TestBackend
    where
        F: Fn(&str) -> u16 + Send + Sync + 'static,
    {
        let body = body.into();
        TestBackend::with_handler(name, move |seen| {
            let status = StatusCode::from_u16(status_of(&seen.uri)).unwrap();
            let body = body.clone();
            async move {
                let mut r = Response::new(pbody::full(body));
                *r.status_mut() = status;
                r
            }
        })
        .await
    }

    pub async fn with_handler<F, Fut>(name: &str, handler: F) -> TestBackend
    where
        F: Fn(&Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |seen| Box::pin(handler(seen)));
        let seen = Recorded::default();
        let record = seen.clone();
        let raw = RawBackend::start(move |stream| {
            let handler = handler.clone();
            let record = record.clone();
            async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    let record = record.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let seen = Seen {
                            method: parts.method,
                            version: parts.version,
                            uri: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: parts.headers,
                            body_len: bytes.len(),
                            body_sha256: sha256_hex(&bytes),
                        };
                        record.push(seen.clone());
                        Ok::<_, Infallible>(handler(&seen).await)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        TestBackend {
            name: name.to_owned(),
            addr: raw.addr,
            seen,
            raw,
        }
    }

    /// How many TCP connections the backend has accepted.
    pub fn connection_count(&self) -> usize {
        self.raw.connection_count()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.seen.count()
    }

    pub fn last(&self) -> Seen {
        self.seen.last()
    }
}

/// A WebSocket backend on a loopback port: it takes one connection and echoes
/// its text and binary messages until the close handshake ends (tungstenite
/// answers a Close itself). The task panics if the handshake or a send fails;
/// a failed read ends it with that error, for the test to judge.
pub async fn ws_echo_backend() -> (
    SocketAddr,
    JoinHandle<Result<(), tokio_tungstenite::tungstenite::Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(message) = ws.next().await {
            let message = message?;
            if message.is_text() || message.is_binary() {
                ws.send(message).await.unwrap();
            }
        }
        Ok(())
    });
    (addr, echo)
}

/// A `ws` backend at `addr` and the route `ws` sending all of `/ws` to it.
pub fn ws_route(addr: SocketAddr) -> String {
    format!(
        r#"
[backends.ws]
url = "http://{addr}"

[[routes]]
name = "ws"
path = "/ws"
new = "ws"
weight = 100
"#
    )
}

/// A loopback address where connections are refused: the port is bound but
/// never listened on, and stays reserved (no other test can take it) while
/// this value lives.
pub struct DeadAddr {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _socket: tokio::net::TcpSocket,
}

pub fn dead_addr() -> DeadAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    DeadAddr {
        addr,
        url: format!("http://{addr}"),
        _socket: socket,
    }
}

/// A proxy started from a config file written to a temp dir.
pub struct TestProxy {
    pub running: Running,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestProxy {
    /// Starts a proxy on `toml` (no file watching).
    pub async fn start(toml: &str) -> TestProxy {
        TestProxy::start_with(toml, false).await
    }

    /// Starts a proxy on `toml`, watching its file when `watch`.
    pub async fn start_with(toml: &str, watch: bool) -> TestProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strangler.toml");
        std::fs::write(&path, toml).unwrap();
        TestProxy::start_at(path, dir, watch).await
    }

    /// Starts a proxy on the config at `path` (which may be a symlink) inside
    /// `dir`, watching it when `watch`.
    pub async fn start_at(path: PathBuf, dir: tempfile::TempDir, watch: bool) -> TestProxy {
        let config = match strangler::config::load(&path) {
            Ok(config) => config,
            Err(errors) => panic!("test config invalid:\n{errors}"),
        };
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = app::start(Launch {
            config,
            path: path.clone(),
            proxy,
            admin: Some(admin),
            watch,
        })
        .unwrap();
        TestProxy {
            addr: running.addr(),
            admin: running.admin_addr().unwrap(),
            running,
            dir,
            path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }
}

/// The proxy's client-facing service ([`strangler::proxy_service`]) built
/// from a config and driven without a socket: a request goes in through
/// `tower::ServiceExt::oneshot`, an [`Answer`] comes out, as axum's testing
/// example does. Backends are still reached over the network.
///
/// Nothing the listener would add is added: no
/// [`ClientAddr`](strangler::server::ClientAddr) (the proxy then takes the
/// client to be `0.0.0.0`; put one in the request's extensions when the test
/// needs it) and no `ClientTls`. No observer: no metrics, no access log.
#[derive(Clone)]
pub struct TestService {
    service: BoxCloneSyncService<Request<Full<Bytes>>, Response<ProxyBody>, Infallible>,
}

impl TestService {
    /// The service for the config `toml`; panics if the config is invalid.
    pub fn new(toml: &str) -> TestService {
        let config = match strangler::config::parse(toml, Path::new("strangler.toml")) {
            Ok(config) => config,
            Err(errors) => panic!("test config invalid:\n{errors}"),
        };
        let snapshot = Snapshot::new(config, None).expect("test config's backends");
        let service = ServiceExt::<Request<Full<Bytes>>>::map_response(
            strangler::proxy_service(
                Arc::new(ArcSwap::from_pointee(snapshot)),
                None,
                TaskTracker::new(),
            ),
            |response| response.map(pbody::boxed),
        );
        TestService {
            service: BoxCloneSyncService::new(service),
        }
    }

    /// Sends `request` (its URI a path, such as `/api/x?q=1`) through a clone
    /// of the service and reads the whole answer, within [`DEADLINE`]. The
    /// future owns what it needs, so it can be spawned.
    ///
    /// An HTTP/1.1 request without a Host (which the proxy refuses, as
    /// every real client sends one) gets `host: test.invalid`.
    pub fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> impl Future<Output = Answer> + Send + use<> {
        if request.version() == http::Version::HTTP_11
            && request.uri().authority().is_none()
            && !request.headers().contains_key(http::header::HOST)
        {
            request.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_static("test.invalid"),
            );
        }
        let service = self.service.clone();
        async move {
            let response = tokio::time::timeout(DEADLINE, service.oneshot(request))
                .await
                .expect("request timed out")
                .unwrap_or_else(|never| match never {});
            answer_of(response).await
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> impl Future<Output = Answer> + Send + use<> {
        self.send(Request::get(path).body(Full::default()).unwrap())
    }
}

/// A finished response with its whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A pooled HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `request` and reads the whole answer, within [`DEADLINE`].
pub async fn send(request: Request<Full<Bytes>>) -> Answer {
    send_with(&client(), request).await
}

pub async fn send_with<B>(client: &Client<HttpConnector, B>, request: Request<B>) -> Answer
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .expect("request timed out")
        .expect("request failed");
    answer_of(response).await
}

/// Reads `response` and its whole body, within [`DEADLINE`].
pub async fn answer_of<B>(response: Response<B>) -> Answer
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(DEADLINE, body.collect())
        .await
        .expect("body timed out")
        .expect("body failed")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `method url` with `body`, declaring its Content-Length.
pub async fn send_body(method: &str, url: &str, body: &[u8]) -> Answer {
    send(
        request(method, url)
            .header("content-length", body.len())
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap(),
    )
    .await
}

/// `GET url`.
pub async fn get(url: &str) -> Answer {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

/// `GET url` with `headers`.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = request("GET", url);
    for &(name, value) in headers {
        builder = builder.header(name, value);
    }
    send(builder.body(Full::default()).unwrap()).await
}

/// `GET url`, or `None` when the connection, the request or the body fails.
pub async fn try_get(url: &str) -> Option<Answer> {
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

/// A request builder with an empty body, for adding headers.
pub fn request(method: &str, url: &str) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

/// Asserts `answer` is an error made by the proxy: `status`, a JSON body of
/// exactly `{"error", "request_id"}` whose id is the response's `x-request-id`.
pub fn assert_proxy_error(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let json = answer.json();
    let object = json.as_object().unwrap();
    assert_eq!(object.len(), 2, "{json}");
    assert!(
        json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "error message missing: {json}"
    );
    let id = answer
        .header("x-request-id")
        .expect("x-request-id on an error");
    assert!(!id.is_empty());
    assert_eq!(json["request_id"], id, "request_id must echo x-request-id");
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `check` until it returns true or `within` passes; panics on timeout.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > within {
            panic!("not true within {within:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A config with `legacy` and `new` backends at the given URLs, then `rest`.
pub fn config_with(legacy: &str, new: &str, rest: &str) -> String {
    config_with_server("", legacy, new, rest)
}

/// [`config_with`], with `server` added to its `[server]` table.
pub fn config_with_server(server: &str, legacy: &str, new: &str, rest: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{server}
{}"#,
        backends_with(legacy, new, rest)
    )
}

/// What [`config_with`] has after its `[server]` table: the `legacy` and
/// `new` backends, then `rest`.
pub fn backends_with(legacy: &str, new: &str, rest: &str) -> String {
    backends_with_new(legacy, new, "timeout = \"2s\"", rest)
}

/// [`config_with`] where `[backends.new]` has `new_keys` (keys, then any
/// sub-tables such as `[backends.new.outlier]`) instead of its 2s timeout.
pub fn config_with_new(legacy: &str, new: &str, new_keys: &str, rest: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{}"#,
        backends_with_new(legacy, new, new_keys, rest)
    )
}

fn backends_with_new(legacy: &str, new: &str, new_keys: &str, rest: &str) -> String {
    format!(
        r#"[backends.legacy]
url = "{legacy}"

[backends.new]
url = "{new}"
{new_keys}

{rest}
"#
    )
}

/// A loopback port nothing listens on (bound, read, released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A child process killed on drop, whatever happens in the test.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary as `strangler run -c <dir>/strangler.toml`, on free ports,
/// its stderr in `<dir>/strangler.log`, killed on every exit path.
pub struct Binary {
    child: Killed,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The config file, as written.
    pub text: String,
    pub path: PathBuf,
    log_path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Binary {
    /// Writes a config made of a `[server]` table (free ports, then `server`)
    /// and `rest`, starts `strangler run` on it and waits until `/readyz` is 200.
    pub async fn start(server: &str, rest: &str) -> Binary {
        Binary::start_with_env(server, rest, &[]).await
    }

    /// [`Binary::start`] with the environment variables `env` set for the process.
    pub async fn start_with_env(server: &str, rest: &str, env: &[(&str, &str)]) -> Binary {
        Binary::start_with(server, rest, env, &[]).await
    }

    /// [`Binary::start_with_env`], with `args` passed to `strangler` before
    /// `run` (global options such as `--log-format json`).
    pub async fn start_with(
        server: &str,
        rest: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Binary {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let text = format!(
            "\n[server]\nlisten = \"{addr}\"\nadmin_listen = \"{admin}\"\n{server}\n{rest}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strangler.toml");
        std::fs::write(&path, &text).unwrap();
        let log_path = dir.path().join("strangler.log");
        let child = Command::new(env!("CARGO_BIN_EXE_strangler"))
            .args(args)
            .arg("run")
            .arg("-c")
            .arg(&path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let mut binary = Binary {
            child: Killed(child),
            addr,
            admin,
            text,
            path,
            log_path,
            dir,
        };
        let ready = binary.admin_url("/readyz");
        eventually(DEADLINE, "the proxy is ready", || {
            if let Some(status) = binary.exited() {
                panic!("strangler exited with {status}:\n{}", binary.log());
            }
            let ready = ready.clone();
            async move { try_get(&ready).await.is_some_and(|a| a.status == 200) }
        })
        .await;
        binary
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The process id, for reading `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.0.try_wait().unwrap()
    }

    /// Sends `kill -<signal>` to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits at most [`DEADLINE`] for the process to exit; asserts it exits 0.
    pub async fn assert_exits_0(&mut self) {
        let start = tokio::time::Instant::now();
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            if start.elapsed() > DEADLINE {
                panic!("no exit within {DEADLINE:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit {status}:\n{}", self.log());
    }
}
