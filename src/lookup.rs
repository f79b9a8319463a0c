//! The lookup service: cache first, then one MISP request per key shared by every concurrent
//! caller, then exact matching and rendering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::answer::{self, Renderer};
use crate::cache::{Cache, Entry};
use crate::config::{Config, Secret};
use crate::indicator::Indicator;
use crate::metrics::Metrics;
use crate::misp::matching::attribute_matches;
use crate::misp::types::TypeFilter;
use crate::misp::{Client, MispError, SearchRequest};

/// Version prefix of every cache key, so that a change of the stored format cannot be misread.
const CACHE_KEY_VERSION: &str = "v1";

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
}

impl CacheStatus {
    /// The `X-Cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
        }
    }
}

/// A served answer.
#[derive(Debug, Clone)]
pub struct Served {
    /// The cached entry with the rendered body.
    pub entry: Arc<Entry>,
    /// Where it came from.
    pub status: CacheStatus,
}

/// Why a lookup failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// MISP failed.
    #[error(transparent)]
    Misp(#[from] MispError),
    /// The task that asked MISP ended without an answer (it panicked).
    #[error("the MISP request task failed: {0}")]
    Internal(String),
}

/// How a query's MISP answer is turned into a body.
#[derive(Debug, Clone)]
pub enum Render {
    /// The flat Graylog body of `/lookup` for one indicator.
    Graylog(Indicator),
    /// MISP's own wire format, for the drop-in endpoint; attributes must equal one of the
    /// normalized values.
    Dropin(Vec<String>),
}

/// Who is asking, as far as MISP's answer depends on it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The caller's own MISP key, with `--forward-caller-key`.
    pub misp_key: Option<Secret>,
}

impl Caller {
    /// The part of a cache key that identifies the caller: a SHA-256 digest of the forwarded
    /// key, never the key itself, or `-` when the service's own key is used.
    fn cache_identity(&self) -> String {
        match &self.misp_key {
            Some(key) => hex::encode(Sha256::digest(key.expose().as_bytes())),
            None => "-".to_owned(),
        }
    }
}

/// One question to answer: what to ask MISP, under which cache key, and how to render it.
#[derive(Debug)]
pub struct Query {
    cache_key: Arc<str>,
    search: SearchRequest,
    caller: Caller,
    render: Render,
    /// Answered as "not found" without asking MISP, because no attribute can match.
    unmatchable: bool,
}

impl Query {
    /// A drop-in restSearch query. `values` are the normalized search values and `search` the
    /// complete request to send; every parameter in it becomes part of the cache key.
    pub fn dropin(search: SearchRequest, values: Vec<String>, caller: Caller) -> Self {
        let unmatchable = values.is_empty();
        Self::build("dropin", search, caller, Render::Dropin(values), unmatchable)
    }

    fn build(
        endpoint: &str,
        search: SearchRequest,
        caller: Caller,
        render: Render,
        unmatchable: bool,
    ) -> Self {
        let body = serde_json::to_string(search.body()).expect("a JSON map always serializes");
        let cache_key = format!(
            "{CACHE_KEY_VERSION}\u{1f}{endpoint}\u{1f}{}\u{1f}{body}",
            caller.cache_identity()
        );
        Self {
            cache_key: cache_key.into(),
            search,
            caller,
            render,
            unmatchable,
        }
    }

    /// The cache key, for tests and logs; it holds no credential.
    pub fn cache_key(&self) -> &str {
        &self.cache_key
    }
}

type SharedLoad = Shared<BoxFuture<'static, Result<Arc<Entry>, LookupError>>>;

/// The lookup service shared by every HTTP worker.
pub struct Service {
    cache: Cache,
    misp: Client,
    renderer: Renderer,
    inflight: Mutex<HashMap<Arc<str>, SharedLoad>>,
    limit: u32,
    include: Vec<&'static str>,
    ttl_hit: Duration,
    ttl_miss: Duration,
    metrics: Metrics,
    error_log: Mutex<HashMap<&'static str, (Option<Instant>, u64)>>,
}

impl Service {
    /// Builds the service from a validated configuration.
    pub fn new(config: &Config, metrics: Metrics) -> Result<Self, reqwest::Error> {
        Ok(Self {
            cache: Cache::new(config.cache_capacity, metrics.clone()),
            misp: Client::new(&config.misp, metrics.clone())?,
            renderer: Renderer::new(config.public_url.clone(), config.fields.clone()),
            inflight: Mutex::new(HashMap::new()),
            limit: config.misp.limit,
            include: config.misp.include.iter().map(|i| i.parameter()).collect(),
            ttl_hit: config.ttl_hit,
            ttl_miss: config.ttl_miss,
            metrics,
            error_log: Mutex::new(HashMap::new()),
        })
    }

    /// The MISP client, for the readiness probe.
    pub fn misp(&self) -> &Client {
        &self.misp
    }

    /// The number of cached entries.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// The per-key `limit` sent to MISP.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Builds the query of a native `/lookup`: event tags and event UUIDs are always requested,
    /// because the Graylog fields `tags` and `event_uuid` need them.
    pub fn native_query(
        &self,
        indicator: Indicator,
        filter: Option<&TypeFilter>,
        caller: Caller,
    ) -> Query {
        let unmatchable =
            indicator.is_unmatchable() || filter.is_some_and(|f| !f.accepts(indicator.kind()));
        let mut search = SearchRequest::new(vec![indicator.value().to_owned()], self.limit);
        if let Some(filter) = filter {
            search.set("type", Value::from(filter.types().to_vec()));
        }
        search.set("includeEventTags", Value::Bool(true));
        search.set("includeEventUuid", Value::Bool(true));
        for parameter in &self.include {
            search.set(parameter, Value::Bool(true));
        }
        Query::build(
            "lookup",
            search,
            caller,
            Render::Graylog(indicator),
            unmatchable,
        )
    }

    /// Answers a query from the cache, or from MISP with one request for all concurrent
    /// callers of the same cache key.
    ///
    /// The MISP request runs in its own task: a caller that disconnects does not cancel it, so
    /// its answer still fills the cache for the next caller.
    pub async fn lookup(self: &Arc<Self>, query: Query) -> Result<Served, LookupError> {
        if let Some(entry) = self.cache.get(&query.cache_key) {
            return Ok(Served {
                entry,
                status: CacheStatus::Hit,
            });
        }

        let (load, status) = {
            let mut inflight = self.inflight.lock().expect("in-flight map lock");
            if let Some(load) = inflight.get(&query.cache_key) {
                self.metrics.coalesced_waiters.inc();
                (load.clone(), CacheStatus::Coalesced)
            } else if let Some(entry) = self.cache.peek(&query.cache_key) {
                // A load finished between the first read and taking the lock.
                return Ok(Served {
                    entry,
                    status: CacheStatus::Hit,
                });
            } else {
                let key = Arc::clone(&query.cache_key);
                let load = self.start_load(query);
                inflight.insert(key, load.clone());
                (load, CacheStatus::Miss)
            }
        };

        let entry = load.await?;
        Ok(Served { entry, status })
    }

    fn start_load(self: &Arc<Self>, query: Query) -> SharedLoad {
        let service = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = service.load(&query).await;
            // Removed only after the cache holds the answer, so a caller always finds one of
            // the two.
            service
                .inflight
                .lock()
                .expect("in-flight map lock")
                .remove(&query.cache_key);
            result
        });
        async move {
            task.await
                .unwrap_or_else(|err| Err(LookupError::Internal(err.to_string())))
        }
        .boxed()
        .shared()
    }

    async fn load(&self, query: &Query) -> Result<Arc<Entry>, LookupError> {
        let attributes = if query.unmatchable {
            Vec::new()
        } else {
            self.misp
                .rest_search(&query.search, query.caller.misp_key.as_ref())
                .await
                .inspect_err(|err| self.log_misp_error(err))?
        };
        let received = attributes.len();

        let (body, found) = match &query.render {
            Render::Graylog(indicator) => {
                let matches: Vec<Value> = attributes
                    .into_iter()
                    .filter(|attribute| attribute_matches(attribute, indicator.value()))
                    .collect();
                self.metrics.misp_matches.observe(matches.len() as f64);
                let found = !matches.is_empty();
                let body =
                    self.renderer
                        .graylog(indicator, matches, received, query.search.limit());
                (body, found)
            }
            Render::Dropin(values) => {
                let matches: Vec<Value> = attributes
                    .into_iter()
                    .filter(|attribute| {
                        values
                            .iter()
                            .any(|value| attribute_matches(attribute, value))
                    })
                    .collect();
                (answer::dropin(&matches), !matches.is_empty())
            }
        };

        let entry = Arc::new(Entry {
            body,
            found,
            stored_at: Instant::now(),
            ttl: if found { self.ttl_hit } else { self.ttl_miss },
        });
        self.cache
            .insert(Arc::clone(&query.cache_key), Arc::clone(&entry));
        Ok(entry)
    }

    /// Logs a MISP failure at most once per [`ERROR_LOG_INTERVAL`] for each error code, with
    /// the number of failures not logged since, so that an outage does not flood the log.
    fn log_misp_error(&self, err: &MispError) {
        let code = err.code();
        let now = Instant::now();
        let suppressed = {
            let mut log = self.error_log.lock().expect("error log lock");
            let slot = log.entry(code).or_insert((None, 0));
            if slot.0.is_some_and(|last| now.duration_since(last) < ERROR_LOG_INTERVAL) {
                slot.1 += 1;
                return;
            }
            let suppressed = slot.1;
            *slot = (Some(now), 0);
            suppressed
        };
        tracing::warn!(code, error = %err, suppressed, "MISP request failed");
    }
}
