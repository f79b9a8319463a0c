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

/// Flags of every test here: a 1 s MISP timeout that a caller sees before its 2 s answer
/// deadline, no retries, so that one failed lookup is one MISP request, and answers about
/// domains that expire after 1 s, so that [`STALE_KEY`] is stale when the fault starts.
const FLAGS: &[&str] = &[
    "--misp-timeout",
    "1s",
    "--answer-deadline",
    "2s",
    "--misp-retries",
    "0",
    "--ttl-hit",
    "domain=1s,default=1h",
    "--stale-max",
    "1h",
];

/// A key cached before the failure whose entry is stale when the failure starts.
const STALE_KEY: &str = "c2.malware.example";

/// Longest accepted time for a failed lookup: the MISP timeout plus 2 s of slack.
const ANSWER_BOUND: Duration = Duration::from_secs(3);

/// A key cached before the failure starts.
const CACHED_KEY: &str = "203.0.113.77";

/// A key first looked up while MISP fails.
const COLD_KEY: &str = EICAR_SHA256;

async fn start(extra: &[&str]) -> Harness {
    let mut flags = FLAGS.to_vec();
    flags.extend_from_slice(extra);
    Harness::start(&flags).await
}

/// Caches [`CACHED_KEY`] and asserts that the lookup reached MISP and succeeded.
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
async fn assert_failed_lookup(harness: &Harness, status: u16, code: &str, context: &str) -> Reply {
    let started = Instant::now();
    let reply = harness.lookup(COLD_KEY).await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < ANSWER_BOUND,
        "the {context} answer took {elapsed:?} with --misp-timeout {MISP_TIMEOUT:?}"
    );
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status for {context}; body: {}",
        reply.text()
    );
    assert_eq!(reply.code(), code, "error code for {context}");
    assert!(
        reply.header("content-type").starts_with("application/json"),
        "content type for {context}: {:?}",
        reply.header("content-type")
    );
    let message = reply.json["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "the {context} error has no message");
    assert!(
        !reply.text().contains(KEY),
        "the {context} error contains the MISP key"
    );
    assert_eq!(reply.x_cache(), "", "X-Cache on the {context} error");
    reply
}

/// Asserts that [`CACHED_KEY`] is still served from the cache while MISP fails.
async fn assert_cache_serves(harness: &Harness, cached: &Reply, context: &str) {
    let reply = harness.lookup(CACHED_KEY).await;
    assert_eq!(reply.status, 200, "status of a cached key during {context}");
    assert_eq!(
        reply.x_cache(),
        "hit",
        "X-Cache of a cached key during {context}"
    );
    assert_eq!(
        reply.body, cached.body,
        "body of a cached key during {context}"
    );
}

/// Asserts how often `misp_lookup_misp_errors_total` counted `code`.
async fn assert_errors_counted(harness: &Harness, code: &str, count: f64) {
    let metrics = harness.metrics().await;
    let sample = format!("misp_lookup_misp_errors_total{{code=\"{code}\"}}");
    assert_eq!(metric_value(&metrics, &sample), Some(count), "{sample}");
}

/// Asserts that [`STALE_KEY`] is still answered, as stale, while MISP fails.
async fn assert_stale_serves(harness: &Harness, context: &str) {
    for attempt in 0..2 {
        let reply = harness.lookup(STALE_KEY).await;
        assert_eq!(
            reply.status,
            200,
            "status of a stale key during {context} (attempt {attempt}): {}",
            reply.text()
        );
        assert_eq!(
            reply.x_cache(),
            "stale",
            "X-Cache of a stale key during {context} (attempt {attempt})"
        );
        assert_eq!(
            reply.json["found"], true,
            "found of a stale key during {context}"
        );
    }
}

/// Runs one emulator fault through the whole check: Graylog's status and code, the answer
/// time, the cached and stale keys during the fault, the metric, and a fresh MISP request
/// once the fault clears. Returns the failed reply for fault-specific checks.
async fn check_fault(fault: Fault, status: u16, code: &str) -> Reply {
    let context = format!("{fault:?}");
    let (harness, failed) = fail_once(fault, status, code).await;
    assert_errors_counted(&harness, code, 1.0).await;
    assert_stale_serves(&harness, &context).await;
    harness.emulator().set_fault(Fault::None);
    assert_recovers(harness, &context).await;
    failed
}

/// Caches [`CACHED_KEY`], switches the emulator to `fault`, and checks the failed lookup of
/// [`COLD_KEY`] and the cached key during the fault.
async fn fail_once(fault: Fault, status: u16, code: &str) -> (Harness, Reply) {
    let context = format!("{fault:?}");
    let harness = start(&[]).await;
    let cached = warm_cache(&harness).await;
    let stale = harness.lookup(STALE_KEY).await;
    assert_eq!(stale.json["found"], true, "{STALE_KEY} before the fault");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    harness.emulator().set_fault(fault);

    let failed = assert_failed_lookup(&harness, status, code, &context).await;
    assert_cache_serves(&harness, &cached, &context).await;
    (harness, failed)
}

/// Asserts that [`COLD_KEY`], which failed once, now reaches MISP again and is found, which
/// shows the error was not cached. Stops the harness afterwards.
async fn assert_recovers(harness: Harness, context: &str) {
    let recovered = harness.lookup(COLD_KEY).await;
    assert_eq!(
        recovered.status,
        200,
        "status after {context} ended: {}",
        recovered.text()
    );
    assert_eq!(recovered.json["found"], true, "found after {context} ended");
    assert_eq!(
        recovered.x_cache(),
        "miss",
        "X-Cache after {context} ended: the error was cached"
    );
    assert_eq!(
        harness.emulator().searches_for(COLD_KEY),
        2,
        "MISP searches for the key that failed under {context}"
    );
    harness.stop().await;
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

    let (harness, reply) = fail_once(fault, 503, "misp_rate_limited").await;
    assert_errors_counted(&harness, "misp_rate_limited", 1.0).await;

    assert_eq!(reply.header("retry-after"), "120", "Retry-After");
    // The service pauses until MISP's window resets, even once MISP would answer again.
    harness.emulator().set_fault(Fault::None);
    let paused = harness.lookup(COLD_KEY).await;
    assert_eq!(
        paused.status,
        503,
        "status during the pause: {}",
        paused.text()
    );
    assert_eq!(
        paused.code(),
        "misp_rate_limited",
        "error code during the pause"
    );
    let retry_after: u64 = paused.header("retry-after").parse().unwrap_or(0);
    assert!(
        (1..=120).contains(&retry_after),
        "Retry-After during the pause is {retry_after}"
    );
    assert_eq!(
        harness.emulator().searches_for(COLD_KEY),
        1,
        "MISP searches during the pause"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_pause_ends() {
    let fault = Fault::RateLimited { reset_seconds: 1 };
    let (harness, _) = fail_once(fault, 503, "misp_rate_limited").await;
    harness.emulator().set_fault(Fault::None);

    tokio::time::sleep(Duration::from_millis(1100)).await;

    assert_recovers(harness, "the rate-limit pause").await;
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
    let (harness, _) = fail_once(Fault::InvalidJson, 502, "misp_bad_response").await;
    harness.emulator().set_fault(Fault::None);
    assert_recovers(harness, "InvalidJson").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_counted_in_metrics() {
    let (harness, _) = fail_once(Fault::InvalidJson, 502, "misp_bad_response").await;

    assert_errors_counted(&harness, "misp_bad_response", 1.0).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_body_is_503() {
    check_fault(Fault::ResetMidBody, 503, "misp_unreachable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_503() {
    let mut harness = start(&[]).await;
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
    let harness = start(&[]).await;
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
    let harness = start(&[]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let harness = Harness::start(&["--misp-retries", "2"]).await;
    harness.emulator().set_fault(Fault::InternalError);

    let failed = harness.lookup(COLD_KEY).await;

    assert_eq!(
        failed.status,
        502,
        "status after retries: {}",
        failed.text()
    );
    assert_eq!(failed.code(), "misp_error", "error code after retries");
    assert_eq!(
        harness.emulator().search_requests(),
        3,
        "MISP searches: one request and two retries"
    );
    let metrics = harness.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_misp_retries_total"),
        Some(2.0),
        "retries counted"
    );

    harness.emulator().set_fault(Fault::AuthFailed);
    harness.emulator().reset_counters();
    let rejected = harness.lookup(CACHED_KEY).await;
    assert_eq!(rejected.code(), "misp_auth_failed", "error code of a 403");
    assert_eq!(
        harness.emulator().search_requests(),
        1,
        "MISP searches: a 403 must not be retried"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_after_failures() {
    let harness = start(&["--breaker-failures", "2", "--breaker-cooldown", "30s"]).await;
    let cached = warm_cache(&harness).await;
    harness.emulator().set_fault(Fault::InternalError);

    for key in ["192.0.2.10", "192.0.2.11"] {
        let reply = harness.lookup(key).await;
        assert_eq!(
            reply.code(),
            "misp_error",
            "error code of {key} before the breaker"
        );
    }
    let shed = harness.lookup("192.0.2.12").await;

    assert_eq!(
        shed.status,
        503,
        "status with the breaker open: {}",
        shed.text()
    );
    assert_eq!(
        shed.code(),
        "misp_circuit_open",
        "error code with the breaker open"
    );
    let retry_after: u64 = shed.header("retry-after").parse().unwrap_or(0);
    assert!(
        (1..=30).contains(&retry_after),
        "Retry-After with the breaker open is {retry_after}"
    );
    assert_eq!(
        harness.emulator().search_requests(),
        3,
        "MISP searches: the open breaker must not ask MISP"
    );
    assert_cache_serves(&harness, &cached, "an open breaker").await;
    let metrics = harness.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_misp_breaker_state"),
        Some(2.0),
        "breaker state gauge (2 = open)"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_answer_fills_cache() {
    let harness = Harness::start(&["--misp-timeout", "5s", "--answer-deadline", "300ms"]).await;
    harness.emulator().set_latency(Duration::from_millis(1000));

    let started = Instant::now();
    let late = harness.lookup(COLD_KEY).await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_millis(2300),
        "the caller waited {elapsed:?} with --answer-deadline 300ms"
    );
    assert_eq!(
        late.status,
        504,
        "status past the deadline: {}",
        late.text()
    );
    assert_eq!(late.code(), "misp_timeout", "error code past the deadline");
    harness.emulator().set_latency(Duration::ZERO);

    // The MISP request goes on after the caller's 504 and stores its result. A lookup made
    // while it is still in flight joins it (504 or `coalesced`), so the loop waits for a hit.
    // The search count below shows that no second MISP request filled the cache instead.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reply = harness.lookup(COLD_KEY).await;
    while reply.x_cache() != "hit" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        reply = harness.lookup(COLD_KEY).await;
    }
    assert_eq!(
        reply.status,
        200,
        "status once MISP answered: {}",
        reply.text()
    );
    assert_eq!(reply.x_cache(), "hit", "X-Cache of the late answer");
    assert_eq!(
        harness.emulator().searches_for(COLD_KEY),
        1,
        "MISP searches: the late answer must be reused"
    );
    let metrics = harness.metrics().await;
    let exceeded =
        metric_value(&metrics, "misp_lookup_answer_deadline_exceeded_total").unwrap_or(0.0);
    assert!(exceeded >= 1.0, "deadline misses counted: {exceeded}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_served_during_failure() {
    let harness = Harness::start(&[
        "--ttl-hit",
        "1s",
        "--stale-max",
        "1h",
        "--misp-retries",
        "0",
    ])
    .await;
    let cached = warm_cache(&harness).await;
    harness.emulator().set_fault(Fault::InternalError);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale = harness.lookup(CACHED_KEY).await;

    assert_eq!(
        stale.status, 200,
        "status of an expired entry while MISP fails"
    );
    assert_eq!(
        stale.x_cache(),
        "stale",
        "X-Cache of an expired entry while MISP fails"
    );
    assert_eq!(stale.body, cached.body, "body of the stale answer");
    harness.stop().await;
}
