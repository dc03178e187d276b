//! Start-up and lifetime of a proxy: bind, serve, stop.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::Config;
use crate::server::{self, Limits};
use crate::snapshot::{SharedSnapshot, Snapshot};

/// A proxy serving in the background; see [`start`].
pub struct Running {
    /// Where the proxy listens.
    pub addr: SocketAddr,
    /// The live snapshot: store a new one to change routing.
    pub snapshot: SharedSnapshot,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains open connections (up to `shutdown_timeout`) and waits.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `config` on `listener` in a background task.
pub fn start(config: Config, listener: TcpListener) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let limits = Limits::from(&config.server);
    let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::new(config, None)));
    let service = crate::proxy_service(snapshot.clone(), None);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, service, limits, async {
        let _ = stopped.await;
    }));
    Ok(Running {
        addr,
        snapshot,
        stop: Some(stop),
        task,
    })
}

/// `strangler run`: serves until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    info!(%listen, routes = config.routes.len(), version = %config.version, "proxy listening");
    let running = start(config, listener)?;
    shutdown_signal().await;
    info!("shutdown signal received");
    running.shutdown().await;
    Ok(())
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
