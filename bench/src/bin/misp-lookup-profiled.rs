//! The `misp-lookup serve` command built with the bench package's release profile, which
//! keeps symbols and line tables, so that `perf` can attribute samples to functions.

use std::process::ExitCode;

use clap::Parser;
use misp_lookup::cli::{Cli, Command};
use misp_lookup::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve(args) = Cli::parse().command else {
        eprintln!("misp-lookup-profiled: only the serve command is supported");
        return ExitCode::from(2);
    };
    let config = match Config::from_args(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("misp-lookup-profiled: {err}");
            return ExitCode::from(2);
        }
    };
    let server = match misp_lookup::http::start(config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("misp-lookup-profiled: start failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    match server.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("misp-lookup-profiled: server failed: {err}");
            ExitCode::FAILURE
        }
    }
}
