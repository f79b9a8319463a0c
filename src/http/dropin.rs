//! The drop-in stand-in for MISP's `/attributes/restSearch`: the same request forms, the same
//! response bytes, served from the cache.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::error::{ApiError, DropinError};
use super::lookup::served_response;
use super::{AppState, MAX_BODY_BYTES, read_body};
use crate::indicator::{self, Kind};
use crate::lookup::{Caller, Served};
use crate::misp::SearchRequest;
use crate::misp::types::MISP_TYPES;

/// Path of MISP's attribute search.
const REST_SEARCH_PATH: &str = "/attributes/restSearch";

/// Maximum number of values in one drop-in search.
pub const MAX_DROPIN_VALUES: usize = 100;

/// Maximum `limit` of a drop-in search, so that one caller cannot make the service read
/// MISP's whole database into memory.
pub const MAX_DROPIN_LIMIT: u64 = 1000;

/// Largest `page` of a drop-in search, which keeps MISP's row offset (`page` × `limit`)
/// within 10^8.
pub const MAX_DROPIN_PAGE: u64 = 100_000;

/// Parameters the drop-in endpoint honours; any other is rejected so that a caller never gets
/// an answer that silently ignored one of its filters.
pub const SUPPORTED_PARAMETERS: &[&str] = &[
    "value",
    "type",
    "category",
    "to_ids",
    "published",
    "deleted",
    "limit",
    "page",
    "returnFormat",
    "includeEventTags",
    "includeEventUuid",
    "includeContext",
    "includeSightings",
    "includeCorrelations",
    "includeDecayScore",
];

/// The order in which MISP maps positional URL parameters to names
/// (`RestSearchComponent::$paramArray['Attribute']` in MISP 2.5).
const POSITIONAL_PARAMETERS: &[&str] = &[
    "returnFormat",
    "value",
    "value1",
    "value2",
    "type",
    "category",
    "org",
    "tags",
    "from",
    "to",
    "last",
    "eventid",
    "withAttachments",
    "uuid",
    "publish_timestamp",
    "published",
    "timestamp",
    "enforceWarninglist",
    "to_ids",
    "deleted",
];

/// `GET /attributes/restSearch/...`: named (`value:1.2.3.4/type:ip-dst`) and positional
/// (`json/1.2.3.4`) URL parameters.
pub async fn search_get(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DropinError> {
    let path = request.uri().path().to_owned();
    let result = async {
        let caller = state.auth.authorize(&request)?;
        let parameters = url_parameters(&path)?;
        search(parameters, caller, &state).await
    }
    .await;
    finish(result, path, &state)
}

/// `POST /attributes/restSearch` with a JSON body, optionally wrapped as `{"request": {...}}`.
pub async fn search_post(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DropinError> {
    let path = request.uri().path().to_owned();
    let result = async {
        let caller = state.auth.authorize(&request)?;
        let body = read_body(payload, MAX_BODY_BYTES).await?;
        let parameters = body_parameters(&body)?;
        search(parameters, caller, &state).await
    }
    .await;
    finish(result, path, &state)
}

fn finish(
    result: Result<Served, ApiError>,
    path: String,
    state: &AppState,
) -> Result<HttpResponse, DropinError> {
    state.count_lookup("dropin", &result);
    result
        .map(|served| served_response(&served))
        .map_err(|error| DropinError { error, path })
}

async fn search(
    parameters: Map<String, Value>,
    caller: Caller,
    state: &AppState,
) -> Result<Served, ApiError> {
    let (search, values) = build_search(parameters, state.service.limit())?;
    let query = state.service.dropin_query(search, values, caller);
    Ok(state.service.lookup(query).await?)
}

/// Reads URL parameters the way MISP's CakePHP router does: segments split on `/`, each
/// URL-decoded (`+` as a space); `name:value` is a named parameter (`;` in the value stands for
/// `:`), anything else takes the next positional name. Positional `null`, `0` and `false`
/// leave their parameter unset. Unlike MISP, a value may contain an encoded `%2F`.
fn url_parameters(path: &str) -> Result<Map<String, Value>, ApiError> {
    // MISP's router reads a trailing `.json` as the response format, not as part of a value.
    let after_route = path.strip_prefix(REST_SEARCH_PATH).unwrap_or_default();
    let tail = after_route
        .strip_suffix(".json")
        .unwrap_or(after_route)
        .trim_start_matches('/');
    let mut named = Map::new();
    let mut positional = Map::new();
    let mut position = 0;
    for segment in tail.split('/').filter(|segment| !segment.is_empty()) {
        let decoded = url_decode(segment)?;
        let named_parameter = decoded.split_once(':').filter(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
        });
        match named_parameter {
            Some((name, value)) => {
                named.insert(name.to_owned(), Value::from(value.replace(';', ":")));
            }
            None => {
                let Some(name) = POSITIONAL_PARAMETERS.get(position) else {
                    return Err(ApiError::UnsupportedParameter(format!(
                        "too many positional parameters in the path; use named parameters \
                         such as value:<indicator>; supported: {}",
                        SUPPORTED_PARAMETERS.join(", ")
                    )));
                };
                position += 1;
                if !matches!(decoded.as_str(), "null" | "0" | "false") {
                    positional.insert((*name).to_owned(), Value::from(decoded));
                }
            }
        }
    }
    // Named parameters win over positional ones, as in MISP.
    positional.extend(named);
    if positional.is_empty() {
        return Err(ApiError::MissingValue);
    }
    Ok(positional)
}

fn url_decode(segment: &str) -> Result<String, ApiError> {
    let plus_as_space = segment.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| ApiError::KeyEncoding)
}

fn body_parameters(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MissingValue);
    }
    let document: Value =
        serde_json::from_slice(body).map_err(|err| ApiError::InvalidJson(err.to_string()))?;
    let Value::Object(mut object) = document else {
        return Err(ApiError::InvalidJson(
            "the body must be a JSON object of search parameters".into(),
        ));
    };
    if object.len() == 1
        && let Some(Value::Object(inner)) = object.remove("request")
    {
        return Ok(inner);
    }
    Ok(object)
}

/// Validates drop-in parameters and builds the MISP search. Returns the search and the
/// normalized values, with their kinds, that can match something (`0` and full composite
/// strings cannot).
fn build_search(
    parameters: Map<String, Value>,
    default_limit: u32,
) -> Result<(SearchRequest, Vec<(String, Kind)>), ApiError> {
    if let Some(unknown) = parameters
        .keys()
        .find(|name| !SUPPORTED_PARAMETERS.contains(&name.as_str()))
    {
        return Err(ApiError::UnsupportedParameter(format!(
            "parameter {unknown:?} is not supported; supported: {}",
            SUPPORTED_PARAMETERS.join(", ")
        )));
    }
    // Sorted, so that the same parameters in another order make the same cache key.
    let parameters: BTreeMap<String, Value> = parameters.into_iter().collect();

    if let Some(format) = parameters.get("returnFormat")
        && format.as_str() != Some("json")
    {
        return Err(ApiError::UnsupportedParameter(format!(
            "returnFormat {format} is not supported; only json"
        )));
    }

    let raw_values = parameters
        .get("value")
        .map(|value| string_list("value", value))
        .transpose()?
        .unwrap_or_default();
    if raw_values.is_empty() {
        return Err(ApiError::MissingValue);
    }
    if raw_values.len() > MAX_DROPIN_VALUES {
        return Err(ApiError::UnsupportedParameter(format!(
            "value has {} items; at most {MAX_DROPIN_VALUES} are accepted",
            raw_values.len()
        )));
    }
    let mut values: Vec<(String, Kind)> = Vec::with_capacity(raw_values.len());
    for raw in &raw_values {
        let indicator = indicator::parse(raw)?;
        if !indicator.is_unmatchable() && !values.iter().any(|(v, _)| v == indicator.value()) {
            values.push((indicator.value().to_owned(), indicator.kind()));
        }
    }

    let limit = match parameters.get("limit") {
        Some(limit) => positive_integer("limit", limit, MAX_DROPIN_LIMIT)?,
        None => u64::from(default_limit),
    };
    let plain_values = values.iter().map(|(value, _)| value.clone()).collect();
    let mut search = SearchRequest::new(plain_values, 1);
    search.set("limit", Value::from(limit));
    if let Some(page) = parameters.get("page") {
        search.set(
            "page",
            Value::from(positive_integer("page", page, u64::MAX)?),
        );
    }
    if let Some(types) = parameters.get("type") {
        let types = string_list("type", types)?;
        if let Some(unknown) = types.iter().find(|t| !MISP_TYPES.contains(&t.as_str())) {
            return Err(ApiError::UnsupportedParameter(format!(
                "type {unknown:?} is not a MISP attribute type"
            )));
        }
        search.set("type", Value::from(types));
    }
    if let Some(categories) = parameters.get("category") {
        let categories = string_list("category", categories)?;
        for category in &categories {
            // Categories go through the same operator parsing as values in MISP.
            indicator::parse(category)?;
        }
        search.set("category", Value::from(categories));
    }
    for name in ["to_ids", "published"] {
        if let Some(flag) = parameters.get(name) {
            search.set(name, Value::from(u8::from(flag_value(name, flag)?)));
        }
    }
    if let Some(deleted) = parameters.get("deleted") {
        search.set("deleted", deleted_value(deleted)?);
    }
    for name in [
        "includeEventTags",
        "includeEventUuid",
        "includeContext",
        "includeSightings",
        "includeCorrelations",
        "includeDecayScore",
    ] {
        if let Some(flag) = parameters.get(name)
            && flag_value(name, flag)?
        {
            search.set(name, Value::Bool(true));
        }
    }
    Ok((search, values))
}

/// Reads a string or a list of strings. A string with `||` is a list, as MISP reads it.
fn string_list(name: &str, value: &Value) -> Result<Vec<String>, ApiError> {
    match value {
        Value::String(text) if text.contains("||") => Ok(text
            .split("||")
            .filter(|item| !item.trim().is_empty())
            .map(str::to_owned)
            .collect()),
        Value::String(text) => Ok(vec![text.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::UnsupportedParameter(format!(
                        "{name} must be a string or a list of strings"
                    ))
                })
            })
            .collect(),
        _ => Err(ApiError::UnsupportedParameter(format!(
            "{name} must be a string or a list of strings"
        ))),
    }
}

fn flag_value(name: &str, value: &Value) -> Result<bool, ApiError> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::Number(number) if number.as_u64() == Some(0) => Ok(false),
        Value::Number(number) if number.as_u64() == Some(1) => Ok(true),
        Value::String(text) if matches!(text.as_str(), "0" | "false") => Ok(false),
        Value::String(text) if matches!(text.as_str(), "1" | "true") => Ok(true),
        _ => Err(ApiError::UnsupportedParameter(format!(
            "{name} must be true, false, 1 or 0"
        ))),
    }
}

fn deleted_value(value: &Value) -> Result<Value, ApiError> {
    if let Value::Array(items) = value {
        let mut flags = items
            .iter()
            .map(|item| flag_value("deleted", item).map(u8::from))
            .collect::<Result<Vec<_>, _>>()?;
        flags.sort_unstable();
        flags.dedup();
        return Ok(Value::from(flags));
    }
    flag_value("deleted", value).map(|flag| Value::from(u8::from(flag)))
}

fn positive_integer(name: &str, value: &Value, max: u64) -> Result<u64, ApiError> {
    let number = match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    number
        .filter(|number| (1..=max).contains(number))
        .ok_or_else(|| {
            ApiError::UnsupportedParameter(format!("{name} must be a whole number from 1 to {max}"))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn named_parameters_from_path() {
        let parameters =
            url_parameters("/attributes/restSearch/value:2001:db8::1/type:ip-dst").unwrap();
        assert_eq!(parameters["value"], json!("2001:db8::1"));
        assert_eq!(parameters["type"], json!("ip-dst"));
    }

    #[test]
    fn positional_parameters_from_path() {
        let parameters = url_parameters("/attributes/restSearch/json/203.0.113.77").unwrap();
        assert_eq!(parameters["returnFormat"], json!("json"));
        assert_eq!(parameters["value"], json!("203.0.113.77"));
    }

    #[test]
    fn path_without_parameters_is_missing_value() {
        let err = url_parameters("/attributes/restSearch/").unwrap_err();
        assert_eq!(err.code(), "missing_value");
    }

    #[test]
    fn unknown_parameter_is_rejected() {
        let err = build_search(
            json!({"value": "x", "org": "1"})
                .as_object()
                .cloned()
                .unwrap(),
            10,
        )
        .unwrap_err();
        assert_eq!(err.code(), "unsupported_parameter");
        assert!(err.to_string().contains("includeEventTags"));
    }

    #[test]
    fn operator_value_is_rejected() {
        let err = build_search(
            json!({"value": "!1.2.3.4"}).as_object().cloned().unwrap(),
            10,
        )
        .unwrap_err();
        assert_eq!(err.code(), "key_operator");
    }

    #[test]
    fn request_wrapper_is_unwrapped() {
        let parameters = body_parameters(br#"{"request": {"value": "a"}}"#).unwrap();
        assert_eq!(parameters["value"], json!("a"));
    }

    #[test]
    fn flags_become_integers() {
        let (search, _) = build_search(
            json!({"value": "1.2.3.4", "to_ids": false, "limit": "5"})
                .as_object()
                .cloned()
                .unwrap(),
            10,
        )
        .unwrap();
        assert_eq!(search.body()["to_ids"], json!(0));
        assert_eq!(search.body()["limit"], json!(5));
    }
}
