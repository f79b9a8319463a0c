//! The in-process cache of rendered answers.
//!
//! An entry holds the answer's body already serialized, so a hit clones a reference-counted
//! buffer and writes it out: no JSON work on the hit path. quick_cache evicts by its CLOCK-Pro
//! policy once `--cache-capacity` entries are held; expiry is checked on read, because
//! quick_cache has no time-based expiry of its own.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::IntCounter;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use crate::metrics::Metrics;

/// The instant that entry times count from, so that an entry stores its times as integers.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Returns the milliseconds since [`EPOCH`].
fn now_ms() -> i64 {
    i64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// One cached lookup result: its cache key and rendered body in one reference-counted block, and its
/// times. The cache's key for the entry is a view of the same block, so the key is not copied.
/// The first clone of the block allocates its 24-byte shared header, once per entry; later
/// clones of the entry or its body allocate nothing.
#[derive(Clone)]
pub struct Entry {
    /// The cache key's bytes followed by the body's.
    text: Bytes,
    /// The length of the cache key at the start of `text`.
    key_len: u32,
    /// Whether MISP had at least one matching attribute.
    pub found: bool,
    /// When the answer was stored, in milliseconds since [`EPOCH`]; negative for an answer
    /// that another replica stored before this process started. The TTL runs from here and
    /// reads do not extend it.
    stored_at_ms: i64,
    /// How long the answer stays fresh, in milliseconds.
    ttl_ms: i64,
}

impl Entry {
    /// Creates the entry of `body` under `key`, stored now.
    pub fn new(key: &str, body: &[u8], found: bool, ttl: Duration) -> Self {
        Self::with_age(key, body, found, ttl, Duration::ZERO)
    }

    /// Creates an entry that was stored `age` ago, as one read from the shared tier.
    ///
    /// # Panics
    ///
    /// Panics if `key` is 4 GiB or longer; cache keys are bounded by the key and body limits
    /// of the HTTP routes, far below that.
    pub fn with_age(key: &str, body: &[u8], found: bool, ttl: Duration, age: Duration) -> Self {
        let key_len = u32::try_from(key.len()).expect("a cache key is shorter than 4 GiB");
        // Allocated at its exact size, so `Bytes` keeps the vector's buffer without a copy.
        let mut text = Vec::with_capacity(key.len() + body.len());
        text.extend_from_slice(key.as_bytes());
        text.extend_from_slice(body);
        Self {
            text: Bytes::from(text),
            key_len,
            found,
            stored_at_ms: now_ms().saturating_sub(duration_ms(age)),
            ttl_ms: duration_ms(ttl),
        }
    }

    /// Returns the cache key the entry was stored under.
    pub fn key(&self) -> &str {
        std::str::from_utf8(&self.text[..self.key_len as usize])
            .expect("the key part was copied from a str")
    }

    /// Returns the rendered response body.
    pub fn body(&self) -> &[u8] {
        &self.text[self.key_len as usize..]
    }

    /// Returns the body as [`Bytes`] for a response, sharing the entry's block.
    pub fn body_bytes(&self) -> Bytes {
        self.text.slice(self.key_len as usize..)
    }

    /// Returns the cache key as [`Bytes`] that share the entry's block.
    fn key_bytes(&self) -> Bytes {
        self.text.slice(..self.key_len as usize)
    }

    /// Returns how long ago the entry was stored.
    pub fn age(&self) -> Duration {
        let age = now_ms().saturating_sub(self.stored_at_ms).max(0);
        Duration::from_millis(u64::try_from(age).unwrap_or(0))
    }

    /// Returns how long the entry stays fresh.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.ttl_ms).unwrap_or(0))
    }

    /// Tells whether the entry is still fresh.
    pub fn is_fresh(&self) -> bool {
        self.freshness_at(now_ms(), Duration::ZERO) == Some(Freshness::Fresh)
    }

    /// Tells whether the entry may still be served, fresh or stale.
    pub fn is_servable(&self, stale_max: Duration) -> bool {
        self.freshness_at(now_ms(), stale_max).is_some()
    }

    /// Returns the entry's freshness at `now_ms`, or `None` once it is older than its TTL
    /// plus `stale_max`.
    fn freshness_at(&self, now_ms: i64, stale_max: Duration) -> Option<Freshness> {
        let age = now_ms.saturating_sub(self.stored_at_ms);
        if age < self.ttl_ms {
            Some(Freshness::Fresh)
        } else if age < self.ttl_ms.saturating_add(duration_ms(stale_max)) {
            Some(Freshness::Stale)
        } else {
            None
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Entry")
            .field("key", &self.key())
            .field("body_len", &self.body().len())
            .field("found", &self.found)
            .field("stored_at_ms", &self.stored_at_ms)
            .field("ttl_ms", &self.ttl_ms)
            .finish()
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

/// Version part of every Redis key, so that a change of the key or stored format cannot be
/// misread by a replica of another version.
pub const KEY_VERSION: &str = "v1";

/// Separates the parts of a cache key.
const PART_SEPARATOR: char = '\u{1f}';

/// Separates the values inside the values part.
const VALUE_SEPARATOR: char = '\u{1e}';

/// Builds a cache key from everything that changes an answer. Its parts are the endpoint, which
/// decides the rendering, the caller identity (a digest, never a key), the normalized values
/// (kept readable so that a purge can find every entry of a value) and the other parameters.
pub fn cache_key<'a>(
    endpoint: &str,
    caller: &str,
    values: impl IntoIterator<Item = &'a str>,
    parameters: &str,
) -> String {
    let mut key = String::with_capacity(64 + parameters.len());
    for part in [endpoint, caller] {
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
    key
}

/// Tells whether a cache key was built for `value`, compared as MISP compares values (case
/// folded), because keys of kind `other` keep their case and every case variant has the same
/// MISP answer.
pub fn key_has_value(key: &str, value: &str) -> bool {
    key.split(PART_SEPARATOR).nth(2).is_some_and(|values| {
        values
            .split(VALUE_SEPARATOR)
            .any(|candidate| crate::misp::matching::misp_equal(candidate, value))
    })
}

/// Collects the keys of the entries that one insert removes: those evicted for capacity and the
/// one it replaces, which quick_cache reports the same way.
#[derive(Clone)]
struct RemovedKeys;

impl Lifecycle<Bytes, Entry> for RemovedKeys {
    type RequestState = Vec<Bytes>;

    fn begin_request(&self) -> Self::RequestState {
        Vec::new()
    }

    fn on_evict(&self, removed: &mut Self::RequestState, key: Bytes, _entry: Entry) {
        removed.push(key);
    }
}

/// The in-process cache, keyed by the cache key that [`crate::lookup`] builds.
pub struct Cache {
    /// Each key is a view of its entry's block, so it costs no allocation of its own, and it
    /// hashes and compares as `[u8]`, so a lookup passes a borrowed `&[u8]`.
    entries: QuickCache<Bytes, Entry, UnitWeighter, DefaultHashBuilder, RemovedKeys>,
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
            RemovedKeys,
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
    pub fn get(&self, key: &str) -> Option<(Entry, Freshness)> {
        let found = self.entries.get(key.as_bytes()).and_then(|entry| {
            let freshness = entry.freshness_at(now_ms(), self.stale_max)?;
            Some((entry, freshness))
        });
        match found {
            Some((_, Freshness::Fresh)) => self.hits.inc(),
            _ => self.misses.inc(),
        }
        found
    }

    /// Returns the entry for `key` if it is still fresh, without counting a hit or miss.
    pub fn peek(&self, key: &str) -> Option<Entry> {
        self.entries.get(key.as_bytes()).filter(Entry::is_fresh)
    }

    /// Stores an entry under its key, replacing any older one for the same key.
    pub fn insert(&self, entry: Entry) {
        let key = entry.key_bytes();
        let removed = self.entries.insert_with_lifecycle(key.clone(), entry);
        // The replaced entry of the same key is no eviction: it does not leave the cache.
        let evicted = removed.iter().filter(|removed| **removed != key).count();
        self.metrics.cache_evictions.inc_by(evicted as u64);
        self.update_gauge();
    }

    /// Removes every entry built for the normalized `value`, whatever its endpoint, type
    /// filter or caller. Returns the number removed.
    pub fn purge_value(&self, value: &str) -> usize {
        let keys: Vec<Bytes> = self
            .entries
            .iter()
            .filter(|(_, entry)| key_has_value(entry.key(), value))
            .map(|(key, _)| key)
            .collect();
        let removed = keys
            .iter()
            .filter(|key| self.entries.remove(&key[..]).is_some())
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

    fn entry(key: &str, ttl: Duration) -> Entry {
        Entry::new(key, b"{}", false, ttl)
    }

    #[test]
    fn entry_stays_small() {
        assert_eq!(std::mem::size_of::<Entry>(), 56);
    }

    #[test]
    fn entry_splits_key_and_body() {
        let entry = Entry::new(
            "lookup\u{1f}-\u{1f}a.example\u{1f}*",
            b"{\"found\":false}",
            false,
            Duration::ZERO,
        );
        assert_eq!(entry.key(), "lookup\u{1f}-\u{1f}a.example\u{1f}*");
        assert_eq!(entry.body(), b"{\"found\":false}");
        assert_eq!(&entry.body_bytes()[..], b"{\"found\":false}");
    }

    #[test]
    fn entry_with_age_ages() {
        let entry = Entry::with_age(
            "k",
            b"",
            true,
            Duration::from_secs(10),
            Duration::from_secs(11),
        );
        assert!(!entry.is_fresh());
        assert!(entry.is_servable(Duration::from_secs(5)));
        assert!(entry.age() >= Duration::from_secs(11));
    }

    #[test]
    fn fresh_entry_is_returned() {
        let cache = Cache::new(10, Duration::ZERO, Metrics::new());
        cache.insert(entry("k", Duration::from_secs(60)));
        assert_eq!(cache.get("k").map(|(_, f)| f), Some(Freshness::Fresh));
    }

    #[test]
    fn expired_entry_is_a_miss() {
        let cache = Cache::new(10, Duration::ZERO, Metrics::new());
        cache.insert(entry("k", Duration::ZERO));
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn expired_entry_within_stale_max_is_stale() {
        let cache = Cache::new(10, Duration::from_secs(60), Metrics::new());
        cache.insert(entry("k", Duration::ZERO));
        assert_eq!(cache.get("k").map(|(_, f)| f), Some(Freshness::Stale));
    }

    #[test]
    fn purge_removes_every_entry_of_value() {
        let cache = Cache::new(10, Duration::ZERO, Metrics::new());
        cache.insert(entry(
            &cache_key("lookup", "-", ["a.example"], "{1}"),
            Duration::from_secs(60),
        ));
        cache.insert(entry(
            &cache_key("lookup", "x", ["a.example"], "{2}"),
            Duration::from_secs(60),
        ));
        cache.insert(entry(
            &cache_key("dropin", "-", ["b.example", "a.example"], "{3}"),
            Duration::from_secs(60),
        ));
        cache.insert(entry(
            &cache_key("lookup", "-", ["b.example"], "{4}"),
            Duration::from_secs(60),
        ));
        assert_eq!(cache.purge_value("a.example"), 3);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn capacity_bounds_entries_and_counts_evictions() {
        let metrics = Metrics::new();
        let cache = Cache::new(100, Duration::ZERO, metrics.clone());
        for index in 0..1_000 {
            cache.insert(entry(&format!("key-{index}"), Duration::from_secs(60)));
        }
        assert!(cache.len() <= 100, "held {} entries", cache.len());
        assert!(metrics.cache_evictions.get() >= 900);
    }

    #[test]
    fn replaced_entry_is_no_eviction() {
        let metrics = Metrics::new();
        let cache = Cache::new(1_000, Duration::ZERO, metrics.clone());
        for _ in 0..3 {
            cache.insert(entry("k", Duration::from_secs(60)));
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(metrics.cache_evictions.get(), 0);
    }
}
