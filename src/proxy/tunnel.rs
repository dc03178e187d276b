//! HTTP/1.1 upgrades (WebSocket): after the backend's 101, bytes are copied
//! both ways between the two upgraded connections.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Tunnels `client` and `backend` in a task of `tunnels`, which shutdown waits
/// for: an upgraded connection outlives its HTTP connection.
pub(super) fn spawn(tunnels: &TaskTracker, client: OnUpgrade, backend: OnUpgrade) {
    tunnels.spawn(tunnel(client, backend));
}

/// Copies bytes both ways between an upgraded client and backend connection.
async fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(error) => {
            debug!(%error, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        debug!(%error, "tunnel closed with an error");
    }
}
