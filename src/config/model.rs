//! The compiled configuration: what the request path reads.
//!
//! Everything here has been validated; nothing in this module can fail. The raw
//! TOML is turned into these types by [`super::parse`], once per load.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, Method, Uri};

pub use crate::shadow::json_path::JsonPath;

/// The route label of a request that no route matches (headers, logs, metrics).
pub const DEFAULT_ROUTE: &str = "_default";

/// Index into [`Config::backends`] (and the snapshot's backends, built in the
/// same order from them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId(usize);

impl BackendId {
    /// The id of `config.backends[index]`.
    pub const fn new(index: usize) -> BackendId {
        BackendId(index)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

/// Index into [`Config::routes`] (and the snapshot's compiled routes, built in
/// the same order from them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(usize);

impl RouteId {
    /// The id of `config.routes[index]`.
    pub fn new(index: usize) -> RouteId {
        RouteId(index)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

impl Config {
    pub fn route(&self, id: RouteId) -> &RouteConfig {
        &self.routes[id.index()]
    }

    pub fn backend(&self, id: BackendId) -> &BackendConfig {
        &self.backends[id.index()]
    }

    /// The name of `defaults.legacy`.
    pub fn default_legacy_name(&self) -> &str {
        &self.backend(self.default_legacy).name
    }
}

/// A whole, validated configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from (`<embedded>` for the demo config).
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub version: String,
    pub server: ServerConfig,
    /// Backends in file order; routes refer to them by index.
    pub backends: Vec<BackendConfig>,
    /// Flags in file order, with their values.
    pub flags: Vec<(String, bool)>,
    /// Routes in file order, indexed by [`RouteId`].
    pub routes: Vec<RouteConfig>,
    /// `defaults.legacy`: where requests that no route matches go (route `_default`).
    pub default_legacy: BackendId,
    /// The file's text, exactly as loaded (`GET /config/source`).
    pub source: std::sync::Arc<str>,
    /// What `check` warns about (SPEC §2 *Warnings*); never blocks a load.
    pub warnings: Vec<ConfigWarning>,
    /// `[control]`: the fleet's shared Redis (SPEC §3.10); `None`: this
    /// proxy keeps its own runtime state.
    pub control: Option<ControlConfig>,
}

/// `[control]` (SPEC §3.10).
#[derive(Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// The `redis://` or `rediss://` URL, password included: never print it,
    /// print [`ControlConfig::redis_shown`].
    pub redis: String,
    /// Every key and channel starts with it.
    pub key_prefix: String,
    /// Verdicts over the fleet's statistics, not only this proxy's.
    pub fleet_statistics: bool,
}

impl ControlConfig {
    /// The URL with its password hidden.
    pub fn redis_shown(&self) -> String {
        super::control::redact(&self.redis)
    }
}

impl std::fmt::Debug for ControlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlConfig")
            .field("redis", &self.redis_shown())
            .field("key_prefix", &self.key_prefix)
            .field("fleet_statistics", &self.fleet_statistics)
            .finish()
    }
}

/// A warning about a valid config: with a position (0 when none) and a fix.
pub type ConfigWarning = super::ConfigError;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Name of the env var holding the admin bearer token; `None` when unset/empty.
    pub admin_token_env: Option<String>,
    pub debug_headers: bool,
    pub max_request_body: u64,
    /// A request head (request line + headers) larger than this: 431.
    pub max_header_size: u64,
    pub header_read_timeout: Duration,
    /// A client connection with no request in flight for this long is closed
    /// (HTTP/2 included, PINGs or not).
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// 0: one worker per core.
    pub workers: usize,
    pub shutdown_timeout: Duration,
    /// The load balancers in front of strangler (SPEC §3.9).
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    pub tls: Option<TlsConfig>,
    /// A request header that forces a side for testers (SPEC §3.2 step 1).
    pub force_header: Option<HeaderName>,
    /// Where runtime state (overrides, trips) is kept across restarts.
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    Auto,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    pub name: String,
    /// The URL as written, for display.
    pub url: String,
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// The URL's path with no trailing `/` (empty for none); prefixed to every forwarded path.
    pub path_prefix: String,
    pub connect_timeout: Duration,
    /// Time to the response head.
    pub timeout: Duration,
    pub preserve_host: bool,
    pub protocol: Protocol,
    pub ca_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub tls_insecure_skip_verify: bool,
    pub outlier: OutlierConfig,
    /// `None`: no active health check.
    pub health: Option<HealthConfig>,
    /// Connection limits of the backend's pool.
    pub pool: PoolConfig,
}

/// A backend's connection limits (`max_connections`, `max_idle`,
/// `idle_timeout` in `[backends.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections open to the backend at once; a request over it waits for
    /// one, within `connect_timeout`. 0: no cap.
    pub max_connections: usize,
    /// Idle connections kept for reuse.
    pub max_idle: usize,
    /// An idle pooled connection is closed after this; below the keep-alive
    /// timeouts of common backends (Node 5s), so strangler closes first.
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            max_connections: 1024,
            max_idle: 64,
            idle_timeout: Duration::from_secs(4),
        }
    }
}

/// `[backends.NAME.outlier]`: passive ejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Gateway failures in a row that eject the backend; 0 = off.
    pub consecutive_failures: u32,
    /// The first ejection; each further one in a row doubles it.
    pub ejection: Duration,
    pub max_ejection: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
        }
    }
}

/// `[backends.NAME.health]`: an active health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// GET this path; a 2xx is a success.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Failed checks in a row that mark the backend unhealthy.
    pub unhealthy_after: u32,
    /// Good checks in a row that bring it back.
    pub healthy_after: u32,
}

impl BackendConfig {
    /// The upstream URI for an (already normalised) path and optional query.
    pub fn upstream_uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut target = String::with_capacity(
            self.path_prefix.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        target.push_str(&self.path_prefix);
        target.push_str(path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        // Scheme and authority were parsed at load; only the target is new. It
        // fails only for a path that did not come from a parsed request URI.
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(target)
            .build()
    }
}

/// `host` condition of a route. Stored lowercase, without port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`: matches any host ending with it
    /// (at least one label before it), not `example.com` itself.
    Suffix(String),
}

/// Where a route's sticky key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    Header(HeaderName),
    Cookie(String),
    Query(String),
    Ip,
}

/// Which methods a fallback may replay after new has seen the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSet {
    Any,
    List(Vec<Method>),
}

impl MethodSet {
    pub fn contains(&self, method: &Method) -> bool {
        match self {
            MethodSet::Any => true,
            MethodSet::List(list) => list.contains(method),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FallbackConfig {
    pub enabled: bool,
    /// Sorted, deduplicated statuses from new that count as failure.
    pub on_status: Vec<u16>,
    pub on_connect_error: bool,
    pub on_timeout: bool,
    /// New closed the connection or reset the stream after the request was
    /// sent, before a whole answer.
    pub on_reset: bool,
    pub replay_methods: MethodSet,
    pub max_body: u64,
    /// An answer from new with a Content-Length up to this is read whole
    /// before the client sees its head; 0 = off.
    pub hold_response: u64,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            enabled: true,
            on_status: vec![500, 502, 503, 504],
            on_connect_error: true,
            on_timeout: true,
            on_reset: true,
            replay_methods: MethodSet::List(vec![
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::TRACE,
                Method::PUT,
                Method::DELETE,
            ]),
            max_body: 1024 * 1024,
            hold_response: 64 * 1024,
        }
    }
}

impl FallbackConfig {
    pub fn on_status(&self, status: u16) -> bool {
        self.on_status.binary_search(&status).is_ok()
    }
}

/// `[routes.rate_limit]`: a token bucket per key.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Tokens added per second; above 0.
    pub rps: f64,
    /// The bucket's size; at least 1.
    pub burst: u32,
    pub key: RateKey,
}

/// What a rate limit's buckets are keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// The client address (SPEC §3.9).
    Ip,
    /// A request header's value; requests without it share one bucket.
    Header(http::HeaderName),
    /// One bucket for the whole route.
    Route,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    /// Normalised; no trailing `/` except for the root route `/`.
    pub path: String,
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    pub host: Option<HostMatch>,
    /// Header names lowercase; values compared exactly.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The flag's name and its value in this config.
    pub flag: Option<(String, bool)>,
    /// Share of traffic for new in basis points (percent × 100), `0..=10000`.
    pub weight_bp: u16,
    pub sticky: Option<Sticky>,
    /// With a `cookie:` sticky key: a request without the cookie gets a fresh
    /// random key and a `Set-Cookie` for it (SPEC §3.2).
    pub set_cookie: bool,
    pub cohort: String,
    /// Replaces the matched prefix for the new backend only.
    pub rewrite: Option<String>,
    pub legacy: BackendId,
    pub new: BackendId,
    pub fallback: FallbackConfig,
    /// `[routes.rate_limit]`; `None`: no limit.
    pub rate_limit: Option<RateLimitConfig>,
    /// `[routes.ramp]`: the weight on a clock.
    pub ramp: Option<RampConfig>,
    /// `[routes.rollback]` (or `[defaults.rollback]`): the automatic rollback.
    pub rollback: Option<RollbackConfig>,
    /// `[routes.shadow]`; `None`: nothing is mirrored.
    pub shadow: Option<Arc<ShadowConfig>>,
    /// 1-based line of the `[[routes]]` header in the file, for messages.
    pub line: usize,
}

/// `[routes.shadow]`: parallel running (SPEC §3.7).
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    /// Share of the route's requests mirrored, in basis points (`0..=10000`).
    pub percent_bp: u16,
    /// Only these methods are mirrored.
    pub methods: MethodSet,
    pub compare: bool,
    /// Lowercase; added to the built-in ignored headers.
    pub ignore_headers: Vec<HeaderName>,
    pub ignore_json: Vec<JsonPath>,
    /// Larger request bodies are not mirrored; larger answers compare by
    /// status and headers only.
    pub max_body: u64,
    /// Shadow requests of this route in flight at once.
    pub max_inflight: usize,
    /// Share of mirrored requests also sent again to the serving backend, in
    /// basis points.
    pub noise_sample_bp: u16,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            percent_bp: 1000,
            methods: MethodSet::List(vec![Method::GET, Method::HEAD, Method::OPTIONS]),
            compare: true,
            ignore_headers: ["date", "server", "x-request-id"]
                .into_iter()
                .map(HeaderName::from_static)
                .collect(),
            ignore_json: JsonPath::parse("$.meta.generated_at").into_iter().collect(),
            max_body: 1024 * 1024,
            max_inflight: 64,
            noise_sample_bp: 500,
        }
    }
}

/// `[routes.ramp]`: the route's weight is `steps[k]` at `start + k × every`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RampConfig {
    /// Weights in basis points, non-decreasing, at least one.
    pub steps_bp: Vec<u16>,
    /// Time spent at each step; above zero.
    pub every: Duration,
    /// When the first step begins; before it the route's `weight` applies.
    pub start: SystemTime,
}

impl RampConfig {
    /// The step in force at `now`: `floor((now − start) / every)`, capped at
    /// the last step; `None` before `start`.
    pub fn step_at(&self, now: SystemTime) -> Option<usize> {
        let elapsed = now.duration_since(self.start).ok()?;
        let step = elapsed.as_nanos() / self.every.as_nanos().max(1);
        let last = self.steps_bp.len().saturating_sub(1);
        Some(usize::try_from(step).map_or(last, |k| k.min(last)))
    }

    /// When the step after the one in force at `now` begins: `start` before
    /// it, `None` at the last step.
    pub fn next_at(&self, now: SystemTime) -> Option<SystemTime> {
        match self.step_at(now) {
            None => Some(self.start),
            Some(k) if k + 1 < self.steps_bp.len() => {
                let steps = u32::try_from(k + 1).ok()?;
                self.start.checked_add(self.every.checked_mul(steps)?)
            }
            Some(_) => None,
        }
    }
}

/// `[routes.rollback]`: when new's statistics over `window` trip the route.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackConfig {
    pub window: Duration,
    /// Fewer attempts on new in the window: no verdict.
    pub min_requests: u64,
    /// Percent of new's attempts that failed, above which the route trips.
    pub max_error_rate: f64,
    /// p95 of new's time to response head above which the route trips.
    pub max_p95: Option<Duration>,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        RollbackConfig {
            window: DEFAULT_STATS_WINDOW,
            min_requests: 20,
            max_error_rate: 5.0,
            max_p95: None,
        }
    }
}

/// The live statistics' window of a route without `[routes.rollback]`.
pub const DEFAULT_STATS_WINDOW: Duration = Duration::from_secs(60);

impl RouteConfig {
    /// The window of the route's live statistics: its rollback's, else 60 s.
    pub fn stats_window(&self) -> Duration {
        self.rollback
            .as_ref()
            .map_or(DEFAULT_STATS_WINDOW, |r| r.window)
    }
}
