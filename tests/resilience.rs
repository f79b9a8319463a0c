//! Behaviour when MISP is slow, failing or rate-limited, and the features that keep MISP's load
//! low: stale answers, the answer deadline, the circuit breaker, the rate-limit pause, retries,
//! the in-flight bound, batching and bulk lookups.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, metric_value, read_reply, search_bodies};
use misp_lookup::demo::Fault;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Polls `check` every 25 ms until it holds, for at most `limit`.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answer_served_while_refreshing() {
    let service = Harness::start(&["--ttl-hit", "1s", "--stale-max", "1h"]).await;
    let first = service.lookup("203.0.113.77").await;
    assert_eq!(first.x_cache(), "miss");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    service.emulator().set_latency(Duration::from_millis(500));
    let started = Instant::now();
    let stale = service.lookup("203.0.113.77").await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.x_cache(), "stale");
    assert_eq!(stale.body, first.body, "a stale answer is the cached body");
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "a stale answer must not wait for MISP ({:?})",
        started.elapsed()
    );

    let refreshed = eventually(Duration::from_secs(5), async || {
        service.lookup("203.0.113.77").await.x_cache() == "hit"
    })
    .await;
    assert!(
        refreshed,
        "the background refresh did not replace the stale entry"
    );
    assert_eq!(service.emulator().search_requests(), 2, "one refresh only");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answer_outlives_misp_failure() {
    let service = Harness::start(&["--ttl-hit", "1s", "--misp-retries", "0"]).await;
    assert_eq!(service.lookup("198.51.100.23").await.x_cache(), "miss");
    service.emulator().set_fault(Fault::InternalError);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    for attempt in 0..3 {
        let reply = service.lookup("198.51.100.23").await;
        assert_eq!(reply.status, StatusCode::OK, "attempt {attempt}");
        assert_eq!(reply.x_cache(), "stale", "attempt {attempt}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh_key = service.lookup("never-cached.example").await;
    assert_eq!(fresh_key.status, StatusCode::BAD_GATEWAY);
    assert_eq!(fresh_key.code(), "misp_error");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_answers_504_and_fills_cache() {
    let service = Harness::start(&["--answer-deadline", "300ms"]).await;
    service.emulator().set_latency(Duration::from_millis(900));

    let started = Instant::now();
    let late = service.lookup("192.0.2.44").await;
    let waited = started.elapsed();
    assert_eq!(late.status, StatusCode::GATEWAY_TIMEOUT, "{}", late.text());
    assert_eq!(late.code(), "misp_timeout");
    assert!(waited < Duration::from_millis(1300), "waited {waited:?}");

    let filled = eventually(Duration::from_secs(5), async || {
        service.lookup("192.0.2.44").await.x_cache() == "hit"
    })
    .await;
    assert!(
        filled,
        "the MISP answer that came after the deadline was not cached"
    );
    assert_eq!(service.emulator().search_requests(), 1);
    let metrics = service.metrics().await;
    assert!(
        metric_value(&metrics, "misp_lookup_answer_deadline_exceeded_total").unwrap_or(0.0) >= 1.0
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_sheds_and_closes() {
    let flags = [
        "--breaker-failures",
        "3",
        "--breaker-cooldown",
        "1s",
        "--misp-retries",
        "0",
        "--batch-max",
        "1",
    ];
    let service = Harness::start(&flags).await;
    service.emulator().set_fault(Fault::InternalError);
    for index in 0..3 {
        let reply = service.lookup(&format!("failing-{index}.example")).await;
        assert_eq!(reply.code(), "misp_error", "failure {index}");
    }
    let requests_when_opened = service.emulator().search_requests();
    assert_eq!(requests_when_opened, 3);

    let started = Instant::now();
    let shed = service.lookup("shed.example").await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.code(), "misp_circuit_open");
    assert!(!shed.header("retry-after").is_empty(), "Retry-After is set");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "shedding is fast"
    );
    assert_eq!(
        service.emulator().search_requests(),
        requests_when_opened,
        "an open breaker must not reach MISP"
    );
    let metrics = service.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_misp_breaker_state"),
        Some(2.0)
    );

    service.emulator().set_fault(Fault::None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let probe = service.lookup("203.0.113.77").await;
    assert_eq!(probe.status, StatusCode::OK, "{}", probe.text());
    let after = service.lookup("198.51.100.23").await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text());
    let metrics = service.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_misp_breaker_state"),
        Some(0.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "misp_lookup_misp_shed_total{reason=\"circuit_open\"}"
        ),
        Some(1.0)
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_pauses_misp_until_reset() {
    let service = Harness::start(&[]).await;
    service
        .emulator()
        .set_fault(Fault::RateLimited { reset_seconds: 120 });
    let limited = service.lookup("first.example").await;
    assert_eq!(limited.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(limited.code(), "misp_rate_limited");
    assert_eq!(limited.header("retry-after"), "120");

    service.emulator().set_fault(Fault::None);
    let paused = service.lookup("second.example").await;
    assert_eq!(paused.code(), "misp_rate_limited");
    let retry_after: u64 = paused.header("retry-after").parse().expect("a number");
    assert!(
        (1..=120).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(
        service.emulator().search_requests(),
        1,
        "no request may reach MISP before its reset time"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_5xx_but_never_4xx() {
    let service = Harness::start(&["--misp-retries", "2", "--batch-max", "1"]).await;
    service.emulator().set_fault(Fault::InternalError);
    assert_eq!(service.lookup("retried.example").await.code(), "misp_error");
    assert_eq!(
        service.emulator().search_requests(),
        3,
        "one try and two retries"
    );

    service.emulator().reset_counters();
    service.emulator().set_fault(Fault::AuthFailed);
    assert_eq!(
        service.lookup("not-retried.example").await.code(),
        "misp_auth_failed"
    );
    assert_eq!(service.emulator().search_requests(), 1, "a 4xx is final");
    let metrics = service.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_misp_retries_total"),
        Some(2.0)
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_bound_holds_under_load() {
    let service = Harness::start(&["--misp-max-inflight", "2", "--batch-max", "1"]).await;
    service.emulator().set_latency(Duration::from_millis(200));

    let lookups: Vec<String> = (0..8)
        .map(|index| service.lookup_url(&format!("load-{index}.example")))
        .collect();
    let client = service.client.clone();
    let requests = tokio::spawn(async move {
        let calls = lookups.into_iter().map(|url| {
            let client = client.clone();
            async move { client.get(url).send().await.map(|r| r.status()) }
        });
        futures::future::join_all(calls).await
    });

    let mut highest = 0.0_f64;
    let started = Instant::now();
    while !requests.is_finished() && started.elapsed() < Duration::from_secs(10) {
        let metrics = service.metrics().await;
        let inflight = metric_value(&metrics, "misp_lookup_misp_inflight_requests").unwrap_or(0.0);
        highest = highest.max(inflight);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = requests.await.expect("lookup task");
    assert!(highest <= 2.0, "{highest} MISP requests were in flight");
    assert!(highest >= 1.0, "the gauge never showed a request in flight");
    assert_eq!(service.emulator().search_requests(), 8);
    // The default answer deadline (1 s) cuts some waits short; none may fail otherwise.
    for status in statuses {
        let status = status.expect("the request completed");
        assert!(
            status == StatusCode::OK || status == StatusCode::GATEWAY_TIMEOUT,
            "status {status}"
        );
    }
    service.stop().await;
}

/// Keys of the demo data set with the `found` value each must get, composite halves included.
const KNOWN_KEYS: &[(&str, bool)] = &[
    ("203.0.113.77", true),
    ("198.51.100.23", true),
    ("192.0.2.44", true),
    ("443", true),
    ("c2.malware.example", true),
    ("mb4z3nlfyrcjnoqf.onion", true),
    ("eicar.com", true),
    (
        "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
        true,
    ),
    ("2001:db8::bad:1", true),
    ("phisher@bad-sender.example", true),
    ("retired-dropper.example", false),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_merges_200_distinct_misses() {
    let service = Harness::start(&["--batch-window", "50ms", "--answer-deadline", "5s"]).await;
    service.emulator().set_latency(Duration::from_millis(100));

    let mut keys: Vec<(String, bool)> = KNOWN_KEYS
        .iter()
        .map(|(key, found)| ((*key).to_owned(), *found))
        .collect();
    for index in keys.len()..200 {
        keys.push((format!("unknown-{index}.example"), false));
    }
    let replies = futures::future::join_all(keys.iter().map(|(key, _)| service.lookup(key))).await;

    for ((key, expected), reply) in keys.iter().zip(&replies) {
        assert_eq!(reply.status, StatusCode::OK, "{key}: {}", reply.text());
        assert_eq!(reply.json["found"], *expected, "{key}: {}", reply.text());
        let value = reply.json["fields"]["value"].as_str().unwrap_or_default();
        assert_eq!(value, key.as_str(), "each key gets its own answer");
    }
    let requests = service.emulator().search_requests();
    assert!(requests <= 5, "200 misses took {requests} MISP requests");
    let carried: usize = search_bodies(service.emulator())
        .iter()
        .map(|body| body["value"].as_array().map_or(1, Vec::len))
        .sum();
    assert_eq!(carried, 200, "every key is asked exactly once");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_cut_by_limit_asks_again() {
    // With a per-key limit of 1, a batch of two keys sends limit 2; the value in two events
    // fills that limit alone, so MISP's answer may lack the other key's match.
    let flags = ["--misp-limit", "1", "--batch-window", "100ms"];
    let service = Harness::start(&flags).await;
    let (popular, other) = (
        service.lookup("update-check.example"),
        service.lookup("203.0.113.77"),
    );
    let (popular, other) = tokio::join!(popular, other);

    assert_eq!(popular.json["found"], true, "{}", popular.text());
    assert_eq!(popular.json["fields"]["match_count_capped"], true);
    assert_eq!(
        other.json["found"], true,
        "a cut batch must not make a false miss"
    );
    let bodies = search_bodies(service.emulator());
    assert_eq!(
        bodies.len(),
        3,
        "one batch, then each key alone: {bodies:?}"
    );
    assert_eq!(bodies[0]["limit"], 2);
    assert_eq!(bodies[1]["limit"], 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_lookup_answers_in_order() {
    let service = Harness::start(&[]).await;
    let body = json!({
        "keys": ["203.0.113.77", "!1.2.3.4", 42, "unknown-bulk.example", "EICAR.COM"],
        "type": "ip,domain",
    });
    let reply = read_reply(
        service
            .client
            .post(format!("{}/lookup", service.url))
            .json(&body),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let results = reply.json["results"].as_array().expect("results list");
    assert_eq!(results.len(), 5);
    let keys: Vec<&Value> = results.iter().map(|result| &result["key"]).collect();
    assert_eq!(
        keys,
        [
            &body["keys"][0],
            &body["keys"][1],
            &body["keys"][2],
            &body["keys"][3],
            &body["keys"][4]
        ]
    );
    assert_eq!(results[0]["found"], true);
    assert_eq!(results[0]["fields"]["kind"], "ipv4");
    assert_eq!(results[1]["code"], "key_operator");
    assert_eq!(results[2]["code"], "invalid_json");
    assert_eq!(results[3]["found"], false);
    assert_eq!(results[4]["fields"]["value"], "eicar.com");

    let single = service.get("/lookup/203.0.113.77?type=ip,domain").await;
    assert_eq!(
        single.x_cache(),
        "hit",
        "bulk answers fill the same cache entries"
    );
    let mut expected = single.json.clone();
    expected
        .as_object_mut()
        .expect("object")
        .insert("key".into(), json!("203.0.113.77"));
    assert_eq!(
        results[0], expected,
        "a bulk result is the /lookup body plus the key"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_lookup_rejects_too_many_keys() {
    let service = Harness::start(&[]).await;
    let keys: Vec<String> = (0..1001).map(|index| format!("k{index}.example")).collect();
    let reply = read_reply(
        service
            .client
            .post(format!("{}/lookup", service.url))
            .json(&json!({ "keys": keys })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "too_many_keys");
    assert_eq!(service.emulator().search_requests(), 0);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_misses_share_batched_requests() {
    let service = Harness::start(&["--batch-window", "20ms"]).await;
    let keys: Vec<String> = (0..50)
        .map(|index| format!("bulk-{index}.example"))
        .collect();
    let reply = read_reply(
        service
            .client
            .post(format!("{}/lookup", service.url))
            .json(&json!({ "keys": keys })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let requests = service.emulator().search_requests();
    assert!(
        requests <= 2,
        "50 bulk misses took {requests} MISP requests"
    );
    service.stop().await;
}
