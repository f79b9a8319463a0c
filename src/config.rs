//! The validated configuration that the rest of the service reads.
//!
//! [`Config::from_args`] checks every flag once at start, so that a bad setting stops the
//! process with one line naming the flag, and handlers never see an unchecked value.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json_path::JsonPath;

use crate::cli::{LogFormat, ServeArgs};
use crate::ttl::TtlTable;

/// A credential whose text never appears in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Parses a command-line value; clap's `value_parser` for secret flags.
    pub fn parse(text: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self::new(text))
    }

    /// Returns the credential's text, for the places that send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A configuration error: the flag at fault and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid {flag}: {reason}")]
pub struct ConfigError {
    /// The flag, as typed on the command line.
    pub flag: &'static str,
    /// The problem and the fix.
    pub reason: String,
}

impl ConfigError {
    fn new(flag: &'static str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            reason: reason.into(),
        }
    }
}

/// MISP's costly response extras that `--misp-include` can request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MispInclude {
    /// `includeContext`: the full event with its tags and creator organisation.
    Context,
    /// `includeSightings`: the attribute's sightings.
    Sightings,
    /// `includeDecayScore`: decaying-model scores.
    Decay,
    /// `includeCorrelations`: attributes elsewhere with the same value.
    Correlations,
}

impl MispInclude {
    /// Returns the restSearch parameter that requests this extra.
    pub fn parameter(self) -> &'static str {
        match self {
            Self::Context => "includeContext",
            Self::Sightings => "includeSightings",
            Self::Decay => "includeDecayScore",
            Self::Correlations => "includeCorrelations",
        }
    }
}

/// An extra flat field: a name and the JSONPath evaluated against the first match.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// Field name in the answer's `fields` object.
    pub name: String,
    /// The path as configured, for messages.
    pub source: String,
    /// The compiled RFC 9535 path.
    pub path: JsonPath,
    /// Whether the path selects at most one node. A singular path yields a scalar; any other
    /// path always yields a list of strings, so that the field keeps one JSON type.
    pub singular: bool,
}

/// MISP connection settings.
#[derive(Debug, Clone)]
pub struct MispConfig {
    /// Base URL without a trailing slash.
    pub url: String,
    /// The service's own key; `None` only with `--forward-caller-key`.
    pub key: Option<Secret>,
    /// Extra CA certificates (PEM), read at start.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Time limit of one request, body included.
    pub timeout: Duration,
    /// MISP's `limit` for one key.
    pub limit: u32,
    /// Largest response body read, in bytes.
    pub max_body: usize,
    /// Extras requested on every native lookup.
    pub include: Vec<MispInclude>,
}

/// Limits that protect MISP.
#[derive(Debug, Clone)]
pub struct ProtectionConfig {
    /// Most MISP requests in flight.
    pub max_inflight: usize,
    /// Retries after a connection failure or 5xx.
    pub retries: u32,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_cooldown: Duration,
}

/// Batching of distinct cache misses into one restSearch.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Maximum number of keys in one batch; 1 turns batching off.
    pub max_keys: usize,
    /// How long the first miss of a batch waits for others.
    pub window: Duration,
}

/// The shared Redis tier.
#[derive(Clone)]
pub struct RedisConfig {
    /// The Redis URL; it may hold a password, so it is not shown by `Debug`.
    pub url: Secret,
    /// Maximum wait for one Redis operation.
    pub timeout: Duration,
    /// Extra CA certificates to trust for a `rediss://` server, besides the system's.
    pub ca_certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("ca_certs", &self.ca_certs.len())
            .finish()
    }
}

/// The whole validated configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: std::net::SocketAddr,
    /// MISP connection settings. With `demo`, the URL and key are filled in at start.
    pub misp: MispConfig,
    /// Base URL of MISP's web interface, used in `event_url`.
    pub public_url: String,
    /// Maximum cached answers.
    pub cache_capacity: u64,
    /// Freshness of answers with a match, by kind.
    pub ttl_hit: TtlTable,
    /// Freshness of answers without a match, by kind.
    pub ttl_miss: TtlTable,
    /// How long an expired answer may still be served.
    pub stale_max: Duration,
    /// Maximum wait of a caller for an answer not in the cache.
    pub answer_deadline: Duration,
    /// Protections of MISP against overload.
    pub protection: ProtectionConfig,
    /// Batching of cache misses.
    pub batch: BatchConfig,
    /// The shared Redis tier, if configured.
    pub redis: Option<RedisConfig>,
    /// Token required by the cache administration endpoints.
    pub admin_token: Option<Secret>,
    /// Token required on lookup endpoints.
    pub api_token: Option<Secret>,
    /// Forward callers' MISP keys instead of the service's own.
    pub forward_caller_key: bool,
    /// Extra `--field` definitions.
    pub fields: Vec<FieldSpec>,
    /// HTTP worker threads.
    pub workers: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Run against the built-in MISP emulator.
    pub demo: bool,
}

/// Field names the service itself writes, which `--field` must not replace.
pub const BUILTIN_FIELDS: &[&str] = &[
    "found",
    "value",
    "kind",
    "type",
    "category",
    "event_id",
    "event_uuid",
    "event_info",
    "attribute_uuid",
    "to_ids",
    "tags",
    "match_count",
    "match_count_capped",
    "event_ids",
    "first_seen",
    "last_seen",
    "event_url",
];

impl Config {
    /// Validates the command-line arguments into a configuration.
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        let misp_key = read_secret(
            "--misp-key",
            args.misp_key.as_ref(),
            "--misp-key-file",
            args.misp_key_file.as_deref(),
        )?;
        if let Some(key) = &misp_key {
            validate_misp_key(key)?;
        }

        let misp_url = match (&args.misp_url, args.demo) {
            (Some(url), _) => validate_url("--misp-url", url)?,
            // The emulator's address is known only once it listens; `run` fills it in.
            (None, true) => String::new(),
            (None, false) => {
                return Err(ConfigError::new(
                    "--misp-url",
                    "missing: set the base URL of MISP (or run with --demo to try the service \
                     without MISP)",
                ));
            }
        };
        if !args.demo && misp_key.is_none() && !args.forward_caller_key {
            return Err(ConfigError::new(
                "--misp-key",
                "missing: set --misp-key or --misp-key-file, or use --forward-caller-key to send \
                 each caller's own key",
            ));
        }

        let public_url = match &args.misp_public_url {
            Some(url) => validate_url("--misp-public-url", url)?,
            None => misp_url.clone(),
        };

        let ca_cert_pem = match &args.misp_ca_cert {
            Some(path) => Some(std::fs::read(path).map_err(|err| {
                ConfigError::new(
                    "--misp-ca-cert",
                    format!("cannot read {}: {err}", path.display()),
                )
            })?),
            None => None,
        };

        check_duration(
            "--misp-timeout",
            args.misp_timeout,
            Duration::from_secs(600),
        )?;
        check_duration(
            "--answer-deadline",
            args.answer_deadline,
            Duration::from_secs(600),
        )?;
        check_duration("--breaker-cooldown", args.breaker_cooldown, DAY)?;
        check_duration(
            "--redis-timeout",
            args.redis_timeout,
            Duration::from_secs(10),
        )?;
        if args.stale_max > 30 * DAY {
            return Err(ConfigError::new("--stale-max", "must be at most 30 days"));
        }
        for (flag, table) in [("--ttl-hit", &args.ttl_hit), ("--ttl-miss", &args.ttl_miss)] {
            if table.max() > 365 * DAY {
                return Err(ConfigError::new(
                    flag,
                    "every duration must be at most 365 days",
                ));
            }
        }
        if args.misp_limit == 0 {
            return Err(ConfigError::new(
                "--misp-limit",
                "must be at least 1, because MISP reads a limit of 0 as \"no limit\"",
            ));
        }
        if args.misp_max_body < 1024 {
            return Err(ConfigError::new(
                "--misp-max-body",
                "must be at least 1024 bytes",
            ));
        }
        if args.cache_capacity == 0 {
            return Err(ConfigError::new(
                "--cache-capacity",
                "must be at least 1 entry",
            ));
        }
        if args.misp_max_inflight == 0 {
            return Err(ConfigError::new(
                "--misp-max-inflight",
                "must be at least 1",
            ));
        }
        if args.breaker_failures == 0 {
            return Err(ConfigError::new("--breaker-failures", "must be at least 1"));
        }
        if args.batch_max == 0 || args.batch_max > 1000 {
            return Err(ConfigError::new(
                "--batch-max",
                "must be from 1 (no batching) to 1000 keys",
            ));
        }
        if args.batch_window > Duration::from_secs(1) {
            return Err(ConfigError::new(
                "--batch-window",
                "must be at most 1s, since every batched miss waits this long",
            ));
        }
        let redis = match &args.redis_url {
            Some(url) => Some(RedisConfig {
                url: validate_redis_url(url.expose())?,
                timeout: args.redis_timeout,
                ca_certs: read_redis_ca_certs(args.redis_ca_cert.as_deref(), url.expose())?,
            }),
            None if args.redis_ca_cert.is_some() => {
                return Err(ConfigError::new(
                    "--redis-ca-cert",
                    "set without --redis-url: give the rediss:// URL of the shared tier too",
                ));
            }
            None => None,
        };
        let admin_token = read_secret(
            "--admin-token",
            args.admin_token.as_ref(),
            "--admin-token-file",
            args.admin_token_file.as_deref(),
        )?;
        if admin_token
            .as_ref()
            .is_some_and(|token| token.expose().len() < 16)
        {
            return Err(ConfigError::new(
                "--admin-token",
                "must be at least 16 characters long",
            ));
        }
        if args.workers == Some(0) {
            return Err(ConfigError::new("--workers", "must be at least 1"));
        }

        let api_token = read_secret(
            "--api-token",
            args.api_token.as_ref(),
            "--api-token-file",
            args.api_token_file.as_deref(),
        )?;
        if api_token
            .as_ref()
            .is_some_and(|token| token.expose().len() < 16)
        {
            return Err(ConfigError::new(
                "--api-token",
                "must be at least 16 characters long",
            ));
        }

        let include = args
            .misp_include
            .iter()
            .filter(|item| !item.trim().is_empty())
            .map(|item| parse_include(item.trim()))
            .collect::<Result<Vec<_>, _>>()?;

        let fields = parse_fields(&args.fields)?;

        let workers = args.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });

        Ok(Self {
            listen: args.listen,
            misp: MispConfig {
                url: misp_url,
                key: misp_key,
                ca_cert_pem,
                insecure: args.misp_insecure,
                timeout: args.misp_timeout,
                limit: args.misp_limit,
                max_body: args.misp_max_body,
                include,
            },
            public_url,
            cache_capacity: args.cache_capacity,
            ttl_hit: args.ttl_hit.clone(),
            ttl_miss: args.ttl_miss.clone(),
            stale_max: args.stale_max,
            answer_deadline: args.answer_deadline,
            protection: ProtectionConfig {
                max_inflight: args.misp_max_inflight,
                retries: args.misp_retries,
                breaker_failures: args.breaker_failures,
                breaker_cooldown: args.breaker_cooldown,
            },
            batch: BatchConfig {
                max_keys: args.batch_max,
                window: args.batch_window,
            },
            redis,
            admin_token,
            api_token,
            forward_caller_key: args.forward_caller_key,
            fields,
            workers,
            log_format: args.log_format,
            demo: args.demo,
        })
    }
}

/// One day, the unit of the upper bounds on durations.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Checks that a duration is longer than zero and at most `max`. The upper bounds keep
/// instant arithmetic far from overflow and catch a unit typed wrong (`30d` for `30s`).
fn check_duration(flag: &'static str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::new(flag, "must be longer than zero"));
    }
    if value > max {
        return Err(ConfigError::new(
            flag,
            format!("must be at most {}", humantime::format_duration(max)),
        ));
    }
    Ok(())
}

/// Reads a secret given either inline or as a file; the file's surrounding whitespace is dropped.
fn read_secret(
    flag: &'static str,
    inline: Option<&Secret>,
    file_flag: &'static str,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    let text = match (inline, file) {
        (Some(secret), _) => secret.expose().trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|err| {
                ConfigError::new(file_flag, format!("cannot read {}: {err}", path.display()))
            })?
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if text.is_empty() {
        let flag = if inline.is_some() { flag } else { file_flag };
        return Err(ConfigError::new(flag, "is empty"));
    }
    Ok(Some(Secret::new(text)))
}

/// MISP accepts only keys of 40 ASCII alphanumerics. Checking here turns a pasted key with a
/// stray character into a start-up error instead of a 403 on every lookup.
fn validate_misp_key(key: &Secret) -> Result<(), ConfigError> {
    if crate::misp::is_valid_key(key.expose()) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "--misp-key",
            "a MISP API key is 40 letters and digits; check the value (it is not shown here)",
        ))
    }
}

fn validate_url(flag: &'static str, url: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|err| ConfigError::new(flag, format!("{url:?} is not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            flag,
            format!("{url:?} must start with http:// or https://"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::new(
            flag,
            "must not contain credentials; pass the MISP key with --misp-key-file",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::new(
            flag,
            format!("{url:?} must not have a query or fragment"),
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Checks the Redis URL's scheme; the client library parses the rest when it connects. The
/// URL may hold a password, so messages never repeat it.
fn validate_redis_url(url: &str) -> Result<Secret, ConfigError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("redis" | "rediss" | "redis-sentinel" | "redis-cluster") => Ok(Secret::new(url)),
        _ => Err(ConfigError::new(
            "--redis-url",
            "must start with redis://, rediss://, redis-sentinel:// or redis-cluster:// \
             (the URL is not shown because it may hold a password)",
        )),
    }
}

/// Reads the `--redis-ca-cert` file: one or more PEM certificates, for a `rediss://` URL only.
fn read_redis_ca_certs(
    path: Option<&Path>,
    url: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    const FLAG: &str = "--redis-ca-cert";
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    if !url.starts_with("rediss://") {
        return Err(ConfigError::new(
            FLAG,
            "applies only to a rediss:// URL, and --redis-url does not use TLS",
        ));
    }

    let pem = std::fs::read(path)
        .map_err(|err| ConfigError::new(FLAG, format!("cannot read {}: {err}", path.display())))?;
    // A key in the file is a mix-up with the server's own files, and it would end up mounted
    // wherever the CA file is.
    if PrivateKeyDer::from_pem_slice(&pem).is_ok() {
        return Err(ConfigError::new(
            FLAG,
            format!(
                "{} contains a private key: give only the CA certificates",
                path.display()
            ),
        ));
    }
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            ConfigError::new(FLAG, format!("{} is not valid PEM: {err}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            FLAG,
            format!(
                "{} contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }

    // Rejects a certificate that rustls cannot use as a trust anchor now, not at connect time.
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots.add(cert.clone()).map_err(|err| {
            ConfigError::new(
                FLAG,
                format!(
                    "{} contains an invalid CA certificate: {err}",
                    path.display()
                ),
            )
        })?;
    }
    Ok(certs)
}

fn parse_include(item: &str) -> Result<MispInclude, ConfigError> {
    match item {
        "context" => Ok(MispInclude::Context),
        "sightings" => Ok(MispInclude::Sightings),
        "decay" => Ok(MispInclude::Decay),
        "correlations" => Ok(MispInclude::Correlations),
        other => Err(ConfigError::new(
            "--misp-include",
            format!("unknown extra {other:?}; expected context, sightings, decay or correlations"),
        )),
    }
}

/// Parses `NAME=JSONPATH` definitions. Names use the characters Graylog accepts in a message
/// field name (`A-Z a-z 0-9 _ @ . -`); paths must parse as RFC 9535 JSONPath.
fn parse_fields(definitions: &[String]) -> Result<Vec<FieldSpec>, ConfigError> {
    let mut fields: Vec<FieldSpec> = Vec::new();
    for definition in definitions {
        let definition = definition.trim();
        if definition.is_empty() {
            continue;
        }
        let Some((name, source)) = definition.split_once('=') else {
            return Err(ConfigError::new(
                "--field",
                format!("{definition:?} must have the form NAME=JSONPATH"),
            ));
        };
        let (name, source) = (name.trim(), source.trim());
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'.' | b'-'));
        if !valid_name {
            return Err(ConfigError::new(
                "--field",
                format!("name {name:?} may use only A-Z a-z 0-9 _ @ . - (Graylog's field names)"),
            ));
        }
        if BUILTIN_FIELDS.contains(&name) {
            return Err(ConfigError::new(
                "--field",
                format!("name {name:?} is a built-in field; choose another name"),
            ));
        }
        if fields.iter().any(|field| field.name == name) {
            return Err(ConfigError::new(
                "--field",
                format!("name {name:?} is defined twice"),
            ));
        }
        let path = JsonPath::parse(source).map_err(|err| {
            ConfigError::new(
                "--field",
                format!("{name}: {source:?} is not a valid JSONPath: {err}"),
            )
        })?;
        fields.push(FieldSpec {
            name: name.to_owned(),
            source: source.to_owned(),
            path,
            singular: is_singular_path(source),
        });
    }
    Ok(fields)
}

/// Tells whether a parsed JSONPath is singular in RFC 9535's sense: only child segments with
/// one name or index selector each. serde_json_path keeps this test private, so this reads the
/// text: outside quoted names, a descendant segment (`..`), a wildcard (`*`), a filter (`?`),
/// a slice (`:`) or a selector list (`,`) makes the path non-singular.
fn is_singular_path(source: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut previous = '\0';
    for ch in source.chars() {
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == open {
                quote = None;
            }
            continue;
        }
        match ch {
            '\'' | '"' => quote = Some(ch),
            '*' | '?' | ':' | ',' => return false,
            '.' if previous == '.' => return false,
            _ => {}
        }
        previous = ch;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_path_detection() {
        assert!(is_singular_path("$.Event.threat_level_id"));
        assert!(is_singular_path("$['Event']['info']"));
        assert!(is_singular_path("$.Tag[0].name"));
        assert!(is_singular_path("$['a.b,c*']"));
        assert!(!is_singular_path("$.Tag[*].name"));
        assert!(!is_singular_path("$.Tag[?@.is_galaxy].name"));
        assert!(!is_singular_path("$..name"));
        assert!(!is_singular_path("$.Tag[0:2]"));
        assert!(!is_singular_path("$.Tag[0,1]"));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("abcdefghijabcdefghijabcdefghijabcdefghij");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn field_name_rules() {
        let ok = parse_fields(&["misp.threat-level@x=$.Event.threat_level_id".to_owned()]);
        assert!(ok.is_ok());
        let bad_name = parse_fields(&["bad name=$.a".to_owned()]);
        assert!(bad_name.is_err());
        let builtin = parse_fields(&["found=$.a".to_owned()]);
        assert!(builtin.is_err());
        let bad_path = parse_fields(&["x=$.[".to_owned()]);
        assert!(bad_path.is_err());
    }
}
