//! The `misp-lookup` binary: parses the command line, sets up logging and runs the service.

use std::process::ExitCode;

use clap::Parser;
use misp_lookup::cli::{Cli, Command, LogFormat};
use misp_lookup::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_tracing(args.log_format);
            let config = match Config::from_args(&args) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("misp-lookup: {err}");
                    return ExitCode::from(2);
                }
            };
            serve(config).await
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

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
