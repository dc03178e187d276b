//! Test-only builders for routes, configs and requests (the config parser is not
//! used here, so these tests do not depend on it).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::RequestInfo;
use crate::config::{
    BackendConfig, BackendId, Config, FallbackConfig, HostMatch, Protocol, RampConfig, RouteConfig,
    ServerConfig, Sticky,
};
use crate::path::normalize_path;

/// `defaults.legacy` and every test route's legacy backend unless set.
pub(crate) const LEGACY: BackendId = BackendId::new(0);
/// Every test route's new backend unless set.
pub(crate) const NEW: BackendId = BackendId::new(1);
/// A third backend, to tell a route's legacy from `defaults.legacy`.
pub(crate) const OTHER_LEGACY: BackendId = BackendId::new(2);

/// A route matching `path` with no condition, weight 0, cohort = name.
pub(crate) fn route(name: &str, path: &str) -> RouteConfig {
    RouteConfig {
        name: name.to_owned(),
        path: path.to_owned(),
        methods: None,
        host: None,
        headers: Vec::new(),
        flag: None,
        weight_bp: 0,
        sticky: None,
        set_cookie: false,
        cohort: name.to_owned(),
        rewrite: None,
        legacy: LEGACY,
        new: NEW,
        fallback: FallbackConfig::default(),
        rate_limit: None,
        ramp: None,
        rollback: None,
        shadow: None,
        line: 1,
    }
}

/// Chained setters for [`route`]'s result.
pub(crate) trait RouteBuilder {
    fn methods(self, methods: &[Method]) -> Self;
    fn host(self, host: HostMatch) -> Self;
    fn header(self, name: &str, value: &str) -> Self;
    fn flag(self, name: &str, value: bool) -> Self;
    fn weight(self, bp: u16) -> Self;
    fn sticky(self, sticky: Sticky) -> Self;
    fn cohort(self, cohort: &str) -> Self;
    fn legacy(self, backend: BackendId) -> Self;
    fn new_backend(self, backend: BackendId) -> Self;
    fn ramp(self, steps_bp: &[u16], every: Duration, start: SystemTime) -> Self;
}

impl RouteBuilder for RouteConfig {
    fn methods(mut self, methods: &[Method]) -> Self {
        self.methods = Some(methods.to_vec());
        self
    }
    fn host(mut self, host: HostMatch) -> Self {
        self.host = Some(host);
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        self.headers
            .push((name, HeaderValue::from_str(value).unwrap()));
        self
    }
    fn flag(mut self, name: &str, value: bool) -> Self {
        self.flag = Some((name.to_owned(), value));
        self
    }
    fn weight(mut self, bp: u16) -> Self {
        self.weight_bp = bp;
        self
    }
    fn sticky(mut self, sticky: Sticky) -> Self {
        self.sticky = Some(sticky);
        self
    }
    fn cohort(mut self, cohort: &str) -> Self {
        self.cohort = cohort.to_owned();
        self
    }
    fn legacy(mut self, backend: BackendId) -> Self {
        self.legacy = backend;
        self
    }
    fn new_backend(mut self, backend: BackendId) -> Self {
        self.new = backend;
        self
    }
    fn ramp(mut self, steps_bp: &[u16], every: Duration, start: SystemTime) -> Self {
        self.ramp = Some(RampConfig {
            steps_bp: steps_bp.to_vec(),
            every,
            start,
        });
        self
    }
}

pub(crate) fn backend(name: &str, port: u16) -> BackendConfig {
    let url = format!("http://127.0.0.1:{port}");
    BackendConfig {
        name: name.to_owned(),
        scheme: http::uri::Scheme::HTTP,
        authority: format!("127.0.0.1:{port}").parse().unwrap(),
        url,
        path_prefix: String::new(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(30),
        preserve_host: true,
        protocol: Protocol::Auto,
        ca_file: None,
        tls_server_name: None,
        tls_insecure_skip_verify: false,
        outlier: Default::default(),
        health: None,
        pool: Default::default(),
    }
}

/// A config with backends `legacy` ([`LEGACY`]), `new` ([`NEW`]) and
/// `legacy-2` ([`OTHER_LEGACY`]), and `routes`.
pub(crate) fn config(routes: Vec<RouteConfig>) -> Config {
    let mut flags: Vec<(String, bool)> = Vec::new();
    for (name, value) in routes.iter().filter_map(|r| r.flag.clone()) {
        if !flags.iter().any(|(n, _)| *n == name) {
            flags.push((name, value));
        }
    }
    Config {
        path: PathBuf::from("<test>"),
        version: String::new(),
        server: ServerConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            admin_listen: "127.0.0.1:9901".parse().unwrap(),
            admin_token_env: None,
            debug_headers: true,
            max_request_body: 10 * 1024 * 1024,
            max_header_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            workers: 0,
            shutdown_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            tls: None,
            force_header: None,
            state_file: None,
        },
        backends: vec![
            backend("legacy", 3001),
            backend("new", 3002),
            backend("legacy-2", 3003),
        ],
        flags,
        routes,
        default_legacy: LEGACY,
        source: "".into(),
        warnings: Vec::new(),
        control: None,
    }
}

/// An owned request, lent out as a [`RequestInfo`].
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub host: Option<String>,
    pub headers: HeaderMap,
    pub client_ip: IpAddr,
}

impl Req {
    /// `GET path` (normalised) from 127.0.0.1, no host, no headers.
    pub(crate) fn get(path: &str) -> Req {
        Req {
            method: Method::GET,
            path: normalize_path(path).into_owned(),
            query: None,
            host: None,
            headers: HeaderMap::new(),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    pub(crate) fn method(mut self, method: Method) -> Req {
        self.method = method;
        self
    }

    pub(crate) fn host(mut self, host: Option<&str>) -> Req {
        self.host = host.map(str::to_owned);
        self
    }

    pub(crate) fn query(mut self, query: Option<&str>) -> Req {
        self.query = query.map(str::to_owned);
        self
    }

    /// Appends a header (a name may repeat).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Req {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        self.headers
            .append(name, HeaderValue::from_str(value).unwrap());
        self
    }

    pub(crate) fn ip(mut self, ip: IpAddr) -> Req {
        self.client_ip = ip;
        self
    }

    pub(crate) fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            host: self.host.as_deref(),
            headers: &self.headers,
            client_ip: self.client_ip,
        }
    }
}
