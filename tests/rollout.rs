//! Rollout without a human watching (SPEC §3.2, §3.6, §5, §7): the ramp on a
//! clock, the automatic rollback and its resume, overrides through the admin
//! API, and `state_file` across a real restart.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use support::{
    Binary, TestBackend, TestProxy, config_with_new, eventually, get, get_with, send_body,
};

const WITHIN: Duration = Duration::from_secs(10);

/// New's outlier ejection off, so every request tries new and the rollback
/// sees every failure.
const NO_EJECTION: &str = "timeout = \"2s\"\n[backends.new.outlier]\nconsecutive_failures = 0";

/// The sample `sample` (name and labels as exposed) of `/metrics`.
async fn metric(admin: SocketAddr, sample: &str) -> f64 {
    let text = get(&format!("http://{admin}/metrics")).await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The `/routes` object of `name`.
async fn route(admin_url: &str, name: &str) -> Value {
    let routes = get(admin_url).await.json();
    routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no route {name} in {routes}"))
}

/// `x-strangler-backend` of `GET url` with `headers`.
async fn served_by(url: &str, headers: &[(&str, &str)]) -> String {
    let answer = get_with(url, headers).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.header("x-strangler-backend").unwrap().to_owned()
}

async fn post_json(url: &str, body: &str) -> support::Answer {
    send_body("POST", url, body.as_bytes()).await
}

async fn delete(url: &str) -> support::Answer {
    send_body("DELETE", url, b"").await
}

/// Rewrites the config file with `text` and reloads it.
async fn reload(proxy: &TestProxy, text: &str) {
    std::fs::write(&proxy.path, text).unwrap();
    let answer = post_json(&proxy.admin_url("/reload"), "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn checkout(weight: u32, rollback: &str) -> String {
    format!(
        "[[routes]]\nname = \"checkout\"\npath = \"/checkout\"\nweight = {weight}\n\
         [routes.rollback]\n{rollback}\n"
    )
}

const FAST_TRIP: &str = "min_requests = 10\nmax_error_rate = 50";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_steps_through_its_weights_and_sticky_users_only_move_to_new() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    // The first step begins at the next whole second but one.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs() + 2);
    let start_text = humantime::format_rfc3339_seconds(start).to_string();
    let rest = format!(
        "[[routes]]\nname = \"ramped\"\npath = \"/\"\nweight = 0\nsticky = \"header:x-user\"\n\
         [routes.ramp]\nsteps = [20, 50, 100]\nevery = \"1s\"\nstart = \"{start_text}\"\n"
    );
    let proxy = TestProxy::start(&config_with_new(
        &legacy.url(),
        &new.url(),
        NO_EJECTION,
        &rest,
    ))
    .await;
    let routes_url = proxy.admin_url("/routes");
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    // Exactly the users whose bucket is below a step's weight are on new.
    let expected = |weight_bp: u16| {
        users
            .iter()
            .filter(|u| strangler::route::sticky_bucket("ramped", u.as_bytes()) < weight_bp)
            .count()
    };
    let mut on_new = vec![false; users.len()];
    let mut seen_steps = Vec::new();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while tokio::time::Instant::now() < deadline {
        let before = route(&routes_url, "ramped").await["ramp"].clone();
        let mut count = 0;
        for (i, user) in users.iter().enumerate() {
            let side = served_by(&proxy.url("/"), &[("x-user", user)]).await;
            let new_now = side == "new";
            assert!(
                new_now || !on_new[i],
                "{user} moved back to legacy at {before}"
            );
            on_new[i] = new_now;
            count += usize::from(new_now);
        }
        let after = route(&routes_url, "ramped").await["ramp"].clone();
        if before["step"] != after["step"] {
            continue;
        }
        let step = before["step"].as_u64().map(|k| k as usize);
        let weight_bp = match step {
            None => 0,
            Some(k) => [2_000, 5_000, 10_000][k],
        };
        assert_eq!(count, expected(weight_bp), "step {step:?}: {before}");
        if !seen_steps.contains(&step) {
            seen_steps.push(step);
        }
        if step == Some(2) {
            assert_eq!(before["next_at"], Value::Null);
            assert_eq!(before["weight"], 100.0);
            break;
        }
    }
    assert!(
        seen_steps.contains(&Some(2)),
        "the ramp did not reach its last step: saw {seen_steps:?}"
    );
    assert_eq!(
        metric(proxy.admin, r#"strangler_route_new_weight{route="ramped"}"#).await,
        100.0
    );
    assert!(legacy.count() > 0 && new.count() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_new_trips_the_route_until_resumed_or_changed() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_status("new", 503).await;
    let text = config_with_new(
        &legacy.url(),
        &new.url(),
        NO_EJECTION,
        &checkout(100, FAST_TRIP),
    );
    let proxy = TestProxy::start(&text).await;
    let url = proxy.url("/checkout");
    let routes_url = proxy.admin_url("/routes");

    // Each failure falls back until the tenth attempt on new trips the route.
    for _ in 0..10 {
        let answer = get(&url).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-strangler-fallback"), Some("status-503"));
    }
    assert_eq!(new.count(), 10);
    // The very next requests go to legacy without trying new.
    for _ in 0..5 {
        let answer = get(&url).await;
        assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
        assert_eq!(answer.header("x-strangler-fallback"), None);
    }
    assert_eq!(new.count(), 10, "a tripped route does not try new");
    let r = route(&routes_url, "checkout").await;
    assert_eq!(r["rollback"]["state"], "tripped", "{r}");
    assert_eq!(
        r["rollback"]["reason"],
        "error_rate 100% over 60s, 10 attempts > 50%"
    );
    assert!(r["rollback"]["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r["weight"], 0.0);
    assert_eq!(r["file_weight"], 100.0);
    assert_eq!(
        r["stats"]["new"],
        json!({"attempts": 10, "failures": 10, "error_rate": 100.0,
               "p50_ms": r["stats"]["new"]["p50_ms"], "p95_ms": r["stats"]["new"]["p95_ms"],
               "p99_ms": r["stats"]["new"]["p99_ms"]})
    );
    assert!(r["stats"]["new"]["p95_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["stats"]["legacy"]["attempts"], 15);
    assert_eq!(r["stats"]["legacy"]["failures"], 0);
    assert_eq!(r["stats"]["window"], "60s");
    assert_eq!(r["fallbacks"]["status"], 10);
    let sample = |name: &str| format!("{name}{{route=\"checkout\"}}");
    assert_eq!(
        metric(proxy.admin, &sample("strangler_rollbacks_total")).await,
        1.0
    );
    assert_eq!(
        metric(proxy.admin, &sample("strangler_route_rolled_back")).await,
        1.0
    );
    assert_eq!(
        metric(proxy.admin, &sample("strangler_route_new_weight")).await,
        0.0
    );

    // An unrelated reload keeps the trip.
    reload(&proxy, &format!("{text}\n# an unrelated edit\n")).await;
    assert_eq!(served_by(&url, &[]).await, "legacy");
    assert_eq!(
        route(&routes_url, "checkout").await["rollback"]["state"],
        "tripped"
    );

    // Resume: armed again, new's statistics cleared; a second resume is 409.
    let resume = proxy.admin_url("/routes/checkout/resume");
    let answer = post_json(&resume, "").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let r = answer.json();
    assert_eq!(
        r["rollback"],
        json!({"state": "armed", "reason": null, "since": null})
    );
    assert_eq!(r["stats"]["new"]["attempts"], 0);
    assert_eq!(r["weight"], 100.0);
    let again = post_json(&resume, "").await;
    assert_eq!(again.status, 409);
    assert!(
        again.json()["error"]
            .as_str()
            .unwrap()
            .contains("not rolled back")
    );
    assert_eq!(
        post_json(&proxy.admin_url("/routes/nope/resume"), "")
            .await
            .status,
        404
    );

    // New still fails: it trips again, counted twice.
    for _ in 0..10 {
        get(&url).await;
    }
    assert_eq!(new.count(), 20);
    assert_eq!(
        route(&routes_url, "checkout").await["rollback"]["state"],
        "tripped"
    );
    assert_eq!(
        metric(proxy.admin, &sample("strangler_rollbacks_total")).await,
        2.0
    );

    // A reload that changes the route's weight re-arms it.
    let changed = config_with_new(
        &legacy.url(),
        &new.url(),
        NO_EJECTION,
        &checkout(90, FAST_TRIP),
    );
    reload(&proxy, &changed).await;
    let r = route(&routes_url, "checkout").await;
    assert_eq!(r["rollback"]["state"], "armed", "{r}");
    assert_eq!(r["weight"], 90.0);
    assert_eq!(r["stats"]["new"]["attempts"], 0);
    assert_eq!(
        metric(proxy.admin, &sample("strangler_route_rolled_back")).await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_new_trips_on_max_p95() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_handler("new", |_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        hyper::Response::new(strangler::body::full("slow"))
    })
    .await;
    let rollback = "min_requests = 5\nmax_p95 = \"100ms\"";
    let text = config_with_new(
        &legacy.url(),
        &new.url(),
        NO_EJECTION,
        &checkout(100, rollback),
    );
    let proxy = TestProxy::start(&text).await;
    let url = proxy.url("/checkout");
    let slow: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for answer in slow {
        let answer = answer.await.unwrap();
        assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    }
    let r = route(&proxy.admin_url("/routes"), "checkout").await;
    assert_eq!(r["rollback"]["state"], "tripped", "{r}");
    let reason = r["rollback"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("p95 "), "{reason}");
    assert!(reason.ends_with("over 60s, 5 attempts > 100ms"), "{reason}");
    assert_eq!(r["stats"]["new"]["failures"], 0);
    assert!(
        r["stats"]["new"]["p50_ms"].as_f64().unwrap() >= 250.0,
        "{r}"
    );
    assert_eq!(served_by(&url, &[]).await, "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_move_traffic_at_once_and_survive_reloads() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let rest = "[flags]\nnew_search = true\n\
                [[routes]]\nname = \"checkout\"\npath = \"/checkout\"\nweight = 100\n\
                [[routes]]\nname = \"search\"\npath = \"/search\"\nflag = \"new_search\"\n";
    let text = config_with_new(&legacy.url(), &new.url(), NO_EJECTION, rest);
    let proxy = TestProxy::start(&text).await;
    let checkout = proxy.url("/checkout");
    let set = proxy.admin_url("/routes/checkout/override");
    assert_eq!(served_by(&checkout, &[]).await, "new");

    let answer = post_json(&set, r#"{"weight": 0}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let r = answer.json();
    assert_eq!(
        (r["weight"].clone(), r["file_weight"].clone()),
        (json!(0.0), json!(100.0))
    );
    assert_eq!(r["override"]["weight"], 0.0);
    assert!(r["override"]["set_at"].as_str().unwrap().ends_with('Z'));
    for _ in 0..20 {
        assert_eq!(served_by(&checkout, &[]).await, "legacy");
    }
    assert_eq!(
        metric(
            proxy.admin,
            r#"strangler_route_new_weight{route="checkout"}"#
        )
        .await,
        0.0
    );

    // Kept across a reload, and shown by /config next to the file's value.
    reload(&proxy, &format!("{text}\n# edited\n")).await;
    assert_eq!(served_by(&checkout, &[]).await, "legacy");
    let config = get(&proxy.admin_url("/config")).await.json();
    assert_eq!(config["overrides"]["routes"]["checkout"]["weight"], 0.0);
    assert_eq!(
        config["overrides"]["routes"]["checkout"]["file_weight"],
        100.0
    );

    // DELETE restores the file's weight.
    let answer = delete(&set).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["override"], Value::Null);
    assert_eq!(served_by(&checkout, &[]).await, "new");

    // Bad bodies are 400, unknown names 404, other methods 405.
    for body in [
        r#"{"weight": 101}"#,
        r#"{"weight": "x"}"#,
        "not json",
        r#"{"weight": 1, "extra": 2}"#,
        r#"{"weight": 1.234}"#,
        "",
    ] {
        let answer = post_json(&set, body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        assert!(answer.json()["error"].is_string());
    }
    assert_eq!(served_by(&checkout, &[]).await, "new");
    assert_eq!(
        post_json(
            &proxy.admin_url("/routes/nope/override"),
            r#"{"weight": 0}"#
        )
        .await
        .status,
        404
    );
    assert_eq!(get(&set).await.status, 405);

    // A flag override replaces the flag's value on every route reading it.
    let search = proxy.url("/search");
    let flag = proxy.admin_url("/flags/new_search");
    assert_eq!(served_by(&search, &[]).await, "new");
    let answer = post_json(&flag, r#"{"value": false}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["value"], false);
    assert_eq!(answer.json()["file_value"], true);
    assert_eq!(served_by(&search, &[]).await, "legacy");
    let r = route(&proxy.admin_url("/routes"), "search").await;
    assert_eq!(r["flag"], json!({"name": "new_search", "value": false}));
    assert_eq!(
        r["override"]["flag"],
        json!({"name": "new_search", "value": false})
    );
    assert_eq!(post_json(&flag, r#"{"value": 1}"#).await.status, 400);
    assert_eq!(
        post_json(&proxy.admin_url("/flags/nope"), r#"{"value": true}"#)
            .await
            .status,
        404
    );
    assert_eq!(delete(&flag).await.status, 200);
    assert_eq!(served_by(&search, &[]).await, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_force_header_reaches_either_side_and_is_not_forwarded() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let rest = "[flags]\nnew_auth = false\n\
                [[routes]]\npath = \"/auth\"\nflag = \"new_auth\"\n";
    let text = support::config_with_server(
        "force_header = \"x-strangler-force\"",
        &legacy.url(),
        &new.url(),
        rest,
    );
    let proxy = TestProxy::start(&text).await;
    let url = proxy.url("/auth/login");
    assert_eq!(served_by(&url, &[]).await, "legacy");
    assert_eq!(
        served_by(&url, &[("X-Strangler-Force", "NEW")]).await,
        "new"
    );
    assert!(new.last().headers.get("x-strangler-force").is_none());
    assert_eq!(
        served_by(&url, &[("x-strangler-force", "maybe")]).await,
        "legacy"
    );
    assert!(legacy.last().headers.get("x-strangler-force").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_file_keeps_trips_and_overrides_across_a_restart() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_status("new", 503).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.json");
    let server = format!("state_file = \"{}\"", state.display());
    let rest = format!(
        "[backends.legacy]\nurl = \"{}\"\n[backends.new]\nurl = \"{}\"\n\
         [backends.new.outlier]\nconsecutive_failures = 0\n{}\
         [[routes]]\nname = \"search\"\npath = \"/search\"\nweight = 100\n",
        legacy.url(),
        new.url(),
        checkout(100, FAST_TRIP)
    );
    let first = Binary::start(&server, &rest).await;
    for _ in 0..10 {
        get(&first.url("/checkout")).await;
    }
    let answer = post_json(
        &first.admin_url("/routes/search/override"),
        r#"{"weight": 0}"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    eventually(
        WITHIN,
        "the state file holds the trip and the override",
        || {
            let state = state.clone();
            async move {
                let text = std::fs::read_to_string(&state).unwrap_or_default();
                text.contains("\"trip\"") && text.contains("\"override\"")
            }
        },
    )
    .await;
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["routes"]["search"]["override"]["weight"], 0.0);
    first.signal("TERM");
    drop(first);

    let second = Binary::start(&server, &rest).await;
    let routes_url = second.admin_url("/routes");
    let r = route(&routes_url, "checkout").await;
    assert_eq!(r["rollback"]["state"], "tripped", "{r}");
    assert_eq!(
        r["rollback"]["reason"],
        "error_rate 100% over 60s, 10 attempts > 50%"
    );
    assert_eq!(
        route(&routes_url, "search").await["override"]["weight"],
        0.0
    );
    let before = new.count();
    assert_eq!(served_by(&second.url("/checkout"), &[]).await, "legacy");
    assert_eq!(served_by(&second.url("/search"), &[]).await, "legacy");
    assert_eq!(new.count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_logged_and_the_proxy_serves() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.json");
    std::fs::write(&state, "{\"version\": 1, \"routes\": [oops").unwrap();
    let server = format!("state_file = \"{}\"", state.display());
    let rest = format!(
        "[backends.legacy]\nurl = \"{}\"\n[backends.new]\nurl = \"{}\"\n{}",
        legacy.url(),
        new.url(),
        checkout(100, FAST_TRIP)
    );
    let proxy = Binary::start(&server, &rest).await;
    assert_eq!(served_by(&proxy.url("/checkout"), &[]).await, "new");
    let log = proxy.log();
    assert!(
        log.contains("state_file")
            && log.contains("not a valid state file")
            && log.contains("ERROR"),
        "{log}"
    );
    // The next change replaces the corrupt file with a valid one.
    let answer = post_json(
        &proxy.admin_url("/routes/checkout/override"),
        r#"{"weight": 50}"#,
    )
    .await;
    assert_eq!(answer.status, 200);
    eventually(WITHIN, "the state file is rewritten", || {
        let state = state.clone();
        async move {
            std::fs::read_to_string(&state)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["routes"]["checkout"]["override"]["weight"] == 50.0)
        }
    })
    .await;
}
