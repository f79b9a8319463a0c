//! `GET /lookup/{key}`: the Graylog-friendly answer.

use std::borrow::Cow;

use actix_web::http::Method;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::indicator;
use crate::lookup::{LookupError, Served};
use crate::misp::types::TypeFilter;

/// The name of the header that reports the serving tier, a constant so that it is not parsed
/// per response.
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Path prefix of the native lookup route.
const LOOKUP_PREFIX: &str = "/lookup/";

/// Query parameters of `/lookup/{key}`.
#[derive(Debug, Deserialize)]
pub struct LookupParams {
    /// MISP types or kind groups to search, comma-separated.
    #[serde(rename = "type")]
    pub type_filter: Option<String>,
}

/// Handles one lookup: 200 with `found` true or false whenever MISP's result is known. It
/// serves every path below `/lookup/` and returns 405 for a method other than GET.
pub async fn lookup(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if request.method() != Method::GET {
        return Err(ApiError::MethodNotAllowed {
            method: request.method().to_string(),
            allow: "GET",
        });
    }
    let params = web::Query::<LookupParams>::from_query(request.query_string())
        .map_err(|err| ApiError::InvalidQuery(err.to_string()))?;
    let result = answer(&request, &params, &state).await;
    state.count_lookup("lookup", &result);
    if let Err(err @ (ApiError::Key(_) | ApiError::KeyEncoding)) = &result {
        state
            .metrics
            .rejected_keys
            .with_label_values(&[err.code()])
            .inc();
    }
    result.map(|served| served_response(&served))
}

async fn answer(
    request: &HttpRequest,
    params: &LookupParams,
    state: &AppState,
) -> Result<Served, ApiError> {
    let caller = state.auth.authorize(request)?;
    let raw = path_key(request, LOOKUP_PREFIX)?;
    let indicator = indicator::parse(&raw)?;
    let filter = params
        .type_filter
        .as_deref()
        .map(TypeFilter::parse)
        .transpose()?;
    let query = state.service.native_query(indicator, filter, caller);
    state
        .service
        .lookup(query)
        .await
        .map_err(|err: LookupError| ApiError::Lookup(err))
}

/// Returns the percent-decoded rest of the raw request path after `prefix`, decoded exactly
/// once. The raw path is read instead of the router's match, because the router has already
/// decoded some escapes, and Graylog's encoding (`%2F`, `%3A`, `%2B`, `%20`) must be decoded
/// once only.
pub fn path_key<'a>(request: &'a HttpRequest, prefix: &str) -> Result<Cow<'a, str>, ApiError> {
    let path = request.uri().path();
    if let Some(encoded) = path.strip_prefix(prefix) {
        return percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| ApiError::KeyEncoding);
    }

    // The router matches the prefix after decoding escapes of unreserved characters, as in
    // `/%6Cookup/`, so the whole path is decoded once and the prefix removed after that.
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| ApiError::KeyEncoding)?;
    let key = decoded.strip_prefix(prefix).unwrap_or_default();
    Ok(Cow::Owned(key.to_owned()))
}

/// Builds the 200 response of a served answer: the cached bytes and `X-Cache`.
pub fn served_response(served: &Served) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((X_CACHE, HeaderValue::from_static(served.status.as_str())))
        .body(served.entry.body_bytes())
}
