//! The access log (SPEC §1): `--log-format json` writes one JSON event per
//! request, target `strangler::access`, with what happened to it.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use serde_json::Value;
use support::{Binary, DEADLINE, TestBackend, backends_with, eventually, get};

/// The access-log events in `log` (one JSON object a line).
fn access_events(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"] == "strangler::access")
        .collect()
}

/// The fields of the access event whose `request_id` is `id`, once logged.
async fn access_event(proxy: &Binary, id: &str) -> serde_json::Map<String, Value> {
    let mut found = None;
    eventually(DEADLINE, "the access log has the request", || {
        found = access_events(&proxy.log())
            .into_iter()
            .find(|event| event["fields"]["request_id"] == id);
        let done = found.is_some();
        async move { done }
    })
    .await;
    let event = found.unwrap();
    event["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no fields: {event}"))
        .clone()
}

/// Asserts the access event `fields` is of a `GET path` answered 200, routed
/// by `route` to `backend`, with a `fallback` of that kind or none, and a
/// duration.
fn assert_access(
    fields: &serde_json::Map<String, Value>,
    path: &str,
    route: &str,
    backend: &str,
    fallback: Option<&str>,
) {
    assert_eq!(fields["method"], "GET", "{fields:?}");
    assert_eq!(fields["path"], path, "{fields:?}");
    assert_eq!(fields["route"], route, "{fields:?}");
    assert_eq!(fields["backend"], backend, "{fields:?}");
    assert_eq!(fields["status"], 200, "{fields:?}");
    assert!(
        fields["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{fields:?}"
    );
    match fallback {
        Some(kind) => assert_eq!(fields["fallback"], kind, "{fields:?}"),
        None => assert!(
            fields.get("fallback").is_none_or(Value::is_null),
            "no fallback happened: {fields:?}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_describes_each_request() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::answering("new", "new", |path| {
        if path.starts_with("/fails") { 503 } else { 200 }
    })
    .await;
    let routes = r#"
[[routes]]
name = "moved"
path = "/moved"
weight = 100

[[routes]]
name = "fails"
path = "/fails"
weight = 100
"#;
    let proxy = Binary::start_with(
        "",
        &backends_with(&legacy.url(), &new.url(), routes),
        &[],
        &["--log-format", "json"],
    )
    .await;
    // Every line is JSON.
    let log = proxy.log();
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "not JSON lines:\n{log}"
    );

    let answer = get(&proxy.url("/moved/x?q=1")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "new");
    let id = answer
        .header("x-request-id")
        .expect("x-request-id")
        .to_owned();
    let fields = access_event(&proxy, &id).await;
    assert_access(&fields, "/moved/x", "moved", "new", None);

    // A fallback: new answered 503, legacy's answer reached the client.
    let answer = get(&proxy.url("/fails/y")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "legacy");
    assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    let id = answer
        .header("x-request-id")
        .expect("x-request-id")
        .to_owned();
    let fields = access_event(&proxy, &id).await;
    assert_access(&fields, "/fails/y", "fails", "legacy", Some("status"));
}

/// The access log names the client, the query, the path the backend was
/// sent (after a rewrite), new's status when a fallback hid it, and a
/// duration rounded to whole microseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_has_client_query_upstream_path_and_new_status() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::answering("new", "new", |path| {
        if path.starts_with("/fails") { 503 } else { 200 }
    })
    .await;
    let routes = r#"
[[routes]]
name = "moved"
path = "/moved"
weight = 100
rewrite = "/v2/moved"

[[routes]]
name = "fails"
path = "/fails"
weight = 100
"#;
    let proxy = Binary::start_with(
        "",
        &backends_with(&legacy.url(), &new.url(), routes),
        &[],
        &["--log-format", "json"],
    )
    .await;
    let id_of = |answer: &support::Answer| answer.header("x-request-id").unwrap().to_owned();

    let answer = get(&proxy.url("/moved/x?q=1&r=2")).await;
    assert_eq!(answer.status, 200);
    let fields = access_event(&proxy, &id_of(&answer)).await;
    assert_eq!(fields["client"], "127.0.0.1", "{fields:?}");
    assert_eq!(fields["query"], "q=1&r=2", "{fields:?}");
    assert_eq!(fields["upstream_path"], "/v2/moved/x", "{fields:?}");
    assert!(
        fields.get("new_status").is_none_or(Value::is_null),
        "{fields:?}"
    );
    let duration = fields["duration_ms"].as_f64().unwrap();
    assert_eq!((duration * 1000.0).round() / 1000.0, duration, "{fields:?}");
    // Printed as a short decimal, with no float noise.
    let printed = fields["duration_ms"].to_string();
    assert!(
        printed.split('.').nth(1).is_none_or(|d| d.len() <= 3),
        "{printed}"
    );

    let answer = get(&proxy.url("/fails/y")).await;
    assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    let fields = access_event(&proxy, &id_of(&answer)).await;
    assert_eq!(fields["backend"], "legacy", "{fields:?}");
    assert_eq!(fields["new_status"], 503, "{fields:?}");
    assert_eq!(fields["upstream_path"], "/fails/y", "{fields:?}");
    assert!(fields.get("query").is_none_or(Value::is_null), "{fields:?}");
}

/// One fallback warning per route per second; the next one says how many
/// were held back, so 94 fallbacks in a drill are not 94 lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_warnings_are_rate_limited_with_a_count() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_status("new", 503).await;
    let routes = "[[routes]]\nname = \"fails\"\npath = \"/fails\"\nweight = 100\n";
    let proxy = Binary::start_with(
        "",
        &support::config_with_new(
            &legacy.url(),
            &new.url(),
            "[backends.new.outlier]\nconsecutive_failures = 0",
            routes,
        )
        .split_once("[backends.legacy]")
        .map(|(_, rest)| format!("[backends.legacy]{rest}"))
        .unwrap(),
        &[],
        &["--log-format", "json"],
    )
    .await;
    let warnings = |log: &str| -> Vec<Value> {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["fields"]["message"] == "new failed, replaying to legacy")
            .collect()
    };
    let burst = 30;
    for i in 0..burst {
        let answer = get(&proxy.url(&format!("/fails/{i}"))).await;
        assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    }
    // Then one fallback at a time until a line reports the suppressed ones
    // (at most a second later); bounded by the deadline.
    let mut sent = burst;
    eventually(DEADLINE, "a warning with a suppressed count", || {
        let url = proxy.url("/fails/again");
        sent += 1;
        let found = warnings(&proxy.log())
            .iter()
            .any(|w| w["fields"]["suppressed"].as_u64().is_some_and(|n| n > 0));
        async move {
            if !found {
                get(&url).await;
            }
            found
        }
    })
    .await;
    let lines = warnings(&proxy.log());
    let suppressed: u64 = lines
        .iter()
        .map(|w| w["fields"]["suppressed"].as_u64().unwrap())
        .sum();
    assert!(
        lines.len() < burst,
        "{} lines for {sent} fallbacks",
        lines.len()
    );
    // Every fallback is either a line or counted in a later one's suppressed.
    assert!(lines.len() as u64 + suppressed <= sent as u64);
    assert!(
        suppressed >= (burst - lines.len()) as u64 - 1,
        "{suppressed}"
    );
    assert_eq!(lines[0]["fields"]["suppressed"], 0);
    assert_eq!(lines[0]["fields"]["route"], "fails");
}

/// `--log-format text` into a file (not a terminal) has no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colour_off_a_terminal() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = Binary::start_with(
        "",
        &backends_with(&legacy.url(), &new.url(), ""),
        &[],
        &["--log-format", "text"],
    )
    .await;
    get(&proxy.url("/x")).await;
    let log = proxy.log();
    assert!(log.contains("proxy listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escape in a file:\n{log:?}");
}

#[test]
fn an_invalid_rust_log_is_an_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args(["check", "-c", "config/demo.toml"])
        .env("RUST_LOG", "strangler=loud")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid RUST_LOG \"strangler=loud\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// A reload logs a flag flip by the flag's name, and the config's warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_logs_flag_flips_by_name_and_warnings() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let routes = "[flags]\nnew_checkout = true\n\n[[routes]]\nname = \"checkout\"\npath = \"/checkout\"\nflag = \"new_checkout\"\n";
    let proxy = Binary::start_with(
        "",
        &backends_with(&legacy.url(), &new.url(), routes),
        &[],
        &["--log-format", "json"],
    )
    .await;
    let edited = proxy.text.replace(
        "new_checkout = true",
        "new_checkout = false\nforgotten = true",
    );
    std::fs::write(&proxy.path, edited).unwrap();
    let answer = support::send_body("POST", &proxy.admin_url("/reload"), b"").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let events: Vec<Value> = proxy
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let flip = events
        .iter()
        .find(|e| e["fields"]["message"] == "flag flipped")
        .unwrap_or_else(|| panic!("no flag flip logged:\n{}", proxy.log()));
    assert_eq!(flip["fields"]["flag"], "new_checkout");
    assert_eq!(flip["fields"]["from"], true);
    assert_eq!(flip["fields"]["to"], false);
    assert_eq!(flip["fields"]["routes"], "checkout");
    let moved = events
        .iter()
        .find(|e| e["fields"]["message"] == "route weight changed")
        .unwrap();
    assert_eq!(moved["fields"]["flag"], "new_checkout");
    assert_eq!(moved["fields"]["because"], "flag");
    let warning = events
        .iter()
        .find(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("flag \"forgotten\" is not used by any route"))
        })
        .unwrap_or_else(|| panic!("no warning logged:\n{}", proxy.log()));
    assert_eq!(warning["level"], "WARN");
    assert!(warning["fields"]["line"].as_u64().unwrap() > 0);
}
