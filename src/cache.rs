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
    metrics: Metrics,
}

impl Cache {
    /// Creates a cache that holds at most `capacity` entries.
    pub fn new(capacity: u64, metrics: Metrics) -> Self {
        let estimated_items = usize::try_from(capacity).unwrap_or(usize::MAX);
        let entries = QuickCache::with(
            estimated_items,
            capacity,
            UnitWeighter,
            DefaultHashBuilder::default(),
            EvictionCounter(metrics.cache_evictions.clone()),
        );
        Self { entries, metrics }
    }

    /// Returns the entry for `key` if it is still fresh, and counts the hit or miss.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let fresh = self.peek(key);
        match fresh {
            Some(_) => self.metrics.cache_hits.with_label_values(&["memory"]).inc(),
            None => self.metrics.cache_misses.with_label_values(&["memory"]).inc(),
        }
        fresh
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

    /// The number of entries held, expired ones included until they are evicted or replaced.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Tells whether the cache holds no entry.
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
        let cache = Cache::new(10, Metrics::new());
        cache.insert("k".into(), entry(Duration::from_secs(60)));
        assert!(cache.get("k").is_some());
    }

    #[test]
    fn expired_entry_is_a_miss() {
        let cache = Cache::new(10, Metrics::new());
        cache.insert("k".into(), entry(Duration::ZERO));
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn capacity_bounds_entries_and_counts_evictions() {
        let metrics = Metrics::new();
        let cache = Cache::new(100, metrics.clone());
        for index in 0..1_000 {
            cache.insert(format!("key-{index}").into(), entry(Duration::from_secs(60)));
        }
        assert!(cache.len() <= 100, "held {} entries", cache.len());
        assert!(metrics.cache_evictions.get() >= 900);
    }
}
