//! `server.state_file` (SPEC §3.6): the runtime state (trips and overrides)
//! saved on every change and read back at start, so a restart keeps it.
//!
//! The file is small JSON with a version field:
//!
//! ```json
//! {"version": 1,
//!  "routes": {"checkout": {"override": {"weight": 0.0, "set_at": "2026-12-02T08:00:00Z"},
//!                          "trip": {"reason": "error_rate 12.5% over 60s, 40 attempts > 5%",
//!                                   "since": "2026-12-02T07:59:00Z"}}},
//!  "flags": {"new_auth": {"value": false, "set_at": "2026-12-02T08:00:00Z"}}}
//! ```
//!
//! It is written atomically: a temp file in the same directory, fsync, rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::runtime::Trip;
use crate::snapshot::{SharedSnapshot, Snapshot};

/// The format's version; a file with another is not read.
const VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct StateFile {
    version: u32,
    #[serde(default)]
    routes: BTreeMap<String, RouteRecord>,
    #[serde(default)]
    flags: BTreeMap<String, FlagRecord>,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RouteRecord {
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    weight_override: Option<WeightRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trip: Option<TripRecord>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WeightRecord {
    /// Percent.
    weight: f64,
    set_at: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct TripRecord {
    reason: String,
    since: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct FlagRecord {
    value: bool,
    set_at: String,
}

/// The runtime state of `snapshot`'s routes and flags.
pub(crate) fn capture(snapshot: &Snapshot) -> StateFile {
    let mut state = StateFile {
        version: VERSION,
        ..StateFile::default()
    };
    for route in snapshot.routes() {
        let handles = &route.handles;
        let record = RouteRecord {
            weight_override: handles.state.override_info().map(|o| WeightRecord {
                weight: f64::from(o.value) / 100.0,
                set_at: rfc3339(o.set_at),
            }),
            trip: handles.state.trip_info().map(|t| TripRecord {
                reason: t.reason,
                since: rfc3339(t.since),
            }),
        };
        if record != RouteRecord::default() {
            state.routes.insert(route.config.name.clone(), record);
        }
    }
    for (name, _, flag) in snapshot.flags() {
        if let Some(o) = flag.override_info() {
            let record = FlagRecord {
                value: o.value,
                set_at: rfc3339(o.set_at),
            };
            state.flags.insert(name.to_owned(), record);
        }
    }
    state
}

/// Puts `state` back into the routes and flags of `snapshot` that have its
/// names; the rest is logged and dropped.
pub(crate) fn restore(snapshot: &Snapshot, state: &StateFile) {
    for (name, record) in &state.routes {
        let Some(route) = snapshot.route_named(name) else {
            info!(route = %name, "state_file: the route no longer exists; its state is dropped");
            continue;
        };
        let handles = &route.handles;
        if let Some(o) = &record.weight_override
            && let Some(bp) = weight_bp(o.weight)
        {
            handles.state.set_override(bp, parse_time(&o.set_at));
        }
        if let Some(trip) = &record.trip {
            handles.state.restore_trip(Trip {
                reason: trip.reason.clone(),
                since: parse_time(&trip.since),
            });
        }
    }
    for (name, record) in &state.flags {
        match snapshot.flags().find(|(n, _, _)| n == name) {
            Some((_, _, flag)) => flag.set(record.value, parse_time(&record.set_at)),
            None => {
                info!(flag = %name, "state_file: the flag no longer exists; its override is dropped")
            }
        }
    }
}

/// Reads the file at `path`: `Ok(None)` when there is none yet; an error
/// (unreadable, corrupt, another version) says what is wrong.
pub(crate) fn load(path: &Path) -> Result<Option<StateFile>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let state: StateFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("it is not a valid state file: {e}"))?;
    if state.version != VERSION {
        return Err(format!(
            "its version is {}, this proxy reads version {VERSION}",
            state.version
        ));
    }
    Ok(Some(state))
}

/// Writes `state` to `path` atomically: a temp file in the same directory,
/// fsync, rename, then fsync of the directory.
pub(crate) fn save(path: &Path, state: &StateFile) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    // The rename itself is durable once the directory is synced.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// At start: reads `state_file` (when set) into the first snapshot. A
/// corrupt or unreadable file is logged at error and the proxy starts with
/// no runtime state.
pub(crate) fn restore_at_start(snapshot: &Snapshot) {
    let Some(path) = &snapshot.config.server.state_file else {
        return;
    };
    match load(path) {
        Ok(Some(state)) => {
            restore(snapshot, &state);
            info!(path = %path.display(), routes = state.routes.len(), flags = state.flags.len(), "runtime state restored");
        }
        Ok(None) => {
            info!(path = %path.display(), "no state file yet; starting with no runtime state")
        }
        Err(why) => error!(
            path = %path.display(),
            "state_file: {why}; starting with no runtime state (the file is replaced at the next change)"
        ),
    }
}

/// Saves the runtime state to the current config's `state_file` after every
/// change the snapshot announces, until aborted.
pub(crate) fn spawn_saver(snapshot: SharedSnapshot) -> JoinHandle<()> {
    let changed = snapshot.load().state_changed.clone();
    tokio::spawn(async move {
        loop {
            changed.saver.notified().await;
            let current = snapshot.load_full();
            let Some(path) = current.config.server.state_file.clone() else {
                continue;
            };
            let state = capture(&current);
            let saved = tokio::task::spawn_blocking(move || save(&path, &state).map(|()| path));
            match saved.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    error!(error = %e, "cannot write the state file; runtime state is kept in memory")
                }
                Err(e) => error!(error = %e, "state file writer failed"),
            }
        }
    })
}

/// RFC 3339 in UTC, to the second (as the admin API shows times).
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time.max(SystemTime::UNIX_EPOCH)).to_string()
}

/// A time written by [`rfc3339`]; an unreadable one is now.
fn parse_time(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap_or_else(|_| SystemTime::now())
}

/// A percent weight as basis points; `None` when out of range.
fn weight_bp(percent: f64) -> Option<u16> {
    (0.0..=100.0)
        .contains(&percent)
        .then(|| (percent * 100.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(load(&path), Ok(None));
        let mut state = StateFile {
            version: VERSION,
            ..StateFile::default()
        };
        state.routes.insert(
            "checkout".into(),
            RouteRecord {
                weight_override: Some(WeightRecord {
                    weight: 12.5,
                    set_at: "2026-12-02T08:00:00Z".into(),
                }),
                trip: Some(TripRecord {
                    reason: "error_rate 50% over 60s, 40 attempts > 5%".into(),
                    since: "2026-12-02T07:59:00Z".into(),
                }),
            },
        );
        state.flags.insert(
            "new_auth".into(),
            FlagRecord {
                value: false,
                set_at: "2026-12-02T08:00:00Z".into(),
            },
        );
        save(&path, &state).unwrap();
        assert_eq!(load(&path), Ok(Some(state)));
        // Only the file itself is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_or_foreign_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(load(&path).unwrap_err().contains("not a valid state file"));
        std::fs::write(&path, r#"{"version": 7}"#).unwrap();
        assert!(load(&path).unwrap_err().contains("version is 7"));
    }
}
