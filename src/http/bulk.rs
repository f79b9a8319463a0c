//! `POST /lookup`: many keys in one request, answered in order.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::{AppState, BULK_BODY_BYTES, read_body};
use crate::indicator;
use crate::misp::types::TypeFilter;

/// Maximum number of keys in one bulk request.
pub const MAX_BULK_KEYS: usize = 1000;

/// The bulk request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Keys to look up, each as it would be sent to `/lookup/{key}` but not percent-encoded.
    pub keys: Vec<Value>,
    /// MISP types or kind groups to search, as `type=` of `/lookup/{key}`.
    #[serde(rename = "type")]
    pub type_filter: Option<String>,
}

/// Looks up every key concurrently; misses share batched MISP requests. Each result is the
/// `/lookup/{key}` body with the key as sent added first, or the key's error body.
pub async fn bulk_lookup(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.auth.authorize(&request)?;
    let body = read_body(payload, BULK_BODY_BYTES).await?;
    let bulk: BulkRequest =
        serde_json::from_slice(&body).map_err(|err| ApiError::InvalidJson(err.to_string()))?;
    if bulk.keys.len() > MAX_BULK_KEYS {
        return Err(ApiError::TooManyKeys(bulk.keys.len()));
    }
    let filter = bulk
        .type_filter
        .as_deref()
        .map(TypeFilter::parse)
        .transpose()?;

    let lookups = bulk.keys.iter().map(|key| {
        let caller = caller.clone();
        let filter = filter.as_ref();
        let state = &state;
        async move {
            let Some(text) = key.as_str() else {
                return Err(ApiError::InvalidJson(
                    "every key must be a JSON string".into(),
                ));
            };
            let indicator = indicator::parse(text)?;
            let query = state
                .service
                .native_query(indicator, filter.cloned(), caller);
            Ok(state.service.lookup(query).await?)
        }
    });
    let results = futures::future::join_all(lookups).await;

    let mut output = Vec::with_capacity(64 + results.len() * 256);
    output.extend_from_slice(b"{\"results\":[");
    for (index, (key, result)) in bulk.keys.iter().zip(results).enumerate() {
        if index > 0 {
            output.push(b',');
        }
        state.count_lookup("bulk", &result);
        let item = match result {
            Ok(served) => served.entry.body.clone(),
            Err(err) => err.body_bytes(),
        };
        // Every body is a JSON object: the key goes in as its first member.
        output.extend_from_slice(b"{\"key\":");
        serde_json::to_writer(&mut output, key).expect("a JSON value always serializes");
        output.push(b',');
        output.extend_from_slice(&item[1..]);
    }
    output.extend_from_slice(b"]}");
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .body(output))
}
