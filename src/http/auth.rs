//! Caller authentication: the service's API token and, with `--forward-caller-key`, the
//! caller's own MISP key.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

use super::error::ApiError;
use crate::config::Secret;
use crate::lookup::Caller;

/// Header that carries the API token when `Authorization` carries a MISP key.
const API_TOKEN_HEADER: &str = "x-api-token";

/// MISP's own key header, which wins over `Authorization` in MISP.
const MISP_AUTH_HEADER: &str = "x-misp-auth";

/// What lookup endpoints require of a caller.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Token every lookup must carry, if set.
    pub api_token: Option<Secret>,
    /// Whether the caller's MISP key is forwarded to MISP.
    pub forward_caller_key: bool,
}

impl AuthPolicy {
    /// Checks the API token and extracts the caller's identity.
    pub fn authorize(&self, request: &HttpRequest) -> Result<Caller, ApiError> {
        if let Some(expected) = &self.api_token {
            let presented = header_text(request, API_TOKEN_HEADER)
                .or_else(|| bearer_token(request))
                .ok_or(ApiError::Unauthorized(
                    "an API token is required: send Authorization: Bearer <token> or \
                     X-Api-Token: <token>",
                ))?;
            if !constant_time_eq::constant_time_eq(
                presented.as_bytes(),
                expected.expose().as_bytes(),
            ) {
                return Err(ApiError::Unauthorized("the API token is wrong"));
            }
        }

        if !self.forward_caller_key {
            return Ok(Caller::default());
        }
        let key = header_text(request, MISP_AUTH_HEADER)
            .or_else(|| header_text(request, AUTHORIZATION.as_str()).filter(|v| !is_bearer(v)))
            .ok_or(ApiError::MissingMispKey)?;
        // MISP accepts only 40 alphanumerics, so any other key would fail there: reject it here
        // without a MISP request and without a cache entry under its digest.
        if !crate::misp::is_valid_key(key) {
            return Err(ApiError::MalformedCallerKey);
        }
        Ok(Caller {
            misp_key: Some(Secret::new(key)),
        })
    }
}

/// Returns a header's trimmed text, or `None` when it is absent, empty or not ASCII text.
pub(crate) fn header_text<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn is_bearer(value: &str) -> bool {
    value
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
}

/// Returns the token of an `Authorization: Bearer <token>` header (the scheme in any case).
pub(crate) fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let value = header_text(request, AUTHORIZATION.as_str())?;
    is_bearer(value).then(|| value[7..].trim())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const KEY: &str = "abcdefghijABCDEFGHIJ0123456789abcdefghij";

    fn policy(token: Option<&str>, forward: bool) -> AuthPolicy {
        AuthPolicy {
            api_token: token.map(Secret::new),
            forward_caller_key: forward,
        }
    }

    #[test]
    fn token_accepted_in_either_header() {
        let policy = policy(Some("0123456789abcdef"), false);
        let bearer = TestRequest::default()
            .insert_header(("Authorization", "Bearer 0123456789abcdef"))
            .to_http_request();
        assert!(policy.authorize(&bearer).is_ok());
        let custom = TestRequest::default()
            .insert_header(("X-Api-Token", "0123456789abcdef"))
            .to_http_request();
        assert!(policy.authorize(&custom).is_ok());
    }

    #[test]
    fn wrong_or_missing_token_is_unauthorized() {
        let policy = policy(Some("0123456789abcdef"), false);
        let wrong = TestRequest::default()
            .insert_header(("X-Api-Token", "0123456789abcdeX"))
            .to_http_request();
        assert_eq!(policy.authorize(&wrong).unwrap_err().code(), "unauthorized");
        let missing = TestRequest::default().to_http_request();
        assert_eq!(
            policy.authorize(&missing).unwrap_err().code(),
            "unauthorized"
        );
    }

    #[test]
    fn misp_auth_header_wins() {
        let policy = policy(None, true);
        let request = TestRequest::default()
            .insert_header(("X-MISP-Auth", KEY))
            .insert_header(("Authorization", "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"))
            .to_http_request();
        let caller = policy.authorize(&request).unwrap();
        assert_eq!(caller.misp_key.unwrap().expose(), KEY);
    }

    #[test]
    fn malformed_caller_key_is_forbidden() {
        let policy = policy(None, true);
        let request = TestRequest::default()
            .insert_header(("Authorization", "short"))
            .to_http_request();
        let err = policy.authorize(&request).unwrap_err();
        assert_eq!(err.code(), "misp_auth_failed");
        assert!(err.to_string().contains("40 letters"), "{err}");
        assert_eq!(err.status(), actix_web::http::StatusCode::FORBIDDEN);
    }
}
