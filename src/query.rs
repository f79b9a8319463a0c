//! `misp-lookup query`: ad-hoc lookups from a terminal, through a running service or straight
//! against MISP, printing the same JSON as `GET /lookup/{key}`.

use std::sync::Arc;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::cli::QueryArgs;
use crate::config::{Config, ConfigError};
use crate::demo;
use crate::http::error::ApiError;
use crate::indicator;
use crate::lookup::{Caller, Service};
use crate::metrics::Metrics;
use crate::misp::types::TypeFilter;

/// A failure that stops `query` as a whole (a failed lookup is printed, not returned).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A flag is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lookup service could not be built.
    #[error(transparent)]
    Service(#[from] crate::lookup::ServiceError),
    /// The demo emulator could not start.
    #[error("cannot start the demo MISP emulator: {0}")]
    Demo(std::io::Error),
    /// The service given with --server could not be asked.
    #[error("cannot reach {server}: {reason}")]
    Server {
        /// The --server URL.
        server: String,
        /// The transport error.
        reason: String,
    },
}

/// Looks up every key and prints one JSON line per key. Returns whether every lookup was
/// answered (found or not).
pub async fn run(args: &QueryArgs) -> Result<bool, QueryError> {
    match &args.server {
        Some(server) => query_server(server, args).await,
        None => query_misp(args).await,
    }
}

async fn query_server(server: &str, args: &QueryArgs) -> Result<bool, QueryError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|err| server_error(server, &err))?;
    let mut all_answered = true;
    for key in &args.keys {
        let url = format!(
            "{}/lookup/{}",
            server.trim_end_matches('/'),
            utf8_percent_encode(key, NON_ALPHANUMERIC)
        );
        let mut request = client.get(&url);
        if let Some(filter) = &args.type_filter {
            request = request.query(&[("type", filter)]);
        }
        if let Some(token) = &args.serve.api_token {
            request = request.header("X-Api-Token", token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|err| server_error(server, &err))?;
        all_answered &= response.status().is_success();
        let body = response
            .text()
            .await
            .map_err(|err| server_error(server, &err))?;
        println!("{}", body.trim_end());
    }
    Ok(all_answered)
}

fn server_error(server: &str, err: &reqwest::Error) -> QueryError {
    QueryError::Server {
        server: server.to_owned(),
        reason: err.to_string(),
    }
}

async fn query_misp(args: &QueryArgs) -> Result<bool, QueryError> {
    let mut config = Config::from_args(&args.serve)?;
    // With --demo, the emulator lives as long as the lookups.
    let _emulator = if config.demo {
        Some(
            demo::start_for(&mut config)
                .await
                .map_err(QueryError::Demo)?,
        )
    } else {
        None
    };
    let service = Arc::new(Service::new(&config, Metrics::new())?);

    let filter = match args.type_filter.as_deref().map(TypeFilter::parse) {
        Some(Ok(filter)) => Some(filter),
        Some(Err(err)) => {
            println!(
                "{}",
                String::from_utf8_lossy(&ApiError::from(err).body_bytes())
            );
            return Ok(false);
        }
        None => None,
    };
    let mut all_answered = true;
    for key in &args.keys {
        let result = match indicator::parse(key) {
            Ok(indicator) => {
                let query = service.native_query(indicator, filter.clone(), Caller::default());
                service.lookup(query).await.map_err(ApiError::from)
            }
            Err(err) => Err(ApiError::from(err)),
        };
        match result {
            Ok(served) => println!("{}", String::from_utf8_lossy(served.entry.body())),
            Err(err) => {
                all_answered = false;
                println!("{}", String::from_utf8_lossy(&err.body_bytes()));
            }
        }
    }
    Ok(all_answered)
}
