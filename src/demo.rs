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

/// The demo config's `state_file`, replaced by one in the demo's temp folder.
const STATE_FILE: &str = "state_file = \"/tmp/strangler-demo/state.json\"";

/// The ramp's `start` in the demo config, replaced by the demo's start time.
const RAMP_START: &str = "start = \"2026-12-01T00:00:00Z\"";

/// The demo config's text with its backends pointed at `legacy` and `new`,
/// and its ramp starting now.
pub fn demo_config_text(legacy: SocketAddr, new: SocketAddr) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    DEMO_CONFIG
        .replace("http://127.0.0.1:3001", &format!("http://{legacy}"))
        .replace("http://127.0.0.1:3002", &format!("http://{new}"))
        .replace(RAMP_START, &format!("start = \"{now}\""))
}

/// The environment knobs of `strangler demo`, for `--help` and the README.
pub const ENV_HELP: &str = "Environment:
  STRANGLER_DEMO_LISTEN  the proxy's address (default 127.0.0.1:8080; 127.0.0.1:0 picks a free port)
  STRANGLER_DEMO_ADMIN   the admin API's address (default 127.0.0.1:9901; when it is taken,
                         a free port is picked and printed)";

/// The demo's temp folder, removed when dropped: on every exit path, an
/// error at start included.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("strangler-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the demo config into `dir`, so the user can edit it and watch the
/// proxy reload; returns the file's path.
fn write_demo_config(dir: &TempDir, text: &str) -> std::io::Result<PathBuf> {
    let path = dir.0.join("demo.toml");
    let state = dir.0.join("state.json");
    let text = text.replace(
        STATE_FILE,
        &format!("state_file = {:?}", state.display().to_string()),
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// An address from the environment variable `var`, else `default`.
fn address(var: &str, default: SocketAddr) -> anyhow::Result<SocketAddr> {
    match std::env::var(var) {
        Ok(addr) => addr.parse().map_err(|e| {
            anyhow::anyhow!("{var}={addr:?} is not an address like 127.0.0.1:9901: {e}")
        }),
        Err(_) => Ok(default),
    }
}

/// Runs the demo until Ctrl-C. `STRANGLER_DEMO_LISTEN` and
/// `STRANGLER_DEMO_ADMIN` override the proxy's and the admin API's addresses
/// (tests use `127.0.0.1:0`); see [`ENV_HELP`].
pub async fn run() -> anyhow::Result<()> {
    let dir = TempDir::create()?;
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
    let path = write_demo_config(&dir, &demo_config_text(legacy, new))?;
    let config = config::load(&path)
        .map_err(|e| anyhow::anyhow!("the embedded demo config is invalid:\n{e}"))?;
    let listen = address("STRANGLER_DEMO_LISTEN", config.server.listen)?;
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen}: {e} (set STRANGLER_DEMO_LISTEN to another address)"
        )
    })?;
    let addr = listener.local_addr()?;
    let admin_listen = address("STRANGLER_DEMO_ADMIN", config.server.admin_listen)?;
    // Another demo (or proxy) may hold the admin port: take a free one rather
    // than run without an admin API, and say so.
    let (admin, moved) = match TcpListener::bind(admin_listen).await {
        Ok(admin) => (admin, None),
        Err(error) => {
            let free = TcpListener::bind(SocketAddr::new(admin_listen.ip(), 0)).await?;
            (free, Some(error))
        }
    };
    let running = crate::app::start(crate::app::Launch {
        path: path.clone(),
        config,
        proxy: listener,
        admin: Some(admin),
        watch: true,
    })
    // The message names its causes already: `{:#}` would repeat them.
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    let admin_addr = running.admin_addr();
    // Built whole and written once, ignoring a closed stdout: a demo whose
    // terminal or pipe went away keeps serving rather than panic.
    let mut text = banner(addr, legacy, new);
    if let Some(admin) = admin_addr {
        if let Some(error) = moved {
            text.push_str(&format!(
                "\n\n  note: {admin_listen} is taken ({error}): the admin API is on {admin} instead"
            ));
        }
        text.push_str(&format!(
            "\n\n  admin API on http://{admin}:\n    status page: http://{admin}/\n    curl -s http://{admin}/routes\n\n  \
             # GET /routes shows the catalog ramp's step, and new's error rate and p95 beside legacy's\n  \
             # emergency: everything on catalog to legacy now, then back to the file's ramp\n    \
             curl -s -X POST -d '{{\"weight\": 0}}' http://{admin}/routes/catalog/override\n    \
             curl -s -X DELETE http://{admin}/routes/catalog/override"
        ));
    }
    text.push_str(&format!(
        "\n  live config: edit {} and save: the proxy reloads it\n\nPress Ctrl-C to stop.\n",
        path.display()
    ));
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
    crate::app::shutdown_signal().await;
    running.shutdown().await;
    drop(dir);
    Ok(())
}

fn banner(addr: SocketAddr, legacy: SocketAddr, new: SocketAddr) -> String {
    format!(
        "strangler demo: proxy on http://{addr}
  legacy echo backend on http://{legacy}
  new echo backend on http://{new}
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

  # ramp on a clock: 10% of users on new, then 25%, 50%, 100%, a step a minute;
  # a user who reached new stays there (rolls back by itself if new fails)
  curl -si -H 'x-user-id: carol' http://{addr}/api/catalog/items

  # testers reach new on any route, whatever its weight or flag
  curl -si -H 'x-strangler-force: new' http://{addr}/api/catalog/items

  # dark launch: legacy answers, new gets a shadow copy in the background and
  # the answers are compared; GET /shadow on the admin API shows the diff ($.name)
  curl -si http://{addr}/api/orders/7

  # no route: legacy owns every path not yet strangled
  curl -si http://{addr}/about",
        routes = "checkout (flag), users (50% sticky), search (rewrite), catalog (ramp, rollback), orders (shadow), payments (fallback, ejection)"
    )
}
