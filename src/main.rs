//! The `strangler` binary: CLI parsing, logging set-up, start-up.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use strangler::{app, check, config, demo, diff, echo, explain, health};
use tracing_subscriber::EnvFilter;

/// A proxy allocates and frees small buffers at a high rate across threads;
/// mimalloc does that markedly faster than glibc's malloc (see benches/compare.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "strangler",
    version,
    about = "A strangler-fig reverse proxy: move traffic from legacy to new, path by path."
)]
struct Cli {
    /// Log format; default: text on a terminal, json otherwise.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file.
    #[arg(
        short,
        long,
        env = "STRANGLER_CONFIG",
        default_value = "config/strangler.toml"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: proxy on `server.listen`, admin API on `server.admin_listen`.
    Run(ConfigArg),
    /// Validate the config and print the route table and its warnings; exit 1
    /// with every error if invalid (or, with --strict, if it has warnings).
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Fail (exit 1) on warnings too.
        #[arg(long)]
        strict: bool,
        /// Output: text for people, json for CI.
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Compare the file with the config a running proxy serves: what saving it
    /// changes. Exit 0 when equal, 2 when they differ, 1 on error.
    Diff {
        #[command(flatten)]
        config: ConfigArg,
        /// The running proxy's admin API.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: String,
    },
    /// Show which route and backend would serve a request, and why. No network.
    Explain {
        #[command(flatten)]
        config: ConfigArg,
        /// HTTP method, e.g. GET.
        method: String,
        /// Request path, with an optional query: /api/users?id=7
        path: String,
        /// A request header, `Name: value`; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The client address (for `sticky = "ip"`).
        #[arg(long, default_value = "127.0.0.1")]
        ip: std::net::IpAddr,
        /// Also show the running proxy's state (override, rollback, backend
        /// availability) from its admin API at this address.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Start an echo legacy, an echo new and the proxy on loopback with the embedded demo config.
    #[command(after_help = demo::ENV_HELP)]
    Demo,
    /// Exit 0 if the admin API answers 200 on /readyz, else 1.
    Health {
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: String,
    },
    /// A small echo backend: answers every request with JSON describing it;
    /// `GET /health` and `GET /readyz` answer 200.
    Echo {
        /// Reported in every answer.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        /// Answer 503 on paths under this prefix; repeatable.
        #[arg(long = "fail-path")]
        fail_paths: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = init_logging(cli.log_format) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Run(arg) => {
            let config = match config::load(&arg.config) {
                Ok(config) => config,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match runtime(config.server.workers) {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("cannot start the runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            exit(runtime.block_on(app::run(config)))
        }
        Command::Check {
            config: arg,
            strict,
            format,
        } => {
            let report = check::check(&arg.config, strict, format == OutputFormat::Json);
            print!("{}", report.stdout);
            eprint!("{}", report.stderr);
            ExitCode::from(report.code)
        }
        Command::Diff { config: arg, admin } => {
            let token = admin_token(&arg.config);
            let outcome = runtime(1).map_err(|e| format!("cannot start the runtime: {e}"));
            let outcome = outcome.and_then(|runtime| {
                runtime.block_on(diff::run(&arg.config, &admin, token.as_deref()))
            });
            match outcome {
                Ok(outcome) => {
                    print!("{}", outcome.text);
                    ExitCode::from(outcome.code)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Explain {
            config: arg,
            method,
            path,
            headers,
            ip,
            admin,
        } => {
            let config = match config::load(&arg.config) {
                Ok(config) => config,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            let explained = match admin {
                None => explain::explain(&config, &method, &path, &headers, ip),
                Some(admin) => {
                    let token = admin_token(&arg.config);
                    runtime(1)
                        .map_err(|e| format!("cannot start the runtime: {e}"))
                        .and_then(|runtime| {
                            runtime.block_on(async {
                                let token = token.as_deref();
                                let routes = health::fetch_json(&admin, "/routes", token).await?;
                                let backends =
                                    health::fetch_json(&admin, "/backends", token).await?;
                                Ok(explain::Runtime {
                                    admin: admin.clone(),
                                    routes,
                                    backends,
                                })
                            })
                        })
                        .and_then(|state| {
                            explain::explain_runtime(&config, &method, &path, &headers, ip, &state)
                        })
                }
            };
            match explained {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo => match runtime(0) {
            Ok(runtime) => exit(runtime.block_on(demo::run())),
            Err(error) => {
                eprintln!("cannot start the runtime: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Health { admin } => match runtime(1) {
            Ok(runtime) if runtime.block_on(health::check(&admin)) => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        },
        Command::Echo {
            name,
            listen,
            fail_paths,
        } => match runtime(0) {
            Ok(runtime) => exit(runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                tracing::info!(%listen, %name, "echo backend listening");
                echo::serve(listener, echo::EchoOptions { name, fail_paths }).await;
                Ok(())
            })),
            Err(error) => {
                eprintln!("cannot start the runtime: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A runtime with `workers` threads (0: one per core). One worker is a
/// current-thread runtime: with nothing to steal work from, the
/// multi-threaded scheduler's queues and wake-ups are pure cost.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if workers > 1 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

/// The admin token `diff` and `explain --admin` send: the value of the
/// variable the file's `admin_token_env` names, when the file loads and it is set.
fn admin_token(path: &std::path::Path) -> Option<String> {
    let var = config::load(path).ok()?.server.admin_token_env?;
    std::env::var(var).ok().filter(|token| !token.is_empty())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); an invalid
/// `RUST_LOG` is an error, not silently ignored. Text has colour only on a
/// terminal and when `NO_COLOR` is unset or empty.
fn init_logging(format: Option<LogFormat>) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| format!("invalid RUST_LOG {directives:?}: {e}"))?,
        Ok(_) | Err(std::env::VarError::NotPresent) => EnvFilter::new("info"),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("invalid RUST_LOG: not UTF-8".into());
        }
    };
    let terminal = std::io::stderr().is_terminal();
    let colour = use_colour(terminal, std::env::var_os("NO_COLOR").as_deref());
    let format = format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .event_format(strangler::log_json::JsonLines)
            .init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// Colour only on a terminal, and not when `NO_COLOR` is set to anything
/// but the empty string (no-color.org).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }
}
