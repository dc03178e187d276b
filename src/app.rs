//! Start-up and lifetime of a proxy: bind, serve, reload, stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tracing::{info, warn};

use crate::admin::Admin;
use crate::backend::probe::Prober;
use crate::config::Config;
use crate::control::Control;
use crate::metrics::{Metrics, Telemetry};
use crate::reload::{self, ReloadError, Reloader, StartError};
use crate::server::{self, Limits};
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::state_file;
use crate::stats::Histories;
use crate::tls::ServerTls;

/// What [`start`] needs: the config and the listeners, already bound.
#[derive(Debug)]
pub struct Launch {
    pub config: Config,
    /// The file the config came from; what reloads read.
    pub path: PathBuf,
    pub proxy: TcpListener,
    /// `None`: no admin API.
    pub admin: Option<TcpListener>,
    /// Watch the config file's directory and reload on change.
    pub watch: bool,
}

/// A proxy serving in the background; see [`start`].
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    snapshot: SharedSnapshot,
    admin: Arc<Admin>,
    stop: watch::Sender<bool>,
    /// Sent after the proxy has drained: the admin API answers (`/readyz`
    /// 503) all through the drain.
    stop_admin: watch::Sender<bool>,
    proxy_task: JoinHandle<()>,
    admin_task: Option<JoinHandle<()>>,
    /// Upgraded (WebSocket) connections, which outlive their HTTP connection.
    tunnels: TaskTracker,
    /// The active health checkers.
    prober: Arc<Prober>,
    /// Writes `state_file` after each change of runtime state.
    state_saver: JoinHandle<()>,
    /// Closes a minute of every route's history, once a minute.
    history_task: JoinHandle<()>,
    /// With `[control]`: the link to the fleet's Redis.
    _control: Option<Control>,
    shutdown_timeout: Duration,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Running {
    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the admin API listens (`None`: no admin API).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The snapshot serving now.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// What `/config` shows: version, generation, last error.
    pub fn reload_status(&self) -> reload::Status {
        self.admin.reloader.status()
    }

    /// Graceful stop: `/readyz` turns 503 at once, the listener stops
    /// accepting, open connections and tunnels get up to `shutdown_timeout`
    /// to finish; then the admin API stops.
    pub async fn shutdown(mut self) {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.admin.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        let _ = (&mut self.proxy_task).await;
        self.tunnels.close();
        if !self.tunnels.is_empty() {
            info!(
                tunnels = self.tunnels.len(),
                "waiting for upgraded connections"
            );
            if tokio::time::timeout_at(deadline, self.tunnels.wait())
                .await
                .is_err()
            {
                warn!(
                    tunnels = self.tunnels.len(),
                    "shutdown_timeout reached with upgraded connections open"
                );
            }
        }
        let _ = self.stop_admin.send(true);
        if let Some(admin_task) = self.admin_task.take() {
            let _ = admin_task.await;
        }
        self.prober.shutdown().await;
        self.history_task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.proxy_task.abort();
        self.state_saver.abort();
        self.history_task.abort();
        self.prober.stop();
        if let Some(admin_task) = &self.admin_task {
            admin_task.abort();
        }
    }
}

/// Serves the proxy (and the admin API, if given a listener) in the background.
pub fn start(launch: Launch) -> Result<Running, StartError> {
    let addr = launch.proxy.local_addr().map_err(StartError::Listener)?;
    let admin_addr = launch
        .admin
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(StartError::Listener)?;
    let limits = Limits::from(&launch.config.server);
    let shutdown_timeout = launch.config.server.shutdown_timeout;
    let server_tls = launch
        .config
        .server
        .tls
        .as_ref()
        .map(ServerTls::new)
        .transpose()
        .map_err(ReloadError::Tls)?;
    let mut metrics = Metrics::new();
    let control_gauge = launch
        .config
        .control
        .is_some()
        .then(|| metrics.control_gauge());
    let metrics = Arc::new(metrics);
    let snapshot = Snapshot::new(launch.config, None).map_err(ReloadError::Backend)?;
    state_file::restore_at_start(&snapshot);
    warn_state_in_memory(&snapshot.config);
    let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let state_saver = state_file::spawn_saver(snapshot.clone());
    // `[control]` is read at start only: a change waits for a restart.
    let control = snapshot
        .load()
        .config
        .control
        .clone()
        .zip(control_gauge)
        .map(|(config, gauge)| Control::start(config, snapshot.clone(), gauge));
    let prober = Arc::new(Prober::new());
    prober.reconcile(&snapshot.load());
    let reloader = Arc::new(
        Reloader::new(launch.path, snapshot.clone(), metrics.clone())
            .with_server_tls(server_tls.clone())
            .with_prober(prober.clone()),
    );
    let admin = Arc::new(Admin {
        snapshot: snapshot.clone(),
        metrics: metrics.clone(),
        reloader: reloader.clone(),
        ready: true.into(),
        history: Arc::new(Histories::default()),
        control: control.as_ref().map(|c| c.status.clone()),
    });
    let history_task = tokio::spawn(keep_history(snapshot.clone(), admin.history.clone()));

    // Before any task runs: once the admin API answers, SIGHUP reloads
    // rather than kills.
    #[cfg(unix)]
    if let Err(error) = reload::reload_on_sighup(reloader.clone()) {
        warn!(%error, "cannot listen for SIGHUP");
    }

    let (stop, stopped) = watch::channel(false);
    let (stop_admin, admin_stopped) = watch::channel(false);
    let observer = Arc::new(Telemetry { metrics });
    let tunnels = TaskTracker::new();
    let service = crate::proxy_service(snapshot.clone(), Some(observer), tunnels.clone());
    let proxy_task = tokio::spawn(server::serve(
        launch.proxy,
        service,
        limits,
        server_tls,
        wait_for(stopped),
    ));
    let admin_task = launch.admin.map(|listener| {
        let admin = admin.clone();
        let service = tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .service_fn(move |req| admin.clone().handle(req));
        let limits = Limits {
            shutdown_timeout: Duration::from_secs(1),
            ..limits
        };
        tokio::spawn(server::serve(
            listener,
            server::Counting(service),
            limits,
            None,
            wait_for(admin_stopped),
        ))
    });
    let watcher = if launch.watch {
        match reload::watch(reloader.clone()) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                warn!(%error, "cannot watch the config directory; reload with SIGHUP or POST /reload");
                None
            }
        }
    } else {
        None
    };
    Ok(Running {
        addr,
        admin_addr,
        snapshot,
        admin,
        stop,
        stop_admin,
        proxy_task,
        admin_task,
        tunnels,
        prober,
        state_saver,
        history_task,
        _control: control,
        shutdown_timeout,
        _watcher: watcher,
    })
}

/// SPEC §2: runtime state kept in memory only is lost at a restart, which
/// matters once a route can trip.
fn warn_state_in_memory(config: &Config) {
    if config.server.state_file.is_none()
        && let Some(route) = config.routes.iter().find(|r| r.rollback.is_some())
    {
        warn!(
            route = %route.name,
            "a route has [routes.rollback] but server.state_file is not set: a trip or an override is lost at a restart"
        );
    }
}

/// Once a minute, records every route's minute in `history` from its
/// counters; the first tick, at start, only sets the base.
async fn keep_history(snapshot: SharedSnapshot, history: Arc<Histories>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let snapshot = snapshot.load();
        let routes = snapshot.routes().iter().map(|r| &r.handles);
        let routes = routes.chain(std::iter::once(snapshot.handles(None)));
        history.tick(now, routes.map(|h| (h.label.as_str(), h.counters.totals())));
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// `strangler run`: serves until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // SPEC §2: a configured admin token never fails open.
    if let Some(var) = &config.server.admin_token_env
        && std::env::var(var).map_or(true, |token| token.is_empty())
    {
        anyhow::bail!(
            "server.admin_token_env names {var}, which is unset or empty: refusing to start \
             with an open admin API (set {var}, or remove admin_token_env)"
        );
    }
    let listen = config.server.listen;
    let admin_listen = config.server.admin_listen;
    let proxy = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {admin_listen} (admin_listen): {e}"))?;
    info!(%listen, %admin_listen, routes = config.routes.len(), version = %config.version, "proxy listening");
    reload::log_warnings(&config);
    let path = config.path.clone();
    // The message names its causes already: the `{:#}` chain main prints
    // would repeat them.
    let running = start(Launch {
        config,
        path,
        proxy,
        admin: Some(admin),
        watch: true,
    })
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    shutdown_signal().await;
    info!("shutdown signal received: draining (a second signal exits at once)");
    tokio::select! {
        () = running.shutdown() => {
            info!("stopped");
            Ok(())
        }
        () = shutdown_signal() => {
            warn!("second signal: exiting without waiting for open requests");
            Err(anyhow::anyhow!("forced exit by a second signal"))
        }
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
