//! The `misp-lookup` binary: parses the command line, sets up logging and runs the service.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use misp_lookup::cli::{Cli, Command, ContentPackArgs, LogFormat};
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
        Command::GraylogContentPack(args) => print_content_pack(&args),
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

fn print_content_pack(args: &ContentPackArgs) -> ExitCode {
    let token = match &args.api_token_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(err) => {
                eprintln!(
                    "misp-lookup: invalid --api-token-file: cannot read {}: {err}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    match misp_lookup::content_pack::render(&args.url, token.as_deref()) {
        Ok(pack) => {
            println!("{pack}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("misp-lookup: {err}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr at `default_level` unless `RUST_LOG` says otherwise.
fn init_tracing(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
