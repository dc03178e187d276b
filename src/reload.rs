//! Reload: file watch, SIGHUP and `POST /reload` all come here. The new
//! snapshot is built whole, off the request path, then swapped in; an invalid
//! file changes nothing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::backend::probe::Prober;
use crate::config::{self, Config, RouteConfig, ServerConfig};
use crate::metrics::Metrics;
use crate::route::file_weight_percent;
use crate::snapshot::{SharedSnapshot, Snapshot};
use crate::tls::{self, ServerTls};
use rustls::sign::CertifiedKey;

mod error;

pub(crate) use error::{ReloadError, StartError};

/// How long the file must be quiet before a watched change is loaded: editors
/// and ConfigMap swaps produce bursts of events.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(150);

/// The longest a burst of events can postpone a reload.
pub(crate) const DEBOUNCE_MAX: Duration = Duration::from_secs(1);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// The watcher saw the directory change: skipped when the bytes are unchanged.
    Watch,
    /// SIGHUP: always reloads.
    Signal,
    /// `POST /reload`: always reloads.
    Admin,
}

/// What `/config` shows.
#[derive(Debug, Clone)]
pub struct Status {
    pub version: String,
    /// 1 at start, +1 per successful reload.
    pub generation: u64,
    pub loaded_at: SystemTime,
    /// Why the last reload failed; cleared by a successful one.
    pub last_error: Option<Arc<ReloadError>>,
    /// When `last_error` happened.
    pub last_error_at: Option<SystemTime>,
    /// `[server]` keys whose loaded value differs from the one the process
    /// started with: they wait for a restart.
    pub restart_required: Vec<&'static str>,
}

/// The result of one reload.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Loaded {
        version: String,
    },
    /// Watch trigger and the file's bytes are the ones already loaded.
    Unchanged,
    /// Watch trigger and the file is missing: the old config keeps serving.
    Missing,
    /// The old config keeps serving; `/config` shows `error` as `last_error`.
    Failed {
        error: Arc<ReloadError>,
    },
}

/// Loads the config file into the live snapshot, one reload at a time.
#[derive(Debug)]
pub(crate) struct Reloader {
    path: PathBuf,
    snapshot: SharedSnapshot,
    metrics: Arc<Metrics>,
    status: Mutex<Status>,
    /// Serialises reloads; held across the whole build-then-swap.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// The listener's certificate, re-read from `[server.tls]` on every load.
    server_tls: Option<ServerTls>,
    /// Health checkers, restarted for the backends a reload changed.
    prober: Option<Arc<Prober>>,
    /// The `[server]` table the listeners were started with.
    started: ServerConfig,
    /// The `[control]` the fleet link was started with.
    started_control: Option<crate::config::ControlConfig>,
}

impl Reloader {
    pub(crate) fn new(path: PathBuf, snapshot: SharedSnapshot, metrics: Arc<Metrics>) -> Reloader {
        let version = snapshot.load().config.version.clone();
        let started = snapshot.load().config.server.clone();
        let started_control = snapshot.load().config.control.clone();
        Reloader {
            path,
            snapshot,
            metrics,
            status: Mutex::new(Status {
                version,
                generation: 1,
                loaded_at: SystemTime::now(),
                last_error: None,
                last_error_at: None,
                restart_required: Vec::new(),
            }),
            started,
            started_control,
            one_at_a_time: tokio::sync::Mutex::new(()),
            server_tls: None,
            prober: None,
        }
    }

    /// Reloads also replace the certificate of `server_tls`.
    pub(crate) fn with_server_tls(mut self, server_tls: Option<ServerTls>) -> Reloader {
        self.server_tls = server_tls;
        self
    }

    /// Reloads also reconcile `prober`'s health checkers with the new backends.
    pub(crate) fn with_prober(mut self, prober: Arc<Prober>) -> Reloader {
        self.prober = Some(prober);
        self
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads, validates and swaps in the config file.
    pub(crate) async fn reload(&self, trigger: Trigger) -> Outcome {
        let _guard = self.one_at_a_time.lock().await;
        let path = self.path.clone();
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error)
                if trigger == Trigger::Watch && error.kind() == std::io::ErrorKind::NotFound =>
            {
                debug!(path = %path.display(), "config file missing; keeping the current config");
                return Outcome::Missing;
            }
            Err(source) => return self.failed(trigger, ReloadError::Read { path, source }),
        };
        if trigger == Trigger::Watch
            && config::version_of(&bytes) == self.snapshot.load().config.version
        {
            // The file is again what serves (e.g. a bad edit was reverted):
            // an error about the bad bytes no longer describes it.
            self.status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last_error = None;
            return Outcome::Unchanged;
        }
        // Parse, validate and compile off the async workers: a large file
        // must not stall requests.
        let old = self.snapshot.load_full();
        let listener_tls = self.server_tls.is_some();
        let built =
            tokio::task::spawn_blocking(move || build(bytes, &path, old, listener_tls)).await;
        match built {
            Ok(Ok(built)) => self.swap(built, trigger),
            Ok(Err(error)) => self.failed(trigger, error),
            Err(join) => self.failed(trigger, ReloadError::Task(join)),
        }
    }

    /// Swaps in everything `built` holds at once. Reloads are serialised, so
    /// `built.old` is still the live snapshot.
    fn swap(&self, built: Built, trigger: Trigger) -> Outcome {
        let Built {
            old,
            next,
            certificate,
        } = built;
        let version = next.config.version.clone();
        let mut restart_required = restart_keys(&self.started, &next.config.server);
        if self.started_control != next.config.control {
            restart_required.push("control");
        }
        let next = Arc::new(next);
        if let (Some(server_tls), Some(key)) = (&self.server_tls, certificate) {
            server_tls.store(key);
        }
        if let Some(prober) = &self.prober {
            prober.reconcile(&next);
        }
        carry_runtime_state(&old, &next);
        self.snapshot.store(next);
        // The old snapshot is usually let go of here, on an async worker:
        // freeing a large route table there would stall the requests it
        // serves, so it is freed on a blocking thread.
        tokio::task::spawn_blocking(move || drop(old));
        self.metrics.reload(true);
        let generation = {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status.version = version.clone();
            status.generation += 1;
            status.loaded_at = SystemTime::now();
            status.last_error = None;
            status.last_error_at = None;
            status.restart_required = restart_required;
            status.generation
        };
        info!(?trigger, generation, %version, "config reloaded");
        Outcome::Loaded { version }
    }

    fn failed(&self, trigger: Trigger, error: ReloadError) -> Outcome {
        let error = Arc::new(error);
        self.metrics.reload(false);
        warn!(?trigger, path = %self.path.display(), %error, "config reload failed; keeping the current config");
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error = Some(error.clone());
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_error_at = Some(SystemTime::now());
        Outcome::Failed { error }
    }
}

/// A reload's result, built whole before anything is swapped in.
struct Built {
    old: Arc<Snapshot>,
    next: Snapshot,
    /// The listener's renewed certificate, when it serves TLS.
    certificate: Option<CertifiedKey>,
}

/// Parses the file's `bytes` and loads everything it names (backends' TLS, the listener's
/// certificate) into a new snapshot; any failure leaves everything as it was.
fn build(
    bytes: Vec<u8>,
    path: &Path,
    old: Arc<Snapshot>,
    listener_tls: bool,
) -> Result<Built, ReloadError> {
    let config = config::parse_bytes(bytes, path)?;
    let certificate = match (listener_tls, &config.server.tls) {
        (true, Some(files)) => Some(tls::load_certified_key(files).map_err(ReloadError::Tls)?),
        (false, None) => None,
        _ => {
            warn!("[server.tls] added or removed: takes effect only after a restart");
            None
        }
    };
    let next = Snapshot::new(config, Some(&old))?;
    log_changes(&old.config, &next.config);
    Ok(Built {
        old,
        next,
        certificate,
    })
}

/// Logs what a reload changes: routes added, removed, re-weighted; and the
/// `[server]` settings that only a restart applies.
/// The `[server]` keys that differ between `was` and `now` and only a
/// restart applies.
pub(crate) fn restart_keys(was: &ServerConfig, now: &ServerConfig) -> Vec<&'static str> {
    let restart_only = [
        ("listen", was.listen != now.listen),
        ("admin_listen", was.admin_listen != now.admin_listen),
        (
            "header_read_timeout",
            was.header_read_timeout != now.header_read_timeout,
        ),
        (
            "max_connections",
            was.max_connections != now.max_connections,
        ),
        (
            "max_header_size",
            was.max_header_size != now.max_header_size,
        ),
        ("idle_timeout", was.idle_timeout != now.idle_timeout),
        ("workers", was.workers != now.workers),
        (
            "shutdown_timeout",
            was.shutdown_timeout != now.shutdown_timeout,
        ),
        ("tls", was.tls.is_some() != now.tls.is_some()),
    ];
    restart_only
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

fn log_changes(old: &Config, new: &Config) {
    for key in restart_keys(&old.server, &new.server) {
        // `[server.tls]` added or removed is logged where it is read.
        if key != "tls" {
            warn!(
                key,
                "server.{key} changed: takes effect only after a restart"
            );
        }
    }
    // A flag flip, by name, with the routes it moves.
    for (name, value) in &new.flags {
        let was = old.flags.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        if was.is_some_and(|was| was != *value) {
            let routes: Vec<&str> = new
                .routes
                .iter()
                .filter(|r| r.flag.as_ref().is_some_and(|(n, _)| n == name))
                .map(|r| r.name.as_str())
                .collect();
            info!(
                flag = %name,
                from = !value,
                to = value,
                routes = %routes.join(","),
                "flag flipped"
            );
        }
    }
    let before: HashMap<&str, &RouteConfig> =
        old.routes.iter().map(|r| (r.name.as_str(), r)).collect();
    for route in &new.routes {
        let name = route.name.as_str();
        let Some(was) = before.get(name) else {
            info!(route = name, path = %route.path, weight = percent(route.weight_bp), "route added");
            continue;
        };
        let (from, to) = (file_weight_percent(was), file_weight_percent(route));
        if was.weight_bp != route.weight_bp || from != to {
            info!(
                route = name,
                from,
                to,
                flag = route.flag.as_ref().map(|(flag, _)| flag.as_str()),
                because = if was.weight_bp == route.weight_bp {
                    "flag"
                } else {
                    "weight"
                },
                "route weight changed"
            );
        }
        let flag_name = |flag: &Option<(String, bool)>| flag.as_ref().map(|(n, _)| n.clone());
        if flag_name(&was.flag) != flag_name(&route.flag) {
            info!(
                route = name,
                from = flag_name(&was.flag).as_deref().unwrap_or("none"),
                to = flag_name(&route.flag).as_deref().unwrap_or("none"),
                "route flag changed"
            );
        }
        if was.ramp != route.ramp {
            let steps = route.ramp.as_ref().map(|r| {
                let steps: Vec<String> = r
                    .steps_bp
                    .iter()
                    .map(|&bp| percent(bp).to_string())
                    .collect();
                format!(
                    "[{}] every {} from {}",
                    steps.join(", "),
                    humantime::format_duration(r.every),
                    humantime::format_rfc3339_seconds(r.start)
                )
            });
            info!(
                route = name,
                ramp = steps.as_deref().unwrap_or("none"),
                "route ramp changed"
            );
        }
        if was.rollback != route.rollback {
            info!(
                route = name,
                rollback = route.rollback.is_some(),
                "route rollback changed"
            );
        }
    }
    let after: HashSet<&str> = new.routes.iter().map(|r| r.name.as_str()).collect();
    for route in &old.routes {
        if !after.contains(route.name.as_str()) {
            info!(route = %route.name, "route removed");
        }
    }
    log_warnings(new);
}

/// A weight in basis points as a percentage.
fn percent(bp: u16) -> f64 {
    f64::from(bp) / 100.0
}

/// What survives the swap from `old` to `next` (SPEC §3.6, §4): a trip ends
/// when the reload changed the route's own `weight`, `flag`, `ramp` or
/// `rollback` (the operator has acted), and new's statistics start afresh;
/// an override still in force is said so.
fn carry_runtime_state(old: &Snapshot, next: &Snapshot) {
    // By name once, not a scan of the old routes per new route: with 10,000
    // routes that scan was 50M string comparisons on an async worker.
    let was_named: HashMap<&str, &crate::snapshot::CompiledRoute> = old
        .routes()
        .iter()
        .map(|r| (r.config.name.as_str(), r))
        .collect();
    let mut changed = false;
    for route in next.routes() {
        let name = route.config.name.as_str();
        let handles = &route.handles;
        let acted = was_named.get(name).is_some_and(|was| {
            let (was, now) = (&was.config, &route.config);
            was.weight_bp != now.weight_bp
                || was.flag != now.flag
                || was.ramp != now.ramp
                || was.rollback != now.rollback
        });
        if acted && let Some(trip) = handles.state.resume() {
            handles.stats.new.clear();
            changed = true;
            warn!(route = name, tripped_by = %trip.reason, "the reload changed the route: its rollback is armed again");
        }
        if let Some(o) = handles.state.override_info() {
            warn!(
                route = name,
                weight = percent(o.value),
                file_weight = percent(route.config.weight_bp),
                "override still in force: DELETE /routes/NAME/override to use the file's weight"
            );
        }
    }
    for (name, file_value, flag) in next.flags() {
        if let Some(o) = flag.override_info() {
            warn!(
                flag = name,
                value = o.value,
                file_value,
                "flag override still in force"
            );
        }
    }
    if changed {
        next.state_changed.notify_one();
    }
}

/// Logs every warning `check` prints about `config` (SPEC §2 *Warnings*), at
/// start and on every reload, so none can be forgotten.
pub(crate) fn log_warnings(config: &Config) {
    for warning in &config.warnings {
        warn!(
            line = warning.line,
            column = warning.column,
            hint = warning.hint.as_deref(),
            "config warning: {}",
            warning.message
        );
    }
}

/// Watches the config file's directory (so rename-on-save and ConfigMap
/// `..data` swaps are seen) and reloads after each burst of events. Runs until
/// the watcher cannot be created; the returned watcher must be kept alive.
pub(crate) fn watch(reloader: Arc<Reloader>) -> notify::Result<notify::RecommendedWatcher> {
    let dir = match reloader.path().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    // One pending event is enough: a burst collapses into it.
    let (events, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            let _ = events.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until no event has come for DEBOUNCE, but never
            // longer than DEBOUNCE_MAX, so constant writes still get loaded.
            let deadline = tokio::time::Instant::now() + DEBOUNCE_MAX;
            while let Ok(Some(())) = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + DEBOUNCE),
                rx.recv(),
            )
            .await
            {}
            reloader.reload(Trigger::Watch).await;
        }
    });
    Ok(watcher)
}

/// Reloads on every SIGHUP, forever.
#[cfg(unix)]
pub(crate) fn reload_on_sighup(reloader: Arc<Reloader>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            info!("SIGHUP: reloading");
            reloader.reload(Trigger::Signal).await;
        }
    });
    Ok(())
}
