//! Parser tests: valid files, defaults, and one test per validation rule with the
//! exact position of the error.

use std::path::Path;
use std::time::Duration;

use http::Method;

use super::{Config, ConfigError, FallbackConfig, HostMatch, MethodSet, Protocol, Sticky, parse};

/// Two backends and nothing else: the smallest useful file.
const BACKENDS: &str = "\
[backends.legacy]
url = \"http://127.0.0.1:3001\"

[backends.new]
url = \"http://127.0.0.1:3002\"
";

fn ok(text: &str) -> Config {
    match parse(text, Path::new("test.toml")) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text, Path::new("test.toml")) {
        Ok(_) => panic!("expected errors, the config is valid:\n{text}"),
        Err(e) => e.errors,
    }
}

/// The only error of `text`, which must have exactly one.
fn one_error(text: &str) -> ConfigError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    errs.into_iter().next().unwrap()
}

/// `BACKENDS` followed by `rest`; the first line of `rest` is line 6.
fn with_backends(rest: &str) -> String {
    format!("{BACKENDS}{rest}")
}

fn assert_error(e: &ConfigError, line: usize, column: usize, message_part: &str) {
    assert!(
        e.message.contains(message_part),
        "message {:?} lacks {message_part:?}",
        e.message
    );
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "position of {:?}",
        e.message
    );
    assert!(
        e.hint.as_deref().is_some_and(|h| !h.is_empty()),
        "no hint for {:?}",
        e.message
    );
}

// === Valid files ===

#[test]
fn example_file_parses() {
    let c = ok(include_str!("../../config/strangler.toml"));
    assert_eq!(c.backends.len(), 2);
    assert_eq!(c.routes.len(), 4);
    assert_eq!(c.server.tls, None);
    let auth = &c.routes[0];
    assert_eq!(auth.name, "auth");
    assert_eq!(auth.rewrite.as_deref(), Some("/v2/auth"));
    assert_eq!(c.routes[3].weight_bp, 1250);
    assert_eq!(c.routes[3].fallback.replay_methods, MethodSet::Any);
    assert_eq!(
        c.flags,
        vec![("new_auth".into(), true), ("new_upload".into(), false)]
    );
}

#[test]
fn full_example_values() {
    let text = r#"
[server]
listen = "127.0.0.1:8000"
admin_listen = "[::1]:9000"
admin_token_env = "ADMIN_TOKEN"
debug_headers = false
max_request_body = "64KiB"
header_read_timeout = "500ms"
max_connections = 5
workers = 2
shutdown_timeout = "1m"

[server.tls]
cert_file = "/tls/cert.pem"
key_file = "/tls/key.pem"

[defaults]
legacy = "old"
new = "shiny"

[backends.old]
url = "https://legacy.internal:8443/base/"
connect_timeout = "1s"
timeout = "3s"
preserve_host = false
protocol = "http2"
ca_file = "/tls/ca.pem"
tls_server_name = "legacy.example.com"
tls_insecure_skip_verify = true

[backends.shiny]
url = "http://127.0.0.1:3002"

[flags]
zeta = true
alpha = false

[[routes]]
name = "users"
path = "/API//users/./list/"
methods = ["get", "POST"]
host = "API.Example.com:8080"
headers = { "X-Tenant" = "beta" }
flag = "zeta"
weight = 12.5
sticky = "header:X-User-Id"
cohort = "people"
rewrite = "/v2/users/"

[[routes]]
path = "/wild"
host = "*.Example.com"
sticky = "ip"
"#;
    let c = ok(text);
    let s = &c.server;
    assert_eq!(s.listen, "127.0.0.1:8000".parse().unwrap());
    assert_eq!(s.admin_listen, "[::1]:9000".parse().unwrap());
    assert_eq!(s.admin_token_env.as_deref(), Some("ADMIN_TOKEN"));
    assert!(!s.debug_headers);
    assert_eq!(s.max_request_body, 64 * 1024);
    assert_eq!(s.header_read_timeout, Duration::from_millis(500));
    assert_eq!((s.max_connections, s.workers), (5, 2));
    assert_eq!(s.shutdown_timeout, Duration::from_secs(60));
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, Path::new("/tls/cert.pem"));
    assert_eq!(tls.key_file, Path::new("/tls/key.pem"));

    let old = &c.backends[0];
    assert_eq!(old.name, "old");
    assert_eq!(old.url, "https://legacy.internal:8443/base/");
    assert_eq!(old.scheme.as_str(), "https");
    assert_eq!(old.authority.as_str(), "legacy.internal:8443");
    assert_eq!(old.path_prefix, "/base");
    assert_eq!(old.connect_timeout, Duration::from_secs(1));
    assert_eq!(old.timeout, Duration::from_secs(3));
    assert!(!old.preserve_host);
    assert_eq!(old.protocol, Protocol::Http2);
    assert_eq!(old.ca_file.as_deref(), Some(Path::new("/tls/ca.pem")));
    assert_eq!(old.tls_server_name.as_deref(), Some("legacy.example.com"));
    assert!(old.tls_insecure_skip_verify);
    let shiny = &c.backends[1];
    assert_eq!(
        (shiny.authority.as_str(), shiny.path_prefix.as_str()),
        ("127.0.0.1:3002", "")
    );
    assert_eq!(c.default_legacy.index(), 0);

    // Flags keep file order, not key order.
    assert_eq!(
        c.flags,
        vec![("zeta".into(), true), ("alpha".into(), false)]
    );

    let r = &c.routes[0];
    assert_eq!(r.name, "users");
    assert_eq!(r.path, "/API/users/list");
    assert_eq!(r.methods, Some(vec![Method::GET, Method::POST]));
    assert_eq!(r.host, Some(HostMatch::Exact("api.example.com".into())));
    assert_eq!(r.headers.len(), 1);
    assert_eq!(r.headers[0].0.as_str(), "x-tenant");
    assert_eq!(r.headers[0].1, "beta");
    assert_eq!(r.flag, Some(("zeta".into(), true)));
    assert_eq!(r.weight_bp, 1250);
    assert_eq!(
        r.sticky,
        Some(Sticky::Header(http::HeaderName::from_static("x-user-id")))
    );
    assert_eq!(r.cohort, "people");
    assert_eq!(r.rewrite.as_deref(), Some("/v2/users"));
    assert_eq!((r.legacy.index(), r.new.index()), (0, 1));
    assert_eq!(r.line, 38);

    let w = &c.routes[1];
    assert_eq!(w.host, Some(HostMatch::Suffix(".example.com".into())));
    assert_eq!(w.sticky, Some(Sticky::Ip));
    assert_eq!(w.line, 50);
}

#[test]
fn defaults() {
    let c = ok(&with_backends("[[routes]]\npath = \"/a/\"\n"));
    let s = &c.server;
    assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.admin_listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(s.admin_token_env, None);
    assert!(s.debug_headers);
    assert_eq!(s.max_request_body, 10 * 1024 * 1024);
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!((s.max_connections, s.workers), (10_000, 0));
    assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(s.tls, None);

    let b = &c.backends[0];
    assert_eq!(b.connect_timeout, Duration::from_secs(2));
    assert_eq!(b.timeout, Duration::from_secs(30));
    assert!(b.preserve_host);
    assert_eq!(b.protocol, Protocol::Auto);
    assert_eq!(
        (b.ca_file.as_ref(), b.tls_server_name.as_ref()),
        (None, None)
    );
    assert!(!b.tls_insecure_skip_verify);

    let r = &c.routes[0];
    assert_eq!(
        (r.name.as_str(), r.path.as_str(), r.cohort.as_str()),
        ("/a", "/a", "/a")
    );
    assert_eq!(r.methods, None);
    assert_eq!(r.host, None);
    assert!(r.headers.is_empty());
    assert_eq!(r.flag, None);
    assert_eq!(r.weight_bp, 0);
    assert_eq!(r.sticky, None);
    assert_eq!(r.rewrite, None);
    assert_eq!((r.legacy.index(), r.new.index()), (0, 1));
    assert_eq!(r.fallback, FallbackConfig::default());
    assert_eq!(r.line, 6);
    assert_eq!(c.version.len(), 64);
    assert_eq!(c.path, Path::new("test.toml"));
}

#[test]
fn weight_defaults_to_100_with_a_flag() {
    let c = ok(&with_backends(
        "[flags]\nf = false\n[[routes]]\npath = \"/a\"\nflag = \"f\"\n",
    ));
    assert_eq!(c.routes[0].weight_bp, 10_000);
    assert_eq!(c.routes[0].flag, Some(("f".into(), false)));
    let weight = crate::route::effective_weight(
        &c.routes[0],
        std::time::SystemTime::now(),
        crate::route::RouteRuntime::default(),
    );
    assert_eq!(weight.bp, 0);
}

#[test]
fn ramp_and_rollback() {
    let c = ok(&with_backends(
        r#"
[defaults.rollback]
min_requests = 50
[[routes]]
path = "/a"
weight = 5
[routes.ramp]
steps = [10, 25.5, 50, 100]
every = "1h"
start = "2026-12-01T10:00:00+01:00"
[routes.rollback]
max_error_rate = 2.5
max_p95 = "500ms"
[[routes]]
path = "/b"
[server]
force_header = "X-Strangler-Force"
state_file = "/var/lib/strangler/state.json"
"#,
    ));
    let a = &c.routes[0];
    let ramp = a.ramp.as_ref().unwrap();
    assert_eq!(ramp.steps_bp, vec![1_000, 2_550, 5_000, 10_000]);
    assert_eq!(ramp.every, Duration::from_secs(3600));
    assert_eq!(
        ramp.start,
        humantime::parse_rfc3339("2026-12-01T09:00:00Z").unwrap()
    );
    let rollback = a.rollback.as_ref().unwrap();
    assert_eq!(rollback.min_requests, 50, "from [defaults.rollback]");
    assert_eq!(rollback.max_error_rate, 2.5);
    assert_eq!(rollback.max_p95, Some(Duration::from_millis(500)));
    assert_eq!(rollback.window, Duration::from_secs(60));
    // [defaults.rollback] alone gives every route a rollback.
    let b = c.routes[1].rollback.as_ref().unwrap();
    assert_eq!(
        (b.min_requests, b.max_error_rate, b.max_p95),
        (50, 5.0, None)
    );
    assert_eq!(c.server.force_header.as_ref().unwrap(), "x-strangler-force");
    assert_eq!(
        c.server.state_file.as_deref(),
        Some(std::path::Path::new("/var/lib/strangler/state.json"))
    );
    let plain = ok(&with_backends("[[routes]]\npath = \"/a\"\n"));
    assert!(plain.routes[0].rollback.is_none() && plain.routes[0].ramp.is_none());
    assert!(plain.server.force_header.is_none() && plain.server.state_file.is_none());
}

#[test]
fn ramp_and_rollback_errors() {
    let errs = errors(&with_backends(
        r#"
[[routes]]
path = "/a"
[routes.ramp]
steps = [50, 25, 101]
every = "0s"
start = "tomorrow"
[routes.rollback]
max_error_rate = 150
min_requests = 0
windw = "1m"
[[routes]]
path = "/b"
[routes.ramp]
steps = []
"#,
    ));
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    let has = |part: &str| {
        assert!(
            messages.iter().any(|m| m.contains(part)),
            "no error containing {part:?} in {messages:#?}"
        )
    };
    has("weight 101 is out of range");
    has("must be above zero");
    has("invalid start \"tomorrow\"");
    has("max_error_rate 150 is out of range");
    has("0 is out of range 1..=");
    has("unknown key \"windw\"");
    has("the ramp has no steps");
    has("[routes.ramp] has no every");
    has("[routes.ramp] has no start");
    // Steps in the wrong order, in a list that is otherwise valid.
    let e = one_error(&with_backends(
        "[[routes]]\npath = \"/a\"\n[routes.ramp]\nsteps = [50, 25]\nevery = \"1h\"\nstart = \"2026-12-01T09:00:00Z\"\n",
    ));
    assert_error(
        &e,
        9,
        14,
        "ramp step 2 is below the step before it (25 < 50)",
    );
}

#[test]
fn empty_admin_token_env_is_none() {
    let c = ok(&with_backends("[server]\nadmin_token_env = \"\"\n"));
    assert_eq!(c.server.admin_token_env, None);
}

#[test]
fn legacy_alone_is_valid_without_routes() {
    let c = ok("[backends.legacy]\nurl = \"http://127.0.0.1:3001\"\n");
    assert_eq!(c.backends.len(), 1);
    assert!(c.routes.is_empty());
}

#[test]
fn version_is_the_sha256_of_the_text() {
    let c = ok("[backends.legacy]\nurl = \"http://127.0.0.1:3001\"\n");
    let c2 = ok("[backends.legacy]\nurl = \"http://127.0.0.1:3001\" \n");
    assert_ne!(c.version, c2.version);
    // sha256 of the empty string, to pin the encoding (lowercase hex).
    let empty = parse("[backends.legacy]\nurl = \"http://x\"\n", Path::new("x")).unwrap();
    assert!(
        empty
            .version
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn fallback_inherits_key_by_key() {
    let text = with_backends(
        r#"
[defaults.fallback]
enabled = false
on_status = [503, 502, 503]
max_body = 2048

[[routes]]
path = "/a"

[routes.fallback]
enabled = true
replay_methods = ["*"]

[[routes]]
path = "/b"
"#,
    );
    let c = ok(&text);
    let a = &c.routes[0].fallback;
    assert!(a.enabled);
    assert_eq!(a.on_status, vec![502, 503]);
    assert_eq!(a.max_body, 2048);
    assert_eq!(a.replay_methods, MethodSet::Any);
    assert!(a.on_connect_error && a.on_timeout);
    let b = &c.routes[1].fallback;
    assert!(!b.enabled);
    assert_eq!(b.on_status, vec![502, 503]);
    assert_eq!(b.replay_methods, FallbackConfig::default().replay_methods);
}

#[test]
fn same_path_with_different_conditions_is_fine() {
    let text = with_backends(
        r#"[[routes]]
name = "beta"
path = "/a"
headers = { "x-tenant" = "beta" }
[[routes]]
name = "gamma"
path = "/a"
headers = { "x-tenant" = "gamma" }
[[routes]]
name = "rest"
path = "/a"
"#,
    );
    assert_eq!(ok(&text).routes.len(), 3);
}

#[test]
fn inline_routes_are_accepted() {
    let c = ok(&format!("routes = [{{ path = \"/x\" }}]\n{BACKENDS}"));
    assert_eq!(c.routes[0].line, 1);
}

// === Errors, one rule at a time ===

#[test]
fn syntax_error_has_its_position() {
    let errs = errors(&with_backends("[server]\nlisten = 0.0.0.0:80\n"));
    let syntax: Vec<_> = errs
        .iter()
        .filter(|e| e.message.starts_with("invalid TOML"))
        .collect();
    assert!(!syntax.is_empty(), "{errs:#?}");
    assert!(syntax.iter().all(|e| e.line == 7), "{errs:#?}");
    let errs = errors(&with_backends(
        "[server\nlisten = \"0.0.0.0:80\"\n[backends.x]\nurl = \"ftp://x\"\n",
    ));
    assert!(errs[0].message.starts_with("invalid TOML"), "{errs:#?}");
    assert_eq!(errs[0].line, 6);
    assert!(
        errs.iter()
            .any(|e| e.line == 9 && e.message.contains("ftp")),
        "{errs:#?}"
    );
}

#[test]
fn unknown_key_suggests_the_closest() {
    let e = one_error(&with_backends(
        "[flags]\nf = true\n[[routes]]\npath = \"/a\"\nflag = \"f\"\nwieght = 5\n",
    ));
    assert_error(&e, 11, 1, "unknown key \"wieght\" in [[routes]]");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"weight\"?"));
}

#[test]
fn unknown_key_lists_valid_keys_when_nothing_is_close() {
    let e = one_error(&with_backends("[server]\nbananas = 1\n"));
    assert_error(&e, 7, 1, "unknown key \"bananas\" in [server]");
    assert!(
        e.hint
            .unwrap()
            .starts_with("valid keys in [server]: listen, admin_listen")
    );
}

#[test]
fn unknown_keys_everywhere() {
    let text = "lisen = 1\n[backends.legacy]\nurl = \"http://a\"\ntimout = \"1s\"\n[defaults.fallback]\nmax_bdy = 1\n";
    let errs = errors(text);
    let found: Vec<_> = errs
        .iter()
        .map(|e| (e.line, e.hint.clone().unwrap()))
        .collect();
    let top = "valid keys in the top level: server, defaults, backends, flags, routes, control";
    let expected = [
        (1, top),
        (4, "did you mean \"timeout\"?"),
        (6, "did you mean \"max_body\"?"),
    ];
    assert_eq!(found, expected.map(|(l, h)| (l, h.to_owned())));
}

#[test]
fn wrong_types() {
    let e = one_error(&with_backends("[server]\nshutdown_timeout = 5\n"));
    assert_error(&e, 7, 20, "expected a string like \"5s\", found integer");
    assert!(e.hint.unwrap().contains("\"5s\""));
    let e = one_error(&with_backends("[server]\ndebug_headers = \"yes\"\n"));
    assert_error(&e, 7, 17, "expected true or false, found string");
    let e = one_error(&with_backends("[server]\nmax_request_body = true\n"));
    assert_error(&e, 7, 20, "found boolean");
}

#[test]
fn bad_durations_and_sizes() {
    let e = one_error(&with_backends(
        "[server]\nheader_read_timeout = \"5 parsecs\"\n",
    ));
    assert_error(&e, 7, 23, "invalid duration");
    let e = one_error(&with_backends("[server]\nmax_request_body = \"1M\"\n"));
    assert_error(&e, 7, 20, "invalid size");
    let e = one_error(&with_backends("[server]\nheader_read_timeout = \"0s\"\n"));
    assert_error(&e, 7, 23, "above zero");
}

#[test]
fn missing_route_backend() {
    let e = one_error(&with_backends("[[routes]]\npath = \"/a\"\nnew = \"nwe\"\n"));
    assert_error(&e, 8, 7, "backend \"nwe\" is not defined");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"new\"?"));
}

#[test]
fn missing_default_new_only_when_used() {
    let legacy_only = "[backends.legacy]\nurl = \"http://127.0.0.1:3001\"\n";
    ok(legacy_only);
    let text = format!("{legacy_only}[[routes]]\npath = \"/a\"\n[[routes]]\npath = \"/b\"\n");
    let e = one_error(&text);
    assert_error(&e, 3, 1, "backend \"new\"");
    // A route with its own new backend does not need the default.
    ok(&format!(
        "{legacy_only}[[routes]]\npath = \"/a\"\nnew = \"legacy\"\n"
    ));
    // An explicit defaults.new is blamed where it is written.
    let e = one_error(&format!(
        "[defaults]\nnew = \"next\"\n{legacy_only}[[routes]]\npath = \"/a\"\n"
    ));
    assert_error(&e, 2, 7, "default new backend \"next\" is not defined");
}

#[test]
fn missing_default_legacy() {
    let e = one_error("[backends.new]\nurl = \"http://127.0.0.1:3002\"\n");
    assert_error(&e, 1, 1, "no backend \"legacy\"");
    let e = one_error(&with_backends("[defaults]\nlegacy = \"old\"\n"));
    assert_error(&e, 7, 10, "default legacy backend \"old\" is not defined");
}

#[test]
fn backend_urls() {
    let cases = [
        ("ftp://x", "scheme \"ftp\""),
        ("127.0.0.1:3001", "no scheme"),
        ("http://x/?a=b", "query"),
        ("http://x/#top", "fragment"),
        ("http://u:p@x", "credentials"),
        ("http:///path", "invalid backend url"),
    ];
    for (url, message) in cases {
        let e = one_error(&format!("[backends.legacy]\nurl = \"{url}\"\n"));
        assert_error(&e, 2, 7, message);
    }
    let e = one_error("[backends.legacy]\ntimeout = \"1s\"\n");
    assert_error(&e, 1, 1, "has no url");
}

#[test]
fn backend_protocol_and_names() {
    let e = one_error(&with_backends(
        "[backends.x]\nurl = \"http://x\"\nprotocol = \"http3\"\n",
    ));
    assert_error(&e, 8, 12, "unknown protocol \"http3\"");
    let e = one_error(&with_backends(
        "[backends.x]\nurl = \"http://x\"\ntls_server_name = \"bad name\"\n",
    ));
    assert_error(&e, 8, 19, "invalid TLS server name");
}

#[test]
fn replay_methods_must_be_methods() {
    let e = one_error(&with_backends(
        "[defaults.fallback]\nreplay_methods = [\"GET\", \"NOT A METHOD\"]\n",
    ));
    assert_error(&e, 7, 26, "invalid method \"NOT A METHOD\"");
    let e = one_error(&with_backends(
        "[defaults.fallback]\nreplay_methods = [\"GET\", \"*\"]\n",
    ));
    assert_error(&e, 7, 26, "\"*\" already means every method");
    let c = ok(&with_backends(
        "[defaults.fallback]\nreplay_methods = [\"post\", \"PATCH\"]\n",
    ));
    let _ = c;
}

#[test]
fn flag_must_exist() {
    let e = one_error(&with_backends(
        "[flags]\nnew_auth = true\n[[routes]]\npath = \"/a\"\nflag = \"new_aut\"\n",
    ));
    assert_error(&e, 10, 8, "unknown flag \"new_aut\"");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"new_auth\"?"));
    let e = one_error(&with_backends("[[routes]]\npath = \"/a\"\nflag = \"x\"\n"));
    assert!(e.hint.unwrap().contains("[flags]"));
    let e = one_error(&with_backends("[flags]\nx = \"on\"\n"));
    assert_error(&e, 7, 5, "expected true or false");
}

#[test]
fn weights() {
    let route = |w: &str| with_backends(&format!("[[routes]]\npath = \"/a\"\nweight = {w}\n"));
    assert_eq!(ok(&route("12.5")).routes[0].weight_bp, 1250);
    assert_eq!(ok(&route("0.07")).routes[0].weight_bp, 7);
    assert_eq!(ok(&route("100")).routes[0].weight_bp, 10_000);
    assert_eq!(ok(&route("0")).routes[0].weight_bp, 0);
    assert_eq!(ok(&route("33.33")).routes[0].weight_bp, 3333);
    assert_error(&one_error(&route("12.345")), 8, 10, "more than 2 decimals");
    assert_error(&one_error(&route("101")), 8, 10, "out of range");
    assert_error(&one_error(&route("-1")), 8, 10, "out of range");
    assert_error(
        &one_error(&route("\"50%\"")),
        8,
        10,
        "expected a number, found string",
    );
    assert_error(&one_error(&route("nan")), 8, 10, "out of range");
}

#[test]
fn duplicate_route_names() {
    let text = with_backends(
        "[[routes]]\nname = \"a\"\npath = \"/a\"\n[[routes]]\nname = \"a\"\npath = \"/b\"\n",
    );
    let e = one_error(&text);
    assert_error(&e, 10, 8, "duplicate route name \"a\"");
    assert!(e.hint.unwrap().contains("line 6"));
}

#[test]
fn identical_path_and_conditions() {
    let text = with_backends(
        "[[routes]]\nname = \"a\"\npath = \"/a/\"\nmethods = [\"GET\", \"POST\"]\n\
         [[routes]]\nname = \"b\"\npath = \"/a\"\nmethods = [\"post\", \"GET\"]\n",
    );
    let e = one_error(&text);
    assert_error(&e, 10, 1, "same path and conditions as the route on line 6");
}

#[test]
fn sticky_forms() {
    let route = |s: &str| with_backends(&format!("[[routes]]\npath = \"/a\"\nsticky = \"{s}\"\n"));
    assert_eq!(
        ok(&route("cookie:sid")).routes[0].sticky,
        Some(Sticky::Cookie("sid".into()))
    );
    assert_eq!(
        ok(&route("query:user")).routes[0].sticky,
        Some(Sticky::Query("user".into()))
    );
    for bad in [
        "header:bad name",
        "cookie:",
        "query:",
        "ipv6",
        "body:x",
        "header:",
    ] {
        assert_error(&one_error(&route(bad)), 8, 10, "invalid sticky key");
    }
}

#[test]
fn statuses_in_range() {
    let errs = errors(&with_backends(
        "[[routes]]\npath = \"/a\"\n[routes.fallback]\non_status = [500, 600, 99]\n",
    ));
    assert_eq!(errs.len(), 2);
    assert_error(&errs[0], 9, 19, "600 is out of range 100..=599");
    assert_error(&errs[1], 9, 24, "99 is out of range 100..=599");
}

#[test]
fn paths_and_rewrites() {
    let route =
        |k: &str, v: &str| with_backends(&format!("[[routes]]\npath = \"/a\"\n{k} = \"{v}\"\n"));
    assert_error(
        &one_error(&with_backends("[[routes]]\npath = \"api\"\n")),
        7,
        8,
        "does not start with '/'",
    );
    assert_error(
        &one_error(&route("rewrite", "v2")),
        8,
        11,
        "does not start with '/'",
    );
    assert_error(
        &one_error(&with_backends("[[routes]]\npath = \"/a b\"\n")),
        7,
        8,
        "not allowed",
    );
    assert_error(
        &one_error(&with_backends("[[routes]]\npath = \"/a?x=1\"\n")),
        7,
        8,
        "not allowed",
    );
    assert_error(
        &one_error(&with_backends("[[routes]]\nname = \"x\"\n")),
        6,
        1,
        "route has no path",
    );
    let c = ok(&with_backends(
        "[[routes]]\npath = \"/a/b/../%2e/c//\"\nrewrite = \"/\"\n",
    ));
    assert_eq!(c.routes[0].path, "/a/c");
    assert_eq!(c.routes[0].rewrite.as_deref(), Some("/"));
    assert_eq!(
        ok(&with_backends("[[routes]]\npath = \"/\"\n")).routes[0].path,
        "/"
    );
}

#[test]
fn hosts() {
    let route = |h: &str| with_backends(&format!("[[routes]]\npath = \"/a\"\nhost = \"{h}\"\n"));
    for bad in [
        "exa mple.com",
        "*",
        "a.*.com",
        "-a.com",
        "",
        "x:port",
        "*.",
        "[::1",
    ] {
        assert_error(&one_error(&route(bad)), 8, 8, "invalid host");
    }
    assert_eq!(
        ok(&route("[::1]:80")).routes[0].host,
        Some(HostMatch::Exact("[::1]".into()))
    );
    assert_eq!(
        ok(&route("10.0.0.1")).routes[0].host,
        Some(HostMatch::Exact("10.0.0.1".into()))
    );
}

#[test]
fn header_conditions() {
    let route = |h: &str| with_backends(&format!("[[routes]]\npath = \"/a\"\nheaders = {h}\n"));
    assert_error(
        &one_error(&route("{ \"bad name\" = \"x\" }")),
        8,
        13,
        "invalid header name",
    );
    assert_error(
        &one_error(&route("{ \"x-a\" = \"a\\u0007b\" }")),
        8,
        21,
        "invalid header value",
    );
    assert_error(
        &one_error(&route("{ \"x-a\" = 1 }")),
        8,
        21,
        "found integer",
    );
    assert_error(&one_error(&route("\"x-a: 1\"")), 8, 11, "expected a table");
}

#[test]
fn server_values() {
    let e = one_error(&with_backends("[server]\nlisten = \"localhost:80\"\n"));
    assert_error(&e, 7, 10, "invalid socket address");
    let e = one_error(&with_backends("[server]\nmax_connections = 0\n"));
    assert_error(&e, 7, 19, "out of range 1..=");
    let e = one_error(&with_backends("[server.tls]\ncert_file = \"/c\"\n"));
    assert_error(&e, 6, 1, "[server.tls] has no key_file");
}

#[test]
fn route_name_rules() {
    let e = one_error(&with_backends(
        "[[routes]]\nname = \"_default\"\npath = \"/a\"\n",
    ));
    assert_error(&e, 7, 8, "reserved");
    let e = one_error(&with_backends("[[routes]]\nname = \"\"\npath = \"/a\"\n"));
    assert_error(&e, 7, 8, "invalid route name");
}

#[test]
fn every_error_is_reported_sorted() {
    let text = "\
[server]
listen = \"nope\"
workers = -1

[backends.legacy]
url = \"ftp://x\"

[[routes]]
path = \"/a\"
weight = 200
sticky = \"sometimes\"
flag = \"ghost\"
";
    let errs = errors(text);
    let positions: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        positions,
        vec![
            (2, 10),
            (3, 11),
            (6, 7),
            (8, 1),
            (10, 10),
            (11, 10),
            (12, 8)
        ]
    );
    // (8, 1): the route inherits `new`, which is not defined.
    assert!(errs[3].message.contains("\"new\""));
}

#[test]
fn columns_count_characters() {
    let e = one_error(&with_backends("[flags]\n\"héllo\" = \"x\"\n"));
    assert_error(&e, 7, 11, "expected true or false");
}

#[test]
fn display_format() {
    let err = parse(
        &with_backends("[server]\nworkrs = 1\n"),
        Path::new("c.toml"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.toml:7:1: unknown key \"workrs\" in [server]\n  help: did you mean \"workers\"?"
    );
}

#[test]
fn duplicate_keys_are_syntax_errors_with_a_specific_hint() {
    let errs = errors(&with_backends("[server]\nworkers = 1\nworkers = 2\n"));
    assert_eq!((errs[0].line, errs[0].column), (8, 1));
    assert!(errs[0].message.contains("duplicate key"), "{errs:#?}");
    assert!(errs[0].hint.as_deref().unwrap().contains("only once"));
}

// === [control] ===

#[test]
fn control_defaults_and_values() {
    assert!(ok(&with_backends("")).control.is_none());
    // Without `redis`, there is no fleet.
    assert!(ok(&with_backends("[control]\n")).control.is_none());
    let c = ok(&with_backends(
        "[control]\nredis = \"rediss://:s3cret@redis:6380/2\"\n",
    ));
    let control = c.control.unwrap();
    assert_eq!(control.key_prefix, "strangler:");
    assert!(control.fleet_statistics);
    assert_eq!(control.redis_shown(), "rediss://:***@redis:6380/2");
    assert!(!format!("{control:?}").contains("s3cret"));
    let c = ok(&with_backends(
        "[control]\nredis = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"eu:\"\nfleet_statistics = false\n",
    ));
    let control = c.control.unwrap();
    assert_eq!(
        (control.key_prefix.as_str(), control.fleet_statistics),
        ("eu:", false)
    );
}

#[test]
fn control_errors_have_positions_and_hide_passwords() {
    let e = one_error(&with_backends(
        "[control]\nredis = \"http://user:s3cret@redis:6379\"\n",
    ));
    assert_error(&e, 7, 9, "the scheme must be redis or rediss");
    assert!(!e.message.contains("s3cret"), "{}", e.message);
    assert!(e.message.contains("user:***@redis"), "{}", e.message);
    let e = one_error(&with_backends(
        "[control]\nredis = \"redis://r\"\nkey_prefx = \"x:\"\n",
    ));
    assert_error(&e, 8, 1, "unknown key \"key_prefx\" in [control]");
    let e = one_error(&with_backends(
        "[control]\nredis = \"redis://r\"\nkey_prefix = \"\"\n",
    ));
    assert_error(&e, 8, 14, "key_prefix");
    let e = one_error(&with_backends(
        "[control]\nredis = \"redis://r\"\nfleet_statistics = \"yes\"\n",
    ));
    assert_error(&e, 8, 20, "true or false");
}
