//! `strangler check`, `explain` and `demo`, run as a user runs them.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{DEADLINE, Killed, eventually, get, get_with, request, send};

const BIN: &str = env!("CARGO_BIN_EXE_strangler");

fn strangler(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("STRANGLER_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run strangler")
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("strangler.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn check_prints_the_route_table_of_a_valid_file() {
    let out = strangler(&["check", "-c", "config/strangler.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok ("), "{stdout}");
    assert!(stdout.contains("ROUTE"), "{stdout}");
    assert!(stdout.contains("_default"), "{stdout}");
}

/// SPEC §3.10: `check` validates the Redis URL, names `[control]` in its
/// output, and never prints the URL's password.
#[test]
fn check_shows_control_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let backends = "[backends.legacy]\nurl = \"http://127.0.0.1:3001\"\n";
    let path = write_config(
        &dir,
        &format!("{backends}[control]\nredis = \"rediss://:hunter2@redis.internal:6380/1\"\n"),
    );
    let out = strangler(&["check", "-c", &path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "control: rediss://:***@redis.internal:6380/1 (key_prefix \"strangler:\", fleet_statistics on)"
        ),
        "{stdout}"
    );
    let path = write_config(
        &dir,
        &format!("{backends}[control]\nredis = \"redis://:hunter2@redis:99999\"\n"),
    );
    let out = strangler(&["check", "--format", "json", "-c", &path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("invalid Redis URL"), "{stdout}");
    assert!(stdout.contains("\"line\": 4"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn check_uses_strangler_config_env_when_no_flag() {
    let out = Command::new(BIN)
        .arg("check")
        .env("STRANGLER_CONFIG", "config/demo.toml")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("demo.toml"));
}

#[test]
fn check_reports_every_error_with_line_column_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        r#"[server]
listen = "127.0.0.1:8080"

[backends.legacy]
url = "http://127.0.0.1:3001"

[[routes]]
path = "/a"
wieght = 10
legacy = "nope"

[[routes]]
path = "/b"
weight = 150
"#,
    );
    let out = strangler(&["check", "-c", &path]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The misspelt key, with the suggestion.
    assert!(stderr.contains(&format!("{path}:9:1:")), "{stderr}");
    assert!(stderr.contains("did you mean \"weight\"?"), "{stderr}");
    // The unknown backend.
    assert!(stderr.contains(&format!("{path}:10:")), "{stderr}");
    // The weight out of range.
    assert!(stderr.contains(&format!("{path}:14:")), "{stderr}");
    assert!(stderr.matches("help:").count() >= 3, "{stderr}");
}

#[test]
fn check_fails_on_a_missing_file() {
    let out = strangler(&["check", "-c", "/nonexistent/strangler.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/strangler.toml: the file does not exist"),
        "{stderr}"
    );
}

#[test]
fn explain_shows_route_bucket_backend_and_upstream() {
    let out = strangler(&[
        "explain",
        "-c",
        "config/demo.toml",
        "GET",
        "/api/users/me?x=1",
        "-H",
        "x-user-id: alice",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let bucket = strangler::route::sticky_bucket("users", b"alice");
    assert!(stdout.contains("route:     users"), "{stdout}");
    assert!(
        stdout.contains(&format!("bucket:    {bucket} from header x-user-id")),
        "{stdout}"
    );
    let side = if bucket < 5000 { "new" } else { "legacy" };
    assert!(stdout.contains(&format!("backend:   {side}")), "{stdout}");
    let port = if side == "new" { 3002 } else { 3001 };
    assert!(
        stdout.contains(&format!(
            "upstream:  http://127.0.0.1:{port}/api/users/me?x=1"
        )),
        "{stdout}"
    );
}

#[test]
fn explain_shows_rewrite_flag_and_default() {
    let out = strangler(&["explain", "-c", "config/demo.toml", "GET", "/search/./x"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("normalised path: /search/x"), "{stdout}");
    assert!(
        stdout.contains("upstream:  http://127.0.0.1:3002/v2/search/x"),
        "{stdout}"
    );

    let out = strangler(&["explain", "-c", "config/demo.toml", "POST", "/api/checkout"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("flag:      new_checkout = true"),
        "{stdout}"
    );
    assert!(stdout.contains("backend:   new"), "{stdout}");
    // POST is not in replay_methods: only a connect error falls back.
    assert!(
        stdout.contains("fallback:  to legacy on connect error; body copied up to 1048576 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("POST is not in replay_methods"), "{stdout}");

    let out = strangler(&["explain", "-c", "config/demo.toml", "GET", "/about"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("route:     _default"), "{stdout}");
    assert!(
        stdout.contains("upstream:  http://127.0.0.1:3001/about"),
        "{stdout}"
    );
}

#[test]
fn explain_rejects_bad_arguments() {
    let out = strangler(&[
        "explain",
        "-c",
        "config/demo.toml",
        "GET",
        "/x",
        "-H",
        "novalue",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Name: value"));
}

/// A running `strangler demo`, with what its banner announced.
struct Demo {
    child: Killed,
    /// The proxy's base URL, `http://ADDR`.
    base: String,
    /// The admin API's base URL, `http://ADDR`.
    admin: String,
    /// The live config file the demo reloads.
    config: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Killed, the demo cannot remove its temp dir itself.
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts `strangler demo` on free ports and reads its banner until the
/// proxy's address, the admin API's and the live config's path are known.
fn start_demo() -> Demo {
    let mut child = Command::new(BIN)
        .arg("demo")
        .env("STRANGLER_DEMO_LISTEN", "127.0.0.1:0")
        .env("STRANGLER_DEMO_ADMIN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, even once nobody listens: a closed pipe would
        // make the demo's later writes fail.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut base, mut admin, mut config) = (None, None, None);
    let mut banner = String::new();
    while base.is_none() || admin.is_none() || config.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("demo banner incomplete ({e}):\n{banner}"));
        banner.push_str(&line);
        banner.push('\n');
        if let Some(url) = line.strip_prefix("strangler demo: proxy on ") {
            base = Some(url.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("  admin API on ") {
            let url = rest.trim().strip_suffix(':').expect("admin line");
            admin = Some(url.to_owned());
        } else if let Some(rest) = line.strip_prefix("  live config: edit ") {
            let path = rest
                .strip_suffix(" and save: the proxy reloads it")
                .unwrap_or_else(|| panic!("live config line: {line:?}"));
            config = Some(PathBuf::from(path));
        }
    }
    Demo {
        child,
        base: base.unwrap(),
        admin: admin.unwrap(),
        config: config.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_does_what_it_announces() {
    let demo = start_demo();
    let base = &demo.base;

    // Flag-switched route: new.
    let answer = get(&format!("{base}/api/checkout/cart")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-strangler-route"), Some("checkout"));
    assert_eq!(answer.json()["name"], "new");

    // Weighted, sticky: each user always on the same side, matching the hash.
    for user in ["alice", "bob", "carol", "dave"] {
        let expected = if strangler::route::sticky_bucket("users", user.as_bytes()) < 5000 {
            "new"
        } else {
            "legacy"
        };
        for _ in 0..3 {
            let answer = get_with(&format!("{base}/api/users/me"), &[("x-user-id", user)]).await;
            assert_eq!(answer.json()["name"], expected, "user {user}");
        }
    }

    // The catalog ramp started with the demo: step 0 (10%), its rollback
    // armed; a user's side follows the hash at 10%.
    let routes = get(&format!("{}/routes", demo.admin)).await.json();
    let catalog = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "catalog")
        .unwrap()
        .clone();
    assert_eq!(catalog["ramp"]["step"], 0, "{catalog}");
    assert_eq!(catalog["weight"], 10.0, "{catalog}");
    assert_eq!(catalog["rollback"]["state"], "armed", "{catalog}");
    let expected = if strangler::route::sticky_bucket("catalog", b"carol") < 1000 {
        "new"
    } else {
        "legacy"
    };
    let items = format!("{base}/api/catalog/items");
    let answer = get_with(&items, &[("x-user-id", "carol")]).await;
    assert_eq!(answer.json()["name"], expected);
    // Testers reach new whatever the weight.
    let answer = get_with(&items, &[("x-strangler-force", "new")]).await;
    assert_eq!(answer.json()["name"], "new");
    // The emergency override the banner shows, and back.
    let override_url = format!("{}/routes/catalog/override", demo.admin);
    let answer = support::send_body("POST", &override_url, br#"{"weight": 0}"#).await;
    assert_eq!(answer.json()["weight"], 0.0);
    let answer = support::send_body("DELETE", &override_url, b"").await;
    assert_eq!(answer.json()["weight"], 10.0);

    // Rewritten route: new gets /v2/search with the query.
    let answer = get(&format!("{base}/search?q=fig")).await;
    assert_eq!(answer.json()["name"], "new");
    assert_eq!(answer.json()["path"], "/v2/search");
    assert_eq!(answer.json()["query"], "q=fig");

    // New fails on payments: legacy answers, with the fallback header.
    let answer = get(&format!("{base}/api/payments/42")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["name"], "legacy");
    assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));

    // Dark launch: legacy answers; new's shadow answer differs in its name,
    // and the echoed x-strangler-shadow header is learned as noise.
    let answer = get(&format!("{base}/api/orders/7")).await;
    assert_eq!(answer.json()["name"], "legacy");
    let shadow_url = format!("{}/shadow", demo.admin);
    eventually(DEADLINE, "the orders shadow compared", || async {
        get(&shadow_url).await.json()[0]["counts"]["mismatch"] == 1
    })
    .await;
    let shadow = get(&shadow_url).await.json();
    assert_eq!(shadow[0]["name"], "orders", "{shadow}");
    assert_eq!(shadow[0]["fields"][0]["field"], "$.name", "{shadow}");
    assert_eq!(
        shadow[0]["noise"],
        serde_json::json!(["$.headers.x-strangler-shadow"]),
        "{shadow}"
    );

    // No route: legacy.
    let answer = get(&format!("{base}/about")).await;
    assert_eq!(answer.json()["name"], "legacy");
    assert_eq!(answer.header("x-strangler-route"), Some("_default"));

    // Four more failures on payments make five in a row: new is ejected, and
    // the flag-switched route's request goes straight to legacy.
    for i in 0..4 {
        let answer = get(&format!("{base}/api/payments/{i}")).await;
        assert_eq!(answer.json()["name"], "legacy");
    }
    let answer = get(&format!("{base}/api/checkout/cart")).await;
    assert_eq!(answer.json()["name"], "legacy");
    assert_eq!(answer.header("x-strangler-fallback"), Some("unhealthy"));
    let backends = get(&format!("{}/backends", demo.admin)).await.json();
    assert_eq!(backends[1]["name"], "new", "{backends}");
    assert_eq!(backends[1]["state"], "ejected", "{backends}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_config_is_live_and_reloadable() {
    let demo = start_demo();
    assert!(
        demo.config.is_file(),
        "the announced config {} does not exist",
        demo.config.display()
    );

    let answer = send(
        request("POST", &format!("{}/reload", demo.admin))
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200, "POST /reload: {}", answer.text());
    assert!(answer.json()["version"].is_string(), "{}", answer.text());

    // A user the 50% weight puts on legacy.
    let user = (0..1000)
        .map(|i| format!("user-{i}"))
        .find(|u| strangler::route::sticky_bucket("users", u.as_bytes()) >= 5000)
        .expect("some user is on legacy at 50%");
    let url = format!("{}/api/users/me", demo.base);
    let answer = get_with(&url, &[("x-user-id", &user)]).await;
    assert_eq!(answer.json()["name"], "legacy", "{user} before the edit");

    let text = std::fs::read_to_string(&demo.config).unwrap();
    assert_eq!(text.matches("weight = 50").count(), 1, "{text}");
    std::fs::write(&demo.config, text.replace("weight = 50", "weight = 100")).unwrap();
    eventually(
        DEADLINE,
        "the edited demo config sends users to new",
        || {
            let url = url.clone();
            let user = user.clone();
            async move {
                let answer = get_with(&url, &[("x-user-id", &user)]).await;
                answer.status == 200 && answer.json()["name"] == "new"
            }
        },
    )
    .await;
    let answer = get_with(&url, &[("x-user-id", "anyone-else")]).await;
    assert_eq!(answer.json()["name"], "new");
    assert_eq!(answer.header("x-strangler-route"), Some("users"));
}

/// Copies the repo's `config/strangler.toml` into `<dir>/config/`.
fn dir_with_default_config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/strangler.toml");
    std::fs::copy(repo, dir.path().join("config/strangler.toml")).unwrap();
    dir
}

/// `strangler check` with no `-c` and no `STRANGLER_CONFIG`, run in `dir`.
fn check_in(dir: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .arg("check")
        .current_dir(dir)
        .env_remove("STRANGLER_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run strangler check")
}

#[test]
fn check_defaults_to_config_strangler_toml_in_the_working_directory() {
    let dir = dir_with_default_config();
    let out = check_in(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("config/strangler.toml"), "{stdout}");

    let empty = tempfile::tempdir().unwrap();
    let out = check_in(empty.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // A missing file is reported as such, not as a position in it.
    assert!(
        stderr.contains("config/strangler.toml: the file does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains(":0:0"), "{stderr}");
}

/// The demo's temp folder: `strangler-demo-<pid>` in the temp dir.
fn demo_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("strangler-demo-{pid}"))
}

#[test]
fn demo_help_names_its_environment_knobs() {
    let out = Command::new(BIN).args(["demo", "--help"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("STRANGLER_DEMO_LISTEN"), "{stdout}");
    assert!(stdout.contains("STRANGLER_DEMO_ADMIN"), "{stdout}");
    let readme = include_str!("../README.md");
    assert!(readme.contains("STRANGLER_DEMO_ADMIN"));
    assert!(readme.contains("STRANGLER_DEMO_LISTEN"));
}

/// With its admin port taken, the demo takes a free one and says so; the
/// banner names every address; SIGTERM removes its temp folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_moves_a_taken_admin_port_and_cleans_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let mut child = Command::new(BIN)
        .arg("demo")
        .env("STRANGLER_DEMO_LISTEN", "127.0.0.1:0")
        .env("STRANGLER_DEMO_ADMIN", taken_addr.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let mut child = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, even once nobody listens: a closed pipe would
        // make the demo's later writes fail.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut banner = String::new();
    while !banner.contains("Press Ctrl-C to stop.") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("demo banner incomplete ({e}):\n{banner}"));
        banner.push_str(&line);
        banner.push('\n');
    }
    assert!(
        banner.contains(&format!("note: {taken_addr} is taken")),
        "{banner}"
    );
    let admin = banner
        .lines()
        .find_map(|l| l.strip_prefix("  admin API on "))
        .and_then(|l| l.strip_suffix(':'))
        .unwrap_or_else(|| panic!("{banner}"))
        .to_owned();
    assert_ne!(admin, format!("http://{taken_addr}"));
    // Every address: proxy, both backends, the admin API and its page.
    for needle in [
        "proxy on http://127.0.0.1:",
        "legacy echo backend on http://127.0.0.1:",
        "new echo backend on http://127.0.0.1:",
        "status page: http://127.0.0.1:",
    ] {
        assert!(banner.contains(needle), "{needle}:\n{banner}");
    }
    // The admin API there is this demo's.
    let config = get(&format!("{admin}/config")).await.json();
    let path = PathBuf::from(config["path"].as_str().unwrap());
    assert!(path.starts_with(demo_dir(pid)), "{config}");
    assert!(demo_dir(pid).is_dir());

    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "demo did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}");
    assert!(!demo_dir(pid).exists(), "temp folder left behind");
    drop(taken);
}

/// A demo that cannot start (its proxy port is taken) leaves no temp folder.
#[test]
fn a_failed_demo_start_removes_its_temp_folder() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let child = Command::new(BIN)
        .arg("demo")
        .env(
            "STRANGLER_DEMO_LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .env("STRANGLER_DEMO_ADMIN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!demo_dir(pid).exists(), "temp folder left behind");
}

/// The README's `explain` sample is what the binary prints, byte for byte.
#[test]
fn readme_explain_sample_matches_the_binary() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```console\n$ strangler explain")
        .expect("the README's explain sample")
        + "```console\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let mut commands = 0;
    for sample in block.split("$ ").filter(|s| !s.is_empty()) {
        let (command, expected) = sample.split_once('\n').unwrap();
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let out = strangler(&args);
        assert!(out.status.success(), "{command}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{command}");
        commands += 1;
    }
    assert_eq!(commands, 2);
}

/// A demo whose stdout is closed before it prints (a pipe whose reader went
/// away) keeps serving: its banner is best effort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_survives_a_closed_stdout() {
    let (listen, admin) = (support::free_port(), support::free_port());
    let mut child = Command::new(BIN)
        .arg("demo")
        .env("STRANGLER_DEMO_LISTEN", format!("127.0.0.1:{listen}"))
        .env("STRANGLER_DEMO_ADMIN", format!("127.0.0.1:{admin}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut child = Killed(child);
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    eventually(DEADLINE, "the demo is ready", || {
        let ready = ready.clone();
        async move {
            support::try_get(&ready)
                .await
                .is_some_and(|a| a.status == 200)
        }
    })
    .await;
    let answer = get(&format!("http://127.0.0.1:{listen}/about")).await;
    assert_eq!(answer.status, 200);
    assert!(child.0.try_wait().unwrap().is_none(), "the demo exited");
    let pid = child.0.id();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let start = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "demo did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!demo_dir(pid).exists());
}
