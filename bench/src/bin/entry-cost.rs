//! Prints the parts of one in-process cache entry of `GET /lookup/{key}` that depend on the
//! key: the cache key string that `misp_lookup::lookup` builds, which embeds the complete
//! MISP search body. Body sizes are measured over HTTP by bench/run.

use clap::Parser;
use misp_lookup::cli::{Cli, Command};
use misp_lookup::config::Config;
use misp_lookup::lookup::{Caller, Service};
use misp_lookup::metrics::Metrics;

#[derive(Parser)]
struct Args {
    /// Lookup key, as sent to /lookup/{key} before percent-encoding.
    key: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    // The MISP URL is never contacted: only the query is built.
    let cli = Cli::try_parse_from([
        "misp-lookup",
        "serve",
        "--misp-url",
        "http://127.0.0.1:9",
        "--misp-key",
        misp_lookup::demo::DEMO_API_KEY,
    ])
    .expect("the fixed command line parses");
    let Command::Serve(serve) = cli.command else {
        unreachable!("the fixed command line is a serve command");
    };
    let config = Config::from_args(&serve).expect("the fixed configuration is valid");
    let service = Service::new(&config, Metrics::new()).expect("the service builds");
    let indicator = misp_lookup::indicator::parse(&args.key).expect("the key is valid");
    let query = service.native_query(indicator, None, Caller::default());
    let key = query.cache_key();
    println!("cache_key_bytes={}", key.len());
    println!("cache_key={}", key.escape_debug());
}
