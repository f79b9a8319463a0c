//! Cache administration: `DELETE /cache/{key}` and `DELETE /cache`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::auth::{bearer_token, header_text};
use super::error::ApiError;
use super::lookup::path_key;
use crate::indicator;

/// Path prefix of the per-key purge route.
const CACHE_PREFIX: &str = "/cache/";

/// Header that carries the admin token as an alternative to `Authorization: Bearer`.
const ADMIN_TOKEN_HEADER: &str = "x-admin-token";

/// `DELETE /cache/{key}`: removes every entry of the normalized key (all type filters and
/// callers, native and drop-in) from both tiers.
pub async fn purge_key(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize_admin(&request, &state)?;
    let raw = path_key(&request, CACHE_PREFIX)?;
    let indicator = indicator::parse(&raw)?;
    let (memory, redis) = state
        .service
        .purge_value(indicator.value())
        .await
        .map_err(|err| ApiError::RedisFailed(err.to_string()))?;
    tracing::info!(value = %indicator.value(), memory, redis, "cache entries purged");
    Ok(HttpResponse::Ok().json(json!({
        "value": indicator.value(),
        "removed": memory + redis,
        "memory": memory,
        "redis": redis,
    })))
}

/// `DELETE /cache`: removes every entry from both tiers.
pub async fn purge_all(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize_admin(&request, &state)?;
    let (memory, redis) = state
        .service
        .purge_all()
        .await
        .map_err(|err| ApiError::RedisFailed(err.to_string()))?;
    tracing::info!(memory, redis, "whole cache purged");
    Ok(HttpResponse::Ok().json(json!({
        "removed": memory + redis,
        "memory": memory,
        "redis": redis,
    })))
}

fn authorize_admin(request: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(ApiError::Unauthorized(
            "cache administration is disabled: start the service with --admin-token",
        ));
    };
    let presented = header_text(request, ADMIN_TOKEN_HEADER)
        .or_else(|| bearer_token(request))
        .ok_or(ApiError::Unauthorized(
            "an admin token is required: send Authorization: Bearer <token> or \
             X-Admin-Token: <token>",
        ))?;
    if constant_time_eq::constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("the admin token is wrong"))
    }
}
