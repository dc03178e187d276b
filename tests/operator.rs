//! The operator's commands, run as a user runs them (SPEC §1): `check` with
//! its warnings, `--strict` and `--format json`; `explain` with
//! `replay_methods` and `--admin`; `diff` against a running proxy.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::{Binary, TestBackend, backends_with, get, send_body};

const BIN: &str = env!("CARGO_BIN_EXE_strangler");

fn strangler(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("STRANGLER_CONFIG")
        .env("RUST_LOG", "warn")
        .env_remove("STRANGLER_TEST_UNSET_TOKEN")
        .output()
        .expect("run strangler")
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("strangler.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Valid, and with one of each warning of SPEC §2 that the config model knows.
const WARNED: &str = r#"[server]
admin_token_env = "STRANGLER_TEST_UNSET_TOKEN"

[backends.legacy]
url = "http://127.0.0.1:3001"

[backends.new]
url = "http://127.0.0.1:3002"
connect_timeout = "10s"
timeout = "1s"

[backends.spare]
url = "https://127.0.0.1:3003"
tls_insecure_skip_verify = true

[flags]
forgotten = true

[[routes]]
name = "thirty"
path = "/thirty"
weight = 30

[routes.fallback]
on_status = [200, 503]

[routes.rollback]
max_error_rate = 5
"#;

#[test]
fn check_warns_without_failing_and_strict_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, WARNED);
    let out = strangler(&["check", "-c", &path]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok (1 routes"), "{stdout}");
    // Each warning with the line and column it is about, and a fix.
    for (at, what) in [
        ("2:19:", "STRANGLER_TEST_UNSET_TOKEN"),
        (
            "9:19:",
            "connect_timeout (10s) is not shorter than timeout (1s)",
        ),
        ("12:11:", "backend \"spare\" is not used by any route"),
        ("14:28:", "tls_insecure_skip_verify is on"),
        ("17:1:", "flag \"forgotten\" is not used by any route"),
        ("22:10:", "sends 30% to new with no sticky key"),
        ("25:13:", "on_status has 200 below 500"),
        ("27:1:", "has a rollback but server.state_file is not set"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no warning {what:?}:\n{stderr}"));
        assert!(
            line.starts_with(&format!("{path}:{at} warning: ")),
            "{line}"
        );
    }
    assert_eq!(stderr.matches("\n  help: ").count(), 8, "{stderr}");
    assert!(stderr.contains("8 warning(s) (not blocking)"), "{stderr}");

    let out = strangler(&["check", "--strict", "-c", &path]);
    assert_eq!(out.status.code(), Some(1), "{:?}", texts(&out));

    // A clean file passes --strict.
    let clean = write(
        &dir,
        "[backends.legacy]\nurl = \"http://127.0.0.1:1\"\n[backends.new]\nurl = \"http://127.0.0.1:2\"\n[[routes]]\npath = \"/a\"\nweight = 100\n",
    );
    let out = strangler(&["check", "--strict", "-c", &clean]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn check_format_json_is_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, WARNED);
    let out = strangler(&["check", "--format", "json", "-c", &path]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]));
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 8, "{report}");
    for w in warnings {
        assert!(w["line"].as_u64().unwrap() > 0, "{w}");
        assert!(w["column"].as_u64().unwrap() > 0, "{w}");
        assert!(w["message"].is_string() && w["hint"].is_string(), "{w}");
    }
    let route = &report["routes"][0];
    assert_eq!(route["name"], "thirty");
    assert_eq!(route["weight"], 30.0);
    assert_eq!(
        route["fallback"]["on_status"],
        serde_json::json!([200, 503])
    );

    let out = strangler(&["check", "--strict", "--format", "json", "-c", &path]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);

    // Errors, each with its position.
    let bad = write(&dir, "[[routes]]\npath = \"/a\"\nweight = 150\n");
    let out = strangler(&["check", "--format", "json", "-c", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let errors = report["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(
        errors.iter().any(|e| e["line"] == 3 && e["column"] == 10),
        "{report}"
    );

    // A missing file: an error about the file, with no position.
    let missing = dir.path().join("nope.toml");
    let out = strangler(&["check", "--format", "json", "-c", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"][0]["message"], "the file does not exist");
    assert_eq!(report["errors"][0]["line"], Value::Null);
}

#[test]
fn check_reports_a_missing_file_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let missing = missing.to_str().unwrap();
    let out = strangler(&["check", "-c", missing]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!("{missing}: the file does not exist\n")),
        "{stderr}"
    );
    assert!(!stderr.contains(":0:0"), "{stderr}");
}

#[test]
fn check_table_stays_aligned_and_shows_rewrite_cohort_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"[defaults]
legacy = "the-legacy-monolith-in-the-basement"
new = "new"

[backends.the-legacy-monolith-in-the-basement]
url = "http://127.0.0.1:3001"

[backends.new]
url = "http://127.0.0.1:3002"

[[routes]]
name = "search"
path = "/search"
weight = 100
rewrite = "/v2/search"
cohort = "shop"

[[routes]]
name = "payments-with-a-long-name"
path = "/api/payments"
weight = 25
sticky = "cookie:sid"
set_cookie = true
cohort = "shop"

[routes.fallback]
enabled = false
"#,
    );
    let out = strangler(&["check", "-c", &path]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    let header = lines[0];
    for column in [
        "ROUTE", "PATH", "NEW %", "FLAG", "LEGACY", "NEW", "STICKY", "COHORT", "REWRITE",
        "FALLBACK",
    ] {
        assert!(header.contains(column), "{header}");
    }
    // Every row's columns start where the header's do.
    let starts = |line: &str| -> Vec<usize> {
        let mut starts = vec![0];
        let bytes = line.as_bytes();
        for i in 2..bytes.len() {
            if bytes[i] != b' ' && bytes[i - 1] == b' ' && bytes[i - 2] == b' ' {
                starts.push(i);
            }
        }
        starts
    };
    let legacy_at = header.find("LEGACY").unwrap();
    let cohort_at = header.find("COHORT").unwrap();
    let rewrite_at = header.find("REWRITE").unwrap();
    let fallback_at = header.find("FALLBACK").unwrap();
    for row in &lines[1..3] {
        assert_eq!(&row[legacy_at..legacy_at + 10], "the-legacy", "{stdout}");
        assert!(starts(row).contains(&cohort_at), "{stdout}");
        assert!(starts(row).contains(&fallback_at), "{stdout}");
    }
    assert_eq!(
        &lines[1][rewrite_at..rewrite_at + 10],
        "/v2/search",
        "{stdout}"
    );
    assert_eq!(&lines[1][cohort_at..cohort_at + 4], "shop", "{stdout}");
    assert!(lines[2][fallback_at..].starts_with("off"), "{stdout}");
    assert!(
        lines[1][fallback_at..].starts_with("500,502,503,504 connect"),
        "{stdout}"
    );
    assert!(lines[2].contains("cookie:sid (set)"), "{stdout}");
}

const EXPLAINED: &str = r#"[backends.legacy]
url = "http://127.0.0.1:3001"

[backends.new]
url = "http://127.0.0.1:3002"

[[routes]]
name = "payments"
path = "/api/payments"
weight = 100
"#;

#[test]
fn explain_honours_replay_methods() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, EXPLAINED);
    let out = strangler(&["explain", "-c", &path, "GET", "/api/payments/1"]);
    let (stdout, _) = texts(&out);
    assert!(
        stdout.contains(
            "fallback:  to legacy on status [500, 502, 503, 504], connect error, timeout, reset"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("not in replay_methods"), "{stdout}");

    let out = strangler(&["explain", "-c", &path, "POST", "/api/payments/1"]);
    let (stdout, _) = texts(&out);
    assert!(
        stdout.contains("fallback:  to legacy on connect error;"),
        "{stdout}"
    );
    assert!(!stdout.contains("status [500"), "{stdout}");
    assert!(
        stdout.contains("POST is not in replay_methods [GET, HEAD, OPTIONS, TRACE, PUT, DELETE]"),
        "{stdout}"
    );
    assert!(stdout.contains("the client gets new's answer"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_admin_shows_the_running_proxys_state() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_status("new", 503).await;
    let proxy = Binary::start("", &backends_with(&legacy.url(), &new.url(), ROUTES)).await;
    // Five gateway failures in a row eject new.
    for i in 0..5 {
        get(&proxy.url(&format!("/api/payments/{i}"))).await;
    }
    let admin = proxy.admin.to_string();
    let path = proxy.path.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        strangler(&[
            "explain",
            "-c",
            &path,
            "--admin",
            &admin,
            "GET",
            "/api/payments/9",
        ])
    })
    .await
    .unwrap();
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("runtime:   from the proxy at {}", proxy.admin)),
        "{stdout}"
    );
    assert!(stdout.contains("effective weight 100%"), "{stdout}");
    assert!(stdout.contains("new new: ejected until "), "{stdout}");
    assert!(stdout.contains("legacy legacy: available"), "{stdout}");
    assert!(stdout.contains("new is not available now"), "{stdout}");
    // The fields this proxy does not report (yet) show as "-".
    assert!(stdout.contains("override: -"), "{stdout}");
    assert!(stdout.contains("rollback: -"), "{stdout}");

    // An unreachable admin API is an error.
    let path = proxy.path.to_str().unwrap().to_owned();
    let dead = support::dead_addr();
    let dead_addr = dead.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        strangler(&["explain", "-c", &path, "--admin", &dead_addr, "GET", "/"])
    })
    .await
    .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the admin API"), "{stderr}");
}

const ROUTES: &str = r#"
[flags]
new_checkout = true

[[routes]]
name = "payments"
path = "/api/payments"
weight = 100

[[routes]]
name = "checkout"
path = "/api/checkout"
flag = "new_checkout"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_compares_the_file_with_the_running_proxy() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = Binary::start("", &backends_with(&legacy.url(), &new.url(), ROUTES)).await;
    let admin = proxy.admin.to_string();
    let path = proxy.path.to_str().unwrap().to_owned();
    let diff = {
        let (admin, path) = (admin.clone(), path.clone());
        move || {
            let (admin, path) = (admin.clone(), path.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    strangler(&["diff", "-c", &path, "--admin", &admin])
                })
                .await
                .unwrap()
            }
        }
    };

    // The file as it was loaded: equal.
    let out = diff().await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("no difference"), "{stdout}");

    // A comment changes nothing in effect: still 0.
    std::fs::write(&proxy.path, format!("# a comment\n{}", proxy.text)).unwrap();
    let out = diff().await;
    assert_eq!(out.status.code(), Some(0), "{:?}", texts(&out));

    // Edited, not saved into the proxy yet (the watcher may reload it, so
    // write it elsewhere): a weight, a flag, a route added and one removed.
    let edited = proxy
        .text
        .replace("new_checkout = true", "new_checkout = false")
        .replace("weight = 100", "weight = 25\nsticky = \"ip\"")
        .replace(
            "name = \"checkout\"\npath = \"/api/checkout\"",
            "name = \"cart\"\npath = \"/api/cart\"",
        );
    let other = tempfile::tempdir().unwrap();
    let edited_path = other.path().join("edited.toml");
    std::fs::write(&edited_path, &edited).unwrap();
    let out = {
        let (admin, edited_path) = (admin.clone(), edited_path.to_str().unwrap().to_owned());
        tokio::task::spawn_blocking(move || {
            strangler(&["diff", "-c", &edited_path, "--admin", &admin])
        })
        .await
        .unwrap()
    };
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "~ route payments: weight 100 → 25; sticky None → Some(Ip); effective weight 100% → 25%"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ route cart (path /api/cart): added; effective weight 0%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- route checkout (path /api/checkout): removed; effective weight 100%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ flag new_checkout: true → false (routes: cart)"),
        "{stdout}"
    );
    // Every route's effective weight, now and after the save.
    assert!(
        stdout.contains(
            "effective weights (now → after the save):\n  payments  100% → 25%\n  checkout  100% → -\n  cart      - → 0%\n"
        ),
        "{stdout}"
    );

    // No proxy there: 1.
    let dead = support::dead_addr();
    let dead_addr = dead.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        strangler(&["diff", "-c", &path, "--admin", &dead_addr])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", texts(&out));

    // An invalid file: 1, with the errors.
    std::fs::write(&edited_path, "[[routes]]\nweight = 150\n").unwrap();
    let out = tokio::task::spawn_blocking(move || {
        strangler(&[
            "diff",
            "-c",
            edited_path.to_str().unwrap(),
            "--admin",
            &admin,
        ])
    })
    .await
    .unwrap();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(":2:10:"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_source_serves_the_files_bytes() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = Binary::start("", &backends_with(&legacy.url(), &new.url(), ROUTES)).await;
    let answer = get(&proxy.admin_url("/config/source")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/toml"));
    assert_eq!(answer.text(), proxy.text);
    let version = get(&proxy.admin_url("/config")).await.json()["version"].clone();
    assert_eq!(version, support::sha256_hex(proxy.text.as_bytes()));
    assert_eq!(
        send_body("POST", &proxy.admin_url("/config/source"), b"")
            .await
            .status,
        405
    );
}

/// `/config` (v2): `last_error_at` with `last_error`, and `restart_required`
/// naming the `[server]` keys a reload loaded but only a restart applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_restart_required_and_last_error_at() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = Binary::start("", &backends_with(&legacy.url(), &new.url(), ROUTES)).await;
    let config = get(&proxy.admin_url("/config")).await.json();
    assert_eq!(
        config["restart_required"],
        serde_json::json!([]),
        "{config}"
    );
    assert_eq!(config["last_error_at"], Value::Null, "{config}");

    let other = support::free_port();
    let moved = proxy.text.replace(
        &format!("listen = \"{}\"", proxy.addr),
        &format!("listen = \"127.0.0.1:{other}\""),
    );
    assert_ne!(moved, proxy.text);
    std::fs::write(&proxy.path, &moved).unwrap();
    let answer = send_body("POST", &proxy.admin_url("/reload"), b"").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let config = get(&proxy.admin_url("/config")).await.json();
    assert_eq!(
        config["restart_required"],
        serde_json::json!(["listen"]),
        "{config}"
    );

    std::fs::write(&proxy.path, "[[routes]]\nweight = 150\n").unwrap();
    let answer = send_body("POST", &proxy.admin_url("/reload"), b"").await;
    assert_eq!(answer.status, 400);
    let config = get(&proxy.admin_url("/config")).await.json();
    assert!(config["last_error"].is_string(), "{config}");
    let at = config["last_error_at"].as_str().unwrap();
    assert!(at.ends_with('Z') && at.len() == 20, "{at}");
}

#[test]
fn check_shows_each_routes_ramp() {
    let out = strangler(&["check", "-c", "config/demo.toml"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let header = stdout.lines().nth(1).unwrap();
    assert!(header.trim_end().ends_with("RAMP"), "{header}");
    let catalog = stdout.lines().find(|l| l.starts_with("catalog ")).unwrap();
    assert!(
        catalog.ends_with("10,25,50,100 every 1m from 2026-12-01T00:00:00Z"),
        "{catalog}"
    );
    let users = stdout.lines().find(|l| l.starts_with("users ")).unwrap();
    assert!(users.trim_end().ends_with('-'), "{users}");
}
