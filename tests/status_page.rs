//! The status page (SPEC §5 `GET /`) in a real browser: Debian's `chromium`,
//! headless, against a running `strangler demo` with traffic. The page must
//! be readable before its script runs (the server renders every figure), and
//! its script must then refresh it from the JSON endpoints.
//!
//! Chromium is required, not optional: `.ci/run` installs it; a machine
//! without it fails this test with the command that installs it.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Killed, get, get_with};

const BIN: &str = env!("CARGO_BIN_EXE_strangler");

/// A running `strangler demo`: its proxy's and admin API's base URLs.
struct Demo {
    child: Killed,
    base: String,
    admin: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // SIGTERM, so the demo removes its temp folder; SIGKILL (by
        // `Killed`) if it has not stopped within the bound.
        let pid = self.child.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.child.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start_demo() -> Demo {
    let mut child = Command::new(BIN)
        .arg("demo")
        .env("STRANGLER_DEMO_LISTEN", "127.0.0.1:0")
        .env("STRANGLER_DEMO_ADMIN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page-demo.log"),
            )
            .unwrap(),
        )
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
    let (mut base, mut admin) = (None, None);
    let mut banner = String::new();
    while base.is_none() || admin.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("demo banner incomplete ({e}):\n{banner}"));
        banner.push_str(&line);
        banner.push('\n');
        if let Some(url) = line.strip_prefix("strangler demo: proxy on ") {
            base = Some(url.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("  admin API on ") {
            admin = Some(rest.trim().trim_end_matches(':').to_owned());
        }
    }
    Demo {
        child,
        base: base.unwrap(),
        admin: admin.unwrap(),
    }
}

/// The chromium binary: `$CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> String {
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the status page test needs Debian's chromium: apt-get install -y chromium \
         (.ci/run installs it), or set CHROMIUM to a Chromium binary"
    );
    binary
}

/// Runs headless chromium on `url` with `args` (a driver such as
/// `--dump-dom`), letting the page's timers run for `budget_ms` of virtual
/// time; killed if it has not finished within 60 s. Returns stdout.
fn run_chromium(url: &str, args: &[&str], budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let log = profile.path().join("chromium.log");
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "chromium did not finish within 60 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    reader.join().unwrap()
}

/// Traffic like a rollout's: many users on the 50% sticky route, the
/// rewritten and flag-switched routes, and new failing under payments (so
/// fallbacks happen).
async fn rollout_traffic(base: &str, round: usize) {
    for user in 0..12 {
        let id = format!("user-{round}-{user}");
        get_with(&format!("{base}/api/users/me"), &[("x-user-id", &id)]).await;
    }
    get(&format!("{base}/search?q={round}")).await;
    get(&format!("{base}/api/checkout/cart")).await;
    get(&format!("{base}/about")).await;
    if round.is_multiple_of(3) {
        get(&format!("{base}/api/payments/{round}")).await;
    }
}

/// The text of the element with `data-f="field"` in the `<section>` of `route`.
fn figure_in(dom: &str, route: &str, field: &str) -> String {
    let start = dom
        .find(&format!("data-route=\"{route}\""))
        .unwrap_or_else(|| panic!("no section for route {route}"));
    let section = &dom[start..];
    let section = &section[..section.find("</section>").unwrap()];
    let at = section
        .find(&format!("data-f=\"{field}\""))
        .unwrap_or_else(|| panic!("route {route} has no figure {field}"));
    let rest = &section[at..];
    let text = &rest[rest.find('>').unwrap() + 1..];
    text[..text.find('<').unwrap()].to_owned()
}

/// Every v2 field of `/routes` the page shows, by name.
const FIELDS: &[&str] = &[
    "weight",
    "file_weight",
    "override",
    "ramp",
    "rollback",
    "flag",
    "share",
    "new_available",
    "stats.window",
    "stats.legacy.attempts",
    "stats.legacy.failures",
    "stats.legacy.error_rate",
    "stats.legacy.p50_ms",
    "stats.legacy.p95_ms",
    "stats.legacy.p99_ms",
    "stats.new.attempts",
    "stats.new.failures",
    "stats.new.error_rate",
    "stats.new.p50_ms",
    "stats.new.p95_ms",
    "stats.new.p99_ms",
    "fallbacks",
    "shadow.match_rate",
    "requests.legacy",
    "requests.new",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium() {
    let demo = start_demo();
    for round in 0..6 {
        rollout_traffic(&demo.base, round).await;
    }
    let routes = get(&format!("{}/routes", demo.admin)).await.json();
    let names: Vec<String> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 7, "{routes}");

    // Without JavaScript: the server's HTML has every route and figure.
    let page = get(&format!("{}/", demo.admin)).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "external resource"
    );
    assert!(!html.contains("<link"), "external stylesheet");
    assert!(!html.contains("<script src"), "external script");
    for name in &names {
        for field in FIELDS {
            // `_default` has no new backend.
            if name != "_default" || *field != "new_available" {
                let _ = figure_in(&html, name, field);
            }
        }
        assert!(html.contains("<svg class=\"chart\""));
    }
    assert_eq!(figure_in(&html, "users", "weight"), "50%");
    assert_eq!(figure_in(&html, "checkout", "flag"), "new_checkout = true");
    assert_eq!(figure_in(&html, "users", "override"), "—");
    assert_eq!(figure_in(&html, "users", "new_available"), "available");

    // With JavaScript, in chromium, while traffic goes on: the script
    // refreshes the figures from the JSON endpoints.
    let before = get(&format!("{}/routes", demo.admin)).await.json();
    let answers = |routes: &Value, name: &str| {
        let route = routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        route["requests"]["legacy"].as_u64().unwrap() + route["requests"]["new"].as_u64().unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (stop, rounds, base) = (stop.clone(), rounds.clone(), demo.base.clone());
        tokio::spawn(async move {
            // Bounded: stops when told, or after 2000 rounds.
            for round in 6..2006 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                rollout_traffic(&base, round).await;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let url = format!("{}/", demo.admin);
    let dom = tokio::task::spawn_blocking(move || run_chromium(&url, &["--dump-dom"], 7000))
        .await
        .unwrap();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(artifacts.join("status-page.html"), &dom).unwrap();
    let refreshes: u32 = {
        let at = dom.find("data-refreshes=\"").expect("body data-refreshes") + 16;
        dom[at..at + dom[at..].find('"').unwrap()].parse().unwrap()
    };
    assert!(refreshes >= 2, "the script refreshed {refreshes} times");
    assert!(
        dom.contains("<span id=\"stamp\" class=\"\">updated "),
        "no successful refresh"
    );
    for name in &names {
        for field in FIELDS {
            if name != "_default" || *field != "new_available" {
                let _ = figure_in(&dom, name, field);
            }
        }
    }
    // Figures traffic does not move read the same from the server and from
    // the script: the two formatters agree.
    for name in &names {
        for field in FIELDS.iter().filter(|f| {
            !(f.starts_with("requests.")
                || f.starts_with("stats.")
                || f.starts_with("attempts.")
                || ["share", "fallbacks", "new_available"].contains(f))
        }) {
            assert_eq!(
                figure_in(&html, name, field),
                figure_in(&dom, name, field),
                "{name} {field}"
            );
        }
    }
    // The script rewrote every figure on its last refresh.
    let figures = dom.matches(" data-f=\"").count();
    let refreshed = dom
        .matches(&format!(" data-refreshed=\"{refreshes}\""))
        .count();
    assert!(figures > 100, "{figures} figures");
    assert_eq!(
        refreshed, figures,
        "figures the last refresh did not rewrite"
    );
    // The script's figures came from /routes after traffic went on.
    let shown: u64 = figure_in(&dom, "users", "requests.legacy")
        .parse::<u64>()
        .unwrap()
        + figure_in(&dom, "users", "requests.new")
            .parse::<u64>()
            .unwrap();
    assert!(
        shown >= answers(&before, "users"),
        "page shows {shown} answers, /routes had {} before",
        answers(&before, "users")
    );
    assert!(
        dom.contains("<circle class=\"share\""),
        "no point on any chart"
    );

    // The screenshot, during the rollout: a test artifact, and the README's
    // picture when STRANGLER_UPDATE_SCREENSHOT is set.
    let png = artifacts.join("status-page.png");
    let shot = format!("--screenshot={}", png.display());
    let url = format!("{}/", demo.admin);
    tokio::task::spawn_blocking(move || {
        run_chromium(&url, &[&shot, "--window-size=1400,1300"], 3000)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert!(rounds.load(Ordering::Relaxed) > 0);
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 10_000,
        "a blank screenshot? {} bytes",
        bytes.len()
    );
    if std::env::var_os("STRANGLER_UPDATE_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::copy(&png, docs).unwrap();
    }
}
