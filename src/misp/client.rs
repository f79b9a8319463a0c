//! The MISP restSearch client: one bounded, typed request per call.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, USER_AGENT};
use reqwest::{Response, StatusCode};
use serde_json::{Map, Value};

use super::MispError;
use crate::config::{MispConfig, Secret};
use crate::metrics::{Metrics, status_class};

/// Maximum connect phase, so that an unreachable MISP fails fast even with a long timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest MISP error message kept in an error, in characters.
const MAX_MESSAGE_CHARS: usize = 200;

/// The JSON body of one `POST /attributes/restSearch`.
///
/// Built only from validated values: callers never put raw user input in it.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    body: Map<String, Value>,
}

impl SearchRequest {
    /// Starts a search for the given values with `returnFormat: json` and a `limit`.
    ///
    /// The values go as a JSON list, because MISP splits a top-level *string* containing `||`
    /// into several terms; list items are taken as they are.
    pub fn new(values: Vec<String>, limit: u32) -> Self {
        let mut body = Map::new();
        body.insert("returnFormat".into(), Value::from("json"));
        body.insert(
            "value".into(),
            Value::Array(values.into_iter().map(Value::from).collect()),
        );
        body.insert("limit".into(), Value::from(limit));
        Self { body }
    }

    /// Adds or replaces a parameter.
    pub fn set(&mut self, name: &str, value: Value) {
        self.body.insert(name.to_owned(), value);
    }

    /// Returns the `limit` sent, if any.
    pub fn limit(&self) -> Option<u64> {
        self.body.get("limit").and_then(Value::as_u64)
    }

    /// Returns the body as JSON.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }
}

/// A MISP client bound to one instance.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    search_url: String,
    version_url: String,
    key: Option<Secret>,
    timeout: Duration,
    max_body: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("search_url", &self.search_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client from the validated MISP settings.
    pub fn new(config: &MispConfig, metrics: Metrics) -> Result<Self, reqwest::Error> {
        // reqwest is built without a default TLS provider; installing ring twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(CONNECT_TIMEOUT))
            // A redirect from restSearch means maintenance mode or a login page: report it
            // instead of following it to an HTML page.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .danger_accept_invalid_certs(config.insecure);
        if let Some(pem) = &config.ca_cert_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(certificate);
            }
        }

        Ok(Self {
            http: builder.build()?,
            search_url: format!("{}/attributes/restSearch", config.url),
            version_url: format!("{}/servers/getVersion", config.url),
            key: config.key.clone(),
            timeout: config.timeout,
            max_body: config.max_body,
            metrics,
        })
    }

    /// Tells whether the service has a MISP key of its own.
    pub fn has_own_key(&self) -> bool {
        self.key.is_some()
    }

    /// Runs one restSearch and returns MISP's attributes in MISP's order.
    ///
    /// `caller_key` replaces the service's own key when set (`--forward-caller-key`).
    pub async fn rest_search(
        &self,
        request: &SearchRequest,
        caller_key: Option<&Secret>,
    ) -> Result<Vec<Value>, MispError> {
        let builder = self
            .http
            .post(&self.search_url)
            .header(CONTENT_TYPE, "application/json")
            .json(request.body());
        let body = self.send(builder, caller_key).await?;
        parse_attributes(&body).inspect_err(|err| {
            self.metrics
                .misp_errors
                .with_label_values(&[err.code()])
                .inc();
        })
    }

    /// Asks MISP for its version, the cheapest authenticated call, to check the service's key.
    pub async fn probe(&self) -> Result<(), MispError> {
        let builder = self.http.get(&self.version_url);
        let body = self.send(builder, None).await?;
        serde_json::from_slice::<Value>(&body)
            .ok()
            .filter(|value| value.get("version").is_some())
            .map(|_| ())
            .ok_or_else(|| MispError::BadResponse {
                reason: "the version answer has no \"version\" member".into(),
            })
    }

    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
        caller_key: Option<&Secret>,
    ) -> Result<Vec<u8>, MispError> {
        let key = caller_key.or(self.key.as_ref());
        let mut builder = builder.header(ACCEPT, "application/json").header(
            USER_AGENT,
            concat!("misp-lookup/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(key) = key {
            // An invalid header value cannot come from a validated key, but a forwarded one
            // can; MISP would reject it, so report it the same way.
            let mut value =
                HeaderValue::from_str(key.expose()).map_err(|_| MispError::AuthFailed {
                    caller_key: caller_key.is_some(),
                    status: 403,
                })?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }

        self.metrics.misp_inflight.inc();
        let started = Instant::now();
        let result = self.exchange(builder, caller_key.is_some()).await;
        self.metrics.misp_inflight.dec();

        let class = match &result {
            Ok(_) => "2xx",
            Err(MispError::AuthFailed { status, .. }) => status_class(*status),
            Err(MispError::RateLimited { .. }) => "4xx",
            Err(MispError::ServerError { status } | MispError::Rejected { status, .. }) => {
                status_class(*status)
            }
            Err(MispError::Unavailable { reason }) if reason.starts_with("redirect") => "3xx",
            Err(
                MispError::Unavailable { .. }
                | MispError::BadResponse { .. }
                | MispError::TooLarge { .. },
            ) => "2xx",
            Err(
                MispError::Timeout { .. }
                | MispError::Unreachable { .. }
                | MispError::CircuitOpen { .. },
            ) => "error",
        };
        self.metrics.misp_requests.with_label_values(&[class]).inc();
        self.metrics
            .misp_duration
            .with_label_values(&[class])
            .observe(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            self.metrics
                .misp_errors
                .with_label_values(&[err.code()])
                .inc();
        }
        result
    }

    async fn exchange(
        &self,
        builder: reqwest::RequestBuilder,
        caller_key: bool,
    ) -> Result<Vec<u8>, MispError> {
        let response = builder
            .send()
            .await
            .map_err(|err| self.transport_error(err))?;
        let status = response.status();

        if status.is_redirection() {
            let target = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| reqwest::Url::parse(location).ok())
                .map(|url| url.path().to_owned())
                .unwrap_or_default();
            return Err(MispError::Unavailable {
                reason: format!(
                    "redirect (HTTP {}) to {target:?}, as MISP sends in maintenance mode or to \
                     its login page",
                    status.as_u16()
                ),
            });
        }
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(MispError::AuthFailed {
                    caller_key,
                    status: status.as_u16(),
                });
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = response
                    .headers()
                    .get("x-rate-limit-reset")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|text| text.trim().parse::<u64>().ok());
                return Err(MispError::RateLimited { retry_after });
            }
            _ => {}
        }
        if status.is_server_error() {
            return Err(MispError::ServerError {
                status: status.as_u16(),
            });
        }

        let is_html = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.to_ascii_lowercase().contains("html"));
        let body = self.read_body(response).await?;

        if !status.is_success() {
            return Err(MispError::Rejected {
                status: status.as_u16(),
                message: error_message(&body),
            });
        }
        if is_html || body.trim_ascii_start().starts_with(b"<") {
            return Err(MispError::Unavailable {
                reason: format!("HTTP {} with an HTML page instead of JSON", status.as_u16()),
            });
        }
        Ok(body)
    }

    /// Reads the body up to `max_body` bytes; a larger body is an error, not a truncation.
    async fn read_body(&self, mut response: Response) -> Result<Vec<u8>, MispError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_error(err))?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(MispError::TooLarge {
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, err: reqwest::Error) -> MispError {
        if err.is_timeout() {
            return MispError::Timeout {
                after: self.timeout,
            };
        }
        let err = err.without_url();
        let mut reason = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        MispError::Unreachable { reason }
    }
}

/// Extracts the attribute list from a restSearch JSON body: MISP's `{"response":
/// {"Attribute": [...]}}`, the `{"Attribute": [...]}` form that PyMISP-style proxies send, or
/// `{"response": []}`, which some MISP versions send for no match.
fn parse_attributes(body: &[u8]) -> Result<Vec<Value>, MispError> {
    let mut document: Value =
        serde_json::from_slice(body).map_err(|err| MispError::BadResponse {
            reason: format!("the body is not valid JSON: {err}"),
        })?;
    let container = match document.get_mut("response") {
        Some(response) => response,
        None => &mut document,
    };
    if container.as_array().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    match container.get_mut("Attribute").map(Value::take) {
        Some(Value::Array(attributes)) => Ok(attributes),
        _ => Err(MispError::BadResponse {
            reason: "the JSON has no response.Attribute list".into(),
        }),
    }
}

/// Returns MISP's `message` member from an error body, shortened, or a placeholder.
fn error_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "no JSON message".to_owned());
    message.chars().take(MAX_MESSAGE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_from_wire_format() {
        let body = br#"{"response": {"Attribute": [{"id":"1","value":"x"}]}}"#;
        assert_eq!(parse_attributes(body).unwrap().len(), 1);
    }

    #[test]
    fn attributes_from_stripped_and_empty_forms() {
        assert_eq!(parse_attributes(br#"{"Attribute": []}"#).unwrap().len(), 0);
        assert_eq!(parse_attributes(br#"{"response": []}"#).unwrap().len(), 0);
    }

    #[test]
    fn attributes_missing_is_bad_response() {
        let err = parse_attributes(br#"{"response": {"Event": []}}"#).unwrap_err();
        assert_eq!(err.code(), "misp_bad_response");
        let err = parse_attributes(b"{\"response\": {\"Attr").unwrap_err();
        assert_eq!(err.code(), "misp_bad_response");
    }

    #[test]
    fn search_sends_values_as_list() {
        let request = SearchRequest::new(vec!["a".into()], 10);
        assert_eq!(request.body()["value"], serde_json::json!(["a"]));
        assert_eq!(request.limit(), Some(10));
    }
}
