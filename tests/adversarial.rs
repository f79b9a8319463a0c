//! Adversarial checks of the service: inputs that try to reach MISP as operators, cache keys
//! that try to collide, upstream headers and request bodies that try to break shared state.

mod common;

use std::time::{Duration, Instant};

use common::{EICAR_MD5, EICAR_SHA256, Harness, KEY, Reply, metric_value, read_reply};
use misp_lookup::demo::Fault;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An indicator that the demo data set contains, for checks that need a known match.
const KNOWN_IP: &str = "203.0.113.77";

async fn post_json(harness: &Harness, path: &str, body: &Value) -> Reply {
    read_reply(
        harness
            .client
            .post(format!("{}{path}", harness.url))
            .json(body),
    )
    .await
}

async fn post_bytes(harness: &Harness, path: &str, body: Vec<u8>) -> Reply {
    read_reply(
        harness
            .client
            .post(format!("{}{path}", harness.url))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// Sends `GET` to a raw path of the service, without re-encoding it.
async fn get_raw(harness: &Harness, path: &str) -> Reply {
    read_reply(harness.client.get(format!("{}{path}", harness.url))).await
}

/// Asserts an error reply: status, JSON content type and `code`.
fn assert_error(reply: &Reply, status: u16, code: &str, context: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status of {context}; body: {}",
        reply.text()
    );
    assert!(
        reply.header("content-type").starts_with("application/json"),
        "content type of {context}: {:?}",
        reply.header("content-type")
    );
    assert_eq!(
        reply.code(),
        code,
        "code of {context}; body: {}",
        reply.text()
    );
}

/// Returns the peak resident set size of this process in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

// ---------------------------------------------------------------------------------------------
// Operators and "no filter" values never reach MISP.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_encoding_tricks_rejected() {
    let harness = Harness::start(&[]).await;
    // Raw paths, sent as they are: double encoding, `+`, NUL, overlong UTF-8, lone surrogates
    // and invalid escapes.
    let cases = [
        ("/lookup/%21evil.com", 400, "key_operator"),
        ("/lookup/%2521evil.com", 400, "key_operator"),
        ("/lookup/evil.com%2525", 200, ""),
        ("/lookup/evil.com%25", 400, "key_operator"),
        ("/lookup/%20%20%21evil.com", 400, "key_operator"),
        ("/lookup/+%21evil.com", 200, ""),
        ("/lookup/%E3%80%80%25evil", 400, "key_operator"),
        ("/lookup/evil%25%E2%80%83", 400, "key_operator"),
        ("/lookup/a%26%26b", 400, "key_operator"),
        ("/lookup/a%7C%7Cb", 400, "key_operator"),
        ("/lookup/a||b", 400, "key_operator"),
        ("/lookup/%7C%7C", 400, "key_operator"),
        ("/lookup/!x", 400, "key_operator"),
        ("/lookup/%zz", 400, "key_operator"),
        ("/lookup/evil%00.com", 400, "key_control_char"),
        ("/lookup/evil%1F.com", 400, "key_control_char"),
        ("/lookup/evil%1E.com", 400, "key_control_char"),
        ("/lookup/%C0%A1evil", 400, "key_invalid_encoding"),
        ("/lookup/%ED%A0%80", 400, "key_invalid_encoding"),
        ("/lookup/%FF", 400, "key_invalid_encoding"),
        ("/lookup/%20", 400, "key_empty"),
        ("/lookup/%E2%80%8B", 200, ""),
        ("/lookup/0", 200, ""),
        ("/lookup/%200%20", 200, ""),
        ("/lookup/%5B%21%5Devil", 200, ""),
        ("/lookup/!%5B.%5Dcom", 400, "key_operator"),
    ];
    for (path, status, code) in cases {
        let reply = get_raw(&harness, path).await;
        if status == 200 {
            assert_eq!(
                reply.status,
                200,
                "status of {path}; body: {}",
                reply.text()
            );
        } else {
            assert_error(&reply, status, code, path);
        }
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_unicode_lookalikes_stay_literal() {
    let harness = Harness::start(&[]).await;
    // Fullwidth `!` and `%`, right-to-left and zero-width marks: MISP compares bytes, so these
    // are plain values, and the service may send them as they are.
    let keys = [
        "\u{ff01}evil.com",
        "evil.com\u{ff05}",
        "\u{202e}!evil.com",
        "\u{200b}%evil",
        "evil%\u{200d}",
        "\u{feff}!x",
        "a\u{ff06}\u{ff06}b",
        "a\u{ff5c}\u{ff5c}b",
    ];
    for key in keys {
        let reply = harness.lookup(key).await;
        assert_eq!(
            reply.status,
            200,
            "status of {key:?}; body: {}",
            reply.text()
        );
        assert_eq!(reply.json["found"], json!(false), "found of {key:?}");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropin_operator_forms_rejected() {
    let harness = Harness::start(&[]).await;
    let bodies = [
        json!({"value": "!1.2.3.4"}),
        json!({"value": ["ok.example", "!1.2.3.4"]}),
        json!({"value": "ok.example|| !1.2.3.4"}),
        json!({"value": "ok.example||%evil"}),
        json!({"value": "a&&b"}),
        json!({"value": ["a&&b"]}),
        json!({"value": ["a||b"]}),
        json!({"value": "evil%"}),
        json!({"request": {"value": "%evil"}}),
        json!({"value": "x", "category": "!Network activity"}),
        json!({"value": "x", "category": ["Network activity", "%Payload"]}),
        json!({"value": "x", "category": "Network activity&&Payload delivery"}),
        json!({"value": "x", "type": "!ip-src"}),
        json!({"value": "x", "type": ["ip-src", "%"]}),
        json!({"value": {"OR": ["x"], "NOT": ["y"]}}),
        json!({"value": ""}),
        json!({"value": []}),
        json!({"value": "||"}),
        json!({"value": null}),
        json!({"value": 0}),
        json!({"value": false}),
        json!({"request": {"value": {"NOT": "x"}}}),
    ];
    for body in &bodies {
        let reply = post_json(&harness, "/attributes/restSearch", body).await;
        assert_eq!(
            reply.status,
            400,
            "status of {body}; body: {}",
            reply.text()
        );
        assert!(
            reply.header("content-type").starts_with("application/json"),
            "content type of {body}"
        );
    }
    assert_eq!(harness.emulator().search_requests(), 0, "searches sent");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropin_path_operator_forms_rejected() {
    let harness = Harness::start(&[]).await;
    let paths = [
        "/attributes/restSearch/value:!1.2.3.4",
        "/attributes/restSearch/value:%211.2.3.4",
        "/attributes/restSearch/value:%25211.2.3.4",
        "/attributes/restSearch/value:+!1.2.3.4",
        "/attributes/restSearch/value:evil%25",
        "/attributes/restSearch/value:a%26%26b",
        "/attributes/restSearch/json/!x",
        "/attributes/restSearch/json/%25x",
        "/attributes/restSearch/json/x%7C%7C!y",
        "/attributes/restSearch/json/null",
        "/attributes/restSearch/json/0",
        "/attributes/restSearch/json/false",
        "/attributes/restSearch/value:",
        "/attributes/restSearch/value:x/category:!Payload",
        "/attributes/restSearch/json/x/null/null/!ip-src",
        "/attributes/restSearch/json/x/y",
    ];
    for path in paths {
        let reply = get_raw(&harness, path).await;
        assert_eq!(
            reply.status,
            400,
            "status of {path}; body: {}",
            reply.text()
        );
        assert!(
            reply.json["url"].is_string(),
            "MISP's url member in the error of {path}"
        );
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_values_never_search_unfiltered() {
    let harness = Harness::start(&[]).await;
    for body in [
        json!({"value": "0"}),
        json!({"value": ["0"]}),
        json!({"value": " 0 "}),
        json!({"value": "0||0"}),
        json!({"value": ["0", "1.2.3.4|80"]}),
    ] {
        let reply = post_json(&harness, "/attributes/restSearch", &body).await;
        assert_eq!(
            reply.status,
            200,
            "status of {body}; body: {}",
            reply.text()
        );
        assert_eq!(
            reply.text(),
            "{\"response\": {\"Attribute\": []}}\n",
            "body of {body}"
        );
    }
    let reply = get_raw(&harness, "/attributes/restSearch/value:0").await;
    assert_eq!(reply.status, 200, "status of value:0");
    let bulk = post_json(&harness, "/lookup", &json!({"keys": ["0", " 0", "0 "]})).await;
    assert_eq!(bulk.status, 200, "bulk status");
    assert_eq!(harness.emulator().search_requests(), 0, "searches sent");
    harness.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Cache keys and answers.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filters_never_share_entry() {
    let harness = Harness::start(&[]).await;
    // The demo data set contains 203.0.113.77 as ip-dst, domain|ip and ip-dst|port, never as
    // ip-src.
    let unfiltered = harness.lookup(KNOWN_IP).await;
    assert_eq!(unfiltered.json["found"], json!(true), "unfiltered lookup");
    let url = format!("{}?type=ip-src", harness.lookup_url(KNOWN_IP));
    let filtered = read_reply(harness.client.get(&url)).await;
    assert_eq!(filtered.status, 200, "filtered status");
    assert_eq!(filtered.x_cache(), "miss", "a new filter is a new entry");
    assert_eq!(
        filtered.json["found"],
        json!(false),
        "found with type=ip-src"
    );
    let types: Vec<&str> = filtered.json["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .filter_map(|m| m["type"].as_str())
        .collect();
    assert!(
        types.iter().all(|t| *t == "ip-src"),
        "types of the filtered answer: {types:?}"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropin_parameter_order_shares_entry() {
    let harness = Harness::start(&[]).await;
    let first = json!({"value": EICAR_MD5, "type": "md5", "to_ids": 1, "limit": 5});
    let second = json!({"limit": "5", "to_ids": true, "type": ["md5"], "value": [EICAR_MD5]});
    let a = post_json(&harness, "/attributes/restSearch", &first).await;
    let b = post_json(&harness, "/attributes/restSearch", &second).await;
    assert_eq!(a.status, 200, "first status");
    assert_eq!(b.status, 200, "second status");
    assert_eq!(a.body, b.body, "same question, same answer");
    assert_eq!(b.x_cache(), "hit", "the reordered search reuses the entry");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_halves_only_exact() {
    let harness = Harness::start(&[]).await;
    // Prefixes, suffixes and LIKE-style near misses of stored values must not match.
    for key in [
        "203.0.113.7",
        "03.0.113.77",
        "203.0.113.77 443",
        "44",
        "eicar",
        "eicar.co",
        &EICAR_MD5[..31],
    ] {
        let reply = harness.lookup(key).await;
        assert_eq!(reply.status, 200, "status of {key}");
        assert_eq!(
            reply.json["found"],
            json!(false),
            "found of {key}: {}",
            reply.text()
        );
    }
    for key in ["EICAR.COM", &EICAR_MD5.to_uppercase()] {
        let reply = harness.lookup(key).await;
        assert_eq!(reply.json["found"], json!(true), "found of {key}");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_keys_keep_own_matches() {
    let harness = Harness::start(&["--batch-window", "50ms"]).await;
    let keys = [KNOWN_IP, "443", EICAR_MD5, "nothing.example", "eicar.com"];
    let replies = futures::future::join_all(keys.iter().map(|key| harness.lookup(key))).await;
    for (key, reply) in keys.iter().zip(&replies) {
        assert_eq!(reply.status, 200, "status of {key}");
        let value = reply.json["fields"]["value"].as_str().unwrap_or("");
        assert_eq!(value, key.to_lowercase(), "value field of {key}");
        for attribute in reply.json["matches"].as_array().expect("matches") {
            let stored = attribute["value"].as_str().unwrap_or("").to_lowercase();
            let halves: Vec<&str> = stored.split('|').collect();
            assert!(
                halves.contains(&key.to_lowercase().as_str()),
                "{key} got a match for {stored}"
            );
        }
    }
    harness.stop().await;
}

// ---------------------------------------------------------------------------------------------
// One caller must not break the service for the others.
// ---------------------------------------------------------------------------------------------

/// MISP (or a proxy in front of it) sends an `X-Rate-Limit-Reset` so large that adding it to
/// the current instant overflows. The service must keep answering other keys afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_rate_limit_reset_survives() {
    let harness = Harness::start(&["--misp-retries", "0"]).await;
    harness.emulator().set_fault(Fault::RateLimited {
        reset_seconds: u64::MAX,
    });
    let limited = harness.lookup("first.example").await;
    assert_ne!(
        limited.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the rate-limited lookup: {}",
        limited.text()
    );

    // MISP sends seconds left, so a value this large is a misreading by a proxy. Whatever
    // pause the service takes from it, it must not end in a panic, and the service must
    // not stop working for good.
    harness.emulator().set_fault(Fault::None);
    let lookup = harness.lookup(KNOWN_IP).await;
    assert_ne!(
        lookup.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "lookup after the bad header: {}",
        lookup.text()
    );
    assert_ne!(
        lookup.code(),
        "misp_unreachable",
        "lookup after the bad header: {}",
        lookup.text()
    );
    let dropin = post_json(
        &harness,
        "/attributes/restSearch",
        &json!({"value": KNOWN_IP}),
    )
    .await;
    assert_ne!(
        dropin.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "drop-in after the bad header: {}",
        dropin.text()
    );
    harness.stop().await;
}

/// A drop-in caller controls `limit` and the extras, so it controls how large MISP's answer
/// is. An answer over `--misp-max-body` is that caller's problem, not a sign that MISP is
/// down, and must not open the circuit breaker for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_answers_keep_breaker_closed() {
    let flags = [
        "--misp-max-body",
        "1024",
        "--breaker-failures",
        "2",
        "--breaker-cooldown",
        "60s",
        "--misp-retries",
        "0",
    ];
    let harness = Harness::start(&flags).await;
    for (index, limit) in [7, 8].into_iter().enumerate() {
        let body = json!({"value": EICAR_MD5, "includeContext": true, "limit": limit});
        let reply = post_json(&harness, "/attributes/restSearch", &body).await;
        assert_error(
            &reply,
            502,
            "misp_bad_response",
            &format!("large search {index}"),
        );
    }
    let other = harness.lookup("198.51.100.23").await;
    assert_eq!(
        other.status,
        200,
        "another caller's lookup after two oversized searches: {}",
        other.text()
    );
    harness.stop().await;
}

/// `page` reaches MISP unchecked up to 2^64-1. The emulator computes `(page - 1) * limit` as
/// its row offset, which overflows (a debug build panics), and the failed searches open the
/// shared breaker. NOTE: how a real MISP handles such a page was not checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_page_rejected_before_misp() {
    let flags = ["--breaker-failures", "2", "--misp-retries", "0"];
    let harness = Harness::start(&flags).await;
    for page in [u64::MAX, u64::MAX / 2] {
        let body = json!({"value": KNOWN_IP, "page": page});
        let reply = post_json(&harness, "/attributes/restSearch", &body).await;
        assert!(
            reply.status == 200 || reply.status == 400,
            "page {page}: status {} body {}",
            reply.status,
            reply.text()
        );
    }
    let other = harness.lookup("198.51.100.23").await;
    assert_eq!(
        other.status,
        200,
        "lookup after the searches: {}",
        other.text()
    );
    harness.stop().await;
}

/// Sends a 10 MB bulk body of a few million empty keys, which the service parses in full before
/// its 1,000-key check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_key_flood_bounded_memory() {
    let harness = Harness::start(&[]).await;
    let count = 2_000_000;
    let mut body = Vec::with_capacity(count * 3 + 16);
    body.extend_from_slice(b"{\"keys\":[");
    for index in 0..count {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"\"\"");
    }
    body.extend_from_slice(b"]}");
    assert!(body.len() < 6 * 1024 * 1024, "the body fits the bulk limit");

    let before = peak_rss_kib();
    let reply = post_bytes(&harness, "/lookup", body).await;
    let growth_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert_error(&reply, 400, "too_many_keys", "the key flood");
    assert!(
        growth_mib < 64,
        "a rejected 6 MB request grew the peak memory by {growth_mib} MiB"
    );
    harness.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Secrets and error formats.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_absent_from_outputs() {
    let api_token = "api-token-0123456789abcdef";
    let admin_token = "admin-token-0123456789abcdef";
    let harness = Harness::start(&["--api-token", api_token, "--admin-token", admin_token]).await;
    let authorized = |request: reqwest::RequestBuilder| request.header("X-Api-Token", api_token);

    let mut replies = Vec::new();
    replies.push(read_reply(authorized(harness.client.get(harness.lookup_url(KNOWN_IP)))).await);
    replies.push(read_reply(harness.client.get(harness.lookup_url(KNOWN_IP))).await);
    replies.push(
        read_reply(
            harness
                .client
                .get(harness.lookup_url(KNOWN_IP))
                .header("X-Api-Token", "wrong-token-0123456789"),
        )
        .await,
    );
    replies.push(harness.get("/readyz").await);
    harness.emulator().set_fault(Fault::AuthFailed);
    replies.push(
        read_reply(authorized(
            harness.client.get(harness.lookup_url("x.example")),
        ))
        .await,
    );
    replies.push(harness.get("/readyz").await);
    replies.push(
        read_reply(
            harness
                .client
                .delete(format!("{}/cache", harness.url))
                .header("X-Admin-Token", "wrong"),
        )
        .await,
    );
    let metrics = harness.metrics().await;
    for secret in [KEY, api_token, admin_token] {
        assert!(!metrics.contains(secret), "/metrics contains a secret");
        for reply in &replies {
            assert!(
                !reply.text().contains(secret),
                "a reply contains a secret: {}",
                reply.text()
            );
            for (name, value) in &reply.headers {
                assert!(
                    !value.to_str().unwrap_or("").contains(secret),
                    "header {name} contains a secret"
                );
            }
        }
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_get_json_errors() {
    let harness = Harness::start(&[]).await;
    let url = &harness.url;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (harness.client.get(format!("{url}/nope")), 404, "not_found"),
        (harness.client.head(format!("{url}/lookup/x")), 405, ""),
        (
            harness.client.put(format!("{url}/lookup")),
            405,
            "method_not_allowed",
        ),
        (
            harness
                .client
                .get(format!("{url}/lookup/x?type=ip&type=hash")),
            400,
            "invalid_query",
        ),
        (
            harness.client.get(format!("{url}/lookup/x?type=%FF")),
            400,
            "",
        ),
        (
            harness
                .client
                .post(format!("{url}/lookup"))
                .body("{\"keys\": [\"a\"], \"extra\": 1}"),
            400,
            "invalid_json",
        ),
        (
            harness
                .client
                .post(format!("{url}/lookup"))
                .header("content-encoding", "gzip")
                .body("not gzip"),
            400,
            "",
        ),
        (
            harness
                .client
                .post(format!("{url}/attributes/restSearch"))
                .body(vec![b'['; 100_000]),
            413,
            "payload_too_large",
        ),
        (
            harness
                .client
                .post(format!("{url}/attributes/restSearch"))
                .body("[".repeat(60_000)),
            400,
            "invalid_json",
        ),
        (
            harness
                .client
                .post(format!("{url}/attributes/restSearch"))
                .body("{\"request\": 1}"),
            400,
            "",
        ),
        (
            harness
                .client
                .get(format!("{url}/attributes/restSearch/{}", "a/".repeat(40))),
            400,
            "unsupported_parameter",
        ),
    ];
    for (index, (request, status, code)) in cases.into_iter().enumerate() {
        let reply = read_reply(request).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "status of case {index}; body: {}",
            reply.text()
        );
        if !code.is_empty() {
            assert_eq!(reply.code(), code, "code of case {index}");
        }
        if reply.status != StatusCode::METHOD_NOT_ALLOWED || !reply.body.is_empty() {
            assert!(
                reply.json.is_object(),
                "case {index} body is not JSON: {}",
                reply.text()
            );
        }
    }
    harness.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency.
// ---------------------------------------------------------------------------------------------

/// Callers that give up before MISP answers must not leave the key's load behind: the next
/// caller after MISP answered gets the cached answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_load_still_fills_cache() {
    let harness = Harness::start(&["--answer-deadline", "5s"]).await;
    harness.emulator().set_latency(Duration::from_millis(600));
    let short_client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..3 {
        let result = short_client.get(harness.lookup_url(KNOWN_IP)).send().await;
        assert!(result.is_err(), "the short client gives up");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.emulator().set_latency(Duration::ZERO);
    let reply = harness.lookup(KNOWN_IP).await;
    assert_eq!(reply.status, 200, "status after the abandoned load");
    assert_eq!(
        reply.x_cache(),
        "hit",
        "the abandoned load filled the cache"
    );
    assert_eq!(harness.emulator().search_requests(), 1, "one MISP request");
    harness.stop().await;
}

/// Many concurrent callers of a few keys: each key reaches MISP once and every caller gets
/// its own key's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_under_contention() {
    let harness = Harness::start(&["--batch-window", "20ms"]).await;
    harness.emulator().set_latency(Duration::from_millis(100));
    let keys = [KNOWN_IP, EICAR_SHA256, "none-1.example", "none-2.example"];
    let started = Instant::now();
    let replies =
        futures::future::join_all((0..80).map(|index| harness.lookup(keys[index % keys.len()])))
            .await;
    for (index, reply) in replies.iter().enumerate() {
        let key = keys[index % keys.len()];
        assert_eq!(reply.status, 200, "status of caller {index}");
        assert_eq!(
            reply.json["fields"]["value"],
            json!(key),
            "caller {index} got another key's answer"
        );
    }
    for key in keys {
        assert_eq!(
            harness.emulator().searches_for(key),
            1,
            "MISP searches for {key}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5), "answer time");
    let metrics = harness.metrics().await;
    let waiters = metric_value(&metrics, "misp_lookup_coalesced_waiters_total").unwrap_or(0.0);
    assert!(waiters >= 70.0, "coalesced waiters: {waiters}");
    harness.stop().await;
}

/// Loads that wait for a free `--misp-max-inflight` slot were admitted by the breaker before
/// MISP failed. Once the breaker opens they must fail fast instead of each sending MISP a
/// request that will time out too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_loads_shed_when_breaker_opens() {
    let flags = [
        "--misp-max-inflight",
        "1",
        "--misp-timeout",
        "300ms",
        "--answer-deadline",
        "100ms",
        "--breaker-failures",
        "1",
        "--breaker-cooldown",
        "60s",
        "--misp-retries",
        "0",
        "--batch-max",
        "1",
    ];
    let harness = Harness::start(&flags).await;
    harness.emulator().set_fault(Fault::Hang);

    let keys: Vec<String> = (0..5).map(|i| format!("queued-{i}.example")).collect();
    let replies = futures::future::join_all(keys.iter().map(|key| harness.lookup(key))).await;
    for (key, reply) in keys.iter().zip(&replies) {
        assert_error(reply, 504, "misp_timeout", key);
    }

    // Every queued load has had time to run: five MISP timeouts of 300 ms in a row.
    tokio::time::sleep(Duration::from_millis(1800)).await;

    let metrics = harness.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_misp_breaker_state"),
        Some(2.0),
        "the breaker is open"
    );
    assert_eq!(
        harness.emulator().search_requests(),
        1,
        "MISP requests after the first timeout opened the breaker"
    );
    harness.stop().await;
}

/// A router that reads a trailing `.json` as the response format removes it once. The service
/// removes every repetition, so `value:report.json.json` searches `report`, not `report.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_json_extension_stripped_once() {
    let harness = Harness::start(&[]).await;
    let reply = get_raw(&harness, "/attributes/restSearch/value:report.json.json").await;
    assert_eq!(reply.status, 200, "status; body: {}", reply.text());
    let sent = common::search_bodies(harness.emulator());
    assert_eq!(sent.len(), 1, "searches sent");
    assert_eq!(
        sent[0]["value"],
        json!(["report.json"]),
        "value sent to MISP"
    );
    harness.stop().await;
}

/// `DELETE /cache/{key}` promises to purge every entry of the key, but keys of kind `other`
/// keep their case, so a case variant keeps its cached answer although MISP compares values
/// case-insensitively and returns the same attributes for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_covers_case_variants() {
    let admin_token = "admin-token-0123456789abcdef";
    let harness = Harness::start(&["--admin-token", admin_token]).await;
    for key in ["EvilMutex-42", "evilmutex-42"] {
        let reply = harness.lookup(key).await;
        assert_eq!(reply.status, 200, "status of {key}");
    }
    let purge = read_reply(
        harness
            .client
            .delete(format!("{}/cache/evilmutex-42", harness.url))
            .header("X-Admin-Token", admin_token),
    )
    .await;
    assert_eq!(purge.status, 200, "purge status: {}", purge.text());
    let again = harness.lookup("EvilMutex-42").await;
    assert_eq!(
        again.x_cache(),
        "miss",
        "the case variant after the purge: {}",
        purge.text()
    );
    harness.stop().await;
}

/// A `--breaker-cooldown` too long to add to the current instant is accepted at start and
/// panics the first time the breaker opens, while the breaker lock is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_cooldown_rejected_at_start() {
    let args = common::serve_args(
        "http://127.0.0.1:9",
        &["--misp-key", KEY, "--breaker-cooldown", "300000000000years"],
    );
    let result = common::parse_config(&args);
    assert!(
        result.is_err(),
        "a cooldown of 300000000000 years is accepted"
    );
}

/// Two callers with their own MISP keys ask for the same value at the same time, through
/// `/lookup`, `POST /lookup` and the drop-in route, so that their misses share a batch
/// window. Each must see only the events its key may see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_callers_never_share_answers() {
    const CALLER_A: &str = "CallerKeyA000000000000000000000000000000";
    const CALLER_B: &str = "CallerKeyB000000000000000000000000000000";
    let emulator = common::start_emulator(common::emulator_config_with_keys(&[
        (CALLER_A, &["12"]),
        (CALLER_B, &["15"]),
    ]))
    .await;
    let harness = Harness::start_with(
        emulator,
        &["--forward-caller-key", "--batch-window", "50ms"],
    )
    .await;
    let value = "update-check.example";

    let mut requests = Vec::new();
    for (caller, header) in [(CALLER_A, "Authorization"), (CALLER_B, "X-MISP-Auth")] {
        requests.push((
            caller,
            harness
                .client
                .get(harness.lookup_url(value))
                .header(header, caller),
        ));
        requests.push((
            caller,
            harness
                .client
                .post(format!("{}/lookup", harness.url))
                .header(header, caller)
                .json(&json!({"keys": [value]})),
        ));
        requests.push((
            caller,
            harness
                .client
                .post(format!("{}/attributes/restSearch", harness.url))
                .header(header, caller)
                .json(&json!({"value": value})),
        ));
    }
    let replies = futures::future::join_all(
        requests
            .into_iter()
            .map(|(caller, request)| async move { (caller, read_reply(request).await) }),
    )
    .await;
    for (index, (caller, reply)) in replies.iter().enumerate() {
        assert_eq!(
            reply.status,
            200,
            "status of request {index}: {}",
            reply.text()
        );
        let text = reply.text();
        let (own, other) = if *caller == CALLER_A {
            ("\"event_id\":\"12\"", "\"event_id\":\"15\"")
        } else {
            ("\"event_id\":\"15\"", "\"event_id\":\"12\"")
        };
        assert!(
            text.contains(own),
            "request {index} misses its own event: {text}"
        );
        assert!(
            !text.contains(other),
            "request {index} sees the other caller's event: {text}"
        );
    }
    harness.stop().await;
}
