//! An HTTP server that responds like MISP 2.5.1's `/attributes/restSearch` and
//! `/servers/getVersion`, with switchable failure modes and request counters.
//!
//! What it reproduces, as read in MISP's source (`AppController::restSearch`,
//! `MispAttribute::restSearch`, `AppModel::convert_filters`, `JsonExport`):
//! - authentication by `X-MISP-Auth` or `Authorization`, checked before anything else;
//! - parameter harvesting from a JSON body (only with `Content-Type: application/json`,
//!   optionally wrapped in `{"request": ...}`) and from named and positional URL parameters;
//! - the `value` operators (`!`, `%`, `&&`, `||`) and PHP's `empty()` rule that drops a value
//!   filter of `""`, `"0"`, `0` or `null`, which turns a lookup into an unfiltered search;
//! - matching on either half of composite values, case-insensitively and ignoring trailing
//!   spaces, as MySQL's `utf8mb3_unicode_ci` collation does;
//! - the exact wire bytes and headers of a `returnFormat: json` answer and of MISP's errors.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::dataset::Dataset;

/// An API key the emulator accepts, with the events its user may see.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key, 40 ASCII alphanumerics; MISP rejects any other shape before looking it up.
    pub key: String,
    /// `None`: sees every event; `Some(ids)`: only those event ids.
    pub visible_events: Option<Vec<String>>,
}

/// Settings for [`Emulator::start`].
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Attributes and events to serve.
    pub dataset: Dataset,
    /// Accepted API keys.
    pub keys: Vec<ApiKey>,
    /// Delay before every response; [`Emulator::set_latency`] changes it at run time.
    pub latency: Duration,
}

impl EmulatorConfig {
    /// Creates a configuration with one key that sees every event and no latency.
    pub fn new(dataset: Dataset, key: &str) -> Self {
        EmulatorConfig {
            dataset,
            keys: vec![ApiKey {
                key: key.to_string(),
                visible_events: None,
            }],
            latency: Duration::ZERO,
        }
    }
}

/// A failure mode for `/attributes/restSearch` and `/servers/getVersion`.
///
/// Other paths, including `/users/login`, respond normally in every mode.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Normal operation.
    None,
    /// Accepts the connection and reads the request, but never answers; [`Emulator::stop`]
    /// drops the connection.
    Hang,
    /// 500 with MISP's production-mode error body.
    InternalError,
    /// 403 with MISP's authentication-failed body, whatever key is sent.
    AuthFailed,
    /// 429 with `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining: 0` and
    /// `X-Rate-Limit-Reset: reset_seconds`, as MISP's per-role search limit sends it.
    RateLimited {
        /// Seconds until the rate-limit window ends (MISP sends seconds left, not an epoch).
        reset_seconds: u64,
    },
    /// 302 to `<base>/users/login`, as MISP answers when the instance is not live
    /// (maintenance mode); `GET /users/login` serves an HTML login page.
    MaintenanceRedirect,
    /// 200 with an HTML page, as a misconfigured reverse proxy would answer.
    HtmlPage,
    /// 200 `application/json` with a truncated body that does not parse.
    InvalidJson,
    /// Status 200, headers with the full `Content-Length` and part of the body, then the
    /// connection is dropped.
    ResetMidBody,
}

/// One request as the emulator received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path as sent, still percent-encoded, without the query string.
    pub path: String,
    /// Query string without the leading `?`; empty when there was none.
    pub query: String,
    /// Header names (lowercase) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
}

/// A running MISP emulator on 127.0.0.1.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<io::Result<()>>,
}

impl Emulator {
    /// Starts on 127.0.0.1 with an OS-assigned port, one worker.
    ///
    /// Must be called inside a Tokio runtime, which runs the server's accept loop.
    ///
    /// # Errors
    ///
    /// Returns the error from binding the listener or starting the server.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            value_index: ValueIndex::new(&config.dataset),
            dataset: config.dataset,
            keys: config.keys,
            base_url: format!("http://{addr}"),
            control: Mutex::new(Control {
                fault: Fault::None,
                latency: config.latency,
            }),
            log: Mutex::new(RequestLog::default()),
        });

        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .default_service(web::to(handle_request))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let server = tokio::spawn(server);
        tracing::debug!(%addr, "MISP emulator listening");

        Ok(Emulator {
            addr,
            shared,
            handle,
            server,
        })
    }

    /// Base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the failure mode; requests already waiting on latency see the new mode.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.control().fault = fault;
    }

    /// Sets the delay before every response.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.control().latency = latency;
    }

    /// Number of restSearch requests received, whatever the outcome.
    pub fn search_requests(&self) -> usize {
        self.shared.log().search_requests
    }

    /// Number of restSearch requests whose `value` filter contained `value`
    /// (case-insensitive), either as sent or as one term after MISP split it.
    ///
    /// Requests are counted when received, before authentication and faults, and only
    /// when their parameters could be read.
    pub fn searches_for(&self, value: &str) -> usize {
        let wanted = value.to_lowercase();
        self.shared
            .log()
            .value_terms
            .iter()
            .filter(|terms| terms.contains(&wanted))
            .count()
    }

    /// Number of restSearch requests whose `value` filter MISP would read as an operator
    /// (`!`, `%`, `&&`, `||`) or as no filter at all (empty, `"0"`, `0`, `null` or absent).
    ///
    /// Counted like [`Emulator::searches_for`].
    pub fn operator_requests(&self) -> usize {
        self.shared.log().operator_requests
    }

    /// Returns all requests received, in order. The log keeps the first 10,000.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log().requests.clone()
    }

    /// Clears the counters and the request log.
    pub fn reset_counters(&self) {
        *self.shared.log() = RequestLog::default();
    }

    /// Stops listening and drops open connections; the port then refuses connections.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        match (&mut self.server).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, addr = %self.addr, "MISP emulator failed"),
            Err(error) => tracing::warn!(%error, addr = %self.addr, "MISP emulator task failed"),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // `ServerHandle::stop` sends the stop command before its future is polled, so an
        // emulator that is dropped without `stop` still releases its port and worker thread.
        drop(self.handle.stop(false));
    }
}

/// Maximum request body the emulator reads; larger bodies get actix-web's 413.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Maximum number of requests kept by [`Emulator::requests`].
const MAX_RECORDED_REQUESTS: usize = 10_000;

/// How long [`Fault::Hang`] keeps a request open before dropping the connection, so that a
/// forgotten emulator cannot keep a connection open for ever.
const MAX_HANG: Duration = Duration::from_secs(600);

/// State shared between the [`Emulator`] handle and the request handler.
struct Shared {
    dataset: Dataset,
    value_index: ValueIndex,
    keys: Vec<ApiKey>,
    base_url: String,
    control: Mutex<Control>,
    log: Mutex<RequestLog>,
}

struct Control {
    fault: Fault,
    latency: Duration,
}

#[derive(Default)]
struct RequestLog {
    search_requests: usize,
    operator_requests: usize,
    /// Lowercase `value` terms of each counted restSearch request.
    value_terms: Vec<HashSet<String>>,
    requests: Vec<RecordedRequest>,
}

impl Shared {
    // A handler that panicked while holding a lock poisons it; the counters stay usable.
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn log(&self) -> MutexGuard<'_, RequestLog> {
        self.log.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

enum Route {
    /// `/attributes/restSearch`, with the URL segments after it (percent-decoded).
    RestSearch(Vec<String>),
    GetVersion,
    Login,
    NotFound,
}

fn route(request: &HttpRequest) -> Route {
    let path = request.path();
    let path = path.strip_suffix(".json").unwrap_or(path);
    if let Some(rest) = path.strip_prefix("/attributes/restSearch") {
        if rest.is_empty() || rest == "/" {
            return Route::RestSearch(Vec::new());
        }
        if let Some(segments) = rest.strip_prefix('/') {
            let segments = segments
                .split('/')
                .filter(|segment| !segment.is_empty())
                .map(decode_url_segment)
                .collect();
            return Route::RestSearch(segments);
        }
        return Route::NotFound;
    }
    match (request.method().as_str(), path) {
        ("GET", "/servers/getVersion") => Route::GetVersion,
        ("GET", "/users/login") => Route::Login,
        _ => Route::NotFound,
    }
}

/// Decodes a URL segment as CakePHP does: percent-decoding, and `+` as a space.
fn decode_url_segment(segment: &str) -> String {
    let segment = segment.replace('+', " ");
    percent_encoding::percent_decode_str(&segment)
        .decode_utf8_lossy()
        .into_owned()
}

async fn handle_request(
    request: HttpRequest,
    body: Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let route = route(&request);
    let harvested = match &route {
        Route::RestSearch(segments) => Some(harvest_parameters(&request, &body, segments)),
        _ => None,
    };
    record_request(&shared, &request, &body, harvested.as_ref());

    let latency = shared.control().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    match route {
        Route::Login => return login_page(),
        Route::NotFound => {
            return cake_error(StatusCode::NOT_FOUND, "Not Found", request.path());
        }
        Route::RestSearch(_) | Route::GetVersion => {}
    }

    let fault = shared.control().fault.clone();
    if let Some(response) = fault_response(&fault, &shared, &request).await {
        return response;
    }

    let Some(key) = authenticate(&shared.keys, &request) else {
        return auth_failed(request.path());
    };

    match (route, harvested) {
        (Route::GetVersion, _) => version_response(),
        (Route::RestSearch(_), Some(Ok(parameters))) => {
            rest_search(&shared, key, &parameters, request.path())
        }
        (Route::RestSearch(_), Some(Err(error))) => error.response(request.path()),
        _ => cake_error(StatusCode::NOT_FOUND, "Not Found", request.path()),
    }
}

fn record_request(
    shared: &Shared,
    request: &HttpRequest,
    body: &Bytes,
    harvested: Option<&Result<Parameters, HarvestError>>,
) {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_ascii_lowercase(), value)
        })
        .collect();
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        path: request.path().to_string(),
        query: request.query_string().to_string(),
        headers,
        body: body.clone(),
    };

    let mut log = shared.log();
    if log.requests.len() < MAX_RECORDED_REQUESTS {
        log.requests.push(recorded);
    }
    let Some(harvested) = harvested else {
        return;
    };
    log.search_requests += 1;
    if let Ok(parameters) = harvested {
        let filter = parse_value_filter(parameters);
        if filter.uses_operator() {
            log.operator_requests += 1;
        }
        log.value_terms.push(filter.terms.seen_terms);
    }
}

// ---------------------------------------------------------------------------------------------
// Faults, authentication and fixed responses
// ---------------------------------------------------------------------------------------------

async fn fault_response(
    fault: &Fault,
    shared: &Shared,
    request: &HttpRequest,
) -> Option<HttpResponse> {
    let path = request.path();
    let response = match fault {
        Fault::None => return None,
        Fault::Hang => {
            tokio::time::sleep(MAX_HANG).await;
            dropped_connection(StatusCode::OK, Bytes::new(), 1)
        }
        Fault::InternalError => cake_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An Internal Error Has Occurred.",
            path,
        ),
        Fault::AuthFailed => auth_failed(path),
        Fault::RateLimited { reset_seconds } => rate_limited(request, *reset_seconds),
        Fault::MaintenanceRedirect => HttpResponse::Found()
            .insert_header((LOCATION, format!("{}/users/login", shared.base_url)))
            .finish(),
        Fault::HtmlPage => HttpResponse::Ok()
            .content_type("text/html; charset=UTF-8")
            .body(PROXY_PAGE),
        Fault::InvalidJson => HttpResponse::Ok()
            .content_type(JSON_UTF8)
            .body(TRUNCATED_JSON),
        Fault::ResetMidBody => {
            let full_length = 4 * TRUNCATED_JSON.len() as u64;
            dropped_connection(
                StatusCode::OK,
                Bytes::from_static(TRUNCATED_JSON.as_bytes()),
                full_length,
            )
        }
    };
    Some(response)
}

const JSON_UTF8: &str = "application/json; charset=UTF-8";

const AUTH_FAILED_MESSAGE: &str = "Authentication failed. Please make sure you pass the API key of \
                                   an API enabled user along in the Authorization header.";

/// The start of a restSearch response, cut inside an attribute.
const TRUNCATED_JSON: &str = "{\"response\": {\"Attribute\": [{\"id\":\"1014\",\"event_id\":\"13\",\
                              \"object_id\":\"0\",\"object_relation\":null,\"category\":\"Netw";

const PROXY_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\
                          <body><h1>Single sign-on</h1><p>Your session has expired. \
                          Please sign in again.</p></body></html>\n";

const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Users - MISP</title></head><body>\
                          <div class=\"maintenance\">MISP is currently undergoing maintenance.\
                          </div><form action=\"/users/login\" method=\"post\">\
                          <input type=\"email\" name=\"data[User][email]\">\
                          <input type=\"password\" name=\"data[User][password]\">\
                          <button type=\"submit\">Login</button></form></body></html>\n";

/// Responds with `status`, a `Content-Length` of `declared_length`, then `sent` and a dropped
/// connection.
///
/// The short sleep before the error lets actix-web flush the headers and `sent` first,
/// because it drops the connection without flushing when a body stream fails.
fn dropped_connection(status: StatusCode, sent: Bytes, declared_length: u64) -> HttpResponse {
    let head = futures::stream::iter([Ok::<Bytes, io::Error>(sent)]);
    let failure = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "emulated connection reset",
        ))
    });
    let stream = head.chain(failure).boxed_local();
    HttpResponse::build(status)
        .content_type(JSON_UTF8)
        .body(SizedStream::new(declared_length, stream))
}

/// Builds an error as CakePHP 2's JSON view does: compact `{name, message, url}` with `/`
/// escaped as `\/` (PHP's `json_encode` default).
fn cake_error(status: StatusCode, message: &str, path: &str) -> HttpResponse {
    let body = json!({"name": message, "message": message, "url": path});
    let body = body.to_string().replace('/', "\\/");
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}

fn auth_failed(path: &str) -> HttpResponse {
    cake_error(StatusCode::FORBIDDEN, AUTH_FAILED_MESSAGE, path)
}

/// Builds MISP's 429, which `RestResponseComponent::throwException` pretty-prints with
/// 4-space indentation and unescaped slashes, unless the User-Agent starts with `PyMISP`
/// or `MISP`.
fn rate_limited(request: &HttpRequest, reset_seconds: u64) -> HttpResponse {
    let message = "Rate limit exceeded.";
    let body = json!({"name": message, "message": message, "url": request.path()});
    let user_agent = request
        .headers()
        .get("user-agent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let body = if user_agent.starts_with("PyMISP") || user_agent.starts_with("MISP") {
        body.to_string()
    } else {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        serde::Serialize::serialize(&body, &mut serializer).expect("a JSON value serializes");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    };
    HttpResponse::TooManyRequests()
        .content_type("application/json")
        .insert_header(("X-Rate-Limit-Limit", RATE_LIMIT.to_string()))
        .insert_header(("X-Rate-Limit-Remaining", "0"))
        .insert_header(("X-Rate-Limit-Reset", reset_seconds.to_string()))
        .body(body)
}

/// Searches allowed per 900-second window in [`Fault::RateLimited`] responses. MISP takes the
/// number from the role's settings, so any value is realistic.
const RATE_LIMIT: u32 = 100;

fn login_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=UTF-8")
        .body(LOGIN_PAGE)
}

fn version_response() -> HttpResponse {
    HttpResponse::Ok().content_type(JSON_UTF8).body(
        "{\"version\":\"2.5.1\",\"pymisp_recommended_version\":\"2.5.1\",\"perm_sync\":false,\
         \"perm_sighting\":false,\"perm_galaxy_editor\":false,\
         \"request_encoding\":[\"gzip\",\"br\"],\"filter_sightings\":true}",
    )
}

/// Finds the configured key the request authenticates with, as
/// `AppController::__loginByAuthKey` does.
///
/// `X-MISP-Auth` wins over `Authorization`. Either may hold a comma-separated list that is
/// tried in turn. Values starting with `Basic` are ignored, and only 40 ASCII alphanumerics
/// count as a key.
fn authenticate<'a>(keys: &'a [ApiKey], request: &HttpRequest) -> Option<&'a ApiKey> {
    let headers = request.headers();
    let header = headers
        .get("x-misp-auth")
        .or_else(|| headers.get("authorization"))?
        .to_str()
        .ok()?;
    header
        .split(',')
        .map(str::trim)
        .filter(|candidate| !candidate.starts_with("Basic"))
        .filter(|candidate| is_well_formed_key(candidate))
        .find_map(|candidate| keys.iter().find(|key| key.key == candidate))
}

fn is_well_formed_key(candidate: &str) -> bool {
    candidate.len() == 40 && candidate.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

// ---------------------------------------------------------------------------------------------
// Parameter harvesting
// ---------------------------------------------------------------------------------------------

/// restSearch parameters after harvesting, keyed by MISP's parameter names.
struct Parameters {
    values: Map<String, Value>,
    /// Names of top-level strings that contained `||` and were turned into lists.
    split_on_pipes: HashSet<String>,
}

enum HarvestError {
    InvalidJson,
    GetWithoutParameters,
}

impl HarvestError {
    fn response(&self, path: &str) -> HttpResponse {
        match self {
            HarvestError::InvalidJson => cake_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Invalid JSON input. Make sure that the JSON input is a correctly formatted \
                 JSON string. This request has been blocked to avoid an unfiltered request.",
                path,
            ),
            HarvestError::GetWithoutParameters => cake_error(
                StatusCode::BAD_REQUEST,
                "Restsearch queries using GET and no parameters are not allowed. If you have \
                 passed parameters via a JSON body, make sure you use POST requests.",
                path,
            ),
        }
    }
}

/// Positional URL parameters of `/attributes/restSearch/a/b/...`, in the order MISP maps them.
const POSITIONAL_PARAMETERS: [&str; 20] = [
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

/// Collects parameters as `AppController::_harvestParameters` does.
///
/// The JSON body is read only from non-GET requests whose `Content-Type` starts with
/// `application/json`. URL parameters override body members: `name:value` segments are named
/// (with `;` standing for `:`), other segments fill [`POSITIONAL_PARAMETERS`] in order.
fn harvest_parameters(
    request: &HttpRequest,
    body: &[u8],
    segments: &[String],
) -> Result<Parameters, HarvestError> {
    let is_get = request.method() == actix_web::http::Method::GET;
    let mut values = if is_get || !has_json_content_type(request) {
        Map::new()
    } else {
        parse_json_body(body)?
    };

    let mut positional = POSITIONAL_PARAMETERS.iter();
    for segment in segments {
        if let Some((name, value)) = segment.split_once(':') {
            values.insert(name.to_string(), Value::from(value.replace(';', ":")));
        } else if let Some(name) = positional.next()
            && !matches!(segment.as_str(), "null" | "0" | "false")
        {
            values.insert(name.to_string(), Value::from(segment.as_str()));
        }
    }

    if is_get && values.is_empty() {
        return Err(HarvestError::GetWithoutParameters);
    }

    let mut split_on_pipes = HashSet::new();
    for (name, value) in values.iter_mut() {
        let Value::String(text) = value else {
            continue;
        };
        let trimmed = text.trim();
        if trimmed.find("||").is_some_and(|offset| offset > 0) {
            let list = trimmed.split("||").map(Value::from).collect();
            *value = Value::Array(list);
            split_on_pipes.insert(name.clone());
        } else {
            *value = Value::from(trimmed);
        }
    }
    Ok(Parameters {
        values,
        split_on_pipes,
    })
}

fn has_json_content_type(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

/// Parses the body; an empty body or JSON that is not an object yields no parameters.
fn parse_json_body(body: &[u8]) -> Result<Map<String, Value>, HarvestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        // NOTE: MISP's code builds a 400 for an empty POST but appears to fall through to an
        // unfiltered search. That is inferred from the source and not run, and this follows it.
        return Ok(Map::new());
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|_| HarvestError::InvalidJson)?;
    let Value::Object(mut object) = parsed else {
        return Ok(Map::new());
    };
    if let Some(Value::Object(inner)) = object.remove("request") {
        return Ok(inner);
    }
    Ok(object)
}

// ---------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------

/// One search term, compared as `=` or, when it starts or ends with `%`, as SQL `LIKE`.
#[derive(Debug)]
enum Pattern {
    Equal(String),
    Like(String),
}

impl Pattern {
    fn new(term: &str) -> Pattern {
        if term.starts_with('%') || term.ends_with('%') {
            Pattern::Like(term.to_lowercase())
        } else {
            Pattern::Equal(collation_key(&normalize_ipv6(term)))
        }
    }

    fn matches(&self, column: &str) -> bool {
        match self {
            Pattern::Equal(key) => *key == collation_key(column),
            Pattern::Like(pattern) => {
                let column: Vec<char> = column.to_lowercase().chars().collect();
                let pattern: Vec<char> = pattern.chars().collect();
                like_matches(&pattern, &column)
            }
        }
    }
}

/// Returns the key under which MySQL's `utf8mb3_unicode_ci` compares `text`, as the service
/// models it.
fn collation_key(text: &str) -> String {
    crate::misp::matching::collation_key(text).into_owned()
}

/// Compresses IPv6 terms as MISP does on the read side (`inet_pton`/`inet_ntop`).
fn normalize_ipv6(term: &str) -> String {
    match term.parse::<Ipv6Addr>() {
        Ok(address) => address.to_string(),
        Err(_) => term.to_string(),
    }
}

/// SQL `LIKE` with `%` (any run) and `_` (one character); no escape character.
fn like_matches(pattern: &[char], text: &[char]) -> bool {
    // Iterative wildcard matching with one backtrack point: linear in practice and bounded
    // by pattern length times text length.
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

/// A filter on one parameter after `AppModel::convert_filters`: OR-ed, AND-ed and NOT-ed terms.
#[derive(Debug, Default)]
struct TermFilter {
    any_of: Vec<Pattern>,
    all_of: Vec<Pattern>,
    none_of: Vec<Pattern>,
    /// True when PHP's `empty()` holds for the parameter, so MISP applies no filter.
    is_empty: bool,
    /// True when a top-level string was split on `&&`.
    split_on_ampersands: bool,
    /// Lowercase terms as sent and as split, for [`Emulator::searches_for`].
    seen_terms: HashSet<String>,
}

impl TermFilter {
    /// Builds the filter for one parameter's value, with `is_empty` set when MISP would
    /// ignore the parameter.
    fn parse(value: Option<&Value>) -> TermFilter {
        let mut filter = TermFilter::default();
        let Some(value) = value.filter(|value| !is_php_empty(value)) else {
            filter.is_empty = true;
            return filter;
        };
        match value {
            Value::Array(items) => {
                for item in items {
                    if let Some(term) = scalar_text(item) {
                        filter.add_term(&term);
                    }
                }
            }
            Value::Object(groups) => filter.add_groups(groups),
            scalar => {
                let text = scalar_text(scalar).unwrap_or_default();
                filter.seen_terms.insert(text.to_lowercase());
                if text.contains("&&") {
                    filter.split_on_ampersands = true;
                    for term in text.split("&&") {
                        filter.add_term(term);
                    }
                } else {
                    filter.add_term(&text);
                }
            }
        }
        if filter.any_of.is_empty() && filter.all_of.is_empty() && filter.none_of.is_empty() {
            filter.is_empty = true;
        }
        filter
    }

    /// Adds a list or string term, where a leading `!` means NOT.
    fn add_term(&mut self, term: &str) {
        self.seen_terms.insert(term.to_lowercase());
        if let Some(negated) = term.strip_prefix('!') {
            self.seen_terms.insert(negated.to_lowercase());
            if !negated.is_empty() {
                self.none_of.push(Pattern::new(negated));
            }
        } else if !term.is_empty() {
            // NOTE: an empty term inside a list is dropped. In SQL it could equal the empty
            // `value2` of every non-composite attribute; MISP's handling was not checked.
            self.any_of.push(Pattern::new(term));
        }
    }

    /// Adds `{"OR": [...], "AND": [...], "NOT": [...]}`, whose terms keep a leading `!` literal.
    fn add_groups(&mut self, groups: &Map<String, Value>) {
        for (group, terms) in groups {
            let terms: Vec<String> = match terms {
                Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
                scalar => scalar_text(scalar).into_iter().collect(),
            };
            let target = match group.to_ascii_uppercase().as_str() {
                "OR" => &mut self.any_of,
                "AND" => &mut self.all_of,
                "NOT" => &mut self.none_of,
                _ => continue,
            };
            for term in terms.iter().filter(|term| !term.is_empty()) {
                self.seen_terms.insert(term.to_lowercase());
                target.push(Pattern::new(term));
            }
        }
    }

    fn uses_like(&self) -> bool {
        [&self.any_of, &self.all_of, &self.none_of]
            .iter()
            .flat_map(|patterns| patterns.iter())
            .any(|pattern| matches!(pattern, Pattern::Like(_)))
    }

    /// Returns whether a row passes the filter, given the text of its filtered columns.
    fn accepts(&self, columns: &[&str]) -> bool {
        if self.is_empty {
            return true;
        }
        let hit = |pattern: &Pattern| columns.iter().any(|column| pattern.matches(column));
        (self.any_of.is_empty() || self.any_of.iter().any(hit))
            && self.all_of.iter().all(hit)
            && !self.none_of.iter().any(hit)
    }
}

/// The `value` filter and whether MISP would read it as an operator or as no filter.
struct ValueFilter {
    terms: TermFilter,
    split_on_pipes: bool,
}

impl ValueFilter {
    fn uses_operator(&self) -> bool {
        self.terms.is_empty
            || self.split_on_pipes
            || self.terms.split_on_ampersands
            || !self.terms.none_of.is_empty()
            || self.terms.uses_like()
    }
}

fn parse_value_filter(parameters: &Parameters) -> ValueFilter {
    ValueFilter {
        terms: TermFilter::parse(parameters.values.get("value")),
        split_on_pipes: parameters.split_on_pipes.contains("value"),
    }
}

/// PHP's `empty()`: `null`, `false`, `0`, `0.0`, `""`, `"0"`, `[]` and `{}`.
fn is_php_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty() || text == "0",
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
    }
}

/// Returns the text PHP would compare for a scalar: strings as they are, numbers in decimal,
/// `true` as `1`, and `None` for `false`, `null` and containers.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(true) => Some("1".to_string()),
        _ => None,
    }
}

/// Reads a boolean column filter (`to_ids`, `published`, `deleted`) as the set of accepted
/// values; `None` means no filter.
///
/// Boolean `false` is skipped, as MISP's loop skips `=== false`, unless `false_means_zero`.
fn parse_flag_filter(value: Option<&Value>, false_means_zero: bool) -> Option<HashSet<bool>> {
    let value = value?;
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        scalar => vec![scalar],
    };
    let mut accepted = HashSet::new();
    for item in items {
        let flag = match item {
            Value::Bool(false) if !false_means_zero => continue,
            Value::Bool(flag) => *flag,
            Value::Number(number) => number.as_f64() != Some(0.0),
            Value::String(text) => match text.to_ascii_lowercase().as_str() {
                "" => continue,
                "0" | "false" | "exclude" => false,
                _ => true,
            },
            _ => continue,
        };
        accepted.insert(flag);
    }
    if accepted.is_empty() || accepted.len() == 2 {
        None
    } else {
        Some(accepted)
    }
}

fn parse_count(value: Option<&Value>) -> Option<usize> {
    match value? {
        Value::Number(number) => number.as_u64().and_then(|n| usize::try_from(n).ok()),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Returns whether a request flag such as `includeContext` is set (`true`, non-zero, `"1"`, `"true"`).
fn is_flag_set(parameters: &Map<String, Value>, name: &str) -> bool {
    match parameters.get(name) {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_f64() != Some(0.0),
        Some(Value::String(text)) => !matches!(text.as_str(), "" | "0" | "false"),
        _ => false,
    }
}

/// Composite types store `value1|value2`; MISP splits them on the first `|`.
fn value_halves(attribute: &Value) -> (String, String) {
    let value = attribute["value"].as_str().unwrap_or_default();
    let kind = attribute["type"].as_str().unwrap_or_default();
    let composite = kind.contains('|') || kind == "malware-sample";
    match value.split_once('|') {
        Some((first, second)) if composite => (first.to_string(), second.to_string()),
        _ => (value.to_string(), String::new()),
    }
}

fn column_text(value: &Value) -> String {
    scalar_text(value).unwrap_or_default()
}

fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64() != Some(0.0),
        Value::String(text) => !matches!(text.as_str(), "" | "0" | "false"),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------------

struct SearchFilters {
    value: TermFilter,
    kind: TermFilter,
    category: TermFilter,
    event_id: TermFilter,
    to_ids: Option<HashSet<bool>>,
    published: Option<HashSet<bool>>,
    deleted: HashSet<bool>,
}

impl SearchFilters {
    fn new(parameters: &Map<String, Value>) -> SearchFilters {
        let mut kind = TermFilter::parse(parameters.get("type"));
        // Asking for `email-src` or `email-dst` also returns the generic `email` type.
        let wants_email = kind.any_of.iter().any(|pattern| {
            matches!(pattern, Pattern::Equal(key) if key == "email-src" || key == "email-dst")
        });
        if wants_email {
            kind.any_of.push(Pattern::new("email"));
        }
        SearchFilters {
            value: TermFilter::parse(parameters.get("value")),
            kind,
            category: TermFilter::parse(parameters.get("category")),
            event_id: TermFilter::parse(parameters.get("eventid")),
            to_ids: parse_flag_filter(parameters.get("to_ids"), false),
            published: parse_flag_filter(parameters.get("published"), false),
            deleted: match parameters.get("deleted") {
                None => HashSet::from([false]),
                value => {
                    parse_flag_filter(value, true).unwrap_or_else(|| HashSet::from([false, true]))
                }
            },
        }
    }

    fn accepts(&self, attribute: &Value, event: Option<&Value>) -> bool {
        let (value1, value2) = value_halves(attribute);
        if !self.value.accepts(&[&value1, &value2]) {
            return false;
        }

        let kind = column_text(&attribute["type"]);
        let category = column_text(&attribute["category"]);
        let event_id = column_text(&attribute["event_id"]);
        if !self.kind.accepts(&[&kind])
            || !self.category.accepts(&[&category])
            || !self.event_id.accepts(&[&event_id])
        {
            return false;
        }

        if !self.deleted.contains(&is_true(&attribute["deleted"])) {
            return false;
        }
        if let Some(to_ids) = &self.to_ids
            && !to_ids.contains(&is_true(&attribute["to_ids"]))
        {
            return false;
        }

        // NOTE: attributes whose event is not in the data set pass the `published` filter,
        // because there is nothing to compare against.
        if let (Some(published), Some(event)) = (&self.published, event)
            && !published.contains(&is_true(&event["published"]))
        {
            return false;
        }
        true
    }
}

fn rest_search(shared: &Shared, key: &ApiKey, parameters: &Parameters, path: &str) -> HttpResponse {
    let dataset = &shared.dataset;
    let parameters = &parameters.values;
    if let Some(format) = parameters.get("returnFormat")
        && !is_php_empty(format)
        && format.as_str() != Some("json")
    {
        return cake_error(StatusCode::NOT_FOUND, "Invalid output format.", path);
    }

    let filters = SearchFilters::new(parameters);
    let visible: Vec<&Value> = dataset
        .attributes
        .iter()
        .filter(|attribute| is_visible(key, attribute))
        .collect();
    // Every filter is still applied to the candidates. The index only skips attributes whose
    // value cannot equal any term.
    let indexed: Option<Vec<&Value>> =
        shared
            .value_index
            .candidates(&filters.value)
            .map(|positions| {
                positions
                    .into_iter()
                    .map(|position| &dataset.attributes[position])
                    .filter(|attribute| is_visible(key, attribute))
                    .collect()
            });
    let candidates = indexed.as_deref().unwrap_or(&visible);
    let matches = candidates
        .iter()
        .copied()
        .filter(|attribute| filters.accepts(attribute, find_event(dataset, attribute)));

    let limit = parse_count(parameters.get("limit")).filter(|&limit| limit > 0);
    let page: Vec<&Value> = match limit {
        Some(limit) => {
            let page = parse_count(parameters.get("page")).unwrap_or(1).max(1);
            matches
                .skip((page - 1).saturating_mul(limit))
                .take(limit)
                .collect()
        }
        None => matches.collect(),
    };

    let includes = Includes::new(parameters);
    let mut body = String::from("{\"response\": {\"Attribute\": [");
    for (index, attribute) in page.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        let rendered = render_attribute(dataset, &visible, attribute, &includes);
        body.push_str(&rendered.to_string());
    }
    body.push_str("]}}\n");

    // MISP fetches `limit + 1` rows to tell whether another page exists and reports that count.
    let result_count = match limit {
        Some(limit) if page.len() == limit => limit + 1,
        _ => page.len(),
    };
    HttpResponse::Ok()
        .content_type(JSON_UTF8)
        .insert_header(("X-Result-Count", result_count.to_string()))
        .insert_header(("X-Export-Module-Used", "json"))
        .insert_header(("X-Response-Format", "json"))
        .insert_header(("X-Skipped-Elements-Count", "0"))
        .body(body)
}

/// Positions of the attributes by the collation key of each value half, as the database's
/// index on `value1` and `value2` serves equality terms.
struct ValueIndex(HashMap<String, Vec<usize>>);

impl ValueIndex {
    fn new(dataset: &Dataset) -> ValueIndex {
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (position, attribute) in dataset.attributes.iter().enumerate() {
            let (value1, value2) = value_halves(attribute);
            for half in [value1, value2] {
                if half.is_empty() {
                    continue;
                }
                let positions = index.entry(collation_key(&half)).or_default();
                if positions.last() != Some(&position) {
                    positions.push(position);
                }
            }
        }
        ValueIndex(index)
    }

    /// Returns the positions, in data set order, of the attributes that can match a value
    /// filter made only of OR-ed equality terms, or `None` when the filter needs a full scan.
    fn candidates(&self, filter: &TermFilter) -> Option<Vec<usize>> {
        if filter.is_empty || filter.any_of.is_empty() || !filter.all_of.is_empty() {
            return None;
        }
        let mut positions = Vec::new();
        for pattern in &filter.any_of {
            let Pattern::Equal(key) = pattern else {
                return None;
            };
            positions.extend(self.0.get(key).into_iter().flatten());
        }
        positions.sort_unstable();
        positions.dedup();
        Some(positions)
    }
}

fn is_visible(key: &ApiKey, attribute: &Value) -> bool {
    match &key.visible_events {
        None => true,
        Some(events) => {
            let event_id = column_text(&attribute["event_id"]);
            events.contains(&event_id)
        }
    }
}

fn find_event<'a>(dataset: &'a Dataset, attribute: &Value) -> Option<&'a Value> {
    let event_id = column_text(&attribute["event_id"]);
    dataset
        .events
        .iter()
        .find(|event| column_text(&event["id"]) == event_id)
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Attribute columns in MySQL column order, as `JsonExport` writes them.
const ATTRIBUTE_COLUMNS: [&str; 17] = [
    "id",
    "event_id",
    "object_id",
    "object_relation",
    "category",
    "type",
    "to_ids",
    "uuid",
    "timestamp",
    "distribution",
    "sharing_group_id",
    "comment",
    "deleted",
    "disable_correlation",
    "first_seen",
    "last_seen",
    "value",
];

/// Members the renderer places itself; any other stored member is copied after `event_uuid`.
const PLACED_MEMBERS: [&str; 7] = [
    "Sighting",
    "RelatedAttribute",
    "event_uuid",
    "decay_score",
    "Event",
    "Object",
    "Tag",
];

/// Event members that `includeContext` returns, in MISP's order (before `Tag` and `Orgc`).
const CONTEXT_EVENT_MEMBERS: [&str; 14] = [
    "id",
    "orgc_id",
    "org_id",
    "date",
    "threat_level_id",
    "info",
    "published",
    "uuid",
    "analysis",
    "timestamp",
    "distribution",
    "publish_timestamp",
    "sharing_group_id",
    "extends_uuid",
];

/// Members of a tag inside an `includeContext` event.
const CONTEXT_TAG_MEMBERS: [&str; 5] = ["local", "id", "name", "colour", "numerical_value"];

/// Members of an attribute inside `RelatedAttribute`.
const RELATED_MEMBERS: [&str; 13] = [
    "id",
    "event_id",
    "object_id",
    "object_relation",
    "category",
    "type",
    "uuid",
    "timestamp",
    "distribution",
    "sharing_group_id",
    "to_ids",
    "comment",
    "value",
];

/// Members of the `Event` inside a `RelatedAttribute` entry.
const RELATED_EVENT_MEMBERS: [&str; 12] = [
    "id",
    "uuid",
    "threat_level_id",
    "analysis",
    "info",
    "extends_uuid",
    "distribution",
    "sharing_group_id",
    "published",
    "date",
    "orgc_id",
    "org_id",
];

struct Includes {
    event_uuid: bool,
    event_tags: bool,
    context: bool,
    sightings: bool,
    correlations: bool,
    decay_score: bool,
}

impl Includes {
    fn new(parameters: &Map<String, Value>) -> Includes {
        let decay_score = is_flag_set(parameters, "includeDecayScore");
        Includes {
            event_uuid: is_flag_set(parameters, "includeEventUuid"),
            // The decay score depends on event tags, so MISP loads them whenever it is asked for.
            event_tags: is_flag_set(parameters, "includeEventTags") || decay_score,
            context: is_flag_set(parameters, "includeContext"),
            sightings: is_flag_set(parameters, "includeSightings"),
            correlations: is_flag_set(parameters, "includeCorrelations"),
            decay_score,
        }
    }
}

fn copy_members(source: &Value, names: &[&str]) -> Map<String, Value> {
    names
        .iter()
        .filter_map(|&name| Some((name.to_string(), source.get(name)?.clone())))
        .collect()
}

fn render_attribute(
    dataset: &Dataset,
    visible: &[&Value],
    attribute: &Value,
    includes: &Includes,
) -> Value {
    let event = find_event(dataset, attribute);
    let mut out = copy_members(attribute, &ATTRIBUTE_COLUMNS);

    if includes.sightings {
        let sightings = attribute.get("Sighting").cloned().unwrap_or(json!([]));
        out.insert("Sighting".into(), sightings);
    }
    if includes.correlations {
        let related = match attribute.get("RelatedAttribute") {
            Some(stored) => stored.clone(),
            None => related_attributes(dataset, visible, attribute),
        };
        out.insert("RelatedAttribute".into(), related);
    }
    if includes.event_uuid
        && let Some(uuid) = attribute.get("Event").and_then(|stub| stub.get("uuid"))
    {
        out.insert("event_uuid".into(), uuid.clone());
    }
    if let Value::Object(stored) = attribute {
        for (name, value) in stored {
            let placed = ATTRIBUTE_COLUMNS.contains(&name.as_str())
                || PLACED_MEMBERS.contains(&name.as_str());
            if !placed {
                out.insert(name.clone(), value.clone());
            }
        }
    }
    if includes.decay_score {
        out.insert("decay_score".into(), decay_score());
    }

    let stub = attribute.get("Event");
    let rendered_event = match (includes.context, event) {
        (true, Some(event)) => Some(context_event(event)),
        _ => stub.cloned(),
    };
    if let Some(rendered_event) = rendered_event {
        out.insert("Event".into(), rendered_event);
    }
    if let Some(object) = attribute.get("Object") {
        out.insert("Object".into(), object.clone());
    }

    let tags = merged_tags(attribute, event, includes.event_tags);
    if !tags.is_empty() {
        out.insert("Tag".into(), Value::Array(tags));
    }
    Value::Object(out)
}

/// Attribute tags, then the event's tags marked `"inherited": 1` when `with_event_tags`.
///
/// NOTE: an event tag the attribute already carries is not repeated; whether MISP repeats it
/// was not checked.
fn merged_tags(attribute: &Value, event: Option<&Value>, with_event_tags: bool) -> Vec<Value> {
    let mut tags: Vec<Value> = attribute
        .get("Tag")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(event) = event.filter(|_| with_event_tags) else {
        return tags;
    };
    let event_tags = event.get("Tag").and_then(Value::as_array);
    for event_tag in event_tags.into_iter().flatten() {
        if tags.iter().any(|tag| tag.get("id") == event_tag.get("id")) {
            continue;
        }
        let mut inherited = event_tag.clone();
        if let Value::Object(members) = &mut inherited {
            members.insert("inherited".into(), json!(1));
        }
        tags.push(inherited);
    }
    tags
}

fn context_event(event: &Value) -> Value {
    let mut out = copy_members(event, &CONTEXT_EVENT_MEMBERS);
    let tags: Vec<Value> = event
        .get("Tag")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|tag| Value::Object(copy_members(tag, &CONTEXT_TAG_MEMBERS)))
        .collect();
    if !tags.is_empty() {
        out.insert("Tag".into(), Value::Array(tags));
    }
    if let Some(orgc) = event.get("Orgc") {
        out.insert("Orgc".into(), orgc.clone());
    }
    Value::Object(out)
}

/// Other visible, live attributes sharing a value half with `attribute`, as MISP's
/// correlation table links them; attributes with `disable_correlation` take no part.
fn related_attributes(dataset: &Dataset, visible: &[&Value], attribute: &Value) -> Value {
    if is_true(&attribute["disable_correlation"]) {
        return json!([]);
    }
    let (value1, value2) = value_halves(attribute);
    let own: Vec<String> = [value1, value2]
        .iter()
        .filter(|half| !half.is_empty())
        .map(|half| collation_key(half))
        .collect();
    let related = visible
        .iter()
        .filter(|other| other["id"] != attribute["id"])
        .filter(|other| !is_true(&other["deleted"]) && !is_true(&other["disable_correlation"]))
        .filter(|other| {
            let (first, second) = value_halves(other);
            [first, second]
                .iter()
                .any(|half| !half.is_empty() && own.contains(&collation_key(half)))
        })
        .map(|other| {
            let mut entry = copy_members(other, &RELATED_MEMBERS);
            let event = find_event(dataset, other).or_else(|| other.get("Event"));
            if let Some(event) = event {
                let event = copy_members(event, &RELATED_EVENT_MEMBERS);
                entry.insert("Event".into(), Value::Object(event));
            }
            Value::Object(entry)
        })
        .collect();
    Value::Array(related)
}

/// Returns a fixed score from MISP's default model, because the emulator does not compute decay.
fn decay_score() -> Value {
    json!([{
        "score": 42.5,
        "base_score": 80,
        "decayed": false,
        "DecayingModel": {"id": "1", "name": "NIDS Simple Decaying Model"},
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(text: &str) -> Vec<char> {
        text.chars().collect()
    }

    #[test]
    fn like_percent_and_underscore() {
        assert!(like_matches(&chars("%.example"), &chars("phish.example")));
        assert!(like_matches(&chars("phish%"), &chars("phish.example")));
        assert!(like_matches(&chars("%is%"), &chars("phish.example")));
        assert!(like_matches(&chars("p_ish%"), &chars("phish.example")));
        assert!(!like_matches(&chars("%.org"), &chars("phish.example")));
        assert!(!like_matches(&chars("p_ish"), &chars("phish.example")));
    }

    #[test]
    fn php_empty_values() {
        for empty in [
            json!(null),
            json!(""),
            json!("0"),
            json!(0),
            json!(false),
            json!([]),
        ] {
            assert!(is_php_empty(&empty), "{empty} should be empty");
        }
        for present in [json!("0.0"), json!(" "), json!(1), json!("x")] {
            assert!(!is_php_empty(&present), "{present} should not be empty");
        }
    }

    #[test]
    fn composite_halves_split_on_first_pipe() {
        let attribute = json!({"type": "domain|ip", "value": "a.example|192.0.2.1"});
        assert_eq!(
            value_halves(&attribute),
            ("a.example".to_string(), "192.0.2.1".to_string())
        );
        let plain = json!({"type": "text", "value": "a|b"});
        assert_eq!(value_halves(&plain), ("a|b".to_string(), String::new()));
    }

    #[test]
    fn flag_filter_false_is_skipped() {
        assert_eq!(parse_flag_filter(Some(&json!(false)), false), None);
        assert_eq!(
            parse_flag_filter(Some(&json!("exclude")), false),
            Some(HashSet::from([false]))
        );
        assert_eq!(parse_flag_filter(Some(&json!([0, 1])), true), None);
    }
}
