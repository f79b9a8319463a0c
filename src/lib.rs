//! misp-lookup: a caching threat-intel lookup service between Graylog and MISP.
//!
//! Graylog's "HTTP JSONPath" lookup data adapter calls the service with one key; the service
//! normalizes the key, answers from its cache or asks MISP's `/attributes/restSearch` once for
//! all concurrent callers, and returns a flat JSON body that pipeline rules use as it is.
//!
//! # Layout
//! - [`cli`] and [`config`]: command-line arguments and the validated configuration.
//! - [`indicator`]: classifies and normalizes keys and rejects values MISP reads as operators.
//! - [`misp`]: the restSearch client, MISP's attribute types and the exact-match rule.
//! - [`cache`]: the in-process cache of rendered answers with per-entry expiry.
//! - [`redis_tier`]: the optional shared cache tier in Redis.
//! - [`batch`]: merges distinct cache misses into one MISP request.
//! - [`lookup`]: ties a query to the cache, request coalescing and MISP.
//! - [`answer`]: renders the Graylog body, the MISP-shaped drop-in body and `--field` values.
//! - [`http`]: routes, handlers, authentication and the error table.
//! - [`metrics`]: every Prometheus metric, defined once.
//! - [`log_limit`]: rate limiting of repeated log lines.
//! - [`ttl`]: freshness tables by indicator kind.
//! - [`query`]: the `query` subcommand for lookups from a terminal.
//! - [`content_pack`]: the Graylog content pack printed by `graylog-content-pack`.
//! - [`demo`]: the MISP emulator behind `--demo` and the integration tests.

pub mod answer;
pub mod batch;
pub mod cache;
pub mod cli;
pub mod config;
pub mod content_pack;
pub mod demo;
pub mod http;
pub mod indicator;
pub mod log_limit;
pub mod lookup;
pub mod metrics;
pub mod misp;
pub mod query;
pub mod redis_tier;
pub mod ttl;
