//! The in-process cache of rendered answers.
//!
//! An entry holds the answer's body already serialized, so a hit clones a reference-counted
//! buffer and writes it out: no JSON work on the hit path. quick_cache evicts by its CLOCK-Pro
//! policy once `--cache-capacity` entries are held; expiry is checked on read, because
//! quick_cache has no time-based expiry of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::IntCounter;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use crate::metrics::Metrics;

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    /// The rendered response body.
    pub body: Bytes,
    /// Whether MISP had at least one matching attribute.
    pub found: bool,
    /// When the answer was stored; the TTL runs from here and reads do not extend it.
    pub stored_at: Instant,
    /// How long the answer stays fresh.
    pub ttl: Duration,
}

impl Entry {
    /// Tells whether the entry is still fresh at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.ttl
    }

    /// Tells whether the entry may still be served, fresh or stale, at `now`.
    pub fn is_servable(&self, now: Instant, stale_max: Duration) -> bool {
        now.saturating_duration_since(self.stored_at) < self.ttl + stale_max
    }
}

/// Whether a cached entry is fresh or only servable as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL.
    Fresh,
    /// Past its TTL but within `--stale-max`.
    Stale,
}

/// Version prefix of every cache key, so that a change of the key or stored format cannot be
/// misread.
pub const KEY_VERSION: &str = "v1";

/// Separates the parts of a cache key.
const PART_SEPARATOR: char = '\u{1f}';

/// Separates the values inside the values part.
const VALUE_SEPARATOR: char = '\u{1e}';

/// Builds a cache key from everything that changes an answer: the endpoint (which decides the
/// rendering), the caller identity (a digest, never a key), the normalized values (kept
/// readable so that a purge can find every entry of a value) and the remaining parameters.
pub fn cache_key<'a>(
    endpoint: &str,
    caller: &str,
    values: impl IntoIterator<Item = &'a str>,
    parameters: &str,
) -> Arc<str> {
    let mut key = String::with_capacity(64 + parameters.len());
    for part in [KEY_VERSION, endpoint, caller] {
        key.push_str(part);
        key.push(PART_SEPARATOR);
    }
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            key.push(VALUE_SEPARATOR);
        }
        key.push_str(value);
    }
    key.push(PART_SEPARATOR);
    key.push_str(parameters);
    key.into()
}

/// Tells whether a cache key was built for `value`, compared as MISP compares values (case
/// folded), because keys of kind `other` keep their case and every case variant has the same
/// MISP answer.
pub fn key_has_value(key: &str, value: &str) -> bool {
    key.split(PART_SEPARATOR).nth(3).is_some_and(|values| {
        values
            .split(VALUE_SEPARATOR)
            .any(|candidate| crate::misp::matching::misp_equal(candidate, value))
    })
}

/// Counts evictions for the `misp_lookup_cache_evictions_total` metric.
#[derive(Clone)]
struct EvictionCounter(IntCounter);

impl Lifecycle<Arc<str>, Arc<Entry>> for EvictionCounter {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut Self::RequestState, _key: Arc<str>, _entry: Arc<Entry>) {
        self.0.inc();
    }
}

/// The in-process cache, keyed by the cache key that [`crate::lookup`] builds.
pub struct Cache {
    entries: QuickCache<Arc<str>, Arc<Entry>, UnitWeighter, DefaultHashBuilder, EvictionCounter>,
    stale_max: Duration,
    /// `misp_lookup_cache_hits_total{tier="memory"}`, resolved once for the hit path.
    hits: IntCounter,
    /// `misp_lookup_cache_misses_total{tier="memory"}`.
    misses: IntCounter,
    metrics: Metrics,
}

impl Cache {
    /// Creates a cache of at most `capacity` entries that serves expired ones for `stale_max`
    /// more.
    pub fn new(capacity: u64, stale_max: Duration, metrics: Metrics) -> Self {
        let estimated_items = usize::try_from(capacity).unwrap_or(usize::MAX);
        let entries = QuickCache::with(
            estimated_items,
            capacity,
            UnitWeighter,
            DefaultHashBuilder::default(),
            EvictionCounter(metrics.cache_evictions.clone()),
        );
        Self {
            entries,
            stale_max,
            hits: metrics.cache_hits.with_label_values(&["memory"]),
            misses: metrics.cache_misses.with_label_values(&["memory"]),
            metrics,
        }
    }

    /// Returns the entry for `key` if it can still be served, with its freshness, and counts
    /// a hit for a fresh entry or a miss otherwise.
    pub fn get(&self, key: &str) -> Option<(Arc<Entry>, Freshness)> {
        let now = Instant::now();
        let found = self
            .entries
            .get(key)
            .filter(|entry| entry.is_servable(now, self.stale_max))
            .map(|entry| {
                let freshness = if entry.is_fresh(now) {
                    Freshness::Fresh
                } else {
                    Freshness::Stale
                };
                (entry, freshness)
            });
        match found {
            Some((_, Freshness::Fresh)) => self.hits.inc(),
            _ => self.misses.inc(),
        }
        found
    }

    /// Returns the entry for `key` if it is still fresh, without counting a hit or miss.
    pub fn peek(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries
            .get(key)
            .filter(|entry| entry.is_fresh(Instant::now()))
    }

    /// Stores an entry, replacing any older one for the same key.
    pub fn insert(&self, key: Arc<str>, entry: Arc<Entry>) {
        self.entries.insert(key, entry);
        self.update_gauge();
    }

    /// Removes every entry built for the normalized `value`, whatever its endpoint, type
    /// filter or caller. Returns the number removed.
    pub fn purge_value(&self, value: &str) -> usize {
        let keys: Vec<Arc<str>> = self
            .entries
            .iter()
            .map(|(key, _)| key)
            .filter(|key| key_has_value(key, value))
            .collect();
        let removed = keys
            .iter()
            .filter(|key| self.entries.remove(&***key).is_some())
            .count();
        self.update_gauge();
        removed
    }

    /// Removes every entry. Returns the number removed.
    pub fn purge_all(&self) -> usize {
        let count = self.entries.len();
        self.entries.clear();
        self.update_gauge();
        count
    }

    /// Returns the number of entries, expired ones included until they are evicted or
    /// replaced.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Tells whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    fn update_gauge(&self) {
        self.metrics
            .cache_entries
            .set(i64::try_from(self.entries.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ttl: Duration) -> Arc<Entry> {
        Arc::new(Entry {
            body: Bytes::from_static(b"{}"),
            found: false,
            stored_at: Instant::now(),
            ttl,
        })
    }

    #[test]
    fn fresh_entry_is_returned() {
        let cache = Cache::new(10, Duration::ZERO, Metrics::new());
        cache.insert("k".into(), entry(Duration::from_secs(60)));
        assert_eq!(cache.get("k").map(|(_, f)| f), Some(Freshness::Fresh));
    }

    #[test]
    fn expired_entry_is_a_miss() {
        let cache = Cache::new(10, Duration::ZERO, Metrics::new());
        cache.insert("k".into(), entry(Duration::ZERO));
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn expired_entry_within_stale_max_is_stale() {
        let cache = Cache::new(10, Duration::from_secs(60), Metrics::new());
        cache.insert("k".into(), entry(Duration::ZERO));
        assert_eq!(cache.get("k").map(|(_, f)| f), Some(Freshness::Stale));
    }

    #[test]
    fn purge_removes_every_entry_of_value() {
        let cache = Cache::new(10, Duration::ZERO, Metrics::new());
        cache.insert(
            cache_key("lookup", "-", ["a.example"], "{1}"),
            entry(Duration::from_secs(60)),
        );
        cache.insert(
            cache_key("lookup", "x", ["a.example"], "{2}"),
            entry(Duration::from_secs(60)),
        );
        cache.insert(
            cache_key("dropin", "-", ["b.example", "a.example"], "{3}"),
            entry(Duration::from_secs(60)),
        );
        cache.insert(
            cache_key("lookup", "-", ["b.example"], "{4}"),
            entry(Duration::from_secs(60)),
        );
        assert_eq!(cache.purge_value("a.example"), 3);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn capacity_bounds_entries_and_counts_evictions() {
        let metrics = Metrics::new();
        let cache = Cache::new(100, Duration::ZERO, metrics.clone());
        for index in 0..1_000 {
            cache.insert(
                format!("key-{index}").into(),
                entry(Duration::from_secs(60)),
            );
        }
        assert!(cache.len() <= 100, "held {} entries", cache.len());
        assert!(metrics.cache_evictions.get() >= 900);
    }
}
