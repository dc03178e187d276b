//! The `strangler` binary: CLI parsing, logging set-up, start-up.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use strangler::{app, config, demo, echo, explain, health};
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
    /// Validate the config and print the route table; exit 1 with every error if invalid.
    Check(ConfigArg),
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
    },
    /// Start an echo legacy, an echo new and the proxy on loopback with the embedded demo config.
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
    init_logging(cli.log_format);
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
        Command::Check(arg) => match config::load(&arg.config) {
            Ok(config) => {
                print!("{}", explain::route_table(&config));
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} error(s); nothing was changed", errors.errors.len());
                ExitCode::FAILURE
            }
        },
        Command::Explain {
            config: arg,
            method,
            path,
            headers,
            ip,
        } => {
            let config = match config::load(&arg.config) {
                Ok(config) => config,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::FAILURE;
                }
            };
            match explain::explain(&config, &method, &path, &headers, ip) {
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

/// A multi-threaded runtime with `workers` threads (0: one per core).
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

fn init_logging(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
