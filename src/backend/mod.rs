//! One pooled HTTP client per backend.

pub(crate) mod dialer;
pub(crate) mod health;
pub(crate) mod probe;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::Scheme;
use http::{HeaderValue, Uri};
use hyper_rustls::{
    DefaultServerNameResolver, FixedServerNameResolver, HttpsConnector, ResolveServerName,
};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ProxyBody;
use crate::config::{BackendConfig, Protocol};
use crate::tls::{self, TlsError};
use dialer::Dialer;
use health::Health;

/// A backend and its connection pool. Shared by `Arc`: a reload that leaves a
/// backend's settings (and its `ca_file`'s bytes) unchanged keeps the same
/// `Backend`, and so its pool; one that changes them keeps its [`Health`]
/// as long as the name stays.
#[derive(Debug)]
pub struct Backend {
    pub config: BackendConfig,
    /// The backend's name as a header value, for `x-strangler-backend`.
    pub name_header: HeaderValue,
    /// The URL's `host[:port]`, sent as Host when `preserve_host` is off or
    /// the client sent none.
    pub host_header: HeaderValue,
    /// The backend's name as a metric label.
    pub name_label: crate::stats::Label,
    /// The pooled client; serves both `http` and `https` URLs.
    pub client: Client<Dialer, ProxyBody>,
    /// A client that never reuses a connection, for one more try after a
    /// pooled connection failed.
    pub fresh: Client<Dialer, ProxyBody>,
    /// Ejection and health-check state, shared by every route using it.
    pub health: Arc<Health>,
    /// The bytes of `ca_file` this backend trusts (https with a `ca_file` only).
    ca_pem: Option<Vec<u8>>,
}

/// A backend whose TLS settings could not be loaded.
#[derive(Debug)]
pub struct BackendError {
    pub backend: String,
    pub error: TlsError,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend {:?}: {}", self.backend, self.error)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Backend {
    /// Builds the backend, reading its `ca_file` if it has one.
    pub fn new(config: BackendConfig) -> Result<Arc<Backend>, BackendError> {
        let ca_pem = read_ca_file(&config)?;
        Backend::build(config, ca_pem, None)
    }

    /// For a reload: the backend in `previous` built from equal settings and
    /// the same `ca_file` bytes (so its pool survives), else a new one. The
    /// `ca_file` is read again every time: a renewed CA is picked up. A new
    /// backend with the name of a previous one takes over its health, with
    /// the new outlier and health-check settings applied.
    pub fn reuse_or_new(
        previous: &[Arc<Backend>],
        wanted: &BackendConfig,
    ) -> Result<Arc<Backend>, BackendError> {
        let ca_pem = read_ca_file(wanted)?;
        match previous
            .iter()
            .find(|b| b.config == *wanted && b.ca_pem == ca_pem)
        {
            Some(same) => Ok(same.clone()),
            None => {
                let health = previous
                    .iter()
                    .find(|b| b.config.name == wanted.name)
                    .map(|b| b.health.clone());
                Backend::build(wanted.clone(), ca_pem, health)
            }
        }
    }

    /// Whether requests may go out as HTTP/2: `http2`, or `auto` over TLS
    /// where ALPN may pick h2.
    pub fn may_use_h2(&self) -> bool {
        match self.config.protocol {
            Protocol::Http2 => true,
            Protocol::Auto => self.config.scheme == Scheme::HTTPS,
            Protocol::Http1 => false,
        }
    }

    fn build(
        config: BackendConfig,
        ca_pem: Option<Vec<u8>>,
        health: Option<Arc<Health>>,
    ) -> Result<Arc<Backend>, BackendError> {
        let dialer = dialer(&config, ca_pem.as_deref()).map_err(|error| BackendError {
            backend: config.name.clone(),
            error,
        })?;
        let client = client_builder(&config).build(dialer.clone());
        let fresh = client_builder(&config)
            .pool_max_idle_per_host(0)
            .build(dialer);
        let name_header = HeaderValue::from_str(&config.name)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid-name"));
        let host_header = HeaderValue::from_str(config.authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        let health = match health {
            Some(health) => {
                health.configure(&config);
                health
            }
            None => Arc::new(Health::new(&config, Instant::now())),
        };
        Ok(Arc::new(Backend {
            health,
            host_header,
            name_label: Arc::new(config.name.clone()),
            config,
            name_header,
            client,
            fresh,
            ca_pem,
        }))
    }
}

/// `ca_file`'s bytes, for an https backend that names one.
fn read_ca_file(config: &BackendConfig) -> Result<Option<Vec<u8>>, BackendError> {
    match &config.ca_file {
        Some(path) if config.scheme == Scheme::HTTPS => tls::read_file("ca_file", path)
            .map(Some)
            .map_err(|error| BackendError {
                backend: config.name.clone(),
                error,
            }),
        _ => Ok(None),
    }
}

/// The connector: plain TCP for `http` URLs, rustls for `https` ones, ALPN by
/// `protocol`, always to the backend's own address.
fn dialer(config: &BackendConfig, ca_pem: Option<&[u8]>) -> Result<Dialer, TlsError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));

    // Built directly rather than with hyper-rustls' builder, which refuses a
    // preset ALPN list and offers none for HTTP/1.1 only.
    let resolver: Arc<dyn ResolveServerName + Send + Sync> = match tls::server_name(config)? {
        Some(name) => Arc::new(FixedServerNameResolver::new(name)),
        None => Arc::new(DefaultServerNameResolver::default()),
    };
    let connector = HttpsConnector::new(http, tls::client_config(config, ca_pem)?, false, resolver);
    let target = Uri::builder()
        .scheme(config.scheme.clone())
        .authority(config.authority.clone())
        .path_and_query("/")
        .build()
        .expect("a parsed scheme and authority make a URI");
    Ok(Dialer::new(
        connector,
        target,
        config.pool.max_connections,
        config.connect_timeout,
    ))
}

/// The client settings shared by the pooled and the fresh client; `http2`
/// over plain TCP is h2c with prior knowledge.
fn client_builder(config: &BackendConfig) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(config.pool.idle_timeout)
        .pool_max_idle_per_host(config.pool.max_idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // A request never written on a pooled connection that closed is sent
        // again on another: it needs no replay rule.
        .retry_canceled_requests(true)
        .http2_only(config.protocol == Protocol::Http2);
    builder
}
