//! `strangler demo`: an echo legacy, an echo new and the proxy in one process,
//! on loopback, with the embedded demo config.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

use crate::config;
use crate::echo::{self, EchoOptions};

/// The demo config, kept as a real file so `strangler check config/demo.toml` works.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// The path under which the demo's new backend fails.
pub const FAILING_PATH: &str = "/api/payments";

/// The demo config's text with its backends pointed at `legacy` and `new`.
pub fn demo_config_text(legacy: SocketAddr, new: SocketAddr) -> String {
    DEMO_CONFIG
        .replace("http://127.0.0.1:3001", &format!("http://{legacy}"))
        .replace("http://127.0.0.1:3002", &format!("http://{new}"))
}

/// Writes the demo config into a fresh temp dir, so the user can edit it and
/// watch the proxy reload; returns the file's path.
fn write_demo_config(text: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("strangler-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("demo.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs the demo until Ctrl-C. `STRANGLER_DEMO_LISTEN` and
/// `STRANGLER_DEMO_ADMIN` override the proxy's and the admin API's addresses
/// (tests use `127.0.0.1:0`).
pub async fn run() -> anyhow::Result<()> {
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let legacy = echo::spawn(
        loopback,
        EchoOptions {
            name: "legacy".into(),
            fail_paths: vec![],
        },
    )
    .await?;
    let new = echo::spawn(
        loopback,
        EchoOptions {
            name: "new".into(),
            fail_paths: vec![FAILING_PATH.into()],
        },
    )
    .await?;
    let path = write_demo_config(&demo_config_text(legacy, new))?;
    let config = config::load(&path)
        .map_err(|e| anyhow::anyhow!("the embedded demo config is invalid:\n{e}"))?;
    let listen = match std::env::var("STRANGLER_DEMO_LISTEN") {
        Ok(addr) => addr.parse()?,
        Err(_) => config.server.listen,
    };
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen}: {e} (set STRANGLER_DEMO_LISTEN to another address)"
        )
    })?;
    let addr = listener.local_addr()?;
    let admin_listen = match std::env::var("STRANGLER_DEMO_ADMIN") {
        Ok(addr) => addr.parse()?,
        Err(_) => config.server.admin_listen,
    };
    // The admin API is a nice-to-have in the demo: skip it if its port is taken.
    let admin = TcpListener::bind(admin_listen).await.ok();
    let running = crate::app::start(crate::app::Launch {
        path: path.clone(),
        config,
        proxy: listener,
        admin,
        watch: true,
    })
    // The message names its causes already: `{:#}` would repeat them.
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    println!("{}", banner(addr, legacy, new));
    if let Some(admin) = running.admin_addr() {
        println!("  admin API: curl -s http://{admin}/routes");
    }
    println!(
        "  live config: edit {} and save: the proxy reloads it",
        path.display()
    );
    println!("\nPress Ctrl-C to stop.");
    crate::app::shutdown_signal().await;
    running.shutdown().await;
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

fn banner(addr: SocketAddr, legacy: SocketAddr, new: SocketAddr) -> String {
    format!(
        "strangler demo: proxy on http://{addr}
  legacy echo backend on http://{legacy}, new echo backend on http://{new}
  routes: {routes}

Try (each answer names the backend that served it; see the x-strangler-* headers):

  # flag-switched: flag new_checkout = true sends /api/checkout to new
  curl -si http://{addr}/api/checkout/cart

  # weighted 50% and sticky on x-user-id: a user always lands on the same side
  curl -si -H 'x-user-id: alice' http://{addr}/api/users/me
  curl -si -H 'x-user-id: bob' http://{addr}/api/users/me

  # rewritten: new gets /v2/search?q=fig
  curl -si 'http://{addr}/search?q=fig'

  # new answers 503 here; the proxy replays to legacy (x-strangler-fallback: status-503)
  curl -si http://{addr}/api/payments/42

  # new keeps failing: after 5 failures in a row it is ejected for 10s (doubling
  # if it fails again), and new's share of every route goes straight to legacy
  # (x-strangler-fallback: unhealthy); GET /backends on the admin API shows it
  for i in 1 2 3 4 5; do curl -s -o /dev/null http://{addr}/api/payments/$i; done
  curl -si http://{addr}/api/checkout/cart

  # dark launch: legacy answers, new gets a shadow copy in the background and
  # the answers are compared; GET /shadow on the admin API shows the diff ($.name)
  curl -si http://{addr}/api/orders/7

  # no route: legacy owns every path not yet strangled
  curl -si http://{addr}/about",
        routes = "checkout (flag), users (50% sticky), search (rewrite), orders (shadow), payments (fallback, ejection)"
    )
}
