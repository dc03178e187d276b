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
