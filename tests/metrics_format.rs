//! `/metrics` content negotiation (SPEC §5, §7): OpenMetrics when asked for,
//! else the Prometheus text format 0.0.4, each read by a strict parser of its
//! own format that checks every family's type and its samples' names.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::collections::BTreeMap;

use http_body_util::Full;
use support::{Answer, TestBackend, TestProxy, config_with, get, request, send};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Prometheus004,
    OpenMetrics,
}

/// Reads an exposition strictly: every sample belongs to the family declared
/// just before it by `# TYPE`, with a name that type allows in `format`;
/// each family is declared once; OpenMetrics ends with `# EOF` and 0.0.4 has
/// neither `# EOF` nor `# UNIT`. Returns each family's type, by the name a
/// parser of that format gives it.
fn parse_strict(text: &str, format: Format) -> BTreeMap<String, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(text.ends_with('\n'), "no final newline");
    match format {
        Format::OpenMetrics => {
            assert_eq!(
                lines.pop(),
                Some("# EOF"),
                "OpenMetrics must end with # EOF"
            );
        }
        Format::Prometheus004 => {
            assert!(!text.contains("# EOF"), "# EOF in text 0.0.4");
            assert!(!text.contains("# UNIT"), "# UNIT in text 0.0.4");
        }
    }
    for line in lines {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} declared twice"
            );
            current = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap();
            // HELP comes first, then TYPE of the same name.
            assert!(!types.contains_key(name), "HELP after TYPE for {name}");
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment line {line:?}");
        let name = &line[..line.find(['{', ' ']).unwrap()];
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
        let allowed: Vec<String> = match (kind.as_str(), format) {
            ("counter", Format::Prometheus004) => vec![family.clone()],
            ("counter", Format::OpenMetrics) => vec![format!("{family}_total")],
            ("gauge", _) => vec![family.clone()],
            ("histogram", _) => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{family}{s}"))
                .collect(),
            (other, _) => panic!("unexpected type {other} for {family}"),
        };
        assert!(
            allowed.iter().any(|a| a == name),
            "sample {name} does not belong to {kind} {family} in {format:?}"
        );
        if format == Format::Prometheus004 && kind == "counter" {
            assert!(family.ends_with("_total"), "{family}");
        }
    }
    types
}

async fn scrape(admin: std::net::SocketAddr, accept: Option<&str>) -> Answer {
    let mut builder = request("GET", &format!("http://{admin}/metrics"));
    if let Some(accept) = accept {
        builder = builder.header("accept", accept);
    }
    send(builder.body(Full::default()).unwrap()).await
}

const ROUTES: &str = r#"
[[routes]]
name = "fb"
path = "/fb"
weight = 100
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_negotiated_and_each_format_parses_strictly() {
    let legacy = TestBackend::start("legacy").await;
    let new = TestBackend::with_status("new", 503).await;
    let proxy = TestProxy::start(&config_with(&legacy.url(), &new.url(), ROUTES)).await;
    for _ in 0..2 {
        assert_eq!(get(&proxy.url("/fb/x")).await.status, 200);
    }
    get(&proxy.url("/other")).await;

    let expected_004 = [
        ("strangler_requests_total", "counter"),
        ("strangler_request_duration_seconds", "histogram"),
        ("strangler_fallbacks_total", "counter"),
        ("strangler_attempts_total", "counter"),
        ("strangler_config_reloads_total", "counter"),
        ("strangler_route_new_weight", "gauge"),
        ("strangler_backend_available", "gauge"),
        ("strangler_backend_ejections_total", "counter"),
    ];

    // No Accept, and Accept: text/plain: 0.0.4.
    for accept in [None, Some("text/plain"), Some("*/*")] {
        let answer = scrape(proxy.admin, accept).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{accept:?}"
        );
        let types = parse_strict(&answer.text(), Format::Prometheus004);
        // SPEC §7: absent without [control] (tests/fleet.rs: present with it).
        assert!(!types.contains_key("strangler_control_connected"));
        for (name, kind) in expected_004 {
            assert_eq!(
                types.get(name).map(String::as_str),
                Some(kind),
                "{name}: {types:?}"
            );
        }
    }

    // What Prometheus sends: OpenMetrics.
    let answer = scrape(
        proxy.admin,
        Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    )
    .await;
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let types = parse_strict(&answer.text(), Format::OpenMetrics);
    for (name, kind) in expected_004 {
        let name = name.strip_suffix("_total").unwrap_or(name);
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(kind),
            "{name}: {types:?}"
        );
    }

    // HEAD: the headers of GET, no body.
    let answer = send(
        request("HEAD", &format!("http://{}/metrics", proxy.admin))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(answer.body.is_empty());
}
