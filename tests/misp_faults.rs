//! What Graylog receives when MISP fails: the status and error `code` for each failure mode of
//! the emulator, an upper bound on the answer time, no caching of errors, cached answers still
//! served during the failure, and the error counted in `/metrics`.

mod common;

use std::time::{Duration, Instant};

use common::{EICAR_SHA256, Harness, KEY, Reply, metric_value, read_reply};
use misp_lookup::demo::Fault;
use serde_json::json;

/// `--misp-timeout` of every test here.
const MISP_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest accepted time for a failed lookup: the MISP timeout plus 2 s of slack.
const ANSWER_BOUND: Duration = Duration::from_secs(3);

/// A key cached before the failure starts.
const CACHED_KEY: &str = "203.0.113.77";

/// A key first looked up while MISP fails.
const COLD_KEY: &str = EICAR_SHA256;

async fn start() -> Harness {
    Harness::start(&["--misp-timeout", "1s"]).await
}

/// Caches [`CACHED_KEY`], asserting that MISP answered it.
async fn warm_cache(harness: &Harness) -> Reply {
    let reply = harness.lookup(CACHED_KEY).await;
    assert_eq!(
        reply.status,
        200,
        "status before the fault: {}",
        reply.text()
    );
    assert_eq!(reply.x_cache(), "miss", "X-Cache before the fault");
    reply
}

/// Looks up [`COLD_KEY`] and asserts the error Graylog receives and the answer time.
async fn assert_failed_lookup(harness: &Harness, status: u16, code: &str, what: &str) -> Reply {
    let started = Instant::now();
    let reply = harness.lookup(COLD_KEY).await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < ANSWER_BOUND,
        "the {what} answer took {elapsed:?} with --misp-timeout {MISP_TIMEOUT:?}"
    );
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status for {what}; body: {}",
        reply.text()
    );
    assert_eq!(reply.code(), code, "error code for {what}");
    assert!(
        reply.header("content-type").starts_with("application/json"),
        "content type for {what}: {:?}",
        reply.header("content-type")
    );
    let message = reply.json["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "the {what} error has no message");
    assert!(
        !reply.text().contains(KEY),
        "the {what} error contains the MISP key"
    );
    assert_eq!(reply.x_cache(), "", "X-Cache on the {what} error");
    reply
}

/// Asserts that [`CACHED_KEY`] is still served from the cache while MISP fails.
async fn assert_cache_serves(harness: &Harness, cached: &Reply, what: &str) {
    let reply = harness.lookup(CACHED_KEY).await;
    assert_eq!(reply.status, 200, "status of a cached key during {what}");
    assert_eq!(
        reply.x_cache(),
        "hit",
        "X-Cache of a cached key during {what}"
    );
    assert_eq!(
        reply.body, cached.body,
        "body of a cached key during {what}"
    );
}

/// Asserts how often `misp_lookup_misp_errors_total` counted `code`.
async fn assert_errors_counted(harness: &Harness, code: &str, count: f64) {
    let metrics = harness.metrics().await;
    let sample = format!("misp_lookup_misp_errors_total{{code=\"{code}\"}}");
    assert_eq!(metric_value(&metrics, &sample), Some(count), "{sample}");
}

/// Runs one emulator fault through the whole check: Graylog's status and code, the answer
/// time, the cached key during the fault, the metric, and a fresh MISP request once the fault
/// clears. Returns the failed reply for fault-specific checks.
async fn check_fault(fault: Fault, status: u16, code: &str) -> Reply {
    let what = format!("{fault:?}");
    let harness = start().await;
    let cached = warm_cache(&harness).await;
    harness.emulator().set_fault(fault);

    let failed = assert_failed_lookup(&harness, status, code, &what).await;
    assert_cache_serves(&harness, &cached, &what).await;
    assert_errors_counted(&harness, code, 1.0).await;

    harness.emulator().set_fault(Fault::None);
    let recovered = harness.lookup(COLD_KEY).await;
    assert_eq!(
        recovered.status,
        200,
        "status after {what} cleared: {}",
        recovered.text()
    );
    assert_eq!(recovered.json["found"], true, "found after {what} cleared");
    assert_eq!(
        recovered.x_cache(),
        "miss",
        "X-Cache after {what} cleared: the error was cached"
    );
    assert_eq!(
        harness.emulator().searches_for(COLD_KEY),
        2,
        "MISP searches for the key that failed under {what}"
    );
    harness.stop().await;
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_is_504_timeout() {
    check_fault(Fault::Hang, 504, "misp_timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_error_is_502() {
    check_fault(Fault::InternalError, 502, "misp_error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failed_is_502() {
    check_fault(Fault::AuthFailed, 502, "misp_auth_failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_is_503_retry_after() {
    let fault = Fault::RateLimited { reset_seconds: 120 };

    let reply = check_fault(fault, 503, "misp_rate_limited").await;

    assert_eq!(reply.header("retry-after"), "120", "Retry-After");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_redirect_is_502() {
    check_fault(Fault::MaintenanceRedirect, 502, "misp_unavailable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_page_is_502() {
    check_fault(Fault::HtmlPage, 502, "misp_unavailable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_502() {
    check_fault(Fault::InvalidJson, 502, "misp_bad_response").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_body_is_503() {
    check_fault(Fault::ResetMidBody, 503, "misp_unreachable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_503() {
    let mut harness = start().await;
    let cached = warm_cache(&harness).await;
    harness.stop_emulator().await;

    assert_failed_lookup(&harness, 503, "misp_unreachable", "a refused connection").await;
    assert_cache_serves(&harness, &cached, "a refused connection").await;
    // A second failure proves the first was not cached: it needs a second MISP attempt.
    assert_failed_lookup(&harness, 503, "misp_unreachable", "a second refused lookup").await;
    assert_errors_counted(&harness, "misp_unreachable", 2.0).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_shared_by_concurrent_callers() {
    const CALLERS: usize = 8;
    let harness = start().await;
    harness.emulator().set_fault(Fault::Hang);
    let url = harness.lookup_url(COLD_KEY);

    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let request = harness.client.get(&url);
            tokio::spawn(read_reply(request))
        })
        .collect();
    let mut statuses = Vec::with_capacity(CALLERS);
    for task in tasks {
        statuses.push(task.await.expect("a lookup task panicked").status.as_u16());
    }
    let elapsed = started.elapsed();

    assert!(
        elapsed < ANSWER_BOUND,
        "{CALLERS} callers of a hung MISP waited {elapsed:?}"
    );
    assert_eq!(statuses, vec![504; CALLERS], "statuses of the callers");
    assert_eq!(
        harness.emulator().search_requests(),
        1,
        "MISP searches for callers of one key"
    );
    assert_errors_counted(&harness, "misp_timeout", 1.0).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropin_error_has_misp_members() {
    let harness = start().await;
    harness
        .emulator()
        .set_fault(Fault::RateLimited { reset_seconds: 30 });
    let path = "/attributes/restSearch";

    let reply = read_reply(
        harness
            .client
            .post(format!("{}{path}", harness.url))
            .json(&json!({"value": CACHED_KEY})),
    )
    .await;

    assert_eq!(reply.status, 503, "status: {}", reply.text());
    assert_eq!(reply.code(), "misp_rate_limited", "error code");
    assert_eq!(reply.header("retry-after"), "30", "Retry-After");
    assert_eq!(
        reply.json["name"], reply.json["message"],
        "name member equals the message"
    );
    assert_eq!(reply.json["url"], path, "url member");
    harness.stop().await;
}
