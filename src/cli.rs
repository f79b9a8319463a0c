//! Command-line arguments. Every `serve` flag also reads an environment variable named
//! `MISP_LOOKUP_<FLAG>`; [`crate::config::Config::from_args`] turns them into a validated
//! configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Secret;
use crate::ttl::TtlTable;

/// A caching threat-intel lookup service between Graylog's HTTP JSONPath adapter and MISP.
#[derive(Debug, Parser)]
#[command(name = "misp-lookup", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The program's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the lookup service.
    Serve(Box<ServeArgs>),
    /// Look keys up and print the same JSON as GET /lookup/{key}, one line per key, asking a
    /// running service (--server) or MISP directly with the flags of `serve`.
    Query(Box<QueryArgs>),
    /// Print a Graylog content pack (data adapters, cache, lookup tables and pipeline rules
    /// for common Wazuh fields) whose adapters call the service at --url.
    GraylogContentPack(ContentPackArgs),
}

/// Arguments of `misp-lookup graylog-content-pack`.
#[derive(Debug, Args)]
pub struct ContentPackArgs {
    /// Base URL at which Graylog reaches the service, e.g. http://misp-lookup.siem.svc:8080.
    #[arg(long, default_value = crate::content_pack::DEFAULT_URL)]
    pub url: String,

    /// File holding the service's --api-token: each adapter then sends it as
    /// Authorization: Bearer. Graylog stores adapter headers in clear text.
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
}

/// Arguments of `misp-lookup query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Keys to look up, as Graylog would send them (not percent-encoded).
    #[arg(required = true)]
    pub keys: Vec<String>,

    /// URL of a running misp-lookup service, e.g. http://127.0.0.1:8080. Without it, MISP is
    /// asked directly with the `serve` flags below.
    #[arg(long, env = "MISP_LOOKUP_SERVER")]
    pub server: Option<String>,

    /// MISP types or kind groups to search, as type= of /lookup/{key}.
    #[arg(long = "type")]
    pub type_filter: Option<String>,

    /// The settings used when MISP is asked directly; --api-token is sent to --server.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Flags of `misp-lookup serve`. Secret values are read into [`Secret`], so `Debug` output
/// never shows them.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. The Helm chart and container image set 0.0.0.0:8080.
    #[arg(long, env = "MISP_LOOKUP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Base URL of MISP, e.g. https://misp.example.org (required unless --demo).
    #[arg(long, env = "MISP_LOOKUP_MISP_URL")]
    pub misp_url: Option<String>,

    /// MISP API key of the service (40 alphanumerics). Prefer --misp-key-file.
    #[arg(
        long,
        env = "MISP_LOOKUP_MISP_KEY",
        hide_env_values = true,
        value_parser = Secret::parse,
        conflicts_with = "misp_key_file"
    )]
    pub misp_key: Option<Secret>,

    /// File holding the MISP API key (surrounding whitespace is ignored).
    #[arg(long, env = "MISP_LOOKUP_MISP_KEY_FILE")]
    pub misp_key_file: Option<PathBuf>,

    /// PEM file of extra CA certificates to trust for MISP's TLS certificate.
    #[arg(long, env = "MISP_LOOKUP_MISP_CA_CERT")]
    pub misp_ca_cert: Option<PathBuf>,

    /// Skip verification of MISP's TLS certificate (testing only).
    #[arg(long, env = "MISP_LOOKUP_MISP_INSECURE")]
    pub misp_insecure: bool,

    /// Time limit of one MISP request, body included (e.g. 30s). The request keeps running
    /// after a caller's --answer-deadline passed, so its answer still fills the cache.
    #[arg(long, env = "MISP_LOOKUP_MISP_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub misp_timeout: Duration,

    /// Maximum time a caller waits for an answer not in the cache before getting 504
    /// misp_timeout (e.g. 1s). Keep it well below Graylog's 10 s read timeout.
    #[arg(long, env = "MISP_LOOKUP_ANSWER_DEADLINE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub answer_deadline: Duration,

    /// Most MISP requests in flight at once; further requests wait for a free slot.
    #[arg(long, env = "MISP_LOOKUP_MISP_MAX_INFLIGHT", default_value_t = 8)]
    pub misp_max_inflight: usize,

    /// Retries of a MISP request after a connection failure or 5xx (never after a 4xx).
    #[arg(long, env = "MISP_LOOKUP_MISP_RETRIES", default_value_t = 2)]
    pub misp_retries: u32,

    /// Consecutive MISP failures that open the circuit breaker.
    #[arg(long, env = "MISP_LOOKUP_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// How long the open circuit breaker fails new keys fast before probing MISP again.
    #[arg(long, env = "MISP_LOOKUP_BREAKER_COOLDOWN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub breaker_cooldown: Duration,

    /// Most keys sent to MISP in one batched restSearch; 1 turns batching off.
    #[arg(long, env = "MISP_LOOKUP_BATCH_MAX", default_value_t = 100)]
    pub batch_max: usize,

    /// How long a cache miss waits for other misses to share its MISP request (e.g. 5ms).
    #[arg(long, env = "MISP_LOOKUP_BATCH_WINDOW", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub batch_window: Duration,

    /// Maximum attributes MISP returns for one key (MISP's `limit`).
    #[arg(long, env = "MISP_LOOKUP_MISP_LIMIT", default_value_t = 100)]
    pub misp_limit: u32,

    /// Largest MISP response body read, in bytes; a larger one is an error.
    #[arg(long, env = "MISP_LOOKUP_MISP_MAX_BODY", default_value_t = 16 * 1024 * 1024)]
    pub misp_max_body: usize,

    /// MISP extras to request, comma-separated: context, sightings, decay, correlations.
    /// Each makes every MISP search slower; ask only for what --field paths read.
    #[arg(long, env = "MISP_LOOKUP_MISP_INCLUDE", value_delimiter = ',')]
    pub misp_include: Vec<String>,

    /// Base URL of MISP's web interface for `event_url` (default: --misp-url).
    #[arg(long, env = "MISP_LOOKUP_MISP_PUBLIC_URL")]
    pub misp_public_url: Option<String>,

    /// Maximum number of cached answers (entries).
    #[arg(long, env = "MISP_LOOKUP_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,

    /// How long an answer with a match stays fresh: a duration, or a list by kind such as
    /// sha256=24h,ip=1h,default=4h (keys: kinds, the groups ip and hash, default).
    #[arg(long, env = "MISP_LOOKUP_TTL_HIT", default_value = "hash=24h,ip=1h,default=4h", value_parser = TtlTable::parse)]
    pub ttl_hit: TtlTable,

    /// How long an answer without a match stays fresh: a duration or a list as for --ttl-hit.
    #[arg(long, env = "MISP_LOOKUP_TTL_MISS", default_value = "10m", value_parser = TtlTable::parse)]
    pub ttl_miss: TtlTable,

    /// How long an expired answer may still be served while it is refreshed, or while MISP
    /// fails (e.g. 1h; 0s turns stale answers off).
    #[arg(long, env = "MISP_LOOKUP_STALE_MAX", default_value = "1h", value_parser = humantime::parse_duration)]
    pub stale_max: Duration,

    /// Shared cache tier: redis://[:password@]host:port[/db], rediss:// for TLS,
    /// redis-sentinel://host:port/db?sentinelServiceName=NAME&node=host:port or
    /// redis-cluster://host:port?node=host:port&node=host:port.
    #[arg(long, env = "MISP_LOOKUP_REDIS_URL", hide_env_values = true, value_parser = Secret::parse)]
    pub redis_url: Option<Secret>,

    /// PEM file of extra CA certificates to trust for Redis's TLS certificate, with a
    /// rediss:// URL.
    #[arg(long, env = "MISP_LOOKUP_REDIS_CA_CERT")]
    pub redis_ca_cert: Option<PathBuf>,

    /// Maximum wait for one Redis operation before the lookup goes on without it.
    #[arg(long, env = "MISP_LOOKUP_REDIS_TIMEOUT", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub redis_timeout: Duration,

    /// Token required by DELETE /cache and DELETE /cache/{key}, as Authorization: Bearer or
    /// X-Admin-Token. Without it, the cache administration endpoints answer 401.
    #[arg(
        long,
        env = "MISP_LOOKUP_ADMIN_TOKEN",
        hide_env_values = true,
        value_parser = Secret::parse,
        conflicts_with = "admin_token_file"
    )]
    pub admin_token: Option<Secret>,

    /// File holding the admin token (surrounding whitespace is ignored).
    #[arg(long, env = "MISP_LOOKUP_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Token every lookup must carry, as `Authorization: Bearer <token>` or `X-Api-Token`.
    #[arg(
        long,
        env = "MISP_LOOKUP_API_TOKEN",
        hide_env_values = true,
        value_parser = Secret::parse,
        conflicts_with = "api_token_file"
    )]
    pub api_token: Option<Secret>,

    /// File holding the API token (surrounding whitespace is ignored).
    #[arg(long, env = "MISP_LOOKUP_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,

    /// Send each caller's own MISP key (X-MISP-Auth or Authorization) to MISP instead of the
    /// service's key, and keep each key's cache entries apart.
    #[arg(long, env = "MISP_LOOKUP_FORWARD_CALLER_KEY")]
    pub forward_caller_key: bool,

    /// Extra flat field NAME=JSONPATH computed from the first match (repeatable; in the
    /// environment variable, one per line). Example: threat_level=$.Event.threat_level_id
    #[arg(long = "field", env = "MISP_LOOKUP_FIELD", value_delimiter = '\n')]
    pub fields: Vec<String>,

    /// Worker threads serving HTTP (default: the number of CPU cores).
    #[arg(long, env = "MISP_LOOKUP_WORKERS")]
    pub workers: Option<usize>,

    /// Log format.
    #[arg(
        long,
        env = "MISP_LOOKUP_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Start a built-in MISP emulator on a loopback port with a small demo data set, and use it
    /// as MISP. No real MISP is needed.
    #[arg(long, env = "MISP_LOOKUP_DEMO", conflicts_with_all = ["misp_url", "misp_key", "misp_key_file"])]
    pub demo: bool,
}
