//! The `orderd` binary. Without a subcommand (or with `serve`): parse
//! `--config`, load the settings, set up logging, run until SIGTERM or
//! SIGINT. With any other subcommand: the operator's command line
//! ([`orderd::cli`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use orderd::cli::{Cli, Command};
use orderd::settings::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// mimalloc: on the command path glibc's malloc spent a third of orderd's
/// CPU (consolidating and unlinking chunks); see docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // `--help`, `--version` and usage errors end here (exit 0, 0, 2).
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.config),
        Some(Command::Serve(args)) => serve(args.config.or(cli.config)),
        Some(client) => orderd::cli::run(client),
    }
}

/// Runs the service until SIGTERM or SIGINT.
fn serve(config: Option<PathBuf>) -> ExitCode {
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orderd: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    let traces = init_tracing(&settings);
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
    let code = match runtime.block_on(orderd::app::run(settings, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "orderd failed");
            ExitCode::FAILURE
        }
    };
    if let Some(traces) = traces {
        // Sends the spans still batched.
        if let Err(e) = traces.shutdown() {
            eprintln!("orderd: traces not all exported: {e}");
        }
    }
    code
}

/// Logging: `RUST_LOG` (else `log.filter`), capped so the NATS and Redis
/// clients never log at trace level, whatever the filter says: their trace
/// lines carry raw message payloads and Redis commands, which include
/// personal data (contacts and addresses on their way to the vault).
/// With `trace.otlp_endpoint` set, command spans are also exported; the
/// provider returned sends what is left at exit.
fn init_tracing(settings: &Settings) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
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
    let (otlp, provider) = if settings.trace.otlp_endpoint.is_empty() {
        (None, None)
    } else {
        match orderd::telemetry::otlp_layer(
            &settings.trace.otlp_endpoint,
            &settings.trace.service_name,
        ) {
            Ok((layer, provider)) => (Some(layer), Some(provider)),
            Err(e) => {
                eprintln!("orderd: traces not exported: {e}");
                (None, None)
            }
        }
    };
    let registry = tracing_subscriber::registry().with(otlp);
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
    provider
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
