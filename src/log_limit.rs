//! Rate limiting of repeated log lines, so that an outage of MISP or Redis does not flood the
//! log with one line per lookup.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows one log line per key and interval, and counts the lines held back.
pub struct LogLimiter {
    interval: Duration,
    slots: Mutex<HashMap<&'static str, Slot>>,
}

#[derive(Default)]
struct Slot {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// Allows one line per key every `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Returns `Some(n)` when a line for `key` may be logged now, `n` being the lines held back
    /// since the last one, or `None` when this line must be held back.
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut slots = self.slots.lock().expect("log limiter lock");
        let slot = slots.entry(key).or_default();
        if slot
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            slot.suppressed += 1;
            return None;
        }
        let suppressed = slot.suppressed;
        *slot = Slot {
            last: Some(now),
            suppressed: 0,
        };
        Some(suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_held_back_and_counted() {
        let limiter = LogLimiter::new(Duration::from_secs(60));
        assert_eq!(limiter.allow("a"), Some(0));
        assert_eq!(limiter.allow("a"), None);
        assert_eq!(limiter.allow("a"), None);
        assert_eq!(limiter.allow("b"), Some(0));
    }

    #[test]
    fn line_allowed_after_interval() {
        let limiter = LogLimiter::new(Duration::ZERO);
        assert_eq!(limiter.allow("a"), Some(0));
        assert_eq!(limiter.allow("a"), Some(0));
    }
}
