//! `POST /lookup`: many keys in one request, answered in order.

use std::borrow::Cow;

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

/// Longest `type` value of a bulk request, in bytes: every MISP type and group once.
const MAX_TYPE_FILTER_BYTES: usize = 4096;

/// The bulk request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Keys to look up, each as it would be sent to `/lookup/{key}` but not percent-encoded.
    /// Reading stops with an error after [`MAX_BULK_KEYS`], so an oversized list never
    /// occupies memory.
    #[serde(deserialize_with = "bounded_keys")]
    pub keys: Vec<Value>,
    /// MISP types or kind groups to search, as `type=` of `/lookup/{key}`.
    #[serde(rename = "type")]
    pub type_filter: Option<String>,
}

/// Message of the deserialization error for a list longer than [`MAX_BULK_KEYS`].
const TOO_MANY_KEYS: &str = "too many keys";

fn bounded_keys<'de, D>(deserializer: D) -> Result<Vec<Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Keys;

    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<Value>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(formatter, "a list of at most {MAX_BULK_KEYS} keys")
        }

        fn visit_seq<A>(self, mut sequence: A) -> Result<Vec<Value>, A::Error>
        where
            A: serde::de::SeqAccess<'de>,
        {
            let mut keys = Vec::with_capacity(sequence.size_hint().unwrap_or(0).min(MAX_BULK_KEYS));
            while let Some(key) = sequence.next_element::<Value>()? {
                if keys.len() == MAX_BULK_KEYS {
                    return Err(serde::de::Error::custom(TOO_MANY_KEYS));
                }
                keys.push(key);
            }
            Ok(keys)
        }
    }

    deserializer.deserialize_seq(Keys)
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
    let bulk: BulkRequest = serde_json::from_slice(&body).map_err(|err| {
        if err.to_string().starts_with(TOO_MANY_KEYS) {
            ApiError::TooManyKeys
        } else {
            ApiError::InvalidJson(err.to_string())
        }
    })?;
    if bulk
        .type_filter
        .as_ref()
        .is_some_and(|filter| filter.len() > MAX_TYPE_FILTER_BYTES)
    {
        return Err(ApiError::InvalidType(crate::misp::types::UnknownType(
            format!("a type list of over {MAX_TYPE_FILTER_BYTES} bytes"),
        )));
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

    let items: Vec<Cow<'_, [u8]>> = results
        .iter()
        .map(|result| {
            state.count_lookup("bulk", result);
            match result {
                Ok(served) => Cow::Borrowed(served.entry.body()),
                Err(err) => Cow::Owned(err.body_bytes().into()),
            }
        })
        .collect();
    // Sized once from the bodies, so that a large response is not copied by repeated growth.
    let bodies_len: usize = items.iter().map(|item| item.len()).sum();
    let mut output = Vec::with_capacity(64 + bodies_len + items.len() * 80);
    output.extend_from_slice(b"{\"results\":[");
    for (index, (key, item)) in bulk.keys.iter().zip(&items).enumerate() {
        if index > 0 {
            output.push(b',');
        }
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
