//! The `steward` binary's entry point: `serve` (HTTP API over the engine with a Core adapter
//! built from config), `demo`, `replay` and the client commands of API.md §1. Exit codes: 0
//! success, 1 refused, 2 usage, 3 a watched run did not complete.

use crate::cli::{self, Cli, Command, DemoArgs, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, ServeArgs};
use crate::config::{Config, ConfigError};
use crate::demo::{self, DemoOptions};
use crate::http::{ServeError, Server};
use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;

/// Parses the command line, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                EXIT_USAGE as u8
            } else {
                EXIT_OK as u8
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("steward: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_REFUSED as u8);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve(args) => match serve(args).await {
            Ok(()) => EXIT_OK,
            Err(error) => {
                eprintln!("steward: {error:#}");
                let usage = error.downcast_ref::<ConfigError>().is_some()
                    || matches!(error.downcast_ref::<ServeError>(), Some(ServeError::Config(_)));
                if usage { EXIT_USAGE } else { EXIT_REFUSED }
            }
        },
        Command::Demo(args) => run_demo(args).await,
        _ => match cli::execute(cli).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("steward: {error}");
                error.exit_code()
            }
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(path) = config.store.path.clone() {
        config.db = path;
    }
    if let Some(db) = args.db {
        config.db = db;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.validate()?;
    catch_file_size_signal();
    // Installed before "serving on" is printed: a SIGTERM right after it must shut down
    // cleanly, not kill the process with the default action.
    let shutdown = shutdown_signal().context("installing the shutdown signal handlers")?;
    if config.store.url.is_some() {
        return serve_ha(&config, shutdown).await;
    }
    let server = Server::start(&config).await?;
    eprintln!("steward: serving on {} (db {})", server.url(), config.db.display());
    let health = server.health();
    tokio::select! {
        () = shutdown => {
            tracing::info!("shutdown requested");
            server.shutdown().await;
            Ok(())
        }
        // A dead reducer must never leave a server answering: stop and exit non-zero with the
        // cause, so a supervisor restarts steward from the last committed state.
        reason = health.failed() => {
            server.shutdown().await;
            Err(anyhow::anyhow!("the reducer stopped ({reason}); exiting so a supervisor restarts steward"))
        }
    }
}

/// `serve` on PostgreSQL: stand by, lead when elected (see `crate::ha`).
async fn serve_ha(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = crate::ha::HaServer::start(config).await?;
    eprintln!("steward: serving on {} (store postgres, standing by for leadership)", server.url());
    shutdown.await;
    tracing::info!("shutdown requested");
    server.shutdown().await;
    Ok(())
}

/// A write past the file-size limit (RLIMIT_FSIZE) raises SIGXFSZ, whose default action kills
/// the process with no word on stderr. With a handler installed the write fails with EFBIG
/// instead, SQLite reports an I/O error, and the commit path handles it like any store fault.
#[cfg(unix)]
fn catch_file_size_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        Ok(mut stream) => {
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tracing::warn!("SIGXFSZ: a write reached the file-size limit");
                }
            });
        }
        Err(error) => tracing::warn!(%error, "cannot catch SIGXFSZ"),
    }
}

#[cfg(not(unix))]
fn catch_file_size_signal() {}

/// Installs the SIGTERM/SIGINT handlers now and returns the future that resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn run_demo(args: DemoArgs) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let options = DemoOptions { dir: args.keep, ..DemoOptions::default() };
    match demo::run(options).await {
        Ok(_) => EXIT_OK,
        Err(error) => {
            eprintln!("steward demo: {error}");
            error.exit_code()
        }
    }
}
