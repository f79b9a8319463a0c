//! Protection of MISP: a bound on requests in flight, retries with jittered backoff, a circuit
//! breaker and a pause after MISP's rate limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use super::{Client, MispError, SearchRequest};
use crate::config::{ProtectionConfig, Secret};
use crate::metrics::Metrics;

/// First retry delay; each further retry doubles it, with up to 50 % random jitter so that
/// replicas do not retry in step.
const RETRY_BASE_DELAY: Duration = Duration::from_millis(100);

/// Pause after a 429 that carried no `X-Rate-Limit-Reset`.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(60);

/// Maximum pause after a 429. MISP's rate-limit window is 900 s, so a longer
/// `X-Rate-Limit-Reset` (a proxy sending an epoch time, say) is not MISP's own.
const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(3600);

/// Circuit breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakerState {
    /// MISP is asked; counts consecutive failures.
    Closed { failures: u32 },
    /// MISP is not asked until the instant passes.
    Open { until: Instant },
    /// One probe request is in flight; others fail fast until it ends.
    HalfOpen,
}

impl BreakerState {
    fn gauge(self) -> i64 {
        match self {
            Self::Closed { .. } => 0,
            Self::HalfOpen => 1,
            Self::Open { .. } => 2,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Closed { .. } => "closed",
            Self::HalfOpen => "half_open",
            Self::Open { .. } => "open",
        }
    }
}

/// A MISP client behind the protections.
pub struct Upstream {
    client: Client,
    permits: Semaphore,
    breaker: Mutex<BreakerState>,
    /// When each caller identity may ask again after a 429; MISP counts its rate limit per
    /// user, so one forwarded key's limit must not pause the others.
    rate_limited_until: Mutex<HashMap<Option<String>, Instant>>,
    config: ProtectionConfig,
    timeout: Duration,
    metrics: Metrics,
}

impl Upstream {
    /// Wraps a client; `timeout` is the MISP request timeout, which bounds retries too.
    pub fn new(
        client: Client,
        config: ProtectionConfig,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            permits: Semaphore::new(config.max_inflight),
            client,
            breaker: Mutex::new(BreakerState::Closed { failures: 0 }),
            rate_limited_until: Mutex::new(HashMap::new()),
            config,
            timeout,
            metrics,
        }
    }

    /// Returns the unprotected client, for the readiness probe.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs a restSearch unless a protection forbids asking MISP now.
    ///
    /// `caller_identity` is the digest that keys the rate-limit pause (`None` for the
    /// service's own key).
    pub async fn search(
        &self,
        request: &SearchRequest,
        caller_key: Option<&Secret>,
        caller_identity: Option<&str>,
    ) -> Result<Vec<Value>, MispError> {
        // The protections are checked after a slot is free, so that requests queued while
        // MISP failed are shed once the breaker opens instead of reaching MISP anyway.
        let permit = self.permits.acquire().await;
        self.check_rate_limit(caller_identity)?;
        let probe = self.admit()?;

        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            let result = self.client.rest_search(request, caller_key).await;
            let Err(err) = &result else { break result };
            let delay = retry_delay(attempt);
            let retryable = matches!(
                err,
                MispError::Unreachable { .. } | MispError::ServerError { .. }
            );
            if !retryable
                || attempt >= self.config.retries
                || started.elapsed() + delay >= self.timeout
            {
                break result;
            }
            attempt += 1;
            self.metrics.misp_retries.inc();
            tokio::time::sleep(delay).await;
        };

        if let Err(MispError::RateLimited { retry_after }) = &result {
            let pause = retry_after
                .map_or(DEFAULT_RATE_LIMIT_PAUSE, Duration::from_secs)
                .min(MAX_RATE_LIMIT_PAUSE);
            let until = Instant::now() + pause;
            lock(&self.rate_limited_until).insert(caller_identity.map(str::to_owned), until);
        }
        // The outcome is recorded before the slot is released, so the next queued request
        // sees a breaker that this failure opened.
        self.record(&result, probe);
        drop(permit);
        result
    }

    /// Fails fast while an earlier 429's reset time has not passed.
    fn check_rate_limit(&self, caller_identity: Option<&str>) -> Result<(), MispError> {
        let mut pauses = lock(&self.rate_limited_until);
        let key = caller_identity.map(str::to_owned);
        let Some(until) = pauses.get(&key).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= until {
            pauses.remove(&key);
            return Ok(());
        }
        self.metrics
            .misp_shed
            .with_label_values(&["rate_limited"])
            .inc();
        Err(MispError::RateLimited {
            retry_after: Some(ceil_seconds(until - now)),
        })
    }

    /// Lets a request through the breaker. Returns whether it is the half-open probe.
    fn admit(&self) -> Result<bool, MispError> {
        let mut state = lock(&self.breaker);
        match *state {
            BreakerState::Closed { .. } => Ok(false),
            BreakerState::Open { until } if Instant::now() >= until => {
                self.transition(&mut state, BreakerState::HalfOpen);
                Ok(true)
            }
            BreakerState::Open { until } => {
                self.metrics
                    .misp_shed
                    .with_label_values(&["circuit_open"])
                    .inc();
                Err(MispError::CircuitOpen {
                    retry_after: ceil_seconds(until - Instant::now()),
                })
            }
            BreakerState::HalfOpen => {
                self.metrics
                    .misp_shed
                    .with_label_values(&["circuit_open"])
                    .inc();
                Err(MispError::CircuitOpen { retry_after: 1 })
            }
        }
    }

    /// Updates the breaker with a request's outcome. Only failures that say MISP itself is in
    /// trouble count; a rejected key or a rate limit shows that MISP is up.
    fn record(&self, result: &Result<Vec<Value>, MispError>, probe: bool) {
        // A body over --misp-max-body is not counted: a drop-in caller chooses `limit` and
        // the extras, so it could otherwise open the breaker for everyone.
        let failed = matches!(
            result,
            Err(MispError::Timeout { .. }
                | MispError::Unreachable { .. }
                | MispError::ServerError { .. }
                | MispError::Unavailable { .. }
                | MispError::BadResponse { .. })
        );
        let mut state = lock(&self.breaker);
        let next = match (*state, failed) {
            (_, false) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, true)
                if failures + 1 < self.config.breaker_failures =>
            {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            // A request admitted before the breaker opened may end while it is open.
            (BreakerState::Open { until }, true) if !probe => BreakerState::Open { until },
            (_, true) => BreakerState::Open {
                until: Instant::now() + self.config.breaker_cooldown,
            },
        };
        if next != *state {
            self.transition(&mut state, next);
        }
    }

    fn transition(&self, state: &mut BreakerState, next: BreakerState) {
        if state.label() != next.label() {
            self.metrics
                .breaker_transitions
                .with_label_values(&[next.label()])
                .inc();
            match next {
                BreakerState::Open { .. } => {
                    tracing::warn!(
                        cooldown = ?self.config.breaker_cooldown,
                        "MISP circuit breaker opened after repeated failures"
                    );
                }
                BreakerState::Closed { .. } => tracing::info!("MISP circuit breaker closed"),
                BreakerState::HalfOpen => tracing::info!("MISP circuit breaker probing"),
            }
        }
        self.metrics.breaker_state.set(next.gauge());
        *state = next;
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked (every update is a single
/// assignment or map insert), so one panic cannot disable MISP requests for good.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Returns the delay before retry `attempt + 1`: doubling from [`RETRY_BASE_DELAY`], plus
/// jitter.
fn retry_delay(attempt: u32) -> Duration {
    let base = RETRY_BASE_DELAY * 2u32.saturating_pow(attempt.min(6));
    base + base.mul_f64(fastrand::f64() * 0.5)
}

fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_with_jitter() {
        for attempt in 0..4 {
            let delay = retry_delay(attempt);
            let base = RETRY_BASE_DELAY * 2u32.pow(attempt);
            assert!(delay >= base, "attempt {attempt}: {delay:?} < {base:?}");
            assert!(delay <= base.mul_f64(1.5), "attempt {attempt}: {delay:?}");
        }
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ceil_seconds(Duration::from_secs(2)), 2);
    }
}
