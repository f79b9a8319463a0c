//! The error table: every error a caller can receive, its stable `code` and its HTTP status.
//!
//! Every error body is JSON, `{"code": "...", "message": "..."}`. On the drop-in routes the
//! body also carries MISP's own `name` and `url` members, so that scripts written for MISP read
//! it unchanged.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::indicator::KeyError;
use crate::lookup::LookupError;
use crate::misp::MispError;
use crate::misp::types::UnknownType;

/// An error answered to a caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The key was rejected before any lookup.
    #[error("{0}")]
    Key(#[from] KeyError),

    /// The key's percent-encoding does not decode to UTF-8.
    #[error("the key is not valid UTF-8 after percent-decoding; send UTF-8 text")]
    KeyEncoding,

    /// `type=` names neither a MISP type nor a kind group.
    #[error("{0}")]
    InvalidType(#[from] UnknownType),

    /// The query string could not be read.
    #[error("invalid query string: {0}")]
    InvalidQuery(String),

    /// The request body is not valid JSON, or not a JSON object.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),

    /// A drop-in search without a `value`.
    #[error(
        "the search has no value; send {{\"value\": \"<indicator>\"}} or \
         /attributes/restSearch/value:<indicator>, because an unfiltered search would return \
         the whole MISP database"
    )]
    MissingValue,

    /// A drop-in parameter that the service does not support, or a value of the wrong form.
    #[error("{0}")]
    UnsupportedParameter(String),

    /// The caller sent no valid API token.
    #[error("{0}")]
    Unauthorized(&'static str),

    /// `--forward-caller-key` is on and the caller sent no MISP key.
    #[error("a MISP API key is required: send it as X-MISP-Auth: <key> or Authorization: <key>")]
    MissingMispKey,

    /// The caller's MISP key cannot be valid, so MISP is not asked.
    #[error(
        "the MISP API key sent by the caller is not 40 letters and digits, so MISP would reject \
         it; send a valid key in X-MISP-Auth or Authorization"
    )]
    MalformedCallerKey,

    /// No route matches the path.
    #[error("no endpoint at this path; see /openapi.yaml for the API")]
    NotFound,

    /// The route exists but not for this method.
    #[error("this endpoint does not accept the {method} method; it accepts {allow}")]
    MethodNotAllowed {
        /// The method received.
        method: String,
        /// The methods the route accepts, for the `Allow` header.
        allow: &'static str,
    },

    /// The request body exceeds the size limit.
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),

    /// A bulk request with more keys than allowed.
    #[error("the request has more than 1000 keys; split it into requests of at most 1000")]
    TooManyKeys,

    /// Redis failed during a cache purge.
    #[error("the Redis purge failed: {0}; the in-process tier was purged, retry for Redis")]
    RedisFailed(String),

    /// The lookup failed upstream.
    #[error("{0}")]
    Lookup(#[from] LookupError),
}

impl From<MispError> for ApiError {
    fn from(err: MispError) -> Self {
        Self::Lookup(LookupError::Misp(err))
    }
}

impl ApiError {
    /// Returns the stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Key(err) => err.code(),
            Self::KeyEncoding => "key_invalid_encoding",
            Self::InvalidType(_) => "invalid_type",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidJson(_) => "invalid_json",
            Self::MissingValue => "missing_value",
            Self::UnsupportedParameter(_) => "unsupported_parameter",
            Self::Unauthorized(_) | Self::MissingMispKey => "unauthorized",
            Self::MalformedCallerKey => "misp_auth_failed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::TooManyKeys => "too_many_keys",
            Self::RedisFailed(_) => "redis_failed",
            Self::Lookup(LookupError::Misp(err)) => err.code(),
            Self::Lookup(LookupError::Internal(_)) => "internal_error",
        }
    }

    /// Returns the HTTP status. The match is exhaustive, so a new variant needs a status to
    /// compile.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Key(_)
            | Self::KeyEncoding
            | Self::InvalidType(_)
            | Self::InvalidQuery(_)
            | Self::InvalidJson(_)
            | Self::MissingValue
            | Self::UnsupportedParameter(_)
            | Self::TooManyKeys => StatusCode::BAD_REQUEST,
            Self::RedisFailed(_) => StatusCode::BAD_GATEWAY,
            Self::Unauthorized(_) | Self::MissingMispKey => StatusCode::UNAUTHORIZED,
            Self::MalformedCallerKey => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Lookup(LookupError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Lookup(LookupError::Misp(err)) => misp_status(err),
        }
    }

    /// Seconds for `Retry-After` on a rate limit or an open circuit breaker: MISP's
    /// `X-Rate-Limit-Reset` when it sent one, else 60.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Lookup(LookupError::Misp(MispError::RateLimited { retry_after })) => {
                Some(retry_after.unwrap_or(60))
            }
            Self::Lookup(LookupError::Misp(MispError::CircuitOpen { retry_after })) => {
                Some((*retry_after).max(1))
            }
            _ => None,
        }
    }

    /// Returns the JSON error body without MISP's members, as bytes.
    pub fn body_bytes(&self) -> bytes::Bytes {
        let message = self.to_string();
        let body = ErrorBody {
            code: self.code(),
            message: &message,
            name: None,
            url: None,
        };
        bytes::Bytes::from(serde_json::to_vec(&body).expect("an error body always serializes"))
    }

    /// Builds the response, with MISP's `name` and `url` members when `misp_url` is given.
    fn render(&self, misp_url: Option<&str>) -> HttpResponse {
        let message = self.to_string();
        let body = ErrorBody {
            code: self.code(),
            message: &message,
            name: misp_url.map(|_| message.as_str()),
            url: misp_url,
        };
        let mut response = HttpResponse::build(self.status());
        if let Some(seconds) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        match self {
            Self::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            // MISP's own scheme: the bare key in Authorization or X-MISP-Auth.
            Self::MissingMispKey => {
                let challenge = HeaderValue::from_static("MISP realm=\"MISP API key\"");
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            Self::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        response.json(body)
    }
}

/// The JSON error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

/// Maps a MISP failure to the status a caller receives: 502 when MISP answered wrongly, 503
/// when it cannot be asked now, 504 when it did not answer in time. A rejected caller key is
/// the caller's own credential problem, so it is a 403.
fn misp_status(err: &MispError) -> StatusCode {
    match err {
        MispError::AuthFailed {
            caller_key: true, ..
        } => StatusCode::FORBIDDEN,
        MispError::AuthFailed {
            caller_key: false, ..
        }
        | MispError::ServerError { .. }
        | MispError::Rejected { .. }
        | MispError::Unavailable { .. }
        | MispError::BadResponse { .. }
        | MispError::TooLarge { .. } => StatusCode::BAD_GATEWAY,
        MispError::RateLimited { .. }
        | MispError::Unreachable { .. }
        | MispError::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
        MispError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.render(None)
    }
}

/// An error on a drop-in route: the same table, with MISP's `name` and `url` members added.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct DropinError {
    /// The underlying error.
    pub error: ApiError,
    /// The request path, as MISP reports it in `url`.
    pub path: String,
}

impl ResponseError for DropinError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.error.render(Some(&self.path))
    }
}
