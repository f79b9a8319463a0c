//! `/healthz`, `/readyz`, `/metrics` and `/openapi.yaml`.

use std::time::{Duration, Instant};

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use crate::misp::MispError;

/// How long a readiness probe result is reused, so that Kubernetes' probes of every replica
/// do not each reach MISP.
const PROBE_REUSE: Duration = Duration::from_secs(5);

/// Longest wait for MISP's answer to a readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The OpenAPI document of this service.
const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// MISP's state as seen by the last readiness probe.
#[derive(Debug, Clone, Serialize)]
pub struct MispState {
    /// `ok`, `not_probed`, or the error code of the failed probe.
    pub state: &'static str,
    /// The probe's error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Seconds since the probe ran.
    pub age_seconds: u64,
    #[serde(skip)]
    checked_at: Instant,
}

/// The last probe result, shared by all workers; the async lock makes concurrent readiness
/// requests wait for one probe instead of each sending one.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<MispState>>,
}

/// `GET /healthz`: the process is alive and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 503 only when MISP rejects the service's own key, a misconfiguration that
/// should stop a rollout. A slow or unreachable MISP still answers 200, because cached answers
/// can still be served and the replica must stay in its Kubernetes Service.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let misp = probe(&state).await;
    let ready = misp.state != "misp_auth_failed";
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "misp": misp,
        "cache": {
            "entries": state.service.cache_len(),
            "redis": state.service.redis().map_or("not_configured", |redis| redis.state()),
        },
    });
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

async fn probe(state: &AppState) -> MispState {
    let client = state.service.misp();
    if !client.has_own_key() {
        return MispState {
            state: "not_probed",
            detail: Some("--forward-caller-key without a key of the service's own".into()),
            age_seconds: 0,
            checked_at: Instant::now(),
        };
    }

    let mut last = state.readiness.last.lock().await;
    if let Some(previous) = last.as_ref()
        && previous.checked_at.elapsed() < PROBE_REUSE
    {
        let mut reused = previous.clone();
        reused.age_seconds = previous.checked_at.elapsed().as_secs();
        return reused;
    }

    let result = match tokio::time::timeout(PROBE_TIMEOUT, client.probe()).await {
        Ok(result) => result,
        Err(_) => Err(MispError::Timeout {
            after: PROBE_TIMEOUT,
        }),
    };
    let (label, detail) = match &result {
        Ok(()) => ("ok", None),
        Err(err) => (err.code(), Some(err.to_string())),
    };
    state.metrics.misp_probes.with_label_values(&[label]).inc();
    if let Err(err) = &result {
        tracing::warn!(code = label, error = %err, "MISP readiness probe failed");
    }
    let current = MispState {
        state: label,
        detail,
        age_seconds: 0,
        checked_at: Instant::now(),
    };
    *last = Some(current.clone());
    current
}

/// `GET /metrics`: every metric in the Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .body(state.metrics.render())
}

/// `GET /openapi.yaml`: the API description.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/yaml")))
        .body(OPENAPI_YAML)
}
