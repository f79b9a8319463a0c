//! The `misp-lookup` binary: parses the command line, sets up logging and runs the service.

use std::process::ExitCode;

use clap::Parser;
use misp_lookup::cli::{Cli, Command, LogFormat};
use misp_lookup::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built without a default TLS provider, so that only ring is compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve(args) => {
            init_tracing(args.log_format, "info");
            let config = match Config::from_args(&args) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("misp-lookup: {err}");
                    return ExitCode::from(2);
                }
            };
            serve(config).await
        }
        Command::GraylogContentPack(args) => match misp_lookup::content_pack::render(&args.url) {
            Ok(pack) => {
                println!("{pack}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("misp-lookup: {err}");
                ExitCode::from(2)
            }
        },
        Command::Query(args) => {
            init_tracing(LogFormat::Text, "warn");
            match misp_lookup::query::run(&args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("misp-lookup: {err}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let server = match misp_lookup::http::start(config).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!(error = %err, "start failed");
            return ExitCode::FAILURE;
        }
    };
    match server.wait().await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise.
fn init_tracing(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
