//! The `orderd` binary: parse `--config`, load the settings, set up logging,
//! run until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use orderd::settings::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// mimalloc: on the command path glibc's malloc spent a third of orderd's
/// CPU (consolidating and unlinking chunks); see docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match config_arg(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orderd: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    init_tracing(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orderd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(orderd::app::run(settings, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "orderd failed");
            ExitCode::FAILURE
        }
    }
}

/// `--config PATH` (or `--config=PATH`); anything else is a usage error.
fn config_arg(mut args: impl Iterator<Item = String>) -> Result<Option<PathBuf>, String> {
    const USAGE: &str = "usage: orderd [--config PATH]";
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => config = Some(args.next().ok_or(USAGE)?.into()),
            "--help" | "-h" => return Err(USAGE.into()),
            other => match other.strip_prefix("--config=") {
                Some(path) => config = Some(path.into()),
                None => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            },
        }
    }
    Ok(config)
}

/// Logging: `RUST_LOG` (else `log.filter`), capped so the NATS and Redis
/// clients never log at trace level, whatever the filter says: their trace
/// lines carry raw message payloads and Redis commands, which include
/// personal data (contacts and addresses on their way to the vault).
fn init_tracing(settings: &Settings) {
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let no_payloads = Targets::new()
        .with_target("async_nats", LevelFilter::DEBUG)
        .with_target("redis", LevelFilter::DEBUG)
        .with_default(LevelFilter::TRACE);
    let filter = filter.and(no_payloads);
    let registry = tracing_subscriber::registry();
    match settings.log.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .init(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
