//! TLS (SPEC §2, §4): https backends (private CA, unknown issuer,
//! `tls_insecure_skip_verify`, `tls_server_name`, ALPN by `protocol`), the
//! `[server.tls]` listener (HTTP/1.1 and h2 by ALPN, `X-Forwarded-Proto`), and
//! certificate reload by `POST /reload` without touching the TOML.
//!
//! Certificates are made per test with rcgen: a CA and leaves signed by it.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use strangler::app::{self, Launch};
use support::{Answer, DEADLINE, Recorded, TestBackend, TestProxy, get, get_with, request, send};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

// === Certificates ===

/// A private CA that signs leaf certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM, and the certificate's DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "strangler test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses) with common name `cn`.
    fn leaf(&self, names: &[&str], cn: &str) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Leaf {
    fn server_config(&self, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// Writes the pair as `name.crt` and `name.key` in `dir`.
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

// === An https backend ===

/// What an https backend saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    version: Version,
    headers: HeaderMap,
}

/// An in-process HTTPS backend answering 200 `tls-backend`, offering `alpn`;
/// `h2_only` serves HTTP/2 and nothing else.
struct TlsBackend {
    addr: SocketAddr,
    seen: Recorded<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsBackend {
    async fn start(leaf: &Leaf, alpn: &[&[u8]], h2_only: bool) -> TlsBackend {
        let acceptor = TlsAcceptor::from(Arc::new(leaf.server_config(alpn)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Recorded::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    // A refused handshake (the proxy distrusts us) just ends here.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req: Request<Incoming>| {
                        let record = record.clone();
                        async move {
                            record.push(Seen {
                                version: req.version(),
                                headers: req.headers().clone(),
                            });
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                b"tls-backend",
                            ))))
                        }
                    });
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    if h2_only {
                        builder = builder.http2_only();
                    }
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TlsBackend { addr, seen, task }
    }

    fn last(&self) -> Seen {
        self.seen.last()
    }

    fn count(&self) -> usize {
        self.seen.count()
    }
}

/// A config whose every request goes to `legacy` (no routes): `server` is
/// added to `[server]` (e.g. a `[server.tls]` table), `legacy_keys` to
/// `[backends.legacy]`.
fn config_to(legacy_url: &str, legacy_keys: &str, server: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{server}

[backends.legacy]
url = "{legacy_url}"
connect_timeout = "2s"
timeout = "5s"
{legacy_keys}

[backends.new]
url = "http://127.0.0.1:9"
"#
    )
}

/// `[server.tls]` naming `cert` and `key`.
fn server_tls(cert: &Path, key: &Path) -> String {
    format!(
        "[server.tls]\ncert_file = '{}'\nkey_file = '{}'\n",
        cert.display(),
        key.display()
    )
}

/// A temp dir holding the CA's PEM as `ca.pem`.
fn ca_dir(ca: &Ca) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    (dir, path)
}

// === (a) https backends: trust ===

#[tokio::test]
async fn https_backend_trusted_through_ca_file() {
    let ca = Ca::new();
    let backend = TlsBackend::start(
        &ca.leaf(&["localhost", "127.0.0.1"], "backend"),
        &[b"http/1.1"],
        false,
    )
    .await;
    let (_dir, ca_file) = ca_dir(&ca);
    let url = format!("https://localhost:{}", backend.addr.port());
    let keys = format!("ca_file = '{}'", ca_file.display());
    let proxy = TestProxy::start(&config_to(&url, &keys, "")).await;

    let answer = get(&proxy.url("/hello")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "tls-backend");
    assert_eq!(backend.last().version, Version::HTTP_11);
}

#[tokio::test]
async fn https_backend_of_an_unknown_issuer_is_a_502() {
    let ca = Ca::new();
    let backend = TlsBackend::start(
        &ca.leaf(&["localhost", "127.0.0.1"], "backend"),
        &[b"http/1.1"],
        false,
    )
    .await;
    let url = format!("https://127.0.0.1:{}", backend.addr.port());
    let proxy = TestProxy::start(&config_to(&url, "", "")).await;

    let answer = get(&proxy.url("/hello")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert_eq!(
        backend.count(),
        0,
        "no request may reach a distrusted backend"
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_issuer() {
    let ca = Ca::new();
    let backend = TlsBackend::start(&ca.leaf(&["elsewhere.test"], "backend"), &[], false).await;
    let url = format!("https://127.0.0.1:{}", backend.addr.port());
    let proxy = TestProxy::start(&config_to(&url, "tls_insecure_skip_verify = true", "")).await;

    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "tls-backend");
}

#[tokio::test]
async fn tls_server_name_verifies_a_name_other_than_the_urls_host() {
    let ca = Ca::new();
    let backend = TlsBackend::start(&ca.leaf(&["localhost"], "backend"), &[], false).await;
    let (_dir, ca_file) = ca_dir(&ca);
    let url = format!("https://127.0.0.1:{}", backend.addr.port());

    // The certificate does not name 127.0.0.1: without the override, 502.
    let keys = format!("ca_file = '{}'", ca_file.display());
    let proxy = TestProxy::start(&config_to(&url, &keys, "")).await;
    assert_eq!(get(&proxy.url("/")).await.status, StatusCode::BAD_GATEWAY);

    let keys = format!(
        "ca_file = '{}'\ntls_server_name = \"localhost\"",
        ca_file.display()
    );
    let proxy = TestProxy::start(&config_to(&url, &keys, "")).await;
    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn a_bad_ca_file_fails_start_and_reload_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let bad = config_to(
        "https://127.0.0.1:1",
        &format!("ca_file = '{}'", ca_file.display()),
        "",
    );

    // Start-up: an error naming the backend and the file, not a panic.
    let path = dir.path().join("strangler.toml");
    std::fs::write(&path, &bad).unwrap();
    let config = strangler::config::load(&path).unwrap();
    let started = app::start(Launch {
        config,
        path: path.clone(),
        proxy: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: None,
        watch: false,
    });
    let error = started.expect_err("start must fail").to_string();
    assert!(
        error.contains("legacy") && error.contains("ca.pem"),
        "{error}"
    );

    // Reload: 400, the old config keeps serving.
    let backend = TestBackend::start("legacy").await;
    let proxy = TestProxy::start(&config_to(&backend.url(), "", "")).await;
    std::fs::write(&proxy.path, &bad).unwrap();
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(answer.text().contains("ca_file"), "{}", answer.text());
    assert_eq!(get(&proxy.url("/")).await.text(), "legacy");
}

#[tokio::test]
async fn post_reload_rereads_a_renewed_ca_file_with_the_toml_unchanged() {
    let ca = Ca::new();
    let backend = TlsBackend::start(&ca.leaf(&["localhost"], "backend"), &[], false).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    // At first the file holds another CA: the backend is distrusted.
    std::fs::write(&ca_file, Ca::new().pem()).unwrap();
    let url = format!("https://localhost:{}", backend.addr.port());
    let keys = format!("ca_file = '{}'", ca_file.display());
    let proxy = TestProxy::start(&config_to(&url, &keys, "")).await;
    assert_eq!(get(&proxy.url("/")).await.status, StatusCode::BAD_GATEWAY);

    std::fs::write(&ca_file, ca.pem()).unwrap();
    assert_eq!(post_reload(&proxy).await.status, StatusCode::OK);
    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

// === (b) ALPN by `protocol` ===

/// Sends `GET path` with `headers` through a proxy whose `legacy` is an
/// https backend (trusted through a CA file) offering `alpn`, serving HTTP/2
/// only when `h2_only`, set to `protocol = "<protocol>"`: the answer, and
/// what the backend saw of the request.
async fn through_alpn(
    alpn: &[&[u8]],
    h2_only: bool,
    protocol: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Answer, Seen) {
    let ca = Ca::new();
    let backend = TlsBackend::start(&ca.leaf(&["localhost"], "backend"), alpn, h2_only).await;
    let (_dir, ca_file) = ca_dir(&ca);
    let url = format!("https://localhost:{}", backend.addr.port());
    let keys = format!(
        "ca_file = '{}'\nprotocol = \"{protocol}\"",
        ca_file.display()
    );
    let proxy = TestProxy::start(&config_to(&url, &keys, "")).await;
    let answer = get_with(&proxy.url(path), headers).await;
    (answer, backend.last())
}

#[tokio::test]
async fn http2_protocol_reaches_an_h2_only_backend() {
    let (answer, seen) =
        through_alpn(&[b"h2"], true, "http2", "/grpc", &[("te", "trailers")]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.headers.get("te").unwrap(), "trailers");
}

#[tokio::test]
async fn auto_protocol_negotiates_h2_when_the_backend_offers_it() {
    let (answer, seen) = through_alpn(
        &[b"h2", b"http/1.1"],
        false,
        "auto",
        "/",
        &[("te", "trailers")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.headers.get("te").unwrap(), "trailers");
}

#[tokio::test]
async fn http1_protocol_stays_on_http11_even_if_the_backend_offers_h2() {
    let (answer, seen) = through_alpn(&[b"h2", b"http/1.1"], false, "http1", "/", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(seen.version, Version::HTTP_11);
}

// === (c) the `[server.tls]` listener ===

/// A TLS client trusting `ca`, offering `alpn`, connected to `addr` as `localhost`.
async fn connect_tls(
    ca: &Ca,
    addr: SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("handshake timed out")
        .expect("handshake failed")
}

/// The certificate the server at `addr` shows now.
async fn peer_certificate(ca: &Ca, addr: SocketAddr) -> Vec<u8> {
    let stream = connect_tls(ca, addr, b"http/1.1").await;
    let (_, session) = stream.get_ref();
    session.peer_certificates().expect("no peer certificate")[0].to_vec()
}

/// `GET /` over `stream`, HTTP/1.1 or h2 by what ALPN chose.
async fn get_over(stream: tokio_rustls::client::TlsStream<TcpStream>) -> (Version, StatusCode) {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let request = Request::get("https://localhost/")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        tokio::time::timeout(DEADLINE, sender.send_request(request)).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        tokio::time::timeout(DEADLINE, sender.send_request(request)).await
    };
    let response = response
        .expect("request timed out")
        .expect("request failed");
    let version = response.version();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"legacy");
    (version, status)
}

async fn post_reload(proxy: &TestProxy) -> Answer {
    send(
        request("POST", &proxy.admin_url("/reload"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// A proxy serving TLS with `leaf` (written as `tls.crt`/`tls.key` in
/// `dir`), sending everything to `backend`.
async fn tls_proxy(leaf: &Leaf, dir: &Path, backend: &TestBackend) -> TestProxy {
    let (cert, key) = leaf.write(dir, "tls");
    TestProxy::start(&config_to(&backend.url(), "", &server_tls(&cert, &key))).await
}

#[tokio::test]
async fn server_tls_serves_http11_and_h2_and_says_https() {
    let ca = Ca::new();
    let backend = TestBackend::start("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = tls_proxy(&ca.leaf(&["localhost"], "proxy"), dir.path(), &backend).await;

    let stream = connect_tls(&ca, proxy.addr, b"http/1.1").await;
    assert_eq!(get_over(stream).await, (Version::HTTP_11, StatusCode::OK));
    assert_eq!(
        backend.last().headers.get("x-forwarded-proto").unwrap(),
        "https"
    );

    let stream = connect_tls(&ca, proxy.addr, b"h2").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(get_over(stream).await, (Version::HTTP_2, StatusCode::OK));
    assert_eq!(
        backend.last().headers.get("x-forwarded-proto").unwrap(),
        "https"
    );
}

#[tokio::test]
async fn server_tls_handshake_is_bounded_by_header_read_timeout() {
    let ca = Ca::new();
    let backend = TestBackend::start("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.leaf(&["localhost"], "proxy");
    let (cert, key) = leaf.write(dir.path(), "tls");
    let server = format!(
        "header_read_timeout = \"200ms\"\n{}",
        server_tls(&cert, &key)
    );
    let toml = config_to(&backend.url(), "", &server);
    let proxy = TestProxy::start(&toml).await;
    // A client that connects and never says hello is closed.
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(DEADLINE, tokio::io::AsyncReadExt::read(&mut idle, &mut buf))
        .await
        .expect("an idle TLS client must be disconnected");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn a_bad_server_certificate_at_start_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, "garbage").unwrap();
    std::fs::write(&key, "garbage").unwrap();
    let path = dir.path().join("strangler.toml");
    let toml = config_to("http://127.0.0.1:9", "", &server_tls(&cert, &key));
    std::fs::write(&path, toml).unwrap();
    let config = strangler::config::load(&path).unwrap();
    let started = app::start(Launch {
        config,
        path,
        proxy: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: None,
        watch: false,
    });
    let error = started.expect_err("start must fail").to_string();
    assert!(error.contains("cert_file"), "{error}");
}

// === (d) certificate reload ===

#[tokio::test]
async fn post_reload_picks_up_a_renewed_certificate_and_keeps_it_on_a_bad_pair() {
    let ca = Ca::new();
    let backend = TestBackend::start("legacy").await;
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf(&["localhost"], "first");
    let proxy = tls_proxy(&first, dir.path(), &backend).await;
    assert_eq!(peer_certificate(&ca, proxy.addr).await, first.der);

    // Renewed files, same TOML: POST /reload serves the new certificate.
    let second = ca.leaf(&["localhost"], "second");
    assert_ne!(first.der, second.der);
    second.write(dir.path(), "tls");
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(peer_certificate(&ca, proxy.addr).await, second.der);
    let stream = connect_tls(&ca, proxy.addr, b"h2").await;
    assert_eq!(get_over(stream).await, (Version::HTTP_2, StatusCode::OK));

    // A broken key: 400, the error is shown, the second certificate stays.
    std::fs::write(
        dir.path().join("tls.key"),
        "-----BEGIN PRIVATE KEY-----\nbroken\n",
    )
    .unwrap();
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(answer.text().contains("key_file"), "{}", answer.text());
    let status = proxy.running.reload_status();
    assert!(
        status
            .last_error
            .is_some_and(|e| e.to_string().contains("key_file"))
    );
    assert_eq!(status.generation, 2);
    assert_eq!(peer_certificate(&ca, proxy.addr).await, second.der);

    // A key that does not belong to the certificate: refused the same way.
    let third = ca.leaf(&["localhost"], "third");
    std::fs::write(dir.path().join("tls.key"), &third.key_pem).unwrap();
    let answer = post_reload(&proxy).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert_eq!(peer_certificate(&ca, proxy.addr).await, second.der);
}
