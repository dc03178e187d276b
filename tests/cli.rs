//! `strangler check`, `explain` and `demo`, run as a user runs them.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Killed, get, get_with};

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
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
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

/// Starts `strangler demo` on free ports and returns the proxy's base URL.
fn start_demo() -> (Killed, String) {
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
    // The banner's first line names the proxy's address; read lines until it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("demo printed no address");
        if let Some(url) = line.strip_prefix("strangler demo: proxy on ") {
            return (child, url.trim().to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_does_what_it_announces() {
    let (_child, base) = start_demo();

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

    // No route: legacy.
    let answer = get(&format!("{base}/about")).await;
    assert_eq!(answer.json()["name"], "legacy");
    assert_eq!(answer.header("x-strangler-route"), Some("_default"));
}
