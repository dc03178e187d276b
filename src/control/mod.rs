//! `[control]` (SPEC §3.10): a fleet of proxies shares its runtime state
//! (overrides, flag overrides, trips, resumes) and, with `fleet_statistics`,
//! its statistics through Redis.
//!
//! - [`record`]: the records Redis holds and the rules that merge them;
//! - [`sync`]: this proxy's runtime state against the fleet's;
//! - [`fleet_stats`]: the keys and sums of the fleet's statistics;
//! - [`link`]: the one background task that talks to Redis.
//!
//! Redis is never on the request path: the request path reads atomics the
//! link writes, and every Redis call runs in the link's task with a timeout.

mod fleet_stats;
mod link;
mod record;
mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::metrics::gauge::Gauge;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::config::ControlConfig;
use crate::snapshot::SharedSnapshot;

/// What `/config` and the metrics show of the link (SPEC §5, §7).
#[derive(Debug, Default)]
pub(crate) struct ControlStatus {
    connected: AtomicBool,
    /// Milliseconds since the Unix epoch of the last full resync; 0: none.
    last_sync_ms: AtomicU64,
    /// `strangler_control_connected`.
    gauge: Gauge,
}

impl ControlStatus {
    pub(crate) fn new(gauge: Gauge) -> ControlStatus {
        ControlStatus {
            gauge,
            ..ControlStatus::default()
        }
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
        self.gauge.set(i64::from(connected));
    }

    fn synced(&self, at: std::time::SystemTime) {
        self.last_sync_ms.store(record::ms(at), Ordering::Release);
    }

    /// `{"connected": bool, "last_sync_at": RFC 3339 or null}`.
    pub(crate) fn json(&self) -> Value {
        let last = self.last_sync_ms.load(Ordering::Acquire);
        json!({
            "connected": self.connected(),
            "last_sync_at": (last > 0).then(|| {
                humantime::format_rfc3339_millis(record::time(last)).to_string()
            }),
        })
    }
}

/// The link to the fleet's Redis: one task, started with the proxy and
/// aborted when it is dropped.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) status: Arc<ControlStatus>,
    task: JoinHandle<()>,
}

impl Control {
    /// Starts the link for `config`; the first snapshot's runtime state
    /// (from `state_file`) is merged with the fleet's once Redis answers.
    pub(crate) fn start(config: ControlConfig, snapshot: SharedSnapshot, gauge: Gauge) -> Control {
        let status = Arc::new(ControlStatus::new(gauge));
        let task = tokio::spawn(link::run(config, snapshot, status.clone()));
        Control { status, task }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.task.abort();
    }
}
