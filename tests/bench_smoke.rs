//! The CI version of bench/run: checks by request counts, never by timings, that request
//! coalescing and batching keep MISP's load within the benchmark targets.
//!
//! - 1,000 concurrent lookups of one cold key send exactly one MISP request.
//! - A Zipf stream of 5,000 lookups over 1,000 keys from 32 concurrent clients sends at most
//!   one MISP request per distinct key, and with batching at least 5 times fewer.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use reqwest::StatusCode;

/// The deadline every smoke service gets, far above any MISP latency here, so that a slow CI
/// machine turns into a slow test rather than a 504 that would change the counts.
const ANSWER_DEADLINE: &str = "10s";

/// Returns the lookup key of rank `rank`, a domain under the reserved `.example` TLD that the
/// demo data set does not hold, so every lookup is a miss in MISP.
fn key_for_rank(rank: usize) -> String {
    format!("h{rank}.smoke.example")
}

/// Draws `count` ranks of `0..keys` with probability proportional to `1 / (rank + 1)`
/// (Zipf with exponent 1), by inverting the cumulative distribution with a binary search.
fn zipf_stream(count: usize, keys: usize, seed: u64) -> Vec<usize> {
    let mut total = 0.0;
    let cumulative: Vec<f64> = (0..keys)
        .map(|rank| {
            total += 1.0 / (rank + 1) as f64;
            total
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count)
        .map(|_| {
            let target = rng.f64() * total;
            cumulative
                .partition_point(|&weight| weight <= target)
                .min(keys - 1)
        })
        .collect()
}

/// Sends the stream from `clients` concurrent tasks that take the next key in turn, and
/// returns the statuses that were not 200.
async fn run_stream(service: &Harness, stream: &[usize], clients: usize) -> Vec<StatusCode> {
    let urls: Arc<Vec<String>> = Arc::new(
        stream
            .iter()
            .map(|&rank| service.lookup_url(&key_for_rank(rank)))
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let urls = Arc::clone(&urls);
        let next = Arc::clone(&next);
        let client = service.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(url) = urls.get(index) else {
                    break;
                };
                let response = client.get(url).send().await.expect("a lookup failed");
                let status = response.status();
                response.bytes().await.expect("a lookup body was not read");
                if status != StatusCode::OK {
                    failures.push(status);
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        failures.extend(task.await.expect("a client task panicked"));
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_key_burst_sends_one_request() {
    let service = Harness::start(&["--answer-deadline", ANSWER_DEADLINE]).await;
    // MISP responds after 300 ms, so all 1,000 lookups arrive while the first one is waiting.
    service.emulator().set_latency(Duration::from_millis(300));
    let url = service.lookup_url(&key_for_rank(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let client = service.client.clone();
        let url = url.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = client.get(&url).send().await.expect("a lookup failed");
            response.status()
        }));
    }
    let mut failed = 0;
    for task in tasks {
        if task.await.expect("a client task panicked") != StatusCode::OK {
            failed += 1;
        }
    }

    assert_eq!(failed, 0, "lookups of the cold key that did not return 200");
    assert_eq!(
        service.emulator().search_requests(),
        1,
        "MISP requests for 1,000 concurrent lookups of one cold key"
    );
    service.stop().await;
}

/// Runs the smoke Zipf stream against a service started with `flags` and returns the number
/// of MISP requests and of distinct keys in the stream.
async fn zipf_misp_requests(flags: &[&str]) -> (usize, usize) {
    let mut all_flags = vec!["--answer-deadline", ANSWER_DEADLINE];
    all_flags.extend_from_slice(flags);
    let service = Harness::start(&all_flags).await;
    // A small MISP latency, so that concurrent misses overlap as they do in production.
    service.emulator().set_latency(Duration::from_millis(20));
    let stream = zipf_stream(5_000, 1_000, 7);
    let distinct = stream.iter().collect::<HashSet<_>>().len();

    let failures = run_stream(&service, &stream, 32).await;

    assert!(
        failures.is_empty(),
        "{} lookups did not return 200: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let requests = service.emulator().search_requests();
    service.stop().await;
    (requests, distinct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipf_stream_with_batching() {
    let (requests, distinct) = zipf_misp_requests(&[]).await;

    assert!(
        requests <= distinct,
        "{requests} MISP requests for {distinct} distinct keys"
    );
    assert!(
        requests * 5 <= distinct,
        "with batching, {requests} MISP requests for {distinct} distinct keys; \
         expected at most {}",
        distinct / 5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipf_stream_without_batching() {
    let (requests, distinct) = zipf_misp_requests(&["--batch-max", "1"]).await;

    assert!(
        requests <= distinct,
        "without batching, {requests} MISP requests for {distinct} distinct keys"
    );
}
