//! End-to-end routing (SPEC §3.1, §3.2, §6): real backends on 127.0.0.1,
//! decisions read from `x-strangler-*` and from what each backend recorded.
//!
//! The proxy is driven two ways. Every test whose subject is the decision
//! (weights, flags, sticky keys from a header, cookie or query, cohorts,
//! matching, path normalisation, rewrites, backend path prefixes, debug
//! headers) sends its requests straight into the client-facing service with
//! `tower::ServiceExt::oneshot` ([`TestService`]): no port, no client, so the
//! proxy reads as a function from request to answer. What they assert depends
//! on the request (and the proxy's random draw), never on the connection it
//! came in on, so nothing is lost; the backends stay real, and the counting
//! tests still send from concurrent tasks, each on a clone of the service.
//!
//! `sticky_ip_keeps_one_client_on_one_side` stays on the wire ([`TestProxy`]):
//! its key is the client address, which only the listener puts on a request
//! (from the real peer of each connection).
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::collections::{HashMap, HashSet};
use std::future::Future;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::{
    Answer, TestBackend, TestProxy, TestService, client, config_with, config_with_server, get_with,
    request, send_with,
};

/// A legacy and a new backend, and the proxy's service in front of them
/// configured with `rest`.
async fn start(rest: &str) -> (TestBackend, TestBackend, TestService) {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let service = TestService::new(&config_with(&legacy.url(), &new.url(), rest));
    (legacy, new, service)
}

/// [`start`], with the proxy listening on a port instead.
async fn start_proxy(rest: &str) -> (TestBackend, TestBackend, TestProxy) {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), rest)).await;
    (legacy, new, proxy)
}

/// One route `users` on `/users`, weight 50, with `sticky` as its key.
fn users_route(sticky: &str) -> String {
    format!("[[routes]]\nname = \"users\"\npath = \"/users\"\nweight = 50\nsticky = \"{sticky}\"\n")
}

/// The backend that answered, per `x-strangler-backend`, checked against the body
/// (each test backend answers with its own name).
fn served_by(answer: &Answer) -> String {
    assert_eq!(answer.status, 200, "{answer:?}");
    let backend = answer
        .header("x-strangler-backend")
        .unwrap_or_else(|| panic!("no x-strangler-backend: {answer:?}"))
        .to_owned();
    assert_eq!(answer.text(), backend, "header and body disagree");
    backend
}

fn route_of(answer: &Answer) -> &str {
    answer
        .header("x-strangler-route")
        .unwrap_or_else(|| panic!("no x-strangler-route: {answer:?}"))
}

/// Sends `n` GETs to `path` through `service` from `tasks` concurrent tasks;
/// returns how many were answered by `new`.
async fn count_new(service: &TestService, path: &str, n: usize, tasks: usize) -> usize {
    let service = service.clone();
    let path = path.to_owned();
    count_new_by(n, tasks, move || service.get(&path)).await
}

/// Sends `n` GETs to `url` over `tasks` concurrent connections; returns how many
/// were answered by `new`.
async fn count_new_over_wire(url: &str, n: usize, tasks: usize) -> usize {
    let client = client();
    let url = url.to_owned();
    count_new_by(n, tasks, move || {
        let client = client.clone();
        let req = Request::get(&url).body(Full::default()).unwrap();
        async move { send_with(&client, req).await }
    })
    .await
}

/// Awaits `n` answers made by `send`, from `tasks` concurrent tasks; returns
/// how many were answered by `new`.
async fn count_new_by<F, Fut>(n: usize, tasks: usize, send: F) -> usize
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Answer> + Send,
{
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let send = send.clone();
        let share = n / tasks + usize::from(t < n % tasks);
        set.spawn(async move {
            let mut new = 0;
            for _ in 0..share {
                if served_by(&send().await) == "new" {
                    new += 1;
                }
            }
            new
        });
    }
    let mut new = 0;
    while let Some(done) = set.join_next().await {
        new += done.unwrap();
    }
    new
}

// === weights ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_30_sends_about_30_percent_to_new() {
    let (legacy, new, service) = start(
        r#"
[[routes]]
name = "w"
path = "/w"
weight = 30
"#,
    )
    .await;
    const N: usize = 3000;
    let to_new = count_new(&service, "/w/x", N, 8).await;
    // Binomial(N, 0.3): allow 5 standard deviations (about ±4.2% at N = 3000).
    let p = 0.3;
    let mean = N as f64 * p;
    let tolerance = 5.0 * (N as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (to_new as f64 - mean).abs() <= tolerance,
        "{to_new} of {N} to new, want {mean} ± {tolerance:.0}"
    );
    assert_eq!(
        new.count(),
        to_new,
        "new's record disagrees with the headers"
    );
    assert_eq!(
        legacy.count(),
        N - to_new,
        "legacy's record disagrees with the headers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_0_is_all_legacy_and_100_all_new() {
    let (legacy, new, service) = start(
        r#"
[[routes]]
name = "zero"
path = "/zero"
weight = 0

[[routes]]
name = "all"
path = "/all"
weight = 100
"#,
    )
    .await;
    const N: usize = 300;
    assert_eq!(count_new(&service, "/zero", N, 4).await, 0);
    assert_eq!((legacy.count(), new.count()), (N, 0));
    assert_eq!(count_new(&service, "/all/x", N, 4).await, N);
    assert_eq!((legacy.count(), new.count()), (N, N));
    let answer = service.get("/all").await;
    assert_eq!(route_of(&answer), "all");
}

// === sticky ===

/// 200 users each send 5 requests made by `make(user)`; every user must always
/// land on the same backend, the backends' records must agree, and the share of
/// users on new at weight 50 must be plausible. `key_in_seen` finds the user in
/// what a backend recorded.
async fn check_sticky_users(
    service: &TestService,
    legacy: &TestBackend,
    new: &TestBackend,
    make: impl Fn(usize) -> Request<Full<Bytes>>,
    key_in_seen: impl Fn(&support::Seen) -> String,
) {
    const USERS: usize = 200;
    const PER_USER: usize = 5;
    let mut side: HashMap<String, String> = HashMap::new();
    for round in 0..PER_USER {
        for user in 0..USERS {
            let backend = served_by(&service.send(make(user)).await);
            let key = format!("user-{user}");
            match side.get(&key) {
                None => {
                    assert_eq!(round, 0);
                    side.insert(key, backend);
                }
                Some(first) => assert_eq!(*first, backend, "{key} moved on request {round}"),
            }
        }
    }
    // What each backend saw: every user on exactly one of them, all 5 times.
    let mut seen_on: HashMap<String, HashSet<&str>> = HashMap::new();
    for (name, backend) in [("legacy", legacy), ("new", new)] {
        for seen in &backend.seen.all() {
            seen_on.entry(key_in_seen(seen)).or_default().insert(name);
        }
    }
    assert_eq!(seen_on.len(), USERS);
    for (key, sides) in &seen_on {
        assert_eq!(sides.len(), 1, "{key} reached both backends");
        assert!(
            sides.contains(side[key].as_str()),
            "{key}: header and backend disagree"
        );
    }
    assert_eq!(legacy.count() + new.count(), USERS * PER_USER);
    let on_new = side.values().filter(|b| *b == "new").count();
    assert!(
        (USERS * 30 / 100..=USERS * 70 / 100).contains(&on_new),
        "{on_new} of {USERS} users on new at weight 50"
    );
    assert_eq!(new.count(), on_new * PER_USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_header_keeps_each_user_on_one_side() {
    let (legacy, new, service) = start(&users_route("header:x-user-id")).await;
    check_sticky_users(
        &service,
        &legacy,
        &new,
        |user| {
            request("GET", "/users/me")
                .header("x-user-id", format!("user-{user}"))
                .body(Full::default())
                .unwrap()
        },
        |seen| seen.headers["x-user-id"].to_str().unwrap().to_owned(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_each_user_on_one_side() {
    let (legacy, new, service) = start(&users_route("cookie:sid")).await;
    check_sticky_users(
        &service,
        &legacy,
        &new,
        |user| {
            request("GET", "/users/me")
                .header("cookie", format!("theme=dark; sid=user-{user}; lang=en"))
                .body(Full::default())
                .unwrap()
        },
        |seen| {
            let cookie = seen.headers["cookie"].to_str().unwrap();
            cookie
                .split("; ")
                .find_map(|c| c.strip_prefix("sid="))
                .unwrap()
                .to_owned()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_query_keeps_each_user_on_one_side() {
    let (legacy, new, service) = start(&users_route("query:uid")).await;
    check_sticky_users(
        &service,
        &legacy,
        &new,
        |user| {
            request("GET", &format!("/users/me?a=1&uid=user-{user}&b=2"))
                .body(Full::default())
                .unwrap()
        },
        |seen| {
            let query = seen.uri.split_once('?').unwrap().1;
            query
                .split('&')
                .find_map(|p| p.strip_prefix("uid="))
                .unwrap()
                .to_owned()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_ip_keeps_one_client_on_one_side() {
    let (legacy, new, proxy) = start_proxy(&users_route("ip")).await;
    // Every request comes from 127.0.0.1, over several connections: at random
    // (weight 50) 100 requests would all land on one side with probability 2^-99.
    const N: usize = 100;
    let to_new = count_new_over_wire(&proxy.url("/users/me"), N, 4).await;
    assert!(to_new == 0 || to_new == N, "{to_new} of {N} on new");
    assert_eq!(legacy.count() + new.count(), N);
    // A header that other routes could key on changes nothing.
    let answer = get_with(&proxy.url("/users/me"), &[("x-user-id", "someone")]).await;
    assert_eq!(served_by(&answer) == "new", to_new == N);
}

// === cohort ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_of_one_cohort_put_each_user_on_the_same_side() {
    let (_legacy, _new, service) = start(
        r#"
[[routes]]
name = "a"
path = "/a"
weight = 50
sticky = "header:x-user-id"
cohort = "shared"

[[routes]]
name = "b"
path = "/b"
weight = 50
sticky = "header:x-user-id"
cohort = "shared"

[[routes]]
name = "c"
path = "/c"
weight = 50
sticky = "header:x-user-id"

[[routes]]
name = "d"
path = "/d"
weight = 50
sticky = "header:x-user-id"
"#,
    )
    .await;
    let side = |path: &'static str, user: usize| {
        let req = request("GET", path)
            .header("x-user-id", format!("user-{user}"))
            .body(Full::default())
            .unwrap();
        let answer = service.send(req);
        async move { served_by(&answer.await) }
    };
    const USERS: usize = 200;
    let mut on_new = 0;
    let mut own_cohorts_differ = 0;
    for user in 0..USERS {
        let a = side("/a", user).await;
        let b = side("/b", user).await;
        assert_eq!(a, b, "user-{user} split across one cohort");
        on_new += usize::from(a == "new");
        // Control: routes with their own cohorts (their names) bucket independently.
        if side("/c", user).await != side("/d", user).await {
            own_cohorts_differ += 1;
        }
    }
    assert!((60..=140).contains(&on_new), "{on_new} of {USERS} on new");
    assert!(
        own_cohorts_differ > USERS / 5,
        "routes without a shared cohort agree for {} of {USERS} users: cohort seems ignored",
        USERS - own_cohorts_differ
    );
}

// === flags ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_gate_new() {
    let (legacy, new, service) = start(
        r#"
[flags]
off = false
on = true

[[routes]]
name = "off"
path = "/off"
flag = "off"
weight = 100

[[routes]]
name = "on"
path = "/on"
flag = "on"
"#,
    )
    .await;
    const N: usize = 50;
    assert_eq!(
        count_new(&service, "/off", N, 2).await,
        0,
        "flag false must win over weight 100"
    );
    assert_eq!((legacy.count(), new.count()), (N, 0));
    assert_eq!(
        count_new(&service, "/on", N, 2).await,
        N,
        "flag true, weight omitted: 100"
    );
    assert_eq!((legacy.count(), new.count()), (N, N));
    assert_eq!(route_of(&service.get("/off/x").await), "off");
}

// === matching ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_prefix_wins_on_segment_boundaries() {
    let (legacy, new, service) = start(
        r#"
[[routes]]
name = "auth"
path = "/api/auth"
weight = 100

[[routes]]
name = "login"
path = "/api/auth/login"
weight = 0
"#,
    )
    .await;
    let cases = [
        ("/api/auth", "auth", "new"),
        ("/api/auth/", "auth", "new"),
        ("/api/auth/logout", "auth", "new"),
        ("/api/auth/login", "login", "legacy"),
        ("/api/auth/login/x", "login", "legacy"),
        ("/api/auth/loginx", "auth", "new"),
        ("/api/authz", "_default", "legacy"),
        ("/api", "_default", "legacy"),
        ("/", "_default", "legacy"),
    ];
    for (path, route, backend) in cases {
        let answer = service.get(path).await;
        assert_eq!(route_of(&answer), route, "{path}");
        assert_eq!(served_by(&answer), backend, "{path}");
        let last = if backend == "new" {
            new.last()
        } else {
            legacy.last()
        };
        assert_eq!(last.uri, path, "{path} forwarded as another path");
    }
}

/// Method, path, request headers, expected route, expected backend.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_select_routes_and_ties_go_by_file_order() {
    let (_legacy, _new, service) = start(
        r#"
[[routes]]
name = "posts"
path = "/m"
methods = ["POST", "PUT"]
weight = 100

[[routes]]
name = "hosts"
path = "/h"
host = "*.example.com"
weight = 100

[[routes]]
name = "beta"
path = "/t"
headers = { "x-tenant" = "beta" }
weight = 100

[[routes]]
name = "t-rest"
path = "/t"
weight = 0

[[routes]]
name = "by-method"
path = "/order"
methods = ["GET"]
weight = 100

[[routes]]
name = "by-header"
path = "/order"
headers = { "x-tenant" = "beta" }
weight = 0

[[routes]]
name = "by-header-2"
path = "/order2"
headers = { "x-tenant" = "beta" }
weight = 0

[[routes]]
name = "by-method-2"
path = "/order2"
methods = ["GET"]
weight = 100
"#,
    )
    .await;
    let ask = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut builder = request(method, path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        service.send(builder.body(Full::default()).unwrap())
    };
    let cases: &[Case] = &[
        // Methods.
        ("POST", "/m", &[], "posts", "new"),
        ("PUT", "/m/x", &[], "posts", "new"),
        ("GET", "/m", &[], "_default", "legacy"),
        // Host, by the Host header: a wildcard needs a label before the suffix;
        // the port and case do not matter.
        ("GET", "/h", &[("host", "api.example.com")], "hosts", "new"),
        (
            "GET",
            "/h",
            &[("host", "A.B.Example.COM:8080")],
            "hosts",
            "new",
        ),
        (
            "GET",
            "/h",
            &[("host", "example.com")],
            "_default",
            "legacy",
        ),
        (
            "GET",
            "/h",
            &[("host", "api.example.org")],
            "_default",
            "legacy",
        ),
        // Headers: exact value, name case-insensitive; otherwise the next route
        // with the same path.
        ("GET", "/t", &[("X-Tenant", "beta")], "beta", "new"),
        ("GET", "/t", &[("x-tenant", "Beta")], "t-rest", "legacy"),
        ("GET", "/t", &[], "t-rest", "legacy"),
        // Both routes' conditions hold: the first in file order wins.
        ("GET", "/order", &[("x-tenant", "beta")], "by-method", "new"),
        (
            "POST",
            "/order",
            &[("x-tenant", "beta")],
            "by-header",
            "legacy",
        ),
        (
            "GET",
            "/order2",
            &[("x-tenant", "beta")],
            "by-header-2",
            "legacy",
        ),
        ("GET", "/order2", &[], "by-method-2", "new"),
        ("POST", "/order2", &[], "_default", "legacy"),
    ];
    for (method, path, headers, route, backend) in cases {
        let answer = ask(method, path, headers).await;
        let what = format!("{method} {path} {headers:?}");
        assert_eq!(route_of(&answer), *route, "{what}");
        assert_eq!(served_by(&answer), *backend, "{what}");
    }
}

// === paths ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_are_normalised_before_matching_and_forwarding() {
    let (legacy, new, service) = start(
        r#"
[[routes]]
name = "auth"
path = "/api/auth"
weight = 100
"#,
    )
    .await;
    let answer = service.get("/api/./auth/../auth//login?next=/a/../b").await;
    assert_eq!(route_of(&answer), "auth");
    assert_eq!(served_by(&answer), "new");
    assert_eq!(new.last().uri, "/api/auth/login?next=/a/../b");

    let answer = service.get("/api/%61uth/%2e%2E/auth/x").await;
    assert_eq!(route_of(&answer), "auth");
    assert_eq!(new.last().uri, "/api/auth/x");

    // `%2F` is not a separator: it stays encoded and does not split a segment.
    let answer = service.get("/api/auth/a%2Fb/c").await;
    assert_eq!(route_of(&answer), "auth");
    assert_eq!(new.last().uri, "/api/auth/a%2Fb/c");
    let answer = service.get("/api/auth%2Flogin").await;
    assert_eq!(route_of(&answer), "_default");
    assert_eq!(served_by(&answer), "legacy");
    assert_eq!(legacy.last().uri, "/api/auth%2Flogin");

    // Dot-segments cannot climb above the root into a route.
    let answer = service.get("/../../api/auth").await;
    assert_eq!(route_of(&answer), "auth");
    assert_eq!(new.last().uri, "/api/auth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_applies_to_new_only_and_keeps_the_query() {
    let (legacy, new, service) = start(
        r#"
[[routes]]
name = "search"
path = "/search"
weight = 100
rewrite = "/v2/search"

[[routes]]
name = "old"
path = "/old"
weight = 0
rewrite = "/v2/old"
"#,
    )
    .await;
    assert_eq!(
        served_by(&service.get("/search/items?q=a%20b&n=1").await),
        "new"
    );
    assert_eq!(new.last().uri, "/v2/search/items?q=a%20b&n=1");
    assert_eq!(served_by(&service.get("/search").await), "new");
    assert_eq!(new.last().uri, "/v2/search");
    assert_eq!(served_by(&service.get("/old/items?q=1").await), "legacy");
    assert_eq!(legacy.last().uri, "/old/items?q=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_url_path_is_prefixed() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let service = TestService::new(&config_with(
        &format!("{}/base", legacy.url()),
        &format!("{}/base/", new.url()),
        r#"
[[routes]]
name = "search"
path = "/search"
weight = 100
rewrite = "/v2/search"
"#,
    ));
    assert_eq!(served_by(&service.get("/search/items?q=1").await), "new");
    assert_eq!(new.last().uri, "/base/v2/search/items?q=1");
    assert_eq!(served_by(&service.get("/other/./x?a=b").await), "legacy");
    assert_eq!(legacy.last().uri, "/base/other/x?a=b");
    assert_eq!(served_by(&service.get("/").await), "legacy");
    assert_eq!(legacy.last().uri, "/base/");
}

// === debug headers ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_headers_name_route_and_backend() {
    let (_legacy, _new, service) = start(
        r#"
[[routes]]
name = "api"
path = "/api"
weight = 100
"#,
    )
    .await;
    let answer = service.get("/api/x").await;
    assert_eq!(answer.header("x-strangler-route"), Some("api"));
    assert_eq!(answer.header("x-strangler-backend"), Some("new"));
    assert_eq!(answer.header("x-strangler-fallback"), None);
    let answer = service.get("/x").await;
    assert_eq!(answer.header("x-strangler-route"), Some("_default"));
    assert_eq!(answer.header("x-strangler-backend"), Some("legacy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_headers_can_be_turned_off() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::start("new").await;
    let route = "[[routes]]\nname = \"api\"\npath = \"/api\"\nweight = 100\n";
    let config = config_with_server("debug_headers = false", &legacy.url(), &new.url(), route);
    let service = TestService::new(&config);
    for (path, body) in [("/api/x", "new"), ("/x", "legacy")] {
        let answer = service.get(path).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), body);
        let strangler: Vec<_> = answer
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-strangler-"))
            .collect();
        assert!(strangler.is_empty(), "{path}: {strangler:?}");
    }
    assert_eq!((legacy.count(), new.count()), (1, 1));
}

// === the sticky cookie (SPEC §3.2, v2) ===

/// `set_cookie = true`: a request without the cookie gets a fresh random key
/// in a `Set-Cookie`, and its side is the one that key's bucket gives; sent
/// back, the key keeps the user on that side. A request with the cookie gets
/// no new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_gives_anonymous_users_a_sticky_key() {
    let route = "[[routes]]\nname = \"users\"\npath = \"/users\"\nweight = 25\nsticky = \"cookie:sid\"\nset_cookie = true\ncohort = \"people\"\n";
    let (_legacy, _new, service) = start(route).await;
    let mut keys = HashSet::new();
    let mut sides = HashSet::new();
    for _ in 0..40 {
        let answer = service.get("/users/me").await;
        let side = served_by(&answer);
        let cookie = answer
            .header("set-cookie")
            .unwrap_or_else(|| panic!("no set-cookie: {answer:?}"))
            .to_owned();
        let (pair, attributes) = cookie.split_once("; ").unwrap();
        assert_eq!(
            attributes,
            "Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
        );
        let key = pair.strip_prefix("sid=").unwrap().to_owned();
        // At least 64 random bits, URL-safe.
        assert!(key.len() >= 16, "{key}");
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
        // The side is the key's bucket at 25%.
        let bucket = strangler::route::sticky_bucket("people", key.as_bytes());
        let expected = if bucket < 2500 { "new" } else { "legacy" };
        assert_eq!(side, expected, "key {key}, bucket {bucket}");
        // Sent back, the key keeps its side and gets no new cookie.
        for _ in 0..3 {
            let again = service
                .send(
                    request("GET", "/users/other")
                        .header("cookie", format!("sid={key}"))
                        .body(Full::default())
                        .unwrap(),
                )
                .await;
            assert_eq!(served_by(&again), expected);
            assert!(again.header("set-cookie").is_none(), "{again:?}");
        }
        sides.insert(side);
        assert!(keys.insert(key), "a key was issued twice");
    }
    // 40 fresh keys at 25%: both sides (a miss has odds 0.75^40 + 0.25^40).
    assert_eq!(sides.len(), 2, "{sides:?}");

    // Without set_cookie, no cookie is set.
    let (_l, _n, service) = start(&users_route("cookie:sid")).await;
    let answer = service.get("/users/me").await;
    assert!(answer.header("set-cookie").is_none(), "{answer:?}");
}

#[test]
fn set_cookie_needs_a_cookie_sticky_key() {
    let text = "[backends.legacy]\nurl = \"http://127.0.0.1:1\"\n[backends.new]\nurl = \"http://127.0.0.1:2\"\n[[routes]]\npath = \"/a\"\nweight = 10\nsticky = \"header:x-user\"\nset_cookie = true\n";
    let errors = strangler::config::parse(text, std::path::Path::new("t.toml")).unwrap_err();
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!((errors.errors[0].line, errors.errors[0].column), (9, 14));
    assert!(
        errors.errors[0]
            .message
            .contains("set_cookie needs a cookie sticky key")
    );
}
