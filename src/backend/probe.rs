//! Active health checks: one background task per backend with a `[health]`
//! section, never awaited by a request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::{Method, Request, header};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::Backend;
use crate::body;
use crate::config::HealthConfig;
use crate::snapshot::Snapshot;

/// Owns the checkers: started with the proxy, reconciled after every reload,
/// stopped on shutdown.
#[derive(Debug, Default)]
pub(crate) struct Prober {
    tracker: TaskTracker,
    stop: CancellationToken,
    /// By backend name: the backend its checker probes and the checker's token.
    running: Mutex<HashMap<String, (Arc<Backend>, CancellationToken)>>,
}

impl Prober {
    pub(crate) fn new() -> Prober {
        Prober::default()
    }

    /// Runs one checker per backend of `snapshot` with a `[health]` section:
    /// keeps those whose backend is unchanged, restarts those whose backend
    /// changed, stops those of backends gone or no longer checked. Must run
    /// inside a Tokio runtime.
    pub(crate) fn reconcile(&self, snapshot: &Snapshot) {
        if self.stop.is_cancelled() {
            return;
        }
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let wanted: HashMap<&str, &Arc<Backend>> = snapshot
            .backends()
            .iter()
            .filter(|b| b.config.health.is_some())
            .map(|b| (b.config.name.as_str(), b))
            .collect();
        running.retain(|name, (backend, token)| {
            let keep = wanted
                .get(name.as_str())
                .is_some_and(|w| Arc::ptr_eq(w, backend));
            if !keep {
                token.cancel();
            }
            keep
        });
        for (name, backend) in wanted {
            if running.contains_key(name) {
                continue;
            }
            let token = self.stop.child_token();
            self.tracker
                .spawn(check_loop(backend.clone(), token.clone()));
            running.insert(name.to_owned(), (backend.clone(), token));
        }
    }

    /// Tells every checker to stop, without waiting.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Stops every checker and waits for them to end.
    pub(crate) async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

async fn check_loop(backend: Arc<Backend>, stop: CancellationToken) {
    let Some(config) = backend.config.health.clone() else {
        return;
    };
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = check(&backend, &config) => result,
        };
        debug!(backend = %backend.config.name, result, "health check");
        backend
            .health
            .record_check(result == "ok", result.to_owned(), SystemTime::now());
    }
}

/// One GET of the check's path within its timeout: `ok` for a 2xx, else why not.
async fn check(backend: &Backend, config: &HealthConfig) -> String {
    let Ok(uri) = backend.config.upstream_uri(&config.path, None) else {
        return "invalid-path".to_owned();
    };
    let mut request = Request::builder().method(Method::GET).uri(uri);
    if !backend.may_use_h2() {
        request = request.header(header::HOST, backend.host_header.clone());
    }
    let Ok(request) = request.body(body::empty()) else {
        return "invalid-request".to_owned();
    };
    match tokio::time::timeout(config.timeout, backend.client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => "ok".to_owned(),
        Ok(Ok(response)) => format!("status-{}", response.status().as_u16()),
        Ok(Err(error)) if error.is_connect() => "connect".to_owned(),
        Ok(Err(_)) => "reset".to_owned(),
        Err(_) => "timeout".to_owned(),
    }
}
