//! Every Prometheus metric the service exports, defined once with its help text.
//!
//! Each service instance owns its own [`Registry`], so that several instances in one process
//! (as in the integration tests) keep separate counts. Labels hold route patterns, outcomes and
//! error codes, never a raw key or a caller's credential.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Bucket bounds for the service's own answer times, in seconds: cache hits take microseconds,
/// MISP answers take from 100 ms to tens of seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Bucket bounds for MISP request durations, in seconds.
const MISP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by matched route pattern, method and status class.
    pub http_requests: IntCounterVec,
    /// HTTP request durations by matched route pattern.
    pub http_duration: HistogramVec,
    /// The two HTTP metrics' series, resolved on first use.
    pub http_series: HttpSeries,
    /// Lookups by endpoint (`lookup`, `bulk`, `dropin`) and outcome (`found`, `not_found`,
    /// `rejected`, `error`).
    pub lookups: IntCounterVec,
    /// The `lookups` series, resolved once.
    pub lookup_counters: LookupCounters,
    /// Keys rejected before any I/O, by error code.
    pub rejected_keys: IntCounterVec,
    /// Cache reads that found a fresh entry, by tier (`memory`, `redis`).
    pub cache_hits: IntCounterVec,
    /// Cache reads that found no fresh entry, by tier.
    pub cache_misses: IntCounterVec,
    /// Answers served from an expired entry within `--stale-max`.
    pub stale_served: IntCounter,
    /// Entries purged through the cache administration endpoints, by tier.
    pub cache_purged: IntCounterVec,
    /// Redis operations that failed or timed out, by operation.
    pub redis_errors: IntCounterVec,
    /// 1 while the Redis connection is usable, 0 otherwise and without `--redis-url`.
    pub redis_up: IntGauge,
    /// Lookups whose caller got 504 because the answer deadline passed first.
    pub deadline_exceeded: IntCounter,
    /// MISP requests retried after a connection failure or 5xx.
    pub misp_retries: IntCounter,
    /// Lookups answered without asking MISP because it is protected, by reason
    /// (`circuit_open`, `rate_limited`).
    pub misp_shed: IntCounterVec,
    /// Circuit breaker state: 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGauge,
    /// Circuit breaker transitions, by the state entered.
    pub breaker_transitions: IntCounterVec,
    /// Batched restSearch requests sent to MISP.
    pub batches: IntCounter,
    /// Keys per batched restSearch request.
    pub batch_keys: Histogram,
    /// Entries evicted to stay within `--cache-capacity`.
    pub cache_evictions: IntCounter,
    /// Entries in the in-process cache.
    pub cache_entries: IntGauge,
    /// Lookups that joined a MISP request already running for the same key.
    pub coalesced_waiters: IntCounter,
    /// MISP requests by status class (`2xx`, `3xx`, `4xx`, `5xx`, `error`).
    pub misp_requests: IntCounterVec,
    /// MISP request durations, by the same status classes.
    pub misp_duration: HistogramVec,
    /// MISP requests in flight.
    pub misp_inflight: IntGauge,
    /// Failed MISP requests by error code.
    pub misp_errors: IntCounterVec,
    /// Readiness probes of MISP by result.
    pub misp_probes: IntCounterVec,
    /// Matching attributes MISP returned per lookup.
    pub misp_matches: Histogram,
}

impl Metrics {
    /// Creates and registers every metric in a new registry.
    pub fn new() -> Self {
        let registry = Registry::new();

        let http_requests = IntCounterVec::new(
            Opts::new(
                "misp_lookup_http_requests_total",
                "HTTP requests served, by matched route pattern, method and status class.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "misp_lookup_http_request_duration_seconds",
                "Time from receiving an HTTP request to sending its answer, by route pattern.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let lookups = IntCounterVec::new(
            Opts::new(
                "misp_lookup_lookups_total",
                "Lookups answered, by endpoint (lookup, bulk, dropin) and outcome (found, \
                 not_found, rejected, error).",
            ),
            &["endpoint", "outcome"],
        )
        .expect("valid metric");
        let rejected_keys = IntCounterVec::new(
            Opts::new(
                "misp_lookup_rejected_keys_total",
                "Keys rejected before any cache or MISP access, by error code.",
            ),
            &["code"],
        )
        .expect("valid metric");
        let cache_hits = IntCounterVec::new(
            Opts::new(
                "misp_lookup_cache_hits_total",
                "Cache reads that found a fresh entry, by tier (memory, redis).",
            ),
            &["tier"],
        )
        .expect("valid metric");
        let cache_misses = IntCounterVec::new(
            Opts::new(
                "misp_lookup_cache_misses_total",
                "Cache reads that found no fresh entry, by tier (memory, redis).",
            ),
            &["tier"],
        )
        .expect("valid metric");
        let stale_served = IntCounter::new(
            "misp_lookup_stale_served_total",
            "Answers served from an expired entry within --stale-max.",
        )
        .expect("valid metric");
        let cache_purged = IntCounterVec::new(
            Opts::new(
                "misp_lookup_cache_purged_total",
                "Entries removed through the cache administration endpoints, by tier.",
            ),
            &["tier"],
        )
        .expect("valid metric");
        let redis_errors = IntCounterVec::new(
            Opts::new(
                "misp_lookup_redis_errors_total",
                "Redis operations that failed or timed out, by operation (get, set, purge).",
            ),
            &["operation"],
        )
        .expect("valid metric");
        let redis_up = IntGauge::new(
            "misp_lookup_redis_up",
            "1 while the Redis connection is usable, 0 otherwise; 0 without --redis-url.",
        )
        .expect("valid metric");
        let deadline_exceeded = IntCounter::new(
            "misp_lookup_answer_deadline_exceeded_total",
            "Lookups answered 504 because --answer-deadline passed before MISP answered.",
        )
        .expect("valid metric");
        let misp_retries = IntCounter::new(
            "misp_lookup_misp_retries_total",
            "MISP requests retried after a connection failure or a 5xx status.",
        )
        .expect("valid metric");
        let misp_shed = IntCounterVec::new(
            Opts::new(
                "misp_lookup_misp_shed_total",
                "Lookups failed fast without asking MISP, by reason (circuit_open, \
                 rate_limited).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let breaker_state = IntGauge::new(
            "misp_lookup_misp_breaker_state",
            "State of the MISP circuit breaker: 0 closed, 1 half-open, 2 open.",
        )
        .expect("valid metric");
        let breaker_transitions = IntCounterVec::new(
            Opts::new(
                "misp_lookup_misp_breaker_transitions_total",
                "Circuit breaker transitions, by the state entered (closed, half_open, open).",
            ),
            &["state"],
        )
        .expect("valid metric");
        let batches = IntCounter::new(
            "misp_lookup_misp_batches_total",
            "restSearch requests that carried several keys at once.",
        )
        .expect("valid metric");
        let batch_keys = Histogram::with_opts(
            HistogramOpts::new(
                "misp_lookup_misp_batch_keys",
                "Keys carried by one batched restSearch request.",
            )
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0]),
        )
        .expect("valid metric");
        let cache_evictions = IntCounter::new(
            "misp_lookup_cache_evictions_total",
            "Cache entries evicted to stay within the configured capacity.",
        )
        .expect("valid metric");
        let cache_entries = IntGauge::new(
            "misp_lookup_cache_entries",
            "Entries held in the in-process cache, expired ones included until evicted.",
        )
        .expect("valid metric");
        let coalesced_waiters = IntCounter::new(
            "misp_lookup_coalesced_waiters_total",
            "Lookups that waited for a MISP request already running for the same key.",
        )
        .expect("valid metric");
        let misp_requests = IntCounterVec::new(
            Opts::new(
                "misp_lookup_misp_requests_total",
                "Requests sent to MISP, by status class (2xx, 3xx, 4xx, 5xx, or error when no \
                 status was received).",
            ),
            &["status"],
        )
        .expect("valid metric");
        let misp_duration = HistogramVec::new(
            HistogramOpts::new(
                "misp_lookup_misp_request_duration_seconds",
                "Duration of requests to MISP, body included, by status class.",
            )
            .buckets(MISP_BUCKETS.to_vec()),
            &["status"],
        )
        .expect("valid metric");
        let misp_inflight = IntGauge::new(
            "misp_lookup_misp_inflight_requests",
            "Requests to MISP currently in flight.",
        )
        .expect("valid metric");
        let misp_errors = IntCounterVec::new(
            Opts::new(
                "misp_lookup_misp_errors_total",
                "Failed MISP requests, by the error code returned to callers.",
            ),
            &["code"],
        )
        .expect("valid metric");
        let misp_probes = IntCounterVec::new(
            Opts::new(
                "misp_lookup_misp_probes_total",
                "Readiness probes of MISP, by result (ok or an error code).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let misp_matches = Histogram::with_opts(
            HistogramOpts::new(
                "misp_lookup_misp_matches",
                "Attributes that matched the key exactly in one MISP answer.",
            )
            .buckets(vec![
                0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0,
            ]),
        )
        .expect("valid metric");

        let lookup_counters = LookupCounters::new(&lookups);
        let http_series = HttpSeries::new(&http_requests, &http_duration);
        let metrics = Self {
            registry,
            http_requests,
            http_duration,
            http_series,
            lookups,
            lookup_counters,
            rejected_keys,
            cache_hits,
            cache_misses,
            stale_served,
            cache_purged,
            redis_errors,
            redis_up,
            deadline_exceeded,
            misp_retries,
            misp_shed,
            breaker_state,
            breaker_transitions,
            batches,
            batch_keys,
            cache_evictions,
            cache_entries,
            coalesced_waiters,
            misp_requests,
            misp_duration,
            misp_inflight,
            misp_errors,
            misp_probes,
            misp_matches,
        };
        metrics.register_all();
        metrics.initialize_labels();
        metrics
    }

    /// Creates the series of every known label value at zero, so that dashboards and alerts
    /// see them before the first event (a labelled series is absent until first used).
    fn initialize_labels(&self) {
        for tier in ["memory", "redis"] {
            self.cache_hits.with_label_values(&[tier]);
            self.cache_misses.with_label_values(&[tier]);
            self.cache_purged.with_label_values(&[tier]);
        }
        for code in [
            "misp_auth_failed",
            "misp_rate_limited",
            "misp_error",
            "misp_unavailable",
            "misp_bad_response",
            "misp_timeout",
            "misp_unreachable",
        ] {
            self.misp_errors.with_label_values(&[code]);
        }
        for operation in ["get", "set"] {
            self.redis_errors.with_label_values(&[operation]);
        }
        for reason in ["circuit_open", "rate_limited"] {
            self.misp_shed.with_label_values(&[reason]);
        }
        for state in ["closed", "half_open", "open"] {
            self.breaker_transitions.with_label_values(&[state]);
        }
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.lookups.clone()),
            Box::new(self.rejected_keys.clone()),
            Box::new(self.cache_hits.clone()),
            Box::new(self.cache_misses.clone()),
            Box::new(self.stale_served.clone()),
            Box::new(self.cache_purged.clone()),
            Box::new(self.redis_errors.clone()),
            Box::new(self.redis_up.clone()),
            Box::new(self.deadline_exceeded.clone()),
            Box::new(self.misp_retries.clone()),
            Box::new(self.misp_shed.clone()),
            Box::new(self.breaker_state.clone()),
            Box::new(self.breaker_transitions.clone()),
            Box::new(self.batches.clone()),
            Box::new(self.batch_keys.clone()),
            Box::new(self.cache_evictions.clone()),
            Box::new(self.cache_entries.clone()),
            Box::new(self.coalesced_waiters.clone()),
            Box::new(self.misp_requests.clone()),
            Box::new(self.misp_duration.clone()),
            Box::new(self.misp_inflight.clone()),
            Box::new(self.misp_errors.clone()),
            Box::new(self.misp_probes.clone()),
            Box::new(self.misp_matches.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
    }

    /// Encodes every metric in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        buffer
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Endpoints of `misp_lookup_lookups_total`, in the order of [`LookupCounters`]' rows.
pub const LOOKUP_ENDPOINTS: [&str; 3] = ["lookup", "bulk", "dropin"];

/// Outcomes of `misp_lookup_lookups_total`, in the order of [`LookupCounters`]' columns.
pub const LOOKUP_OUTCOMES: [&str; 4] = ["found", "not_found", "rejected", "error"];

/// The `misp_lookup_lookups_total` series resolved once, so that counting a lookup does not
/// hash its labels on every request.
#[derive(Clone)]
pub struct LookupCounters([[IntCounter; 4]; 3]);

impl LookupCounters {
    fn new(lookups: &IntCounterVec) -> Self {
        Self(LOOKUP_ENDPOINTS.map(|endpoint| {
            LOOKUP_OUTCOMES.map(|outcome| lookups.with_label_values(&[endpoint, outcome]))
        }))
    }

    /// Counts one lookup; `endpoint` and `outcome` index [`LOOKUP_ENDPOINTS`] and
    /// [`LOOKUP_OUTCOMES`].
    pub fn inc(&self, endpoint: usize, outcome: usize) {
        self.0[endpoint][outcome].inc();
    }
}

/// Route labels of the HTTP metrics: the route patterns registered by the HTTP module, and
/// `unmatched` for every other path.
pub const HTTP_ROUTES: [&str; 11] = [
    "/lookup",
    "/lookup/{key}",
    "/cache",
    "/cache/{key}",
    "/attributes/restSearch",
    "/attributes/restSearch/{parameters}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.yaml",
    "unmatched",
];

/// Method labels of the HTTP metrics: the standard methods, and `other`.
pub const HTTP_METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "other",
];

/// Status-class labels, in the order [`status_class_index`] numbers them.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The series of `misp_lookup_http_requests_total` and
/// `misp_lookup_http_request_duration_seconds`, each resolved by its first request.
///
/// A label lookup hashes the labels and takes a lock, a measurable share of a cache hit's
/// cost. Resolving on first use instead of up front keeps series that no request has used
/// out of `/metrics`, as label lookups do.
#[derive(Clone)]
pub struct HttpSeries(Arc<HttpSeriesInner>);

struct HttpSeriesInner {
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Request counters, indexed by route, then method, then status class.
    resolved_requests: Box<[OnceLock<IntCounter>]>,
    /// Duration histograms, indexed by route.
    resolved_duration: [OnceLock<Histogram>; HTTP_ROUTES.len()],
}

impl HttpSeries {
    fn new(requests: &IntCounterVec, duration: &HistogramVec) -> Self {
        let slots = HTTP_ROUTES.len() * HTTP_METHODS.len() * STATUS_CLASSES.len();
        Self(Arc::new(HttpSeriesInner {
            requests: requests.clone(),
            duration: duration.clone(),
            resolved_requests: (0..slots).map(|_| OnceLock::new()).collect(),
            resolved_duration: std::array::from_fn(|_| OnceLock::new()),
        }))
    }

    /// Counts one finished request. `route` and `method` index [`HTTP_ROUTES`] and
    /// [`HTTP_METHODS`].
    pub fn record(&self, route: usize, method: usize, status: u16, elapsed: Duration) {
        let inner = &*self.0;
        let class = status_class_index(status);
        let slot = (route * HTTP_METHODS.len() + method) * STATUS_CLASSES.len() + class;
        inner.resolved_requests[slot]
            .get_or_init(|| {
                inner.requests.with_label_values(&[
                    HTTP_ROUTES[route],
                    HTTP_METHODS[method],
                    STATUS_CLASSES[class],
                ])
            })
            .inc();
        inner.resolved_duration[route]
            .get_or_init(|| inner.duration.with_label_values(&[HTTP_ROUTES[route]]))
            .observe(elapsed.as_secs_f64());
    }
}

/// Returns the index in [`STATUS_CLASSES`] of an HTTP status code's class.
fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// Returns the status-class label (`2xx`...) for an HTTP status code.
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[status_class_index(status)]
}
