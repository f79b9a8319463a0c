//! HTTP contract of the drop-in `/attributes/restSearch` endpoint: MISP's request forms in,
//! MISP's own response bytes out, run against the real service and the MISP emulator.

mod common;

use common::{
    EICAR_MD5, EICAR_SHA1, EICAR_SHA256, Harness, KEY, Reply, fixture, misp_search, read_reply,
    start_emulator,
};
use misp_lookup::demo::EmulatorConfig;
use misp_lookup::demo::dataset::Dataset;
use serde_json::{Value, json};

/// MISP's body for a search without a match.
const EMPTY_BODY: &str = "{\"response\": {\"Attribute\": []}}\n";

/// Parameters the service supports, which an `unsupported_parameter` error must list.
const SUPPORTED: &[&str] = &[
    "value",
    "type",
    "category",
    "to_ids",
    "published",
    "deleted",
    "limit",
    "page",
    "returnFormat",
    "includeEventTags",
    "includeEventUuid",
    "includeContext",
    "includeSightings",
    "includeCorrelations",
    "includeDecayScore",
];

async fn post(harness: &Harness, body: &Value) -> Reply {
    read_reply(
        harness
            .client
            .post(format!("{}/attributes/restSearch", harness.url))
            .json(body),
    )
    .await
}

async fn get(harness: &Harness, path: &str) -> Reply {
    read_reply(harness.client.get(format!("{}{path}", harness.url))).await
}

/// Asserts a drop-in error: status, `code`, and MISP's `name` and `url` members.
fn assert_dropin_error(reply: &Reply, status: u16, code: &str, path: &str, context: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status of {context}; body: {}",
        reply.text()
    );
    assert_eq!(reply.code(), code, "error code of {context}");
    let message = reply.json["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "the {context} error has no message");
    assert_eq!(
        reply.json["name"].as_str(),
        Some(message),
        "name member of the {context} error"
    );
    assert_eq!(reply.json["url"], path, "url member of the {context} error");
}

/// Asserts that the service's body equals the emulator's own bytes for `direct`.
async fn assert_same_as_misp(harness: &Harness, reply: &Reply, direct: &Value, context: &str) {
    let (status, expected) = misp_search(&harness.misp_url, KEY, direct).await;
    assert_eq!(
        status, 200,
        "status of the direct MISP search for {context}"
    );
    assert_eq!(reply.status, 200, "status of {context}: {}", reply.text());
    assert_eq!(
        reply.text(),
        String::from_utf8_lossy(&expected),
        "body of {context} differs from MISP's"
    );
    assert_eq!(
        reply.header("content-type"),
        "application/json",
        "content type of {context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_forms_return_misp_bytes() {
    let harness = Harness::start(&[]).await;
    // (path after /attributes/restSearch, the same search sent to MISP directly)
    let cases = [
        ("/value:203.0.113.77", json!({"value": "203.0.113.77"})),
        (
            "/value:203.0.113.77/type:ip-dst",
            json!({"value": "203.0.113.77", "type": "ip-dst"}),
        ),
        (
            "/json/203.0.113.77",
            json!({"returnFormat": "json", "value": "203.0.113.77"}),
        ),
        (
            "/value:2001:db8::bad:1",
            json!({"value": "2001:db8::bad:1"}),
        ),
        (
            "/value:update-check.example/to_ids:1",
            json!({"value": "update-check.example", "to_ids": 1}),
        ),
        (
            "/value:http%3A%2F%2Fmalware.example%2Fpayload.exe",
            json!({"value": "http://malware.example/payload.exe"}),
        ),
    ];

    for (path, direct) in &cases {
        let reply = get(&harness, &format!("/attributes/restSearch{path}")).await;
        assert_same_as_misp(&harness, &reply, direct, &format!("GET {path}")).await;
        let parsed = reply.json["response"]["Attribute"].as_array().map(Vec::len);
        assert!(
            parsed.is_some_and(|count| count > 0),
            "GET {path} found nothing: {}",
            reply.text()
        );
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_forms_return_misp_bytes() {
    let harness = Harness::start(&[]).await;
    // (request body, the same search sent to MISP directly)
    let cases = [
        (
            json!({"value": "update-check.example"}),
            json!({"value": "update-check.example"}),
        ),
        (
            json!({"request": {"value": EICAR_SHA256, "type": "sha256"}}),
            json!({"value": EICAR_SHA256, "type": "sha256"}),
        ),
        (
            json!({"value": [EICAR_MD5, EICAR_SHA1, "192.0.2.44"]}),
            json!({"value": [EICAR_MD5, EICAR_SHA1, "192.0.2.44"]}),
        ),
        (
            json!({"value": "203.0.113.77||192.0.2.44"}),
            json!({"value": ["203.0.113.77", "192.0.2.44"]}),
        ),
        (
            json!({"value": "mb4z3nlfyrcjnoqf.onion", "includeEventTags": true,
                   "includeContext": 1, "includeEventUuid": "1"}),
            json!({"value": "mb4z3nlfyrcjnoqf.onion", "includeEventTags": 1,
                   "includeContext": 1, "includeEventUuid": 1}),
        ),
        (
            json!({"value": "203.0.113.77", "returnFormat": "json", "limit": 1}),
            json!({"value": "203.0.113.77", "returnFormat": "json", "limit": 1}),
        ),
    ];

    for (body, direct) in &cases {
        let reply = post(&harness, body).await;
        assert_same_as_misp(&harness, &reply, direct, &format!("POST {body}")).await;
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_fixture_is_byte_identical() {
    let wire = fixture("restsearch-basic.json");
    let dataset = Dataset::from_rest_search_json(&wire).expect("the fixture parses");
    let values: Vec<Value> = dataset
        .attributes
        .iter()
        .map(|attribute| attribute["value"].clone())
        .collect();
    let emulator = start_emulator(EmulatorConfig::new(dataset, KEY)).await;
    let harness = Harness::start_with(emulator, &["--misp-key", KEY]).await;

    let reply = post(&harness, &json!({"value": values})).await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(reply.text(), wire, "body differs from the fixture");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_is_misp_empty_body() {
    let harness = Harness::start(&[]).await;

    let posted = post(&harness, &json!({"value": "192.0.2.1"})).await;
    let got = get(&harness, "/attributes/restSearch/value:192.0.2.1").await;

    for (context, reply) in [("POST", &posted), ("GET", &got)] {
        assert_eq!(reply.status, 200, "status of the {context} miss");
        assert_eq!(reply.text(), EMPTY_BODY, "body of the {context} miss");
    }
    assert_eq!(
        fixture("restsearch-empty.json"),
        EMPTY_BODY,
        "the empty-result fixture and this test disagree"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatchable_values_skip_misp() {
    let harness = Harness::start(&[]).await;

    for body in [
        json!({"value": "0"}),
        json!({"value": "192.0.2.44|443"}),
        json!({"value": ["0", "203.0.113.77|443"]}),
    ] {
        let reply = post(&harness, &body).await;
        assert_eq!(reply.status, 200, "status of {body}: {}", reply.text());
        assert_eq!(reply.text(), EMPTY_BODY, "body of {body}");
    }
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "an unmatchable value reached MISP, which would read 0 as no filter"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_parameter_rejected() {
    let harness = Harness::start(&[]).await;
    let path = "/attributes/restSearch";

    let posted = post(&harness, &json!({"value": "203.0.113.77", "org": "1"})).await;
    let got_path = "/attributes/restSearch/value:203.0.113.77/org:1";
    let got = get(&harness, got_path).await;
    let format = post(
        &harness,
        &json!({"value": "x.example", "returnFormat": "csv"}),
    )
    .await;
    let limit = post(&harness, &json!({"value": "x.example", "limit": 1_000_000})).await;
    let bad_type = post(
        &harness,
        &json!({"value": "x.example", "type": "ipaddress"}),
    )
    .await;

    assert_dropin_error(&posted, 400, "unsupported_parameter", path, "POST with org");
    assert_dropin_error(&got, 400, "unsupported_parameter", got_path, "GET with org");
    for (context, reply) in [("POST", &posted), ("GET", &got)] {
        let message = reply.json["message"].as_str().unwrap_or("");
        assert!(
            message.contains("org"),
            "{context} message does not name org"
        );
        for name in SUPPORTED {
            assert!(
                message.contains(name),
                "{context} message does not list {name}: {message}"
            );
        }
    }
    assert_dropin_error(
        &format,
        400,
        "unsupported_parameter",
        path,
        "returnFormat csv",
    );
    assert_dropin_error(&limit, 400, "unsupported_parameter", path, "limit 1000000");
    assert_dropin_error(
        &bad_type,
        400,
        "unsupported_parameter",
        path,
        "type ipaddress",
    );
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "a rejected search reached MISP"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_value_rejected() {
    let harness = Harness::start(&[]).await;
    let path = "/attributes/restSearch";

    for body in [
        json!({}),
        json!({"type": "ip-dst"}),
        json!({"request": {"type": "ip-dst"}}),
        json!({"value": []}),
    ] {
        let reply = post(&harness, &body).await;
        assert_dropin_error(&reply, 400, "missing_value", path, &format!("POST {body}"));
    }
    let empty = read_reply(
        harness
            .client
            .post(format!("{}{path}", harness.url))
            .header("Content-Type", "application/json"),
    )
    .await;
    assert_dropin_error(&empty, 400, "missing_value", path, "POST without body");
    for get_path in [path, "/attributes/restSearch/type:ip-dst"] {
        let reply = get(&harness, get_path).await;
        assert_dropin_error(&reply, 400, "missing_value", get_path, "GET without value");
    }
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "a search without a value reached MISP"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_value_rejected() {
    let harness = Harness::start(&[]).await;
    let path = "/attributes/restSearch";

    for body in [
        json!({"value": "!203.0.113.77"}),
        json!({"value": "%.example"}),
        json!({"value": "a&&b"}),
        json!({"value": ["phish.example", "phish%"]}),
        json!({"request": {"value": "!1.2.3.4"}}),
        json!({"value": "phish.example", "category": "%Network%"}),
    ] {
        let reply = post(&harness, &body).await;
        assert_dropin_error(&reply, 400, "key_operator", path, &format!("POST {body}"));
    }
    for get_path in [
        "/attributes/restSearch/value:%25evil%25",
        "/attributes/restSearch/value:!203.0.113.77",
    ] {
        let reply = get(&harness, get_path).await;
        assert_dropin_error(&reply, 400, "key_operator", get_path, "GET operator");
    }
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "an operator value reached MISP"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_search_is_cache_hit() {
    let harness = Harness::start(&[]).await;
    let body = json!({"value": "203.0.113.77", "type": ["ip-dst", "domain|ip"]});
    let reordered = json!({"type": ["ip-dst", "domain|ip"], "value": "203.0.113.77"});

    let first = post(&harness, &body).await;
    let second = post(&harness, &body).await;
    let third = post(&harness, &reordered).await;
    let path = "/attributes/restSearch/value:203.0.113.77";
    let got_first = get(&harness, path).await;
    let got_second = get(&harness, path).await;

    assert_eq!(first.status, 200, "status: {}", first.text());
    assert_eq!(first.x_cache(), "miss", "X-Cache of the first search");
    assert_eq!(second.x_cache(), "hit", "X-Cache of the same search");
    assert_eq!(second.body, first.body, "body of the cached search");
    assert_eq!(third.x_cache(), "hit", "X-Cache with members reordered");
    assert_eq!(got_first.x_cache(), "miss", "X-Cache of the first GET");
    assert_eq!(got_second.x_cache(), "hit", "X-Cache of the second GET");
    assert_eq!(harness.emulator().search_requests(), 2, "MISP searches");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropin_requires_api_token() {
    let token = "DropinApiToken-0123456789";
    let harness = Harness::start(&["--api-token", token]).await;
    let url = format!("{}/attributes/restSearch", harness.url);
    let body = json!({"value": "203.0.113.77"});

    let without = read_reply(harness.client.post(&url).json(&body)).await;
    let with = read_reply(
        harness
            .client
            .post(&url)
            .header("Authorization", format!("Bearer {token}"))
            .json(&body),
    )
    .await;

    assert_dropin_error(
        &without,
        401,
        "unauthorized",
        "/attributes/restSearch",
        "no token",
    );
    assert_eq!(with.status, 200, "status with the token: {}", with.text());
    assert_eq!(harness.emulator().search_requests(), 1, "MISP searches");
    harness.stop().await;
}
