//! A fleet that agrees (SPEC §3.10): three real proxies sharing a real
//! `redis-server` (started here on a free loopback port, persistence off,
//! killed at the end). Overrides, trips and resumes made on one proxy reach
//! the others within a second; the fleet's statistics trip a route that no
//! proxy sees enough of alone; losing Redis costs no request, and what
//! happened meanwhile is merged when it is back.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Binary, Killed, TestBackend, eventually, free_port, get, send_body};

/// Propagation must take less than this (SPEC: within 1 second).
const PROPAGATION: Duration = Duration::from_secs(1);
/// Anything slower than propagation (a trip on the fleet's statistics, a
/// Redis noticed gone) must happen within this.
const WITHIN: Duration = Duration::from_secs(10);

// === A real Redis ===

/// `redis-server` on a free loopback port, no persistence; killed on drop.
struct Redis {
    port: u16,
    server: Option<Killed>,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let mut redis = Redis::not_started();
        redis.spawn();
        redis
    }

    /// A port for a Redis that is not there yet.
    fn not_started() -> Redis {
        Redis {
            port: free_port(),
            server: None,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts the server (again, empty) on its port and waits for PONG.
    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs Debian's)");
        self.server = Some(Killed(child));
        let start = Instant::now();
        while !self.pong() {
            assert!(start.elapsed() < WITHIN, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pong(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    fn kill(&mut self) {
        self.server = None;
    }

    /// `kill -STOP` / `kill -CONT`: a Redis that hangs, connections open.
    fn signal(&self, signal: &str) {
        let pid = self.server.as_ref().unwrap().0.id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A stopped process must be continued to die of SIGKILL promptly.
        if self.server.is_some() {
            self.signal("CONT");
        }
    }
}

// === The fleet ===

/// Legacy answers 200; new answers 503 (every attempt on new fails and is
/// replayed to legacy, so clients never see the failure).
struct Backends {
    legacy: TestBackend,
    new: TestBackend,
}

impl Backends {
    async fn start() -> Backends {
        Backends {
            legacy: TestBackend::start("legacy").await,
            new: TestBackend::with_status("new", 503).await,
        }
    }
}

/// The shared config: route `api` (all to new, rolled back over 10
/// attempts at more than 5% failures), flag `beta`, and `[control]`.
fn fleet_config(redis: &Redis, backends: &Backends) -> String {
    format!(
        r#"
[control]
redis = "{redis}"
key_prefix = "test:"

[backends.legacy]
url = "{legacy}"

[backends.new]
url = "{new}"
timeout = "2s"
[backends.new.outlier]
consecutive_failures = 0

[flags]
beta = false

[[routes]]
name = "api"
path = "/api"
weight = 100

[routes.rollback]
window = "60s"
min_requests = 10
max_error_rate = 5.0

[[routes]]
name = "beta"
path = "/beta"
flag = "beta"
"#,
        redis = redis.url(),
        legacy = backends.legacy.url(),
        new = backends.new.url(),
    )
}

/// A proxy of the fleet, with its own `state_file`.
struct Proxy {
    binary: Binary,
    state: tempfile::TempDir,
}

impl std::ops::Deref for Proxy {
    type Target = Binary;

    fn deref(&self) -> &Binary {
        &self.binary
    }
}

impl Proxy {
    fn state_file(&self) -> PathBuf {
        self.state.path().join("state.json")
    }
}

async fn start_proxy(config: &str) -> Proxy {
    let state = tempfile::tempdir().unwrap();
    let server = format!(
        "state_file = \"{}\"",
        state.path().join("state.json").display()
    );
    let binary = Binary::start(&server, config).await;
    eventually(WITHIN, "the proxy connects to Redis", || {
        connected(&binary, true)
    })
    .await;
    Proxy { binary, state }
}

async fn start_fleet(config: &str) -> Vec<Proxy> {
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(start_proxy(config).await);
    }
    fleet
}

async fn connected(proxy: &Binary, want: bool) -> bool {
    let config = get(&proxy.admin_url("/config")).await.json();
    config["control"]["connected"] == want
}

async fn route(proxy: &Binary, name: &str) -> Value {
    let routes = get(&proxy.admin_url("/routes")).await.json();
    routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap()
}

async fn override_weight(proxy: &Binary) -> Value {
    route(proxy, "api").await["override"]["weight"].clone()
}

async fn rollback_state(proxy: &Binary) -> String {
    let route = route(proxy, "api").await;
    route["rollback"]["state"].as_str().unwrap().to_owned()
}

async fn flag_value(proxy: &Binary) -> Value {
    route(proxy, "beta").await["flag"]["value"].clone()
}

/// Waits until `check` holds on every proxy; the time it took.
async fn on_all<'a, F, Fut>(fleet: &[&'a Proxy], within: Duration, what: &str, check: F) -> Duration
where
    F: Fn(&'a Proxy) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    let mut done = vec![false; fleet.len()];
    loop {
        for (i, proxy) in fleet.iter().enumerate() {
            if !done[i] {
                done[i] = check(proxy).await;
            }
        }
        if done.iter().all(|d| *d) {
            return start.elapsed();
        }
        if start.elapsed() >= within {
            for (proxy, done) in fleet.iter().zip(&done) {
                if !done {
                    eprintln!("--- log of {}:\n{}", proxy.admin, proxy.log());
                }
            }
            panic!("not true on every proxy within {within:?}: {what} ({done:?})");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn post(url: &str, body: &str) -> support::Answer {
    send_body("POST", url, body.as_bytes()).await
}

// === Overrides ===

#[tokio::test]
async fn an_override_set_on_one_proxy_is_applied_by_all_within_a_second() {
    let redis = Redis::start();
    let backends = Backends::start().await;
    let fleet = start_fleet(&fleet_config(&redis, &backends)).await;
    let [a, b, c] = [&fleet[0], &fleet[1], &fleet[2]];

    let answer = post(&a.admin_url("/routes/api/override"), r#"{"weight": 25}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let took = on_all(&[b, c], PROPAGATION, "the override of 25", |p| async {
        override_weight(p).await == 25.0
    })
    .await;
    println!("override reached B and C in {took:?}");
    assert_eq!(route(b, "api").await["weight"], 25.0);

    // A DELETE on C clears it everywhere.
    assert_eq!(
        send_body("DELETE", &c.admin_url("/routes/api/override"), b"")
            .await
            .status,
        200
    );
    on_all(&[a, b], PROPAGATION, "the override cleared", |p| async {
        override_weight(p).await.is_null()
    })
    .await;

    // A flag override on B reaches A and C, and serves there.
    post(&b.admin_url("/flags/beta"), r#"{"value": true}"#).await;
    on_all(&[a, c], PROPAGATION, "the flag override", |p| async {
        flag_value(p).await == true
    })
    .await;
    assert_eq!(route(c, "beta").await["weight"], 100.0);
    // Saved to each proxy's state_file too (applied changes wake the writer).
    let saved = || std::fs::read_to_string(c.state_file()).unwrap_or_default();
    eventually(WITHIN, "C saved the flag override", || {
        let saved = saved();
        async move { saved.contains("\"beta\"") }
    })
    .await;
}

// === Trips on the fleet's statistics ===

#[tokio::test]
async fn the_fleets_totals_trip_every_proxy_and_a_resume_on_one_re_arms_all() {
    let redis = Redis::start();
    let backends = Backends::start().await;
    let fleet = start_fleet(&fleet_config(&redis, &backends)).await;
    let all: Vec<&Proxy> = fleet.iter().collect();

    // 6 attempts each: below min_requests (10) on every proxy, 18 in the fleet.
    for i in 0..18 {
        let answer = get(&fleet[i % 3].url("/api/x")).await;
        assert_eq!(answer.status, 200, "legacy answers after new's 503");
    }
    on_all(&all, WITHIN, "the route tripped", |p| async {
        rollback_state(p).await == "tripped"
    })
    .await;
    for proxy in &fleet {
        let route = route(proxy, "api").await;
        let own = route["attempts"]["new"]["total"].as_u64().unwrap();
        assert!(own < 10, "each proxy saw only its share: {own}");
        let reason = route["rollback"]["reason"].as_str().unwrap();
        assert!(reason.contains("across the fleet"), "{reason}");
        assert_eq!(route["weight"], 0.0);
        // Counted on every proxy that applied it, whoever made it.
        let metrics = get(&proxy.admin_url("/metrics")).await.text();
        assert!(
            metrics.contains("strangler_rollbacks_total{route=\"api\"} 1"),
            "{metrics}"
        );
    }
    // The fleet's figures are what /routes shows.
    let stats = &route(&fleet[1], "api").await["stats"];
    assert_eq!(stats["scope"], "fleet", "{stats}");
    assert!(stats["new"]["attempts"].as_u64().unwrap() >= 10, "{stats}");

    // A resume on B re-arms all three, with the fleet's statistics cleared.
    let answer = post(&fleet[1].admin_url("/routes/api/resume"), "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    on_all(&all, PROPAGATION, "the route re-armed", |p| async {
        rollback_state(p).await == "armed"
    })
    .await;
    // Cleared: the next fleet read must not trip on the old failures.
    eventually(WITHIN, "the fleet's statistics cleared", || async {
        let stats = route(&fleet[0], "api").await["stats"].clone();
        stats["scope"] == "fleet" && stats["new"]["attempts"] == 0
    })
    .await;
    assert_eq!(rollback_state(&fleet[2]).await, "armed");
}

// === Redis lost and regained ===

/// Requests sent round-robin to the fleet until stopped: how many, how many
/// failed, and the slowest.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    slowest_us: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(urls: Vec<String>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let slowest_us = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, sent, failed, slowest_us) = (
                stop.clone(),
                sent.clone(),
                failed.clone(),
                slowest_us.clone(),
            );
            async move {
                let client = support::client();
                // Bounded: at most this many requests.
                for i in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let url = &urls[i % urls.len()];
                    let request = support::request("GET", url)
                        .body(Default::default())
                        .unwrap();
                    let start = Instant::now();
                    let answer = support::send_with(&client, request).await;
                    let took = start.elapsed().as_micros() as u64;
                    slowest_us.fetch_max(took, Ordering::Relaxed);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if answer.status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Traffic {
            stop,
            sent,
            failed,
            slowest_us,
            task,
        }
    }

    async fn stop(self) -> (u64, u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            Duration::from_micros(self.slowest_us.load(Ordering::Relaxed)),
        )
    }
}

#[tokio::test]
async fn losing_redis_costs_no_request_and_what_happened_meanwhile_is_merged_on_return() {
    let mut redis = Redis::start();
    let backends = Backends::start().await;
    let fleet = start_fleet(&fleet_config(&redis, &backends)).await;
    let all: Vec<&Proxy> = fleet.iter().collect();
    let [a, b, c] = [&fleet[0], &fleet[1], &fleet[2]];
    // Traffic on the flag's route (legacy, never tripping) all along.
    let traffic = Traffic::start(fleet.iter().map(|p| p.url("/beta/x")).collect());

    // Killed: every proxy notices, keeps serving.
    redis.kill();
    on_all(&all, WITHIN, "connected: false", |p| async {
        connected(p, false).await
    })
    .await;
    let gauge = get(&a.admin_url("/metrics")).await.text();
    assert!(gauge.contains("strangler_control_connected 0"), "{gauge}");
    assert_eq!(
        a.log().matches("Redis is unreachable").count(),
        1,
        "logged once at warn"
    );

    // Meanwhile A trips on its own statistics, and C sets an override.
    for _ in 0..10 {
        assert_eq!(get(&a.url("/api/x")).await.status, 200);
    }
    assert_eq!(rollback_state(a).await, "tripped");
    assert_eq!(rollback_state(b).await, "armed");
    post(&c.admin_url("/routes/api/override"), r#"{"weight": 40}"#).await;

    // Redis is back, empty: A's trip and C's override are written back and
    // reach everyone.
    redis.spawn();
    on_all(&all, WITHIN, "connected again", |p| async {
        connected(p, true).await
    })
    .await;
    on_all(&all, PROPAGATION, "A's trip everywhere", |p| async {
        rollback_state(p).await == "tripped"
    })
    .await;
    on_all(&all, PROPAGATION, "C's override everywhere", |p| async {
        override_weight(p).await == 40.0
    })
    .await;

    // SIGSTOP: a Redis that hangs with its connections open.
    redis.signal("STOP");
    on_all(
        &all,
        WITHIN,
        "connected: false while Redis hangs",
        |p| async { connected(p, false).await },
    )
    .await;
    // A resume on B while Redis hangs; then Redis wakes.
    assert_eq!(
        post(&b.admin_url("/routes/api/resume"), "").await.status,
        200
    );
    redis.signal("CONT");
    on_all(
        &all,
        WITHIN,
        "the resume made while Redis hung, everywhere",
        |p| async { rollback_state(p).await == "armed" && connected(p, true).await },
    )
    .await;

    let (sent, failed, slowest) = traffic.stop().await;
    println!("{sent} requests through the outages, {failed} failed, slowest {slowest:?}");
    assert!(sent > 50, "traffic kept flowing: {sent}");
    assert_eq!(failed, 0, "no request failed");
    // A Redis call waits up to 1 s; no request waited for one.
    assert!(slowest < Duration::from_millis(900), "slowest {slowest:?}");
}

// === A proxy that joins ===

#[tokio::test]
async fn a_restarted_proxy_joins_with_the_fleets_state() {
    let redis = Redis::start();
    let backends = Backends::start().await;
    let config = fleet_config(&redis, &backends);
    let mut fleet = start_fleet(&config).await;
    // A trip made on A alone (10 failing attempts there), an override, a flag.
    for _ in 0..10 {
        get(&fleet[0].url("/api/x")).await;
    }
    post(
        &fleet[0].admin_url("/routes/api/override"),
        r#"{"weight": 60}"#,
    )
    .await;
    post(&fleet[1].admin_url("/flags/beta"), r#"{"value": true}"#).await;
    let all: Vec<&Proxy> = fleet.iter().collect();
    on_all(&all, WITHIN, "the state everywhere", |p| async {
        rollback_state(p).await == "tripped"
            && flag_value(p).await == true
            && override_weight(p).await == 60.0
    })
    .await;

    // C stops; a new proxy (no state file of its own) takes its place.
    drop(fleet.pop());
    let joined = start_proxy(&config).await;
    assert_eq!(override_weight(&joined).await, 60.0);
    assert_eq!(flag_value(&joined).await, true);
    assert_eq!(rollback_state(&joined).await, "tripped");
    let route = route(&joined, "api").await;
    assert!(
        route["rollback"]["reason"]
            .as_str()
            .unwrap()
            .contains("error_rate"),
        "{route}"
    );
    // Its state file has it too.
    let path = joined.state_file();
    eventually(WITHIN, "the joined proxy saved the fleet's state", || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        async move { text.contains("error_rate") }
    })
    .await;
}

// === No Redis at start ===

/// `/readyz` does not wait for Redis, and the proxy serves with its own
/// state; what changed meanwhile is written to Redis once it answers.
#[tokio::test]
async fn a_proxy_serves_without_redis_and_writes_its_changes_when_redis_comes() {
    let mut redis = Redis::not_started();
    let backends = Backends::start().await;
    let config = fleet_config(&redis, &backends);
    let state = tempfile::tempdir().unwrap();
    let server = format!(
        "state_file = \"{}\"",
        state.path().join("state.json").display()
    );
    let alone = Proxy {
        binary: Binary::start(&server, &config).await,
        state,
    };
    assert_eq!(get(&alone.url("/beta/x")).await.status, 200);
    eventually(WITHIN, "cut off, logged once", || async {
        alone.log().contains("Redis is unreachable")
    })
    .await;
    assert!(!connected(&alone, true).await);
    let metrics = get(&alone.admin_url("/metrics")).await.text();
    assert!(
        metrics.contains("strangler_control_connected 0"),
        "{metrics}"
    );
    let answer = post(
        &alone.admin_url("/routes/api/override"),
        r#"{"weight": 30}"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(override_weight(&alone).await, 30.0);

    redis.spawn();
    eventually(WITHIN, "connected", || connected(&alone, true)).await;
    assert_eq!(alone.log().matches("Redis is unreachable").count(), 1);
    let joined = start_proxy(&config).await;
    eventually(
        PROPAGATION,
        "the override written back reaches a new proxy",
        || async { override_weight(&joined).await == 30.0 },
    )
    .await;
    let metrics = get(&alone.admin_url("/metrics")).await.text();
    assert!(
        metrics.contains("strangler_control_connected 1"),
        "{metrics}"
    );
}
