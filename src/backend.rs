//! One pooled HTTP client per backend.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ProxyBody;
use crate::config::{BackendConfig, Protocol};

/// How long an idle pooled connection to a backend is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A backend and its connection pool. Shared by `Arc`: a reload that leaves a
/// backend's settings unchanged keeps the same `Backend`, and so its pool.
#[derive(Debug)]
pub struct Backend {
    pub config: BackendConfig,
    /// The backend's name as a header value, for `x-strangler-backend`.
    pub name_header: HeaderValue,
    /// The URL's `host[:port]`, sent as Host when `preserve_host` is off or
    /// the client sent none.
    pub host_header: HeaderValue,
    /// The backend's name as a metric label.
    pub name_label: crate::metrics::Label,
    pub client: Client<HttpConnector, ProxyBody>,
}

impl Backend {
    pub fn new(config: BackendConfig) -> Arc<Backend> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(config.protocol == Protocol::Http2)
            .build(connector);
        let name_header = HeaderValue::from_str(&config.name)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid-name"));
        let host_header = HeaderValue::from_str(config.authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Arc::new(Backend {
            host_header,
            name_label: Arc::new(config.name.clone()),
            config,
            name_header,
            client,
        })
    }
}
