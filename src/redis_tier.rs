//! The shared cache tier in Redis: single server, Sentinel or Cluster, through fred.
//!
//! Every operation is bounded by `--redis-timeout`; a failure or a timeout is counted, logged at
//! most once per interval, and treated as a miss, so no lookup fails because Redis failed.
//! fred reconnects by itself in the background.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::error::ErrorKind;
use fred::prelude::{
    Builder, ClientLike, Config, Error as RedisError, EventInterface, Expiration, KeysInterface,
    ReconnectPolicy, SetsInterface,
};
use fred::types::config::{Server, TlsConnector};
use futures::StreamExt;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::cache::{Entry, Freshness, KEY_VERSION};
use crate::config::RedisConfig;
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::misp::matching::collation_key;

/// Prefix of every Redis key this service writes.
const KEY_PREFIX: &str = "misp-lookup";

/// Format version of a stored entry, its first byte.
const ENTRY_FORMAT: u8 = 1;

/// Bytes before the body in a stored entry: format, found flag, stored-at and TTL in ms.
const HEADER_LEN: usize = 1 + 1 + 8 + 8;

/// The shared tier.
pub struct RedisTier {
    client: fred::clients::Client,
    clustered: bool,
    timeout: Duration,
    stale_max: Duration,
    /// How long a value's index set lives: the longest TTL plus `stale_max`.
    index_ttl: Duration,
    /// A digest of the settings that shape a body, part of every entry key.
    fingerprint: String,
    up: AtomicBool,
    metrics: Metrics,
    log: LogLimiter,
}

impl RedisTier {
    /// Creates the client and starts connecting in the background. A Redis that is down at
    /// start only delays the shared tier; the service starts anyway.
    pub fn connect(
        config: &RedisConfig,
        stale_max: Duration,
        max_ttl: Duration,
        fingerprint: String,
        metrics: Metrics,
    ) -> Result<Arc<Self>, RedisError> {
        // fred's own TLS setup for a rediss:// URL fails when the system store contains a file
        // or certificate it cannot read, so the URL is parsed as redis:// and the connector,
        // which skips those, is built here.
        let url = config.url.expose();
        let plain_url = url
            .strip_prefix("rediss://")
            .map(|rest| format!("redis://{rest}"));
        let mut redis_config = Config::from_url(plain_url.as_deref().unwrap_or(url))?;
        if plain_url.is_some() {
            redis_config.tls = Some(tls_connector(&config.ca_certs)?.into());
        }
        // By default fred stops retrying after a failed first connection, and a Redis that
        // starts after the service must still be used.
        redis_config.fail_fast = false;
        let clustered = redis_config.server.is_clustered();
        let client = Builder::from_config(redis_config)
            .with_connection_config(|connection| {
                connection.connection_timeout = Duration::from_secs(2);
                connection.internal_command_timeout = Duration::from_secs(2);
                // A command is not retried past the lookup's own bound on Redis.
                connection.max_command_attempts = 1;
            })
            .with_performance_config(|performance| {
                performance.default_command_timeout = config.timeout;
            })
            // Forever, from 100 ms up to 5 s between attempts.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()?;
        let _connection_task = client.connect();

        let tier = Arc::new(Self {
            client,
            clustered,
            timeout: config.timeout,
            stale_max,
            index_ttl: max_ttl + stale_max,
            fingerprint,
            up: AtomicBool::new(false),
            metrics,
            log: LogLimiter::new(Duration::from_secs(10)),
        });
        tier.metrics.redis_up.set(0);

        // Connection failures, such as an untrusted certificate or a wrong password, are
        // otherwise seen only as timed-out commands.
        let weak = Arc::downgrade(&tier);
        let _error_task = tier.client.on_error(move |(error, server)| {
            if let Some(tier) = weak.upgrade() {
                tier.connection_failed(&error, server.as_ref());
            }
            std::future::ready(Ok(()))
        });
        Ok(tier)
    }

    /// Logs a failed connection attempt, at most once per interval of the tier's [`LogLimiter`].
    fn connection_failed(&self, error: &RedisError, server: Option<&Server>) {
        self.set_up(false);
        if let Some(suppressed) = self.log.allow("connection") {
            tracing::warn!(
                error = %error,
                server = server.map(ToString::to_string).as_deref().unwrap_or("-"),
                suppressed,
                "Redis connection failed; lookups go on without the shared tier"
            );
        }
    }

    /// Waits up to `wait` for the first connection; returns whether Redis is connected.
    pub async fn wait_connected(&self, wait: Duration) -> bool {
        let connected = tokio::time::timeout(wait, self.client.wait_for_connect())
            .await
            .is_ok_and(|result| result.is_ok());
        self.set_up(connected);
        connected
    }

    /// `up` or `down`, as last observed.
    pub fn state(&self) -> &'static str {
        if self.up.load(Ordering::Relaxed) && self.client.is_connected() {
            "up"
        } else {
            "down"
        }
    }

    /// Reads an entry; `None` on a miss, an expired entry, an unreadable entry or any failure.
    pub async fn get(&self, cache_key: &str) -> Option<(Entry, Freshness)> {
        let key = entry_key(&self.fingerprint, cache_key);
        let result: Result<Option<Vec<u8>>, _> =
            self.bounded("get", self.client.get(key.as_str())).await;
        let stored = result.ok().flatten();
        let decoded = stored.and_then(|bytes| decode(cache_key, &bytes));
        let servable = decoded.and_then(|entry| {
            if entry.is_fresh() {
                Some((entry, Freshness::Fresh))
            } else if entry.is_servable(self.stale_max) {
                Some((entry, Freshness::Stale))
            } else {
                None
            }
        });
        let tier = &["redis"];
        match servable {
            Some((_, Freshness::Fresh)) => self.metrics.cache_hits.with_label_values(tier).inc(),
            _ => self.metrics.cache_misses.with_label_values(tier).inc(),
        }
        servable
    }

    /// Writes an entry in the background; it expires in Redis when it can no longer be served.
    /// `values` are the normalized values it answers, indexed for purges.
    pub fn spawn_set(self: &Arc<Self>, cache_key: &str, values: Vec<String>, entry: Entry) {
        let tier = Arc::clone(self);
        let key = entry_key(&self.fingerprint, cache_key);
        tokio::spawn(async move {
            let expiry = entry.ttl() + tier.stale_max;
            let milliseconds = i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX).max(1);
            let encoded = encode(&entry);
            let set: Result<(), _> = tier
                .bounded(
                    "set",
                    tier.client.set(
                        key.as_str(),
                        encoded.as_slice(),
                        Some(Expiration::PX(milliseconds)),
                        None,
                        false,
                    ),
                )
                .await;
            if set.is_err() {
                return;
            }
            let index_ms = i64::try_from(tier.index_ttl.as_millis()).unwrap_or(i64::MAX);
            for value in values {
                let index = index_key(&value);
                let added: Result<(), _> = tier
                    .bounded("set", tier.client.sadd(index.as_str(), key.as_str()))
                    .await;
                if added.is_ok() {
                    let _: Result<(), _> = tier
                        .bounded("set", tier.client.pexpire(index.as_str(), index_ms, None))
                        .await;
                }
            }
        });
    }

    /// Removes every entry of a normalized value. Returns the number of entries removed.
    pub async fn purge_value(&self, value: &str) -> Result<usize, RedisError> {
        let index = index_key(value);
        let members: Vec<String> =
            with_timeout(ADMIN_TIMEOUT, self.client.smembers(index.as_str())).await?;
        let mut removed = 0;
        // One key per DEL, because a Redis Cluster rejects multi-key commands across slots.
        for member in &members {
            let count: i64 = with_timeout(ADMIN_TIMEOUT, self.client.del(member.as_str())).await?;
            removed += usize::try_from(count).unwrap_or(0);
        }
        let _: i64 = with_timeout(ADMIN_TIMEOUT, self.client.del(index.as_str())).await?;
        Ok(removed)
    }

    /// Removes every key this service wrote. Returns the number of entries removed.
    ///
    /// Each page of the scan and each deletion waits at most [`ADMIN_TIMEOUT`], so a purge
    /// against an unreachable Redis fails instead of hanging.
    pub async fn purge_all(&self) -> Result<usize, RedisError> {
        if !self.client.is_connected() {
            return Err(RedisError::new(
                fred::error::ErrorKind::IO,
                "Redis is not connected",
            ));
        }
        let pattern = format!("{KEY_PREFIX}:{KEY_VERSION}:*");
        let mut keys = if self.clustered {
            self.client
                .scan_cluster_buffered(pattern, Some(500), None)
                .boxed()
        } else {
            self.client.scan_buffered(pattern, Some(500), None).boxed()
        };
        let entry_prefix = format!("{KEY_PREFIX}:{KEY_VERSION}:e:");
        let mut removed = 0;
        loop {
            let next = tokio::time::timeout(ADMIN_TIMEOUT, keys.next())
                .await
                .map_err(|_| timeout_error())?;
            let Some(key) = next else { break };
            let Some(name) = key?.as_str().map(str::to_owned) else {
                continue;
            };
            let count: i64 = with_timeout(ADMIN_TIMEOUT, self.client.del(name.as_str())).await?;
            if name.starts_with(&entry_prefix) {
                removed += usize::try_from(count).unwrap_or(0);
            }
        }
        Ok(removed)
    }

    /// Runs one Redis operation within `--redis-timeout`, recording failures.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        future: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, ()> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(Ok(value)) => {
                self.set_up(true);
                Ok(value)
            }
            Ok(Err(err)) => {
                self.fail(operation, &err.to_string());
                Err(())
            }
            Err(_) => {
                self.fail(operation, "timed out");
                Err(())
            }
        }
    }

    fn fail(&self, operation: &'static str, reason: &str) {
        self.metrics
            .redis_errors
            .with_label_values(&[operation])
            .inc();
        self.set_up(self.client.is_connected());
        if let Some(suppressed) = self.log.allow(operation) {
            tracing::warn!(
                operation,
                error = reason,
                suppressed,
                "Redis operation failed; lookups go on without the shared tier"
            );
        }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.metrics.redis_up.set(i64::from(up));
    }
}

/// Maximum wait for one Redis command of a purge, which an operator runs by hand.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

async fn with_timeout<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| Err(timeout_error()))
}

fn timeout_error() -> RedisError {
    RedisError::new(
        fred::error::ErrorKind::Timeout,
        "Redis did not answer in time",
    )
}

/// Returns the Redis key of a cache entry: a digest of the settings fingerprint and the cache
/// key, which keeps keys short and contains caller identities only as digests of digests.
fn entry_key(fingerprint: &str, cache_key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(fingerprint.as_bytes());
    hasher.update([0x1f]);
    hasher.update(cache_key.as_bytes());
    let digest = hex::encode(hasher.finalize());
    format!("{KEY_PREFIX}:{KEY_VERSION}:e:{digest}")
}

/// Returns the Redis key of the set that lists a value's entries. The value goes through the
/// collation key first, so that every case and accent variant of a key of kind `other` shares
/// one set and one purge, as in the in-process tier.
fn index_key(value: &str) -> String {
    let digest = hex::encode(Sha256::digest(collation_key(value).as_bytes()));
    format!("{KEY_PREFIX}:{KEY_VERSION}:v:{digest}")
}

/// Encodes an entry with its wall-clock store time, so that every replica computes the same
/// age and both tiers agree on freshness.
fn encode(entry: &Entry) -> Vec<u8> {
    let stored_at_ms = unix_millis().saturating_sub(millis(entry.age()));
    let mut bytes = Vec::with_capacity(HEADER_LEN + entry.body().len());
    bytes.push(ENTRY_FORMAT);
    bytes.push(u8::from(entry.found));
    bytes.extend_from_slice(&stored_at_ms.to_be_bytes());
    bytes.extend_from_slice(&millis(entry.ttl()).to_be_bytes());
    bytes.extend_from_slice(entry.body());
    bytes
}

/// Builds the TLS connector of a `rediss://` URL that trusts the system's CA certificates and
/// `extra`.
fn tls_connector(extra: &[CertificateDer<'static>]) -> Result<TlsConnector, RedisError> {
    let tls_error = |err: rustls::Error| RedisError::new(ErrorKind::Tls, err.to_string());

    let mut roots = rustls::RootCertStore::empty();
    // A system store that cannot be read still leaves the CA certificates given by the flag.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    for cert in extra {
        roots.add(cert.clone()).map_err(tls_error)?;
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(tls))
}

/// Decodes the entry stored for `cache_key`; `None` for another format version or a truncated
/// value.
fn decode(cache_key: &str, bytes: &[u8]) -> Option<Entry> {
    if bytes.len() < HEADER_LEN || bytes[0] != ENTRY_FORMAT {
        return None;
    }
    let found = bytes[1] != 0;
    let stored_at_ms = u64::from_be_bytes(bytes[2..10].try_into().ok()?);
    let ttl_ms = u64::from_be_bytes(bytes[10..18].try_into().ok()?);
    let age = Duration::from_millis(unix_millis().saturating_sub(stored_at_ms));
    Some(Entry::with_age(
        cache_key,
        &bytes[HEADER_LEN..],
        found,
        Duration::from_millis(ttl_ms),
        age,
    ))
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_with_age() {
        let entry = Entry::with_age(
            "k",
            b"{\"found\":true}",
            true,
            Duration::from_secs(60),
            Duration::from_secs(5),
        );
        let decoded = decode("k", &encode(&entry)).unwrap();
        assert_eq!(decoded.key(), "k");
        assert_eq!(decoded.body(), entry.body());
        assert!(decoded.found);
        assert_eq!(decoded.ttl(), entry.ttl());
        let age = decoded.age();
        assert!(age >= Duration::from_millis(4900), "age {age:?}");
        assert!(age < Duration::from_secs(7), "age {age:?}");
    }

    #[test]
    fn other_format_is_ignored() {
        let mut bytes = encode(&Entry::new("k", b"", false, Duration::from_secs(1)));
        bytes[0] = 99;
        assert!(decode("k", &bytes).is_none());
        assert!(decode("k", &bytes[..5]).is_none());
    }

    #[test]
    fn keys_hold_no_clear_values() {
        let key = entry_key(
            "0123abcd",
            "v1\u{1f}lookup\u{1f}abc\u{1f}evil.example\u{1f}{}",
        );
        assert!(key.starts_with("misp-lookup:v1:e:"));
        assert!(!key.contains("evil"));
    }
}
