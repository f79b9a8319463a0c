//! Typed failures of a MISP request.

use std::time::Duration;

/// A failed MISP request. Each variant maps to one error `code` and HTTP status in
/// [`crate::http::error`]; messages never contain a key or the request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MispError {
    /// MISP answered 401 or 403: the key is wrong, expired, disabled or not allowed from here.
    #[error(
        "MISP rejected the {} API key (HTTP {status})",
        if *.caller_key { "caller's" } else { "service's" }
    )]
    AuthFailed {
        /// Whether the rejected key was the caller's own (`--forward-caller-key`).
        caller_key: bool,
        /// MISP's status code.
        status: u16,
    },

    /// MISP answered 429 because the key's role is rate-limited, or an earlier 429's reset
    /// time has not passed yet, so MISP was not asked.
    #[error("MISP rate-limited the search (HTTP 429){}", retry_after_text(*.retry_after))]
    RateLimited {
        /// Seconds until MISP's rate-limit window resets, from `X-Rate-Limit-Reset`.
        retry_after: Option<u64>,
    },

    /// MISP answered with a 5xx status.
    #[error("MISP failed with HTTP {status}")]
    ServerError {
        /// MISP's status code.
        status: u16,
    },

    /// MISP answered with a 4xx status other than 401, 403 and 429.
    #[error("MISP rejected the search with HTTP {status}: {message}")]
    Rejected {
        /// MISP's status code.
        status: u16,
        /// MISP's `message` member, shortened.
        message: String,
    },

    /// MISP answered with an HTML page or a redirect, as it does in maintenance mode or when a
    /// proxy in front of it serves a login page.
    #[error("MISP is unavailable: {reason}")]
    Unavailable {
        /// The content received instead of JSON.
        reason: String,
    },

    /// MISP answered 2xx with a body that is not restSearch JSON.
    #[error("MISP sent an invalid response: {reason}")]
    BadResponse {
        /// The problem with the body.
        reason: String,
    },

    /// MISP's answer is larger than `--misp-max-body`.
    #[error(
        "MISP's answer exceeds {limit} bytes (--misp-max-body); ask for a lower limit or fewer \
         extras"
    )]
    TooLarge {
        /// The configured maximum, in bytes.
        limit: usize,
    },

    /// MISP did not answer within the configured timeout.
    #[error("MISP did not answer within {}", humantime::format_duration(*.after))]
    Timeout {
        /// The timeout that elapsed.
        after: Duration,
    },

    /// The circuit breaker is open after repeated failures: MISP was not asked.
    #[error(
        "MISP failed repeatedly, so new lookups fail fast for {retry_after} s before MISP is \
         tried again"
    )]
    CircuitOpen {
        /// Seconds until the breaker lets a probe request through.
        retry_after: u64,
    },

    /// The connection to MISP could not be made or broke off.
    #[error("MISP is unreachable: {reason}")]
    Unreachable {
        /// The transport error, without the URL.
        reason: String,
    },
}

fn retry_after_text(retry_after: Option<u64>) -> String {
    match retry_after {
        Some(seconds) => format!("; the limit resets in {seconds} s"),
        None => String::new(),
    }
}

impl MispError {
    /// Returns the stable error code sent to callers and used as a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthFailed { .. } => "misp_auth_failed",
            Self::RateLimited { .. } => "misp_rate_limited",
            Self::ServerError { .. } | Self::Rejected { .. } => "misp_error",
            Self::Unavailable { .. } => "misp_unavailable",
            Self::BadResponse { .. } | Self::TooLarge { .. } => "misp_bad_response",
            Self::Timeout { .. } => "misp_timeout",
            Self::CircuitOpen { .. } => "misp_circuit_open",
            Self::Unreachable { .. } => "misp_unreachable",
        }
    }
}
