//! The lookup service: the in-process tier, then Redis, then one MISP request per key shared by
//! every concurrent caller (and batched with other keys), then exact matching and rendering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::answer::{self, Renderer};
use crate::batch::Batcher;
use crate::cache::{self, Cache, Entry, Freshness};
use crate::config::{Config, Secret};
use crate::indicator::{Indicator, Kind};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::misp::guard::Upstream;
use crate::misp::matching::attribute_matches;
use crate::misp::types::TypeFilter;
use crate::misp::{Client, MispError, SearchRequest};
use crate::redis_tier::RedisTier;
use crate::ttl::TtlTable;

/// Removes a load's key from the in-flight map when dropped.
struct InflightGuard<'a> {
    service: &'a Service,
    key: &'a str,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.service
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(self.key);
    }
}

/// Returns a short digest of the settings that shape a cached body: a digest of the service's
/// own key, the limit, the extras, the `--field`s and the public URL.
fn settings_fingerprint(config: &Config) -> String {
    let mut hasher = Sha256::new();
    // MISP's answer depends on what the service's own key may see. A key also identifies its
    // MISP instance, since MISP generates keys at random.
    if let Some(key) = &config.misp.key {
        hasher.update(Sha256::digest(key.expose().as_bytes()));
    }
    hasher.update(config.misp.limit.to_be_bytes());
    for include in &config.misp.include {
        hasher.update(include.parameter());
        hasher.update([0]);
    }
    for field in &config.fields {
        hasher.update(&field.name);
        hasher.update([0]);
        hasher.update(&field.source);
        hasher.update([0]);
    }
    hasher.update(&config.public_url);
    hex::encode(&hasher.finalize()[..8])
}

/// Shortest interval between two log lines for the same MISP error code.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where an answer came from, sent as the `X-Cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// A fresh entry of the in-process cache.
    Hit,
    /// This caller's request started the MISP request.
    Miss,
    /// This caller joined a MISP request that another caller had started.
    Coalesced,
    /// A fresh entry of the shared Redis tier.
    Redis,
    /// An expired entry within `--stale-max`, served while a refresh runs in the background.
    Stale,
}

impl CacheStatus {
    /// Returns the `X-Cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
            Self::Redis => "redis",
            Self::Stale => "stale",
        }
    }
}

/// A served answer.
#[derive(Debug, Clone)]
pub struct Served {
    /// The cached entry with the rendered body.
    pub entry: Entry,
    /// The tier or request that produced it.
    pub status: CacheStatus,
}

/// A failed lookup.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// MISP failed.
    #[error(transparent)]
    Misp(#[from] MispError),
    /// The task that asked MISP ended without an answer (it panicked).
    #[error("the MISP request task failed: {0}")]
    Internal(String),
}

/// The question of a query, which also decides how MISP's answer becomes a body.
#[derive(Debug, Clone)]
enum Request {
    /// A native `/lookup` of one indicator, rendered as the flat Graylog body. The MISP search
    /// is built only on a cache miss.
    Native {
        indicator: Indicator,
        filter: Option<TypeFilter>,
    },
    /// A drop-in restSearch, rendered in MISP's own wire format; attributes must equal one of
    /// the normalized values.
    Dropin {
        search: SearchRequest,
        values: Vec<(String, Kind)>,
    },
}

/// Who is asking, as far as MISP's answer depends on it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The caller's own MISP key, with `--forward-caller-key`.
    pub misp_key: Option<Secret>,
}

impl Caller {
    /// Returns the caller's identity in cache keys: a SHA-256 digest of the forwarded key,
    /// never the key itself, or `None` when the service's own key is used.
    fn identity(&self) -> Option<String> {
        self.misp_key
            .as_ref()
            .map(|key| hex::encode(Sha256::digest(key.expose().as_bytes())))
    }
}

/// One question to answer: what to ask MISP, under which cache key, and how to render it.
#[derive(Debug)]
pub struct Query {
    cache_key: String,
    request: Request,
    caller: Caller,
    identity: Option<String>,
    /// Answered as "not found" without asking MISP, because no attribute can match.
    unmatchable: bool,
}

impl Query {
    /// Returns the cache key, for tests and logs. It contains no credential.
    pub fn cache_key(&self) -> &str {
        &self.cache_key
    }

    /// Returns the normalized values and their kinds, for TTLs and purges.
    fn values(&self) -> Vec<(&str, Kind)> {
        match &self.request {
            Request::Native { indicator, .. } => vec![(indicator.value(), indicator.kind())],
            Request::Dropin { values, .. } => values
                .iter()
                .map(|(value, kind)| (value.as_str(), *kind))
                .collect(),
        }
    }
}

type SharedLoad = Shared<BoxFuture<'static, Result<Entry, LookupError>>>;

/// The lookup service shared by every HTTP worker.
pub struct Service {
    cache: Cache,
    redis: Option<Arc<RedisTier>>,
    upstream: Arc<Upstream>,
    batcher: Option<Batcher>,
    renderer: Renderer,
    inflight: Mutex<HashMap<String, SharedLoad>>,
    limit: u32,
    include: Vec<&'static str>,
    ttl_hit: TtlTable,
    ttl_miss: TtlTable,
    answer_deadline: Duration,
    metrics: Metrics,
    error_log: LogLimiter,
}

/// A failure to build the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The MISP client could not be built (for example, a bad CA certificate).
    #[error("cannot build the MISP client (check --misp-ca-cert): {0}")]
    Client(#[from] reqwest::Error),
    /// The Redis URL could not be used.
    #[error("invalid --redis-url: {0}")]
    Redis(#[from] fred::error::Error),
}

impl Service {
    /// Builds the service from a validated configuration; must run inside a Tokio runtime,
    /// because the batching task and the Redis connection start here.
    pub fn new(config: &Config, metrics: Metrics) -> Result<Self, ServiceError> {
        let client = Client::new(&config.misp, metrics.clone())?;
        let upstream = Arc::new(Upstream::new(
            client,
            config.protection.clone(),
            config.misp.timeout,
            metrics.clone(),
        ));
        let batcher = (config.batch.max_keys > 1).then(|| {
            Batcher::spawn(
                Arc::clone(&upstream),
                config.batch.clone(),
                config.misp.limit,
                metrics.clone(),
            )
        });
        let max_ttl = config.ttl_hit.max().max(config.ttl_miss.max());
        // Replicas configured differently must never read each other's entries from Redis, so
        // a digest of the settings that shape a body is part of every Redis key.
        let fingerprint = settings_fingerprint(config);
        let redis = config
            .redis
            .as_ref()
            .map(|redis| {
                RedisTier::connect(
                    redis,
                    config.stale_max,
                    max_ttl,
                    fingerprint,
                    metrics.clone(),
                )
            })
            .transpose()?;

        Ok(Self {
            cache: Cache::new(config.cache_capacity, config.stale_max, metrics.clone()),
            redis,
            upstream,
            batcher,
            renderer: Renderer::new(config.public_url.clone(), config.fields.clone()),
            inflight: Mutex::new(HashMap::new()),
            limit: config.misp.limit,
            include: config.misp.include.iter().map(|i| i.parameter()).collect(),
            ttl_hit: config.ttl_hit.clone(),
            ttl_miss: config.ttl_miss.clone(),
            answer_deadline: config.answer_deadline,
            metrics,
            error_log: LogLimiter::new(ERROR_LOG_INTERVAL),
        })
    }

    /// Returns the MISP client, for the readiness probe.
    pub fn misp(&self) -> &Client {
        self.upstream.client()
    }

    /// Returns the shared Redis tier, if configured.
    pub fn redis(&self) -> Option<&Arc<RedisTier>> {
        self.redis.as_ref()
    }

    /// Returns the number of entries in the in-process tier.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Returns the per-key `limit` sent to MISP.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Builds the query of a native `/lookup`. Only the cache key is computed here; the MISP
    /// search is built on a miss, so a hit does no JSON work.
    pub fn native_query(
        &self,
        indicator: Indicator,
        filter: Option<TypeFilter>,
        caller: Caller,
    ) -> Query {
        let unmatchable = indicator.is_unmatchable()
            || filter
                .as_ref()
                .is_some_and(|f| !f.accepts(indicator.kind()));
        let identity = caller.identity();
        let filter_tag = filter.as_ref().map(TypeFilter::cache_tag);
        let cache_key = cache::cache_key(
            "lookup",
            identity.as_deref().unwrap_or("-"),
            [indicator.value()],
            filter_tag.as_deref().unwrap_or("*"),
        );
        Query {
            cache_key,
            request: Request::Native { indicator, filter },
            caller,
            identity,
            unmatchable,
        }
    }

    /// Builds a drop-in restSearch query. `values` are the normalized search values that can
    /// match something, and `search` is the complete request to send. Every parameter in it
    /// becomes part of the cache key.
    pub fn dropin_query(
        &self,
        search: SearchRequest,
        values: Vec<(String, Kind)>,
        caller: Caller,
    ) -> Query {
        let identity = caller.identity();
        let body = serde_json::to_string(search.body()).expect("a JSON map always serializes");
        let cache_key = cache::cache_key(
            "dropin",
            identity.as_deref().unwrap_or("-"),
            values.iter().map(|(value, _)| value.as_str()),
            &body,
        );
        Query {
            cache_key,
            unmatchable: values.is_empty(),
            request: Request::Dropin { search, values },
            caller,
            identity,
        }
    }

    /// Builds the restSearch of a native lookup. Event tags and event UUIDs are always
    /// requested, because the Graylog fields `tags` and `event_uuid` need them.
    fn native_search(&self, indicator: &Indicator, filter: Option<&TypeFilter>) -> SearchRequest {
        let mut search = SearchRequest::new(vec![indicator.value().to_owned()], self.limit);
        if let Some(filter) = filter {
            search.set("type", Value::from(filter.types().to_vec()));
        }
        search.set("includeEventTags", Value::Bool(true));
        search.set("includeEventUuid", Value::Bool(true));
        for parameter in &self.include {
            search.set(parameter, Value::Bool(true));
        }
        search
    }

    /// Answers a query from the in-process tier, Redis, or MISP.
    ///
    /// A stale entry is answered at once while one background refresh runs. Otherwise the
    /// caller joins the key's MISP request (or starts it) and waits at most
    /// `--answer-deadline`. The request runs in its own task, so an answer that comes later,
    /// or after the caller disconnected, still fills the cache.
    pub async fn lookup(self: &Arc<Self>, query: Query) -> Result<Served, LookupError> {
        let stale = match self.cache.get(&query.cache_key) {
            Some((entry, Freshness::Fresh)) => {
                return Ok(Served {
                    entry,
                    status: CacheStatus::Hit,
                });
            }
            Some((entry, Freshness::Stale)) => Some(entry),
            None => None,
        };

        // The rest of a lookup contains Redis, timer and load futures, several kilobytes of
        // state. Boxing it keeps that state out of the future of every memory hit, which
        // actix-web allocates per request.
        Box::pin(self.lookup_beyond_memory(query, stale)).await
    }

    /// Looks up a query that has no fresh entry in the in-process tier. `stale` is its
    /// expired entry there, if any.
    async fn lookup_beyond_memory(
        self: &Arc<Self>,
        query: Query,
        mut stale: Option<Entry>,
    ) -> Result<Served, LookupError> {
        if let Some(redis) = &self.redis {
            match redis.get(&query.cache_key).await {
                Some((entry, Freshness::Fresh)) => {
                    self.cache.insert(entry.clone());
                    return Ok(Served {
                        entry,
                        status: CacheStatus::Redis,
                    });
                }
                Some((entry, Freshness::Stale)) if stale.is_none() => stale = Some(entry),
                _ => {}
            }
        }

        let (load, status) = self.join_or_start(query);
        if let Some(entry) = stale {
            self.metrics.stale_served.inc();
            return Ok(Served {
                entry,
                status: CacheStatus::Stale,
            });
        }
        match tokio::time::timeout(self.answer_deadline, load).await {
            Ok(result) => result.map(|entry| Served { entry, status }),
            Err(_) => {
                self.metrics.deadline_exceeded.inc();
                Err(LookupError::Misp(MispError::Timeout {
                    after: self.answer_deadline,
                }))
            }
        }
    }

    /// Joins the load running for the query's key, or starts one.
    fn join_or_start(self: &Arc<Self>, query: Query) -> (SharedLoad, CacheStatus) {
        let mut inflight = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(load) = inflight.get(&query.cache_key) {
            self.metrics.coalesced_waiters.inc();
            return (load.clone(), CacheStatus::Coalesced);
        }
        if let Some(entry) = self.cache.peek(&query.cache_key) {
            // A load finished between the first read and taking the lock.
            let ready: SharedLoad = futures::future::ready(Ok(entry)).boxed().shared();
            return (ready, CacheStatus::Hit);
        }
        let key = query.cache_key.clone();
        let load = self.start_load(query);
        inflight.insert(key, load.clone());
        (load, CacheStatus::Miss)
    }

    fn start_load(self: &Arc<Self>, query: Query) -> SharedLoad {
        let service = Arc::clone(self);
        let task = tokio::spawn(async move {
            // Removes the key from the in-flight map when the load ends, even by a panic, and
            // only after the cache contains the answer, so a caller always finds one of the two.
            let _inflight = InflightGuard {
                service: &service,
                key: &query.cache_key,
            };
            service.load(&query).await
        });
        async move {
            task.await
                .unwrap_or_else(|err| Err(LookupError::Internal(err.to_string())))
        }
        .boxed()
        .shared()
    }

    async fn load(&self, query: &Query) -> Result<Entry, LookupError> {
        let search = match &query.request {
            Request::Native { indicator, filter } => self.native_search(indicator, filter.as_ref()),
            Request::Dropin { search, .. } => search.clone(),
        };
        let attributes = self
            .fetch(query, &search)
            .await
            .inspect_err(|err| self.log_misp_error(err))?;
        let received = attributes.len();

        let (body, found) = match &query.request {
            Request::Native { indicator, .. } => {
                let matches: Vec<Value> = attributes
                    .into_iter()
                    .filter(|attribute| attribute_matches(attribute, indicator.value()))
                    .collect();
                self.metrics.misp_matches.observe(matches.len() as f64);
                let found = !matches.is_empty();
                let body = self
                    .renderer
                    .graylog(indicator, matches, received, search.limit());
                (body, found)
            }
            Request::Dropin { values, .. } => {
                let matches: Vec<Value> = attributes
                    .into_iter()
                    .filter(|attribute| {
                        values
                            .iter()
                            .any(|(value, _)| attribute_matches(attribute, value))
                    })
                    .collect();
                (answer::dropin(&matches), !matches.is_empty())
            }
        };

        let entry = Entry::new(&query.cache_key, &body, found, self.ttl_for(query, found));
        self.cache.insert(entry.clone());
        if let Some(redis) = &self.redis {
            let values = query
                .values()
                .into_iter()
                .map(|(value, _)| value.to_owned())
                .collect();
            redis.spawn_set(&query.cache_key, values, entry.clone());
        }
        Ok(entry)
    }

    /// Asks MISP, through the batcher for single-key native lookups.
    async fn fetch(&self, query: &Query, search: &SearchRequest) -> Result<Vec<Value>, MispError> {
        if query.unmatchable {
            return Ok(Vec::new());
        }
        if let (Some(batcher), Request::Native { indicator, .. }) = (&self.batcher, &query.request)
        {
            return batcher
                .search(
                    search.clone(),
                    indicator.value().to_owned(),
                    query.caller.misp_key.clone(),
                    query.identity.clone(),
                )
                .await;
        }
        self.upstream
            .search(
                search,
                query.caller.misp_key.as_ref(),
                query.identity.as_deref(),
            )
            .await
    }

    /// Returns the TTL of an answer by kind and outcome, the shortest over a drop-in's values.
    fn ttl_for(&self, query: &Query, found: bool) -> Duration {
        let table = if found { &self.ttl_hit } else { &self.ttl_miss };
        query
            .values()
            .into_iter()
            .map(|(_, kind)| table.for_kind(kind))
            .min()
            .unwrap_or_else(|| table.for_kind(Kind::Other))
    }

    /// Removes every cached entry of a normalized value in both tiers. Returns the entries
    /// removed from the in-process tier and from Redis.
    pub async fn purge_value(&self, value: &str) -> Result<(usize, usize), fred::error::Error> {
        let memory = self.cache.purge_value(value);
        let redis = match &self.redis {
            Some(redis) => redis.purge_value(value).await?,
            None => 0,
        };
        self.count_purged(memory, redis);
        Ok((memory, redis))
    }

    /// Removes every cached entry in both tiers.
    pub async fn purge_all(&self) -> Result<(usize, usize), fred::error::Error> {
        let memory = self.cache.purge_all();
        let redis = match &self.redis {
            Some(redis) => redis.purge_all().await?,
            None => 0,
        };
        self.count_purged(memory, redis);
        Ok((memory, redis))
    }

    fn count_purged(&self, memory: usize, redis: usize) {
        let purged = &self.metrics.cache_purged;
        purged.with_label_values(&["memory"]).inc_by(memory as u64);
        purged.with_label_values(&["redis"]).inc_by(redis as u64);
    }

    /// Logs a MISP failure at most once per [`ERROR_LOG_INTERVAL`] for each error code, with
    /// the number of failures not logged since, so that an outage does not flood the log.
    fn log_misp_error(&self, err: &MispError) {
        let code = err.code();
        if let Some(suppressed) = self.error_log.allow(code) {
            tracing::warn!(code, error = %err, suppressed, "MISP request failed");
        }
    }
}
