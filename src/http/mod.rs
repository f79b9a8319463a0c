//! The HTTP server: routes, shared state and start-up.

pub mod admin;
pub mod auth;
pub mod bulk;
pub mod dropin;
pub mod error;
pub mod health;
pub mod lookup;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{ServerHandle, Service as _};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures::{FutureExt, StreamExt};

use self::auth::AuthPolicy;
use self::error::ApiError;
use crate::config::{Config, Secret};
use crate::demo::{self, Emulator};
use crate::lookup::{Served, Service};
use crate::metrics::{HTTP_METHODS, HTTP_ROUTES, Metrics};

/// Largest request body accepted by the drop-in search, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest bulk lookup body: 1,000 keys of up to 4,096 bytes, with room for JSON escaping.
pub const BULK_BODY_BYTES: usize = 6 * 1024 * 1024;

/// How long in-flight requests may finish after a stop signal. It stays below Kubernetes'
/// default `terminationGracePeriodSeconds` of 30 s.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 20;

/// State shared by every HTTP worker.
pub struct AppState {
    /// The lookup service.
    pub service: Arc<Service>,
    /// What lookup endpoints require of a caller.
    pub auth: AuthPolicy,
    /// The service's metrics.
    pub metrics: Metrics,
    /// The last readiness probe of MISP.
    pub readiness: health::Readiness,
    /// Token required by the cache administration endpoints.
    pub admin_token: Option<Secret>,
}

impl AppState {
    /// Counts a lookup in `misp_lookup_lookups_total` by endpoint and outcome. `endpoint`
    /// must be one of [`crate::metrics::LOOKUP_ENDPOINTS`].
    pub fn count_lookup(&self, endpoint: &'static str, result: &Result<Served, ApiError>) {
        // The column order of LOOKUP_OUTCOMES.
        let outcome = match result {
            Ok(served) if served.entry.found => 0,
            Ok(_) => 1,
            Err(ApiError::Lookup(_)) => 3,
            Err(_) => 2,
        };
        let row = crate::metrics::LOOKUP_ENDPOINTS
            .iter()
            .position(|known| *known == endpoint)
            .expect("a known endpoint label");
        self.metrics.lookup_counters.inc(row, outcome);
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The demo MISP emulator could not start.
    #[error("cannot start the demo MISP emulator: {0}")]
    Demo(std::io::Error),
    /// The lookup service could not be built.
    #[error(transparent)]
    Service(#[from] crate::lookup::ServiceError),
}

/// A started server.
pub struct RunningServer {
    addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    emulator: Option<Emulator>,
}

impl RunningServer {
    /// Returns the bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the demo emulator's URL, when running with `--demo`.
    pub fn demo_misp_url(&self) -> Option<String> {
        self.emulator.as_ref().map(Emulator::url)
    }

    /// Stops accepting connections and lets in-flight requests finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
        if let Some(emulator) = self.emulator {
            emulator.stop().await;
        }
    }

    /// Waits until the server stops (on SIGINT or SIGTERM).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self
            .task
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)));
        if let Some(emulator) = self.emulator {
            emulator.stop().await;
        }
        result
    }
}

/// Starts the service: the demo emulator when configured, then the HTTP server.
pub async fn start(mut config: Config) -> Result<RunningServer, StartError> {
    let emulator = if config.demo {
        let emulator = demo::start_for(&mut config)
            .await
            .map_err(StartError::Demo)?;
        tracing::info!(misp_url = %emulator.url(), "demo MISP emulator started");
        Some(emulator)
    } else {
        None
    };

    let metrics = Metrics::new();
    let service = Arc::new(Service::new(&config, metrics.clone())?);
    let state = web::Data::new(AppState {
        service,
        auth: AuthPolicy {
            api_token: config.api_token.clone(),
            forward_caller_key: config.forward_caller_key,
        },
        metrics,
        readiness: health::Readiness::default(),
        admin_token: config.admin_token.clone(),
    });
    if let Some(redis) = state.service.redis() {
        if redis.wait_connected(Duration::from_secs(2)).await {
            tracing::info!("connected to Redis");
        } else {
            tracing::warn!("Redis is not reachable yet; lookups go on without it meanwhile");
        }
    }

    let listener = TcpListener::bind(config.listen).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap_fn(|request, service| {
                let started = Instant::now();
                // The path as the router matches it, with escapes of unreserved characters
                // decoded, so that `/%6Cookup/x` counts under the route that serves it.
                let route = route_index(request.match_info().as_str());
                let method = method_index(request.method());
                let state = request.app_data::<web::Data<AppState>>().cloned();
                service.call(request).map(move |result| {
                    if let (Ok(response), Some(state)) = (&result, state) {
                        record_request(&state.metrics, route, method, response, started);
                    }
                    result
                })
            })
            .configure(routes)
    })
    .workers(config.workers)
    // Without it, a response written while an earlier one on the same connection is not yet
    // acknowledged waits for the client's delayed ACK (40 ms at most, as measured on Linux).
    .tcp_nodelay(true)
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECONDS)
    .listen(listener)
    .map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?
    .run();

    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, workers = config.workers, "listening");
    Ok(RunningServer {
        addr,
        handle,
        task,
        emulator,
    })
}

/// Counts a finished request and logs a failed one at debug level. MISP and Redis failures
/// are already logged, rate-limited, where they happen, so these lines stay off by default.
fn record_request(
    metrics: &Metrics,
    route: usize,
    method: usize,
    response: &actix_web::dev::ServiceResponse,
    started: Instant,
) {
    let status = response.status();
    let elapsed = started.elapsed();
    metrics
        .http_series
        .record(route, method, status.as_u16(), elapsed);
    if !status.is_success() {
        let (route, method) = (HTTP_ROUTES[route], HTTP_METHODS[method]);
        let error = response.response().error().map(ToString::to_string);
        tracing::debug!(
            method,
            route,
            status = status.as_u16(),
            error = error.as_deref().unwrap_or(""),
            elapsed_ms = elapsed.as_millis() as u64,
            "request failed"
        );
    }
}

/// Registers every route.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        // A scope matches its prefix by string comparison. Every path below `/lookup/` goes to
        // its default service, so the busiest route runs no pattern matching: a
        // `/lookup/{key:.*}` resource would run a regex per request, and the handler reads the
        // raw path anyway.
        .service(
            web::scope("/lookup")
                .service(
                    web::resource("")
                        .route(web::post().to(bulk::bulk_lookup))
                        .default_service(method_not_allowed("POST")),
                )
                .default_service(web::to(lookup::lookup)),
        )
        .service(
            web::resource("/cache")
                .route(web::delete().to(admin::purge_all))
                .default_service(method_not_allowed("DELETE")),
        )
        .service(
            web::resource("/cache/{key:.*}")
                .route(web::delete().to(admin::purge_key))
                .default_service(method_not_allowed("DELETE")),
        )
        .service(
            web::resource(["/attributes/restSearch", "/attributes/restSearch.json"])
                .route(web::post().to(dropin::search_post))
                .route(web::get().to(dropin::search_get))
                .default_service(method_not_allowed("GET, POST")),
        )
        .service(
            web::resource("/attributes/restSearch/{parameters:.*}")
                .route(web::get().to(dropin::search_get))
                .default_service(method_not_allowed("GET")),
        )
        .service(get_only("/healthz", web::get().to(health::healthz)))
        .service(get_only("/readyz", web::get().to(health::readyz)))
        .service(get_only("/metrics", web::get().to(health::metrics)))
        .service(get_only("/openapi.yaml", web::get().to(health::openapi)))
        .default_service(web::to(not_found));
}

/// Reads a request body up to `limit` bytes; a larger one is a 413 with a JSON body.
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::InvalidJson(err.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Builds a resource that serves `route` and returns 405 with a JSON body for every other
/// method.
fn get_only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(method_not_allowed("GET"))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Builds the fallback of a resource that accepts only the `allow` methods: 405 with a JSON
/// body and an `Allow` header.
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |request: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: request.method().to_string(),
            allow,
        })
    })
}

/// Returns the index in [`HTTP_ROUTES`] of the route pattern that serves a path, without
/// running the router's matching a second time. The labels match the patterns registered in
/// [`routes`].
fn route_index(path: &str) -> usize {
    let label = match path {
        "/lookup" => "/lookup",
        "/cache" => "/cache",
        "/attributes/restSearch" | "/attributes/restSearch.json" => "/attributes/restSearch",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        "/openapi.yaml" => "/openapi.yaml",
        _ if path.starts_with("/lookup/") => "/lookup/{key}",
        _ if path.starts_with("/cache/") => "/cache/{key}",
        _ if path.starts_with("/attributes/restSearch/") => "/attributes/restSearch/{parameters}",
        _ => "unmatched",
    };
    HTTP_ROUTES
        .iter()
        .position(|&known| known == label)
        .expect("every route label is in HTTP_ROUTES")
}

/// Returns the index in [`HTTP_METHODS`] of a method, the last one (`other`) for a method that
/// is not standard.
fn method_index(method: &actix_web::http::Method) -> usize {
    HTTP_METHODS
        .iter()
        .position(|&known| known == method.as_str())
        .unwrap_or(HTTP_METHODS.len() - 1)
}
