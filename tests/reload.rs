//! Live reload (SPEC §4): the file watcher (in-place writes, rename-over,
//! ConfigMap symlink swaps), SIGHUP and `POST /reload`, invalid and missing
//! files, and no failed request while the config changes under load.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use strangler::config::version_of;
use support::{
    Answer, Binary, DEADLINE, TestBackend, TestProxy, backends_with, client, config_with,
    eventually, free_port, get, request, sha256_hex,
};

/// What a watched change may take to be serving.
const SEEN_WITHIN: Duration = Duration::from_secs(2);

/// A config with one route `all` on `/` sending `weight` percent to new.
/// `comment` makes otherwise equal configs differ in bytes.
fn weighted(legacy: &str, new: &str, weight: u32, comment: &str) -> String {
    config_with(legacy, new, &all_route(weight, comment))
}

/// The route of [`weighted`].
fn all_route(weight: u32, comment: &str) -> String {
    format!(
        r#"
# {comment}
[[routes]]
name = "all"
path = "/"
weight = {weight}
"#
    )
}

/// The backend that answered `GET /`.
async fn served_by(proxy: &TestProxy) -> String {
    let answer = get(&proxy.url("/")).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer
        .header("x-strangler-backend")
        .expect("x-strangler-backend missing")
        .to_owned()
}

async fn config_of(admin: SocketAddr) -> Value {
    let answer = get(&format!("http://{admin}/config")).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

async fn generation(admin: SocketAddr) -> u64 {
    config_of(admin).await["generation"]
        .as_u64()
        .expect("generation is a number")
}

async fn post_reload(admin: SocketAddr) -> Answer {
    support::send(
        request("POST", &format!("http://{admin}/reload"))
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// The value of the sample `line_prefix` (name and labels exactly as
/// exposed) in the admin's `/metrics`.
async fn metric(admin: SocketAddr, sample: &str) -> f64 {
    let text = get(&format!("http://{admin}/metrics")).await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits until routing sends `GET /` to `backend`.
async fn until_served_by(proxy: &TestProxy, backend: &str) {
    eventually(
        SEEN_WITHIN,
        &format!("GET / served by {backend}"),
        || async { served_by(proxy).await == backend },
    )
    .await;
}

/// Writes `text` as an editor does: a temp file in the same directory, then
/// rename over the config.
fn write_by_rename(path: &Path, text: &str, tag: usize) {
    let tmp = path.with_file_name(format!(".strangler.toml.{tag}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes an unparsable file under the watching `proxy` and waits for
/// `last_error`, then writes `text` back by rename (temp file `tag`) and
/// waits for `last_error` to clear.
async fn break_then_restore(proxy: &TestProxy, text: &str, tag: usize) {
    std::fs::write(&proxy.path, "[server\n").unwrap();
    eventually(SEEN_WITHIN, "last_error is set", || async {
        config_of(proxy.admin).await["last_error"] != Value::Null
    })
    .await;
    write_by_rename(&proxy.path, text, tag);
    eventually(SEEN_WITHIN, "last_error is cleared", || async {
        config_of(proxy.admin).await["last_error"] == Value::Null
    })
    .await;
}

// === watcher ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_write_is_seen() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start_with(&weighted(&legacy.url(), &new.url(), 0, "v1"), true).await;
    assert_eq!(served_by(&proxy).await, "legacy");
    let before = config_of(proxy.admin).await;
    assert_eq!(before["generation"], 1);

    let text = weighted(&legacy.url(), &new.url(), 100, "v2");
    std::fs::write(&proxy.path, &text).unwrap();
    until_served_by(&proxy, "new").await;

    let after = config_of(proxy.admin).await;
    assert_eq!(after["generation"], 2);
    assert_eq!(after["version"], sha256_hex(text.as_bytes()));
    assert_eq!(after["last_error"], Value::Null);
    // Same process: the in-process snapshot is the one serving.
    assert_eq!(
        proxy.running.snapshot().config.version,
        sha256_hex(text.as_bytes())
    );
    assert_eq!(proxy.running.reload_status().generation, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_over_is_seen() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start_with(&weighted(&legacy.url(), &new.url(), 0, "v1"), true).await;
    assert_eq!(served_by(&proxy).await, "legacy");

    let text = weighted(&legacy.url(), &new.url(), 100, "v2");
    write_by_rename(&proxy.path, &text, 1);
    until_served_by(&proxy, "new").await;
    let after = config_of(proxy.admin).await;
    assert_eq!(after["generation"], 2);
    assert_eq!(after["version"], sha256_hex(text.as_bytes()));

    // And back again: the watch survives the inode change.
    write_by_rename(
        &proxy.path,
        &weighted(&legacy.url(), &new.url(), 0, "v3"),
        2,
    );
    until_served_by(&proxy, "legacy").await;
    assert_eq!(generation(proxy.admin).await, 3);
}

/// Lays out a Kubernetes ConfigMap volume in `dir`:
/// `strangler.toml -> ..data/strangler.toml`, `..data -> ..2026_01`.
fn configmap_layout(dir: &Path, text: &str) -> PathBuf {
    let version = dir.join("..2026_01");
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join("strangler.toml"), text).unwrap();
    std::os::unix::fs::symlink("..2026_01", dir.join("..data")).unwrap();
    let path = dir.join("strangler.toml");
    std::os::unix::fs::symlink("..data/strangler.toml", &path).unwrap();
    path
}

/// Updates the ConfigMap volume as the kubelet does: a new timestamped dir,
/// a new `..data_tmp` symlink to it, renamed over `..data`.
fn configmap_update(dir: &Path, stamp: &str, text: &str) {
    let version = dir.join(stamp);
    std::fs::create_dir(&version).unwrap();
    std::fs::write(version.join("strangler.toml"), text).unwrap();
    std::os::unix::fs::symlink(stamp, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_is_seen() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let dir = tempfile::tempdir().unwrap();
    let path = configmap_layout(dir.path(), &weighted(&legacy.url(), &new.url(), 0, "v1"));
    let root = dir.path().to_owned();
    let proxy = TestProxy::start_at(path, dir, true).await;
    assert_eq!(served_by(&proxy).await, "legacy");

    let text = weighted(&legacy.url(), &new.url(), 100, "v2");
    configmap_update(&root, "..2026_02", &text);
    until_served_by(&proxy, "new").await;
    let after = config_of(proxy.admin).await;
    assert_eq!(after["generation"], 2);
    assert_eq!(after["version"], sha256_hex(text.as_bytes()));
    assert_eq!(after["path"], proxy.path.display().to_string());

    // The kubelet then removes the old dir; a second swap is seen too.
    std::fs::remove_dir_all(root.join("..2026_01")).unwrap();
    configmap_update(
        &root,
        "..2026_03",
        &weighted(&legacy.url(), &new.url(), 0, "v3"),
    );
    until_served_by(&proxy, "legacy").await;
    assert_eq!(generation(proxy.admin).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_bytes_are_not_reloaded_by_the_watcher() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let text = weighted(&legacy.url(), &new.url(), 0, "v1");
    let proxy = TestProxy::start_with(&text, true).await;

    // Same bytes, in place and by rename.
    std::fs::write(&proxy.path, &text).unwrap();
    write_by_rename(&proxy.path, &text, 1);
    // A barrier through the watcher: a bad file written after them shows up
    // as `last_error`, so every event before it has been handled. Then the
    // same bytes again: only the watcher's unchanged path clears the error
    // without a reload (a reload would make the generation 2).
    break_then_restore(&proxy, &text, 2).await;
    let config = config_of(proxy.admin).await;
    assert_eq!(config["generation"], 1);
    assert_eq!(config["version"], sha256_hex(text.as_bytes()));
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_config_reloads_total{result="success"}"#
        )
        .await,
        0.0
    );

    // A real change after them moves the generation by exactly one.
    std::fs::write(&proxy.path, weighted(&legacy.url(), &new.url(), 100, "v2")).unwrap();
    eventually(SEEN_WITHIN, "generation changes", || async {
        generation(proxy.admin).await != 1
    })
    .await;
    assert_eq!(generation(proxy.admin).await, 2);
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_config_reloads_total{result="success"}"#
        )
        .await,
        1.0
    );
    assert_eq!(served_by(&proxy).await, "new");
}

// === invalid and missing files ===

/// Writes `bad`, checks that the old routing keeps serving and the error is
/// shown, counted and answered by `POST /reload`; then recovers with a valid
/// write. `line` is the `:line:` the error must name.
async fn invalid_write_keeps_serving(bad: &str, line: &str) {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start_with(&weighted(&legacy.url(), &new.url(), 100, "v1"), true).await;
    let good_version = config_of(proxy.admin).await["version"].clone();
    assert_eq!(served_by(&proxy).await, "new");

    std::fs::write(&proxy.path, bad).unwrap();
    eventually(SEEN_WITHIN, "last_error is set", || async {
        config_of(proxy.admin).await["last_error"] != Value::Null
    })
    .await;
    let config = config_of(proxy.admin).await;
    let error = config["last_error"].as_str().unwrap();
    let located = format!("{}{line}", proxy.path.display());
    assert!(
        error.contains(&located),
        "error {error:?} should contain {located:?}"
    );
    assert_eq!(config["generation"], 1);
    assert_eq!(config["version"], good_version);
    assert_eq!(served_by(&proxy).await, "new", "old routing keeps serving");
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_config_reloads_total{result="failure"}"#
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_config_reloads_total{result="success"}"#
        )
        .await,
        0.0
    );

    let answer = post_reload(proxy.admin).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    let body = answer.json();
    assert!(body["error"].as_str().unwrap().contains(&located), "{body}");
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_config_reloads_total{result="failure"}"#
        )
        .await,
        2.0
    );
    assert_eq!(generation(proxy.admin).await, 1);
    assert_eq!(served_by(&proxy).await, "new");

    let text = weighted(&legacy.url(), &new.url(), 0, "v2");
    std::fs::write(&proxy.path, &text).unwrap();
    until_served_by(&proxy, "legacy").await;
    let config = config_of(proxy.admin).await;
    assert_eq!(config["generation"], 2);
    assert_eq!(config["last_error"], Value::Null);
    assert_eq!(config["version"], sha256_hex(text.as_bytes()));
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_config_reloads_total{result="success"}"#
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_toml_keeps_serving() {
    invalid_write_keeps_serving(
        "[server]\nlisten = \"127.0.0.1:0\"\n[backends.legacy\n",
        ":3:",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_backend_keeps_serving() {
    let bad = "[backends.legacy]\nurl = \"http://127.0.0.1:1\"\n\n[[routes]]\npath = \"/\"\nnew = \"nope\"\n";
    invalid_write_keeps_serving(bad, ":6:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_write_keeps_serving() {
    let whole = weighted("http://127.0.0.1:1", "http://127.0.0.1:2", 0, "x");
    // Cut inside the new backend's URL string.
    let cut = whole.find("http://127.0.0.1:2").unwrap() + 10;
    let line = whole[..cut].lines().count();
    invalid_write_keeps_serving(&whole[..cut], &format!(":{line}:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverting_to_the_serving_bytes_clears_the_error() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let text = weighted(&legacy.url(), &new.url(), 100, "v1");
    let proxy = TestProxy::start_with(&text, true).await;

    // `git checkout strangler.toml`: the file is again what is serving.
    break_then_restore(&proxy, &text, 1).await;
    let config = config_of(proxy.admin).await;
    assert_eq!(config["version"], sha256_hex(text.as_bytes()));
    assert_eq!(served_by(&proxy).await, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_file_keeps_the_old_snapshot() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start_with(&weighted(&legacy.url(), &new.url(), 100, "v1"), true).await;
    let version = config_of(proxy.admin).await["version"].clone();

    std::fs::remove_file(&proxy.path).unwrap();
    // `POST /reload` on a missing file is an error; the old config serves on.
    let answer = post_reload(proxy.admin).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.json()["error"].is_string());
    let config = config_of(proxy.admin).await;
    assert_eq!(config["generation"], 1);
    assert_eq!(config["version"], version);
    for _ in 0..5 {
        assert_eq!(served_by(&proxy).await, "new");
    }

    let text = weighted(&legacy.url(), &new.url(), 0, "v2");
    std::fs::write(&proxy.path, &text).unwrap();
    until_served_by(&proxy, "legacy").await;
    let config = config_of(proxy.admin).await;
    assert_eq!(config["generation"], 2);
    assert_eq!(config["version"], sha256_hex(text.as_bytes()));
    assert_eq!(config["last_error"], Value::Null);
}

// === under load ===

/// What the load clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    legacy: AtomicUsize,
    new: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_reloading() {
    const REWRITES: usize = 100;
    /// Hard caps, so the clients stop even if the writer panics.
    const MAX_REQUESTS: usize = 200_000;
    const MAX_TIME: Duration = Duration::from_secs(60);

    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start_with(&weighted(&legacy.url(), &new.url(), 0, "0"), true).await;
    let url = proxy.url("/");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, stop, tally) = (url.clone(), stop.clone(), tally.clone());
        clients.push(tokio::spawn(async move {
            let client = client();
            let started = tokio::time::Instant::now();
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed)
                && sent < MAX_REQUESTS / 4
                && started.elapsed() < MAX_TIME
            {
                sent += 1;
                let req = Request::get(&url).body(Full::<Bytes>::default()).unwrap();
                let answer = tokio::time::timeout(DEADLINE, async {
                    let response = client.request(req).await.map_err(|e| e.to_string())?;
                    let backend = response
                        .headers()
                        .get("x-strangler-backend")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>((status, backend, body.to_bytes()))
                })
                .await;
                match answer {
                    Ok(Ok((status, backend, body))) if status == 200 => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        match (backend.as_deref(), &body[..]) {
                            (Some("legacy"), b"legacy") => {
                                tally.legacy.fetch_add(1, Ordering::Relaxed)
                            }
                            (Some("new"), b"new") => tally.new.fetch_add(1, Ordering::Relaxed),
                            _ => tally.failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                    _ => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    for i in 1..=REWRITES {
        let weight = if i % 2 == 1 { 100 } else { 0 };
        let text = weighted(&legacy.url(), &new.url(), weight, &i.to_string());
        write_by_rename(&proxy.path, &text, i);
        // Each rewrite is loaded before the next, so every one is a reload
        // under traffic (a burst would be debounced into one).
        let version = version_of(text.as_bytes());
        eventually(SEEN_WITHIN, &format!("rewrite {i} is loaded"), || async {
            proxy.running.snapshot().config.version == version
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let ok = tally.ok.load(Ordering::Relaxed);
    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "failed requests ({ok} ok)"
    );
    assert!(
        tally.legacy.load(Ordering::Relaxed) > 0,
        "legacy served nothing"
    );
    assert!(tally.new.load(Ordering::Relaxed) > 0, "new served nothing");
    assert_eq!(generation(proxy.admin).await, 1 + REWRITES as u64);
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_config_reloads_total{result="success"}"#
        )
        .await,
        REWRITES as f64
    );
}

// === pools ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_backends_keep_their_pool() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let other_new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&weighted(&legacy.url(), &new.url(), 0, "v1")).await;
    let backend = |name: &str| {
        let snapshot = proxy.running.snapshot();
        snapshot
            .backends()
            .iter()
            .find(|b| b.config.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no backend {name}"))
    };
    let (legacy_before, new_before) = (backend("legacy"), backend("new"));

    // Only a weight changes: both backends are the same objects.
    std::fs::write(&proxy.path, weighted(&legacy.url(), &new.url(), 100, "v2")).unwrap();
    assert_eq!(post_reload(proxy.admin).await.status, 200);
    assert_eq!(generation(proxy.admin).await, 2);
    assert!(Arc::ptr_eq(&legacy_before, &backend("legacy")));
    assert!(Arc::ptr_eq(&new_before, &backend("new")));

    // new's URL changes: new is rebuilt, legacy is kept.
    std::fs::write(
        &proxy.path,
        weighted(&legacy.url(), &other_new.url(), 100, "v3"),
    )
    .unwrap();
    assert_eq!(post_reload(proxy.admin).await.status, 200);
    assert!(Arc::ptr_eq(&legacy_before, &backend("legacy")));
    assert!(!Arc::ptr_eq(&new_before, &backend("new")));
    assert_eq!(served_by(&proxy).await, "new");
    assert_eq!(other_new.count(), 1);
}

// === the real binary: SIGHUP and POST /reload ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_post_reload_always_reload() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let rest = backends_with(&legacy.url(), &new.url(), &all_route(100, "v1"));
    let mut proxy = Binary::start("", &rest).await;
    let (admin, text) = (proxy.admin, proxy.text.clone());
    let served = get(&proxy.url("/")).await;
    assert_eq!(served.header("x-strangler-backend"), Some("new"));
    assert_eq!(generation(admin).await, 1);

    // Same bytes: the watcher must not care; SIGHUP reloads anyway.
    std::fs::write(&proxy.path, &text).unwrap();
    proxy.signal("HUP");
    eventually(SEEN_WITHIN, "SIGHUP reloads", || async {
        generation(admin).await == 2
    })
    .await;
    let config = config_of(admin).await;
    assert_eq!(config["version"], sha256_hex(text.as_bytes()));
    assert_eq!(config["last_error"], Value::Null);
    assert!(proxy.exited().is_none(), "SIGHUP must not stop the proxy");

    let answer = post_reload(admin).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json(),
        serde_json::json!({ "version": sha256_hex(text.as_bytes()) })
    );
    assert_eq!(generation(admin).await, 3);
    assert_eq!(
        metric(admin, r#"strangler_config_reloads_total{result="success"}"#).await,
        2.0
    );
    let served = get(&proxy.url("/")).await;
    assert_eq!(served.status, 200);
}

// === in flight, listeners ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_under_its_snapshot() {
    let release = Arc::new(tokio::sync::Notify::new());
    let legacy = TestBackend::start("legacy").await;
    let held = release.clone();
    let new = TestBackend::with_handler("new", move |_| {
        let held = held.clone();
        async move {
            held.notified().await;
            http::Response::new(strangler::body::full("new"))
        }
    })
    .await;
    let other = TestBackend::start("other").await;
    let proxy = TestProxy::start(&weighted(&legacy.url(), &new.url(), 100, "v1")).await;
    let url = proxy.url("/held");
    let in_flight = tokio::spawn(async move { get(&url).await });
    eventually(DEADLINE, "new has the request", || async {
        new.count() == 1
    })
    .await;

    // The reload moves everything to legacy and points new elsewhere.
    std::fs::write(&proxy.path, weighted(&legacy.url(), &other.url(), 0, "v2")).unwrap();
    assert_eq!(post_reload(proxy.admin).await.status, 200);
    assert_eq!(served_by(&proxy).await, "legacy");

    release.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "new");
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    assert_eq!(other.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_changes_wait_for_a_restart() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start_with(&weighted(&legacy.url(), &new.url(), 0, "v1"), true).await;
    let moved = weighted(&legacy.url(), &new.url(), 100, "v2").replace(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"",
        &format!(
            "listen = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"",
            free_port(),
            free_port()
        ),
    );
    std::fs::write(&proxy.path, &moved).unwrap();
    // The rest of the file applies; the proxy and admin stay where they are.
    until_served_by(&proxy, "new").await;
    let config = config_of(proxy.admin).await;
    assert_eq!(config["generation"], 2);
    assert_eq!(config["version"], sha256_hex(moved.as_bytes()));
}
