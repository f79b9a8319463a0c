//! HTTP contract of `GET /lookup/{key}` and the service's own endpoints, run against the real
//! service and the MISP emulator on 127.0.0.1.
//!
//! Expected values come from the demo data set in `src/demo/dataset.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{
    EICAR_MD5, EICAR_SHA1, EICAR_SHA256, Harness, KEY, Reply, client, emulator_config_with_keys,
    get_json, graylog_encode, metric_value, parse_config, read_reply, search_bodies, serve_args,
    start_emulator,
};
use misp_lookup::config::Secret;
use misp_lookup::demo::Fault;
use misp_lookup::indicator;
use misp_lookup::lookup::{Caller, Service};
use misp_lookup::metrics::Metrics;
use serde_json::{Value, json};

/// A token for `--api-token`, at least 16 characters as the service requires.
const API_TOKEN: &str = "LookupApiToken-0123456789";

/// Caller keys for `--forward-caller-key` tests: 40 alphanumerics each, as MISP requires.
const CALLER_A: &str = "CallerKeyA000000000000000000000000000000";
const CALLER_B: &str = "CallerKeyB000000000000000000000000000000";
const CALLER_UNKNOWN: &str = "CallerKeyZ000000000000000000000000000000";

/// Base URL given as `--misp-public-url` in tests of `event_url`.
const PUBLIC_URL: &str = "https://misp.example.org";

/// Asserts the status and error `code` of a rejected request.
fn assert_error(reply: &Reply, status: u16, code: &str, context: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status of {context}; body: {}",
        reply.text()
    );
    assert_eq!(reply.code(), code, "error code of {context}");
    assert!(
        reply.header("content-type").starts_with("application/json"),
        "content type of the {context} error is {:?}",
        reply.header("content-type")
    );
    let message = reply.json["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "the {context} error has no message");
}

/// Returns `fields.<name>` of a lookup body.
fn field<'a>(reply: &'a Reply, name: &str) -> &'a Value {
    &reply.json["fields"][name]
}

/// Returns the `id` of every entry of `matches`, in order.
fn match_ids(reply: &Reply) -> Vec<String> {
    reply.json["matches"]
        .as_array()
        .map(|matches| {
            matches
                .iter()
                .map(|attribute| attribute["id"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the `value` list of the last restSearch request the emulator received.
fn last_search_values(harness: &Harness) -> Value {
    let bodies = search_bodies(harness.emulator());
    let last = bodies.last().expect("no restSearch request reached MISP");
    last["value"].clone()
}

#[test]
fn graylog_encoding_matches_java() {
    let cases = [
        ("2001:db8::bad:1", "2001%3Adb8%3A%3Abad%3A1"),
        (
            "http://malware.example/payload.exe",
            "http%3A%2F%2Fmalware.example%2Fpayload.exe",
        ),
        ("a+b c", "a%2Bb%20c"),
        ("bücher.example", "b%C3%BCcher.example"),
        ("x%41y", "x%2541y"),
        ("A-z_0.9*", "A-z_0.9*"),
        ("~'()", "%7E%27%28%29"),
    ];
    for (key, expected) in cases {
        assert_eq!(graylog_encode(key), expected, "encoding of {key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_keys_decode_once() {
    let harness = Harness::start(&[]).await;
    // (key as Graylog has it, normalized value, kind, found)
    let cases = [
        ("2001:db8::bad:1", "2001:db8::bad:1", "ipv6", true),
        (
            "http://malware.example/payload.exe",
            "http://malware.example/payload.exe",
            "url",
            true,
        ),
        (
            "Action required: invoice overdue",
            "Action required: invoice overdue",
            "other",
            true,
        ),
        ("a+b", "a+b", "other", false),
        ("x%41y", "x%41y", "other", false),
        ("x%2Fy", "x%2Fy", "other", false),
        ("bücher.example", "xn--bcher-kva.example", "domain", false),
    ];

    for (key, value, kind, found) in cases {
        let reply = harness.lookup(key).await;

        assert_eq!(reply.status, 200, "status of {key:?}: {}", reply.text());
        assert_eq!(field(&reply, "value"), value, "fields.value of {key:?}");
        assert_eq!(field(&reply, "kind"), kind, "fields.kind of {key:?}");
        assert_eq!(reply.json["found"], found, "found of {key:?}");
        assert_eq!(
            last_search_values(&harness),
            json!([value]),
            "value list MISP received for {key:?}"
        );
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_body_eicar_sha256() {
    let harness = Harness::start(&["--misp-public-url", PUBLIC_URL]).await;

    let reply = harness.lookup(EICAR_SHA256).await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        "application/json",
        "content type"
    );
    assert_eq!(reply.json["found"], true, "found");
    // Attribute 1008 (filename|sha256) is newer than 1007 (sha256), and both are to_ids.
    let expected = [
        ("found", json!(true)),
        ("value", json!(EICAR_SHA256)),
        ("kind", json!("sha256")),
        ("type", json!("filename|sha256")),
        ("category", json!("Payload delivery")),
        ("event_id", json!("12")),
        ("event_uuid", json!("1d6f3b52-8e4c-4a7b-8c2d-3f5e7a9b1c12")),
        (
            "event_info",
            json!("EICAR test file delivered as a fake updater"),
        ),
        (
            "attribute_uuid",
            json!("7c1e8a07-3d9b-4f2a-9b7c-8e0d2f4a6b08"),
        ),
        ("to_ids", json!(true)),
        (
            "tags",
            json!([
                "tlp:white",
                "misp-galaxy:mitre-attack-pattern=\"Malicious File - T1204.002\""
            ]),
        ),
        ("match_count", json!(2)),
        ("match_count_capped", json!(false)),
        ("event_ids", json!(["12"])),
        ("event_url", json!(format!("{PUBLIC_URL}/events/view/12"))),
    ];
    for (name, value) in &expected {
        assert_eq!(field(&reply, name), value, "fields.{name}");
    }
    let fields = reply.json["fields"]
        .as_object()
        .expect("fields is an object");
    assert_eq!(
        fields.len(),
        expected.len(),
        "fields has members beyond the expected ones: {:?}",
        fields.keys().collect::<Vec<_>>()
    );
    assert!(
        fields.get("first_seen").is_none(),
        "first_seen is present although the attribute has none"
    );
    assert_eq!(match_ids(&reply), ["1008", "1007"], "match order");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_body_value_in_two_events() {
    let harness = Harness::start(&[]).await;

    let reply = harness.lookup("update-check.example").await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    // 1011 (event 12) is to_ids and the newer 1020 (event 15) is not, so 1011 comes first.
    assert_eq!(match_ids(&reply), ["1011", "1020"], "match order");
    assert_eq!(
        field(&reply, "event_id"),
        "12",
        "event_id of the first match"
    );
    assert_eq!(field(&reply, "to_ids"), true, "to_ids of the first match");
    assert_eq!(field(&reply, "type"), "hostname", "type");
    assert_eq!(field(&reply, "kind"), "domain", "kind");
    assert_eq!(field(&reply, "match_count"), 2, "match_count");
    assert_eq!(
        field(&reply, "event_ids"),
        &json!(["12", "15"]),
        "event_ids"
    );
    assert_eq!(
        field(&reply, "event_url"),
        &json!(format!("{}/events/view/12", harness.misp_url)),
        "event_url defaults to the MISP URL"
    );
    assert_eq!(
        field(&reply, "tags"),
        &json!([
            "tlp:white",
            "misp-galaxy:mitre-attack-pattern=\"Malicious File - T1204.002\"",
            "misp-galaxy:threat-actor=\"Demo Actor\""
        ]),
        "tags of both events, tlp:white once"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_body_attribute_and_event_tags() {
    let harness = Harness::start(&[]).await;

    let reply = harness.lookup("mb4z3nlfyrcjnoqf.onion").await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(field(&reply, "kind"), "domain", "kind");
    assert_eq!(field(&reply, "event_id"), "13", "event_id");
    assert_eq!(
        field(&reply, "event_info"),
        "Onion command-and-control infrastructure",
        "event_info"
    );
    assert_eq!(
        field(&reply, "tags"),
        &json!([
            "tlp:amber",
            "tor:exit-or-hidden-service",
            "misp-galaxy:mitre-attack-pattern=\"Multi-hop Proxy - T1090.003\""
        ]),
        "attribute tags, then event tags, tlp:amber once"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_body_first_and_last_seen() {
    let harness = Harness::start(&[]).await;

    let reply = harness.lookup("198.51.100.23").await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(field(&reply, "type"), "ip-src", "type");
    assert_eq!(
        field(&reply, "first_seen"),
        "2026-03-01T10:00:00.000000+00:00",
        "first_seen"
    );
    assert_eq!(
        field(&reply, "last_seen"),
        "2026-03-08T18:30:00.000000+00:00",
        "last_seen"
    );
    assert_eq!(field(&reply, "event_ids"), &json!(["14"]), "event_ids");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_count_capped_at_limit() {
    let harness = Harness::start(&["--misp-limit", "1"]).await;

    let reply = harness.lookup("update-check.example").await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(field(&reply, "match_count"), 1, "match_count");
    assert_eq!(
        field(&reply, "match_count_capped"),
        true,
        "MISP sent as many attributes as the limit, so more may exist"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_body_is_exact() {
    let harness = Harness::start(&[]).await;

    let reply = harness.lookup("192.0.2.1").await;

    assert_eq!(reply.status, 200, "status of a miss");
    assert_eq!(
        reply.text(),
        r#"{"found":false,"fields":{"found":false,"value":"192.0.2.1","kind":"ipv4"},"matches":[]}"#,
        "miss body"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_attribute_is_a_miss() {
    let harness = Harness::start(&[]).await;

    let reply = harness.lookup("retired-dropper.example").await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(
        reply.json["found"], false,
        "a soft-deleted attribute was reported"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_flat_values() {
    let harness = Harness::start(&[]).await;
    let keys = [
        EICAR_MD5,
        EICAR_SHA1,
        EICAR_SHA256,
        "203.0.113.77",
        "update-check.example",
        "198.51.100.23",
        "phisher@bad-sender.example",
        "https://phish.example/login?session=1",
        "masscan/1.3 (https://scanner.example/about)",
        "192.0.2.1",
        "0",
    ];

    for key in keys {
        let reply = harness.lookup(key).await;
        assert_eq!(reply.status, 200, "status of {key:?}: {}", reply.text());
        let fields = reply.json["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("fields of {key:?} is not an object"));
        for (name, value) in fields {
            let flat = match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
                Value::Array(items) => items.iter().all(Value::is_string),
                Value::Null | Value::Object(_) => false,
            };
            assert!(flat, "fields.{name} of {key:?} is not flat: {value}");
        }
        if let Some(tags) = fields.get("tags").and_then(Value::as_array) {
            let mut unique = tags.clone();
            unique.sort_by_key(|tag| tag.to_string());
            unique.dedup();
            assert_eq!(unique.len(), tags.len(), "duplicate tags for {key:?}");
        }
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_halves_are_found() {
    let harness = Harness::start(&[]).await;
    // (key, attribute ids expected in order, type of the first)
    let cases = [
        ("192.0.2.44", vec!["1016"], "ip-dst|port"),
        ("203.0.113.77", vec!["1015", "1014"], "domain|ip"),
        ("c2.malware.example", vec!["1015"], "domain|ip"),
        (EICAR_SHA256, vec!["1008", "1007"], "filename|sha256"),
        (EICAR_MD5, vec!["1009", "1005"], "malware-sample"),
    ];

    for (key, ids, first_type) in cases {
        let reply = harness.lookup(key).await;

        assert_eq!(reply.status, 200, "status of {key:?}: {}", reply.text());
        assert_eq!(match_ids(&reply), ids, "matches of {key:?}");
        assert_eq!(field(&reply, "type"), first_type, "type of {key:?}");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatchable_keys_skip_misp() {
    let harness = Harness::start(&[]).await;

    for key in ["192.0.2.44|443", "203.0.113.77|443", "0", " 0 "] {
        let reply = harness.lookup(key).await;

        assert_eq!(reply.status, 200, "status of {key:?}: {}", reply.text());
        assert_eq!(reply.json["found"], false, "found of {key:?}");
        assert_eq!(field(&reply, "kind"), "other", "kind of {key:?}");
        assert_eq!(reply.json["matches"], json!([]), "matches of {key:?}");
    }
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "an unmatchable key reached MISP"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivalent_keys_share_entry() {
    let harness = Harness::start(&[]).await;
    // (first key, equivalent key, normalized value)
    let cases = [
        (
            EICAR_SHA256.to_uppercase(),
            EICAR_SHA256.to_owned(),
            EICAR_SHA256,
        ),
        (
            "PHISH.EXAMPLE.".to_owned(),
            "phish.example".to_owned(),
            "phish.example",
        ),
        (
            "hxxp://malware[.]example/payload.exe".to_owned(),
            "http://malware.example/payload.exe".to_owned(),
            "http://malware.example/payload.exe",
        ),
        (
            "2001:0DB8:0000:0000:0000:0000:0BAD:0001".to_owned(),
            "2001:db8::bad:1".to_owned(),
            "2001:db8::bad:1",
        ),
        (
            " 203.0.113.77\t".to_owned(),
            "203.0.113.77".to_owned(),
            "203.0.113.77",
        ),
    ];

    for (first, second, value) in &cases {
        let cold = harness.lookup(first).await;
        let warm = harness.lookup(second).await;

        assert_eq!(cold.status, 200, "status of {first:?}: {}", cold.text());
        assert_eq!(cold.json["found"], true, "found of {first:?}");
        assert_eq!(field(&cold, "value"), value, "fields.value of {first:?}");
        assert_eq!(cold.x_cache(), "miss", "X-Cache of {first:?}");
        assert_eq!(
            warm.x_cache(),
            "hit",
            "X-Cache of {second:?} after {first:?}"
        );
        assert_eq!(warm.body, cold.body, "body of {second:?} and {first:?}");
        assert_eq!(
            harness.emulator().searches_for(value),
            1,
            "MISP searches for {value:?}"
        );
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_keys_return_400() {
    let harness = Harness::start(&[]).await;
    let too_long = "a".repeat(4097);
    // (raw path segment after /lookup/, expected code)
    let cases = [
        ("%20".to_owned(), "key_empty"),
        ("%09%20%0A".to_owned(), "key_empty"),
        (too_long.clone(), "key_too_long"),
        (graylog_encode("!1.2.3.4"), "key_operator"),
        (graylog_encode("%evil%"), "key_operator"),
        (graylog_encode("%.example"), "key_operator"),
        (graylog_encode("a||b"), "key_operator"),
        (graylog_encode("a&&b"), "key_operator"),
        (graylog_encode("hxxp://x[.]example||y"), "key_operator"),
        ("%00".to_owned(), "key_control_char"),
        ("%01".to_owned(), "key_control_char"),
        ("a%00b".to_owned(), "key_control_char"),
        ("%FF".to_owned(), "key_invalid_encoding"),
    ];

    for (segment, code) in &cases {
        let url = format!("{}/lookup/{segment}", harness.url);
        let reply = get_json(&harness.client, &url).await;
        let shown: String = segment.chars().take(40).collect();
        assert_error(&reply, 400, code, &format!("key {shown:?}"));
    }
    let invalid_type = harness
        .get(&format!("/lookup/{EICAR_SHA256}?type=nonsense"))
        .await;
    assert_error(&invalid_type, 400, "invalid_type", "type=nonsense");
    let message = invalid_type.json["message"].as_str().unwrap_or("");
    assert!(
        message.contains("nonsense"),
        "the invalid_type message does not name the type: {message}"
    );

    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "a rejected key reached MISP"
    );
    let metrics = harness.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "misp_lookup_rejected_keys_total{code=\"key_operator\"}"
        ),
        Some(6.0),
        "rejected key_operator count"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_key_is_accepted() {
    let harness = Harness::start(&[]).await;

    let reply = harness.lookup(&"a".repeat(4096)).await;

    assert_eq!(
        reply.status,
        200,
        "status of a 4096-byte key: {}",
        reply.text()
    );
    assert_eq!(reply.json["found"], false, "found");
    assert_eq!(harness.emulator().search_requests(), 1, "MISP searches");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filter_narrows_search() {
    let harness = Harness::start(&[]).await;
    // (key, type=, types MISP must receive, attribute ids found)
    let cases = [
        (EICAR_SHA256, "sha256", json!(["sha256"]), vec!["1007"]),
        (
            "203.0.113.77",
            "ip",
            json!([
                "domain|ip",
                "ip-dst",
                "ip-dst|port",
                "ip-src",
                "ip-src|port"
            ]),
            vec!["1015", "1014"],
        ),
        (
            "203.0.113.77",
            "ip-src,ip-dst",
            json!(["ip-dst", "ip-src"]),
            vec!["1014"],
        ),
    ];

    for (key, filter, types, ids) in cases {
        let path = format!(
            "/lookup/{}?type={}",
            graylog_encode(key),
            graylog_encode(filter)
        );
        let reply = harness.get(&path).await;

        assert_eq!(reply.status, 200, "status of {path}: {}", reply.text());
        assert_eq!(match_ids(&reply), ids, "matches of {path}");
        let bodies = search_bodies(harness.emulator());
        let last = bodies.last().expect("no restSearch request reached MISP");
        assert_eq!(last["type"], types, "type list MISP received for {path}");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filter_order_shares_entry() {
    let harness = Harness::start(&[]).await;

    let first = harness.get("/lookup/203.0.113.77?type=ip-src,ip-dst").await;
    let second = harness.get("/lookup/203.0.113.77?type=ip-dst,ip-src").await;
    let unfiltered = harness.get("/lookup/203.0.113.77").await;

    assert_eq!(first.x_cache(), "miss", "X-Cache of the first filter");
    assert_eq!(
        second.x_cache(),
        "hit",
        "X-Cache of the same filter reordered"
    );
    assert_eq!(
        unfiltered.x_cache(),
        "miss",
        "a lookup without type= shared the filtered entry"
    );
    assert_eq!(harness.emulator().search_requests(), 2, "MISP searches");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filter_excluding_kind_skips_misp() {
    let harness = Harness::start(&[]).await;

    let reply = harness
        .get(&format!("/lookup/{EICAR_SHA256}?type=ip"))
        .await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(reply.json["found"], false, "found");
    assert_eq!(field(&reply, "kind"), "sha256", "kind");
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "a sha256 key with type=ip reached MISP"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misp_request_shape() {
    let harness = Harness::start(&["--misp-limit", "7"]).await;

    let reply = harness.lookup("203.0.113.77").await;
    assert_eq!(reply.status, 200, "status: {}", reply.text());

    let requests: Vec<_> = harness
        .emulator()
        .requests()
        .into_iter()
        .filter(|request| request.path.starts_with("/attributes/restSearch"))
        .collect();
    assert_eq!(requests.len(), 1, "restSearch requests");
    let request = &requests[0];
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or("")
    };
    assert_eq!(request.method, "POST", "method");
    assert_eq!(request.path, "/attributes/restSearch", "path");
    assert_eq!(request.query, "", "query string");
    assert_eq!(header("accept"), "application/json", "Accept");
    assert_eq!(header("content-type"), "application/json", "Content-Type");
    assert_eq!(header("authorization"), KEY, "Authorization");
    assert_eq!(header("x-misp-auth"), "", "X-MISP-Auth is not sent");
    let body: Value = serde_json::from_slice(&request.body).expect("the body is JSON");
    assert_eq!(body["returnFormat"], "json", "returnFormat");
    assert_eq!(body["limit"], 7, "limit");
    assert_eq!(body["value"], json!(["203.0.113.77"]), "value");
    assert_eq!(body["includeEventTags"], true, "includeEventTags");
    assert_eq!(body["includeEventUuid"], true, "includeEventUuid");
    assert!(body.get("type").is_none(), "type is sent without type=");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cache_miss_then_hit() {
    let harness = Harness::start(&[]).await;

    for key in ["203.0.113.77", "192.0.2.1"] {
        let first = harness.lookup(key).await;
        let second = harness.lookup(key).await;

        assert_eq!(first.x_cache(), "miss", "X-Cache of the first {key:?}");
        assert_eq!(second.x_cache(), "hit", "X-Cache of the second {key:?}");
        assert_eq!(second.body, first.body, "body of the second {key:?}");
        assert_eq!(
            harness.emulator().searches_for(key),
            1,
            "MISP searches for {key:?}"
        );
    }
    let metrics = harness.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_cache_hits_total{tier=\"memory\"}"),
        Some(2.0),
        "cache hits"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expiry_hit_and_miss() {
    // `--stale-max 0s` turns stale answers off, so an expired entry is a plain miss.
    let short_hits =
        Harness::start(&["--ttl-hit", "1s", "--ttl-miss", "1h", "--stale-max", "0s"]).await;
    let short_misses =
        Harness::start(&["--ttl-hit", "1h", "--ttl-miss", "1s", "--stale-max", "0s"]).await;
    let found = "203.0.113.77";
    let missing = "192.0.2.1";
    for harness in [&short_hits, &short_misses] {
        for key in [found, missing] {
            let reply = harness.lookup(key).await;
            assert_eq!(reply.x_cache(), "miss", "X-Cache of the first {key:?}");
        }
    }

    tokio::time::sleep(Duration::from_millis(1200)).await;

    let cases = [
        (&short_hits, found, "miss", 2, "a hit after --ttl-hit 1s"),
        (
            &short_hits,
            missing,
            "hit",
            1,
            "a miss within --ttl-miss 1h",
        ),
        (&short_misses, found, "hit", 1, "a hit within --ttl-hit 1h"),
        (
            &short_misses,
            missing,
            "miss",
            2,
            "a miss after --ttl-miss 1s",
        ),
    ];
    for (harness, key, x_cache, searches, context) in cases {
        let reply = harness.lookup(key).await;
        assert_eq!(reply.status, 200, "status of {context}");
        assert_eq!(reply.x_cache(), x_cache, "X-Cache of {context}");
        assert_eq!(
            harness.emulator().searches_for(key),
            searches,
            "MISP searches for {context}"
        );
    }
    short_hits.stop().await;
    short_misses.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_extend_ttl() {
    let harness = Harness::start(&["--ttl-hit", "1s", "--stale-max", "0s"]).await;
    let key = "203.0.113.77";
    let first = harness.lookup(key).await;
    let stored = Instant::now();
    assert_eq!(first.x_cache(), "miss", "X-Cache of the first lookup");

    // Three reads 300 ms apart: if each read restarted the TTL, the entry would not expire
    // until 1.9 s after it was stored.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = stored.elapsed();
        let reply = harness.lookup(key).await;
        if before < Duration::from_millis(900) {
            assert_eq!(reply.x_cache(), "hit", "X-Cache {:?} after storing", before);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = harness.lookup(key).await;

    assert_eq!(
        late.x_cache(),
        "miss",
        "X-Cache {:?} after storing with --ttl-hit 1s",
        stored.elapsed()
    );
    assert_eq!(harness.emulator().searches_for(key), 2, "MISP searches");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_coalesce() {
    const CALLERS: usize = 300;
    // The emulator responds after every caller has sent its request, even on a loaded
    // machine, so no caller arrives late enough to find the result cached. The answer deadline
    // (1 s by default) is raised above that latency.
    let harness = Harness::start(&["--answer-deadline", "5s"]).await;
    harness.emulator().set_latency(Duration::from_secs(2));
    let url = harness.lookup_url(EICAR_SHA1);

    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let client = harness.client.clone();
            let url = url.clone();
            tokio::spawn(async move { get_json(&client, &url).await })
        })
        .collect();
    let mut replies = Vec::with_capacity(CALLERS);
    for task in tasks {
        replies.push(task.await.expect("a lookup task panicked"));
    }
    let elapsed = started.elapsed();

    assert!(
        elapsed < Duration::from_secs(10),
        "{CALLERS} concurrent lookups took {elapsed:?}"
    );
    let not_ok = replies.iter().filter(|reply| reply.status != 200).count();
    assert_eq!(not_ok, 0, "lookups without status 200");
    let count = |value: &str| replies.iter().filter(|r| r.x_cache() == value).count();
    assert_eq!(count("miss"), 1, "lookups with X-Cache: miss");
    assert_eq!(
        count("coalesced"),
        CALLERS - 1,
        "lookups with X-Cache: coalesced ({} hit)",
        count("hit")
    );
    assert_eq!(harness.emulator().search_requests(), 1, "MISP searches");
    let first_body = &replies[0].body;
    let differing = replies.iter().filter(|r| &r.body != first_body).count();
    assert_eq!(differing, 0, "lookups with a different body");
    let metrics = harness.metrics().await;
    let waiters = metric_value(&metrics, "misp_lookup_coalesced_waiters_total").unwrap_or(0.0);
    assert!(
        waiters >= (CALLERS - 1) as f64,
        "misp_lookup_coalesced_waiters_total is {waiters}"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_required() {
    let harness = Harness::start(&["--api-token", API_TOKEN]).await;
    let url = harness.lookup_url("203.0.113.77");

    let missing = get_json(&harness.client, &url).await;
    assert_error(&missing, 401, "unauthorized", "a lookup without token");
    assert_eq!(
        missing.header("www-authenticate"),
        "Bearer",
        "WWW-Authenticate of the 401"
    );
    let wrong = read_reply(
        harness
            .client
            .get(&url)
            .header("Authorization", "Bearer wrong-token-0123456789"),
    )
    .await;
    assert_error(&wrong, 401, "unauthorized", "a lookup with a wrong token");
    let wrong_header = read_reply(harness.client.get(&url).header("X-Api-Token", "x")).await;
    assert_error(
        &wrong_header,
        401,
        "unauthorized",
        "a lookup with a wrong X-Api-Token",
    );
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "an unauthorized lookup reached MISP"
    );

    let bearer = read_reply(
        harness
            .client
            .get(&url)
            .header("Authorization", format!("Bearer {API_TOKEN}")),
    )
    .await;
    assert_eq!(bearer.status, 200, "status with Authorization: Bearer");
    let custom = read_reply(harness.client.get(&url).header("X-Api-Token", API_TOKEN)).await;
    assert_eq!(custom.status, 200, "status with X-Api-Token");

    for path in ["/healthz", "/metrics", "/readyz"] {
        let reply = harness.get(path).await;
        assert_eq!(reply.status, 200, "status of {path} without token");
    }
    harness.stop().await;
}

/// Starts an emulator where caller A sees event 12 and caller B event 15, both holding
/// `update-check.example`, and the service with `--forward-caller-key` and `flags`.
async fn forwarding_harness(flags: &[&str]) -> Harness {
    let emulator = start_emulator(emulator_config_with_keys(&[
        (CALLER_A, &["12"]),
        (CALLER_B, &["15"]),
        (KEY, &["11", "12", "13", "14", "15"]),
    ]))
    .await;
    let mut all = vec!["--forward-caller-key"];
    all.extend_from_slice(flags);
    Harness::start_with(emulator, &all).await
}

async fn lookup_as(harness: &Harness, key: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = harness.client.get(harness.lookup_url(key));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    read_reply(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_keys_get_own_answers() {
    let harness = forwarding_harness(&[]).await;
    let key = "update-check.example";

    let a = lookup_as(&harness, key, &[("Authorization", CALLER_A)]).await;
    let b = lookup_as(&harness, key, &[("X-MISP-Auth", CALLER_B)]).await;
    let a_again = lookup_as(&harness, key, &[("X-MISP-Auth", CALLER_A)]).await;

    assert_eq!(a.status, 200, "status for caller A: {}", a.text());
    assert_eq!(b.status, 200, "status for caller B: {}", b.text());
    assert_eq!(field(&a, "event_ids"), &json!(["12"]), "events seen by A");
    assert_eq!(field(&b, "event_ids"), &json!(["15"]), "events seen by B");
    assert_eq!(field(&b, "to_ids"), false, "to_ids of B's only match");
    assert_eq!(a.x_cache(), "miss", "X-Cache of A's first lookup");
    assert_eq!(b.x_cache(), "miss", "X-Cache of B's lookup after A's");
    assert_eq!(a_again.x_cache(), "hit", "X-Cache of A's second lookup");
    assert_eq!(a_again.body, a.body, "body of A's second lookup");

    let sent: Vec<String> = harness
        .emulator()
        .requests()
        .iter()
        .filter(|request| request.path.starts_with("/attributes/restSearch"))
        .map(|request| {
            request
                .headers
                .iter()
                .find(|(name, _)| name == "authorization")
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(sent, [CALLER_A, CALLER_B], "keys MISP received, in order");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_key_errors() {
    let harness = forwarding_harness(&[]).await;
    let key = "update-check.example";

    let none = lookup_as(&harness, key, &[]).await;
    assert_error(&none, 401, "unauthorized", "a lookup without a MISP key");
    assert_eq!(
        none.header("www-authenticate"),
        "MISP realm=\"MISP API key\"",
        "the 401 without a MISP key asks for MISP's scheme"
    );
    let bearer_only = lookup_as(&harness, key, &[("Authorization", "Bearer abc")]).await;
    assert_error(
        &bearer_only,
        401,
        "unauthorized",
        "a lookup with only a bearer token",
    );
    let malformed = lookup_as(&harness, key, &[("Authorization", "short-key")]).await;
    assert_error(
        &malformed,
        403,
        "misp_auth_failed",
        "a lookup with a malformed MISP key",
    );
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "a missing or malformed caller key reached MISP"
    );

    let unknown = lookup_as(&harness, key, &[("Authorization", CALLER_UNKNOWN)]).await;
    assert_error(
        &unknown,
        403,
        "misp_auth_failed",
        "a lookup with a key MISP does not know",
    );
    assert!(
        !unknown.text().contains(CALLER_UNKNOWN),
        "the 403 body contains the caller's key"
    );
    let unknown_again = lookup_as(&harness, key, &[("Authorization", CALLER_UNKNOWN)]).await;
    assert_eq!(
        unknown_again.status, 403,
        "status of the repeated unknown key"
    );
    assert_eq!(
        harness.emulator().search_requests(),
        2,
        "MISP searches: a rejected key must not be cached"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misp_auth_header_wins() {
    let harness = forwarding_harness(&[]).await;

    let reply = lookup_as(
        &harness,
        "update-check.example",
        &[("X-MISP-Auth", CALLER_B), ("Authorization", CALLER_A)],
    )
    .await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(field(&reply, "event_ids"), &json!(["15"]), "events seen");
    let requests = harness.emulator().requests();
    let last = requests.last().expect("no request reached MISP");
    let sent: Vec<&str> = last
        .headers
        .iter()
        .filter(|(name, _)| name == "authorization" || name == "x-misp-auth")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(sent, [CALLER_B], "key headers MISP received");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_with_api_token() {
    let harness = forwarding_harness(&["--api-token", API_TOKEN]).await;
    let key = "update-check.example";
    let bearer = format!("Bearer {API_TOKEN}");

    let token_in_bearer = lookup_as(
        &harness,
        key,
        &[("Authorization", &bearer), ("X-MISP-Auth", CALLER_A)],
    )
    .await;
    let token_in_header = lookup_as(
        &harness,
        key,
        &[("X-Api-Token", API_TOKEN), ("Authorization", CALLER_B)],
    )
    .await;
    let no_token = lookup_as(&harness, key, &[("X-MISP-Auth", CALLER_A)]).await;

    assert_eq!(
        token_in_bearer.status,
        200,
        "status with a bearer token and X-MISP-Auth: {}",
        token_in_bearer.text()
    );
    assert_eq!(
        field(&token_in_bearer, "event_ids"),
        &json!(["12"]),
        "events seen by A"
    );
    assert_eq!(
        token_in_header.status,
        200,
        "status with X-Api-Token and Authorization: {}",
        token_in_header.text()
    );
    assert_eq!(
        field(&token_in_header, "event_ids"),
        &json!(["15"]),
        "events seen by B"
    );
    assert_error(
        &no_token,
        401,
        "unauthorized",
        "a forwarded key without token",
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_key_not_forwarded() {
    let harness = forwarding_harness(&["--misp-key", KEY]).await;

    let reply = lookup_as(
        &harness,
        "update-check.example",
        &[("X-MISP-Auth", CALLER_A)],
    )
    .await;
    let without_key = lookup_as(&harness, "update-check.example", &[]).await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    assert_eq!(
        field(&reply, "event_ids"),
        &json!(["12"]),
        "events seen by A"
    );
    assert_error(
        &without_key,
        401,
        "unauthorized",
        "a lookup without a key while the service has one",
    );
    for request in harness.emulator().requests() {
        if !request.path.starts_with("/attributes/restSearch") {
            continue;
        }
        let leaked = request.headers.iter().any(|(_, value)| value.contains(KEY));
        assert!(!leaked, "the service's own key was sent with a search");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_key_hides_caller_key() {
    let config = parse_config(&serve_args("http://127.0.0.1:9", &["--forward-caller-key"]))
        .expect("the configuration is valid");
    let service = Service::new(&config, Metrics::new()).expect("the service builds");
    let cache_key = |caller: Option<&str>| {
        let indicator = indicator::parse("203.0.113.77").expect("the key parses");
        let caller = Caller {
            misp_key: caller.map(Secret::new),
        };
        service
            .native_query(indicator, None, caller)
            .cache_key()
            .to_owned()
    };

    let a = cache_key(Some(CALLER_A));
    let b = cache_key(Some(CALLER_B));
    let own = cache_key(None);

    assert_ne!(a, b, "two callers share a cache key");
    assert_ne!(a, own, "a caller shares the service's cache key");
    assert!(
        !a.contains(CALLER_A),
        "the cache key contains the caller's key"
    );
    assert_eq!(a, cache_key(Some(CALLER_A)), "the cache key is not stable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_fields_from_paths() {
    let harness = Harness::start(&[
        "--misp-include",
        "context",
        "--field",
        "threat_level=$.Event.threat_level_id",
        "--field",
        "galaxies=$.Tag[?@.is_galaxy == true].name",
        "--field",
        "tag_names=$.Tag[*].name",
        "--field",
        "event=$.Event",
        "--field",
        "tag_objects=$.Tag[*]",
        "--field",
        "absent=$.no_such_member",
    ])
    .await;

    let hit = harness.lookup(EICAR_SHA256).await;

    assert_eq!(hit.status, 200, "status: {}", hit.text());
    assert_eq!(field(&hit, "threat_level"), "3", "threat_level of event 12");
    assert_eq!(
        field(&hit, "galaxies"),
        &json!(["misp-galaxy:mitre-attack-pattern=\"Malicious File - T1204.002\""]),
        "galaxies"
    );
    assert_eq!(
        field(&hit, "tag_names"),
        &json!([
            "tlp:white",
            "misp-galaxy:mitre-attack-pattern=\"Malicious File - T1204.002\""
        ]),
        "tag_names"
    );
    let fields = hit.json["fields"].as_object().expect("fields is an object");
    for name in ["event", "tag_objects", "absent"] {
        assert!(
            !fields.contains_key(name),
            "fields.{name} is present: {}",
            fields[name]
        );
    }
    let bodies = search_bodies(harness.emulator());
    assert_eq!(
        bodies.last().map(|body| body["includeContext"].clone()),
        Some(json!(true)),
        "includeContext sent with --misp-include context"
    );

    let miss = harness.lookup("192.0.2.1").await;
    let miss_fields = miss.json["fields"]
        .as_object()
        .expect("fields is an object");
    assert!(
        !miss_fields.contains_key("threat_level"),
        "a miss carries an extra field"
    );
    harness.stop().await;
}

#[test]
fn bad_field_definitions_rejected() {
    let definitions = [
        "no-equals-sign",
        "found=$.Event.id",
        "bad name=$.Event.id",
        "=$.Event.id",
        "broken=$.[",
        "broken=Event.id",
    ];
    for definition in definitions {
        let args = serve_args(
            "http://127.0.0.1:9",
            &["--misp-key", KEY, "--field", definition],
        );
        let err = parse_config(&args).expect_err(definition);
        assert_eq!(err.flag, "--field", "flag named for {definition:?}");
        assert!(
            err.to_string().contains("--field"),
            "message for {definition:?} does not name the flag: {err}"
        );
    }

    let twice = serve_args(
        "http://127.0.0.1:9",
        &["--misp-key", KEY, "--field", "x=$.a", "--field", "x=$.b"],
    );
    let err = parse_config(&twice).expect_err("a field defined twice");
    assert_eq!(err.flag, "--field", "flag named for a duplicate field");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_ok() {
    let harness = Harness::start(&[]).await;

    let health = harness.get("/healthz").await;
    let ready = harness.get("/readyz").await;

    assert_eq!(health.status, 200, "/healthz status");
    assert_eq!(health.json["status"], "ok", "/healthz body");
    assert_eq!(ready.status, 200, "/readyz status: {}", ready.text());
    assert_eq!(ready.json["status"], "ready", "/readyz status member");
    assert_eq!(ready.json["misp"]["state"], "ok", "/readyz MISP state");
    assert_eq!(
        ready.header("cache-control"),
        "no-store",
        "/readyz Cache-Control"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_on_rejected_key() {
    let harness = Harness::start(&[]).await;
    harness.emulator().set_fault(Fault::AuthFailed);

    let ready = harness.get("/readyz").await;

    assert_eq!(ready.status, 503, "/readyz status: {}", ready.text());
    assert_eq!(ready.json["status"], "not_ready", "/readyz status member");
    assert_eq!(
        ready.json["misp"]["state"], "misp_auth_failed",
        "/readyz MISP state"
    );
    assert!(!ready.text().contains(KEY), "/readyz shows the MISP key");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_ok_when_misp_down() {
    let mut harness = Harness::start(&[]).await;
    harness.stop_emulator().await;

    let started = Instant::now();
    let ready = harness.get("/readyz").await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "/readyz took {:?}",
        started.elapsed()
    );
    assert_eq!(ready.status, 200, "/readyz status: {}", ready.text());
    assert_eq!(
        ready.json["misp"]["state"], "misp_unreachable",
        "/readyz MISP state"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_lists_documented_names() {
    // Without retries, one failed lookup is one MISP error.
    let harness = Harness::start(&["--misp-retries", "0"]).await;
    // Traffic that gives every labelled metric at least one sample: a MISP hit and its cache
    // hit, a rejected key, a MISP error and a readiness probe.
    harness.lookup("203.0.113.77").await;
    harness.lookup("203.0.113.77").await;
    harness.lookup("!203.0.113.77").await;
    harness.emulator().set_fault(Fault::InternalError);
    harness.lookup("192.0.2.1").await;
    harness.emulator().set_fault(Fault::None);
    harness.get("/readyz").await;

    let metrics = harness.metrics().await;

    let names = [
        "misp_lookup_http_requests_total",
        "misp_lookup_http_request_duration_seconds",
        "misp_lookup_lookups_total",
        "misp_lookup_rejected_keys_total",
        "misp_lookup_cache_hits_total",
        "misp_lookup_cache_misses_total",
        "misp_lookup_cache_evictions_total",
        "misp_lookup_cache_entries",
        "misp_lookup_coalesced_waiters_total",
        "misp_lookup_misp_requests_total",
        "misp_lookup_misp_request_duration_seconds",
        "misp_lookup_misp_inflight_requests",
        "misp_lookup_misp_errors_total",
        "misp_lookup_misp_probes_total",
        "misp_lookup_misp_matches",
        "misp_lookup_stale_served_total",
        "misp_lookup_answer_deadline_exceeded_total",
        "misp_lookup_misp_retries_total",
        "misp_lookup_misp_breaker_state",
        "misp_lookup_misp_batches_total",
        "misp_lookup_misp_batch_keys",
    ];
    for name in names {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "/metrics has no {name}"
        );
    }
    let samples = [
        (
            "misp_lookup_lookups_total{endpoint=\"lookup\",outcome=\"found\"}",
            2.0,
        ),
        (
            "misp_lookup_lookups_total{endpoint=\"lookup\",outcome=\"rejected\"}",
            1.0,
        ),
        (
            "misp_lookup_lookups_total{endpoint=\"lookup\",outcome=\"error\"}",
            1.0,
        ),
        ("misp_lookup_misp_errors_total{code=\"misp_error\"}", 1.0),
        ("misp_lookup_misp_requests_total{status=\"5xx\"}", 1.0),
        ("misp_lookup_misp_probes_total{result=\"ok\"}", 1.0),
        ("misp_lookup_misp_inflight_requests", 0.0),
        ("misp_lookup_cache_hits_total{tier=\"memory\"}", 1.0),
        ("misp_lookup_misp_breaker_state", 0.0),
        (
            "misp_lookup_http_requests_total{method=\"GET\",route=\"/lookup/{key}\",status=\"2xx\"}",
            2.0,
        ),
        (
            "misp_lookup_http_requests_total{method=\"GET\",route=\"/lookup/{key}\",status=\"4xx\"}",
            1.0,
        ),
        (
            "misp_lookup_http_request_duration_seconds_count{route=\"/lookup/{key}\"}",
            4.0,
        ),
    ];
    for (sample, value) in samples {
        assert_eq!(metric_value(&metrics, sample), Some(value), "{sample}");
    }
    assert!(
        metrics.contains("route=\"/lookup/{key}\""),
        "the http metrics are not labelled with the route pattern"
    );
    assert!(
        !metrics.contains("203.0.113.77"),
        "/metrics contains a looked-up key"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_and_method() {
    let harness = Harness::start(&[]).await;

    let unknown = harness.get("/no/such/path").await;
    let post = read_reply(harness.client.post(format!("{}/lookup/x", harness.url))).await;
    let delete = read_reply(harness.client.delete(format!("{}/lookup/x", harness.url))).await;

    assert_error(&unknown, 404, "not_found", "an unknown path");
    assert_error(&post, 405, "method_not_allowed", "POST /lookup/x");
    assert_error(&delete, 405, "method_not_allowed", "DELETE /lookup/x");
    assert_eq!(post.header("allow"), "GET", "Allow header of the 405");
    assert_eq!(
        harness.emulator().search_requests(),
        0,
        "a rejected request reached MISP"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_hidden() {
    let harness = Harness::start(&["--api-token", API_TOKEN]).await;
    let url = harness.lookup_url("203.0.113.77");
    let token = ("X-Api-Token", API_TOKEN);

    let unauthorized = get_json(&harness.client, &url).await;
    let wrong = read_reply(harness.client.get(&url).header("X-Api-Token", "x")).await;
    let rejected = read_reply(
        harness
            .client
            .get(harness.lookup_url("!1.2.3.4"))
            .header(token.0, token.1),
    )
    .await;
    harness.emulator().set_fault(Fault::AuthFailed);
    let misp_rejected = read_reply(harness.client.get(&url).header(token.0, token.1)).await;
    harness.emulator().set_fault(Fault::None);
    let ready = harness.get("/readyz").await;
    let metrics = harness.metrics().await;

    assert_eq!(
        misp_rejected.status, 502,
        "status when MISP rejects the key"
    );
    let texts = [
        ("the 401 body", unauthorized.text()),
        ("the wrong-token body", wrong.text()),
        ("the key_operator body", rejected.text()),
        ("the misp_auth_failed body", misp_rejected.text()),
        ("the /readyz body", ready.text()),
        ("/metrics", metrics),
    ];
    for (context, text) in &texts {
        assert!(!text.contains(KEY), "{context} contains the MISP key");
        assert!(
            !text.contains(API_TOKEN),
            "{context} contains the API token"
        );
    }
    harness.stop().await;

    let directory = tempfile::tempdir().expect("a temporary directory");
    let key_file = directory.path().join("misp-key");
    let token_file = directory.path().join("api-token");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("the key file is written");
    std::fs::write(&token_file, format!("  {API_TOKEN}\n")).expect("the token file is written");
    let inline = parse_config(&serve_args(
        "http://127.0.0.1:9",
        &["--misp-key", KEY, "--api-token", API_TOKEN],
    ))
    .expect("the inline configuration is valid");
    let from_files = parse_config(&serve_args(
        "http://127.0.0.1:9",
        &[
            "--misp-key-file",
            key_file.to_str().expect("a UTF-8 path"),
            "--api-token-file",
            token_file.to_str().expect("a UTF-8 path"),
        ],
    ))
    .expect("the file configuration is valid");
    for (context, config) in [("inline", &inline), ("from files", &from_files)] {
        let debug = format!("{config:?}");
        assert!(
            !debug.contains(KEY),
            "Debug of the {context} config shows the MISP key"
        );
        assert!(
            !debug.contains(API_TOKEN),
            "Debug of the {context} config shows the API token"
        );
        assert_eq!(
            config.misp.key.as_ref().map(Secret::expose),
            Some(KEY),
            "MISP key read {context}"
        );
        assert_eq!(
            config.api_token.as_ref().map(Secret::expose),
            Some(API_TOKEN),
            "API token read {context}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_slashes_reach_route() {
    // A key made of path characters must not be split or normalized by the router.
    let harness = Harness::start(&[]).await;
    let cases = [
        "https://phish.example/login?session=1",
        "masscan/1.3 (https://scanner.example/about)",
        "../../etc/passwd",
        "a//b",
    ];

    for key in cases {
        let reply = get_json(&client(), &harness.lookup_url(key)).await;

        assert_eq!(reply.status, 200, "status of {key:?}: {}", reply.text());
        assert_eq!(field(&reply, "value"), key, "fields.value of {key:?}");
    }
    harness.stop().await;
}

/// Polls until `done` returns true or `limit` passes, and returns the last result.
async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_served_while_refreshing() {
    let harness = Harness::start(&["--ttl-hit", "1s", "--stale-max", "1h"]).await;
    let key = "203.0.113.77";
    let first = harness.lookup(key).await;
    assert_eq!(first.x_cache(), "miss", "X-Cache of the first lookup");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale = harness.lookup(key).await;

    assert_eq!(stale.status, 200, "status of an expired entry");
    assert_eq!(stale.x_cache(), "stale", "X-Cache of an expired entry");
    assert_eq!(stale.body, first.body, "body of the stale answer");
    let refreshed = wait_until(Duration::from_secs(5), || {
        harness.emulator().searches_for(key) == 2
    })
    .await;
    assert!(refreshed, "no background refresh reached MISP within 5 s");
    let after = wait_until_hit(&harness, key).await;
    assert_eq!(after.x_cache(), "hit", "X-Cache once the refresh stored");
    assert_eq!(
        harness.emulator().searches_for(key),
        2,
        "MISP searches: one load and one refresh"
    );
    let metrics = harness.metrics().await;
    let stale_served = metric_value(&metrics, "misp_lookup_stale_served_total").unwrap_or(0.0);
    assert!(stale_served >= 1.0, "stale answers counted: {stale_served}");
    harness.stop().await;
}

/// Looks `key` up until the answer is a cache hit, for at most 5 s, and returns the last reply.
async fn wait_until_hit(harness: &Harness, key: &str) -> Reply {
    let started = Instant::now();
    loop {
        let reply = harness.lookup(key).await;
        if reply.x_cache() == "hit" || started.elapsed() > Duration::from_secs(5) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_misses_share_batch() {
    // A wide window keeps the concurrent misses in one batch on a slow machine.
    let batched =
        Harness::start(&["--batch-window", "300ms", "--misp-public-url", PUBLIC_URL]).await;
    let single = Harness::start(&["--batch-max", "1", "--misp-public-url", PUBLIC_URL]).await;
    let keys = [
        "203.0.113.77",
        "update-check.example",
        EICAR_SHA256,
        "192.0.2.1",
        "2001:db8::bad:1",
    ];

    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let client = batched.client.clone();
            let url = batched.lookup_url(key);
            tokio::spawn(async move { get_json(&client, &url).await })
        })
        .collect();
    let mut replies = Vec::with_capacity(keys.len());
    for task in tasks {
        replies.push(task.await.expect("a lookup task panicked"));
    }

    let bodies = search_bodies(batched.emulator());
    assert_eq!(
        bodies.len(),
        1,
        "MISP searches for {} distinct keys",
        keys.len()
    );
    let mut sent = bodies[0]["value"].as_array().cloned().unwrap_or_default();
    sent.sort_by_key(Value::to_string);
    let mut expected: Vec<Value> = keys.iter().map(|key| json!(key)).collect();
    expected.sort_by_key(Value::to_string);
    assert_eq!(sent, expected, "values of the batched search");
    assert_eq!(
        bodies[0]["limit"], 500,
        "limit of the batched search: 100 per key"
    );
    for (key, reply) in keys.iter().zip(&replies) {
        let alone = single.lookup(key).await;
        assert_eq!(reply.status, 200, "status of {key:?}: {}", reply.text());
        assert_eq!(
            reply.text(),
            alone.text(),
            "batched answer of {key:?} differs from the answer without batching"
        );
    }
    batched.stop().await;
    single.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_lookup_answers_in_order() {
    let harness = Harness::start(&["--batch-window", "200ms"]).await;
    let body = json!({"keys": ["203.0.113.77", "192.0.2.1", "!203.0.113.77", 5]});

    let reply = read_reply(
        harness
            .client
            .post(format!("{}/lookup", harness.url))
            .json(&body),
    )
    .await;

    assert_eq!(reply.status, 200, "status: {}", reply.text());
    let results = reply.json["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 4, "results: {}", reply.text());
    let keys: Vec<&Value> = results.iter().map(|result| &result["key"]).collect();
    assert_eq!(
        keys,
        [
            &json!("203.0.113.77"),
            &json!("192.0.2.1"),
            &json!("!203.0.113.77"),
            &json!(5)
        ],
        "keys of the results, in request order"
    );
    assert_eq!(results[0]["found"], true, "found of the hit");
    assert_eq!(
        results[0]["fields"]["event_id"], "13",
        "event_id of the hit"
    );
    assert_eq!(results[1]["found"], false, "found of the miss");
    assert_eq!(
        results[2]["code"], "key_operator",
        "code of the operator key"
    );
    assert_eq!(results[3]["code"], "invalid_json", "code of a number key");
    assert_eq!(
        harness.emulator().search_requests(),
        1,
        "MISP searches: the two misses share one batch"
    );

    let single = harness.lookup("203.0.113.77").await;
    assert_eq!(
        single.x_cache(),
        "hit",
        "X-Cache of a key the bulk request cached"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_purge_by_key() {
    let admin = "CacheAdminToken-0123456789";
    let harness = Harness::start(&["--admin-token", admin]).await;
    harness.lookup(EICAR_SHA256).await;
    harness
        .get(&format!("/lookup/{EICAR_SHA256}?type=sha256"))
        .await;
    read_reply(
        harness
            .client
            .post(format!("{}/attributes/restSearch", harness.url))
            .json(&json!({"value": EICAR_SHA256})),
    )
    .await;
    harness.lookup("203.0.113.77").await;
    let purge_url = format!("{}/cache/{}", harness.url, EICAR_SHA256.to_uppercase());

    let without_token = read_reply(harness.client.delete(&purge_url)).await;
    let purged = read_reply(
        harness
            .client
            .delete(&purge_url)
            .header("X-Admin-Token", admin),
    )
    .await;
    let after = harness.lookup(EICAR_SHA256).await;
    let other = harness.lookup("203.0.113.77").await;

    assert_error(&without_token, 401, "unauthorized", "a purge without token");
    assert_eq!(purged.status, 200, "purge status: {}", purged.text());
    assert_eq!(purged.json["value"], EICAR_SHA256, "normalized purge value");
    assert_eq!(
        purged.json["removed"], 3,
        "entries removed: native, filtered and drop-in"
    );
    assert_eq!(after.x_cache(), "miss", "X-Cache of a purged key");
    assert_eq!(other.x_cache(), "hit", "X-Cache of a key not purged");

    let all = read_reply(
        harness
            .client
            .delete(format!("{}/cache", harness.url))
            .header("Authorization", format!("Bearer {admin}")),
    )
    .await;
    assert_eq!(all.status, 200, "purge-all status: {}", all.text());
    assert_eq!(
        all.json["removed"], 2,
        "entries removed by the purge of all"
    );
    let emptied = harness.lookup("203.0.113.77").await;
    assert_eq!(emptied.x_cache(), "miss", "X-Cache after the purge of all");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_purge_disabled_without_token() {
    let harness = Harness::start(&[]).await;

    let reply = read_reply(
        harness
            .client
            .delete(format!("{}/cache", harness.url))
            .header("X-Admin-Token", "anything-at-all-0123"),
    )
    .await;

    assert_error(&reply, 401, "unauthorized", "a purge without --admin-token");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_key_paths() {
    let harness = Harness::start(&[]).await;

    let empty = harness.get("/lookup/").await;
    let bare = harness.get("/lookup").await;

    assert_error(&empty, 400, "key_empty", "GET /lookup/");
    assert_error(&bare, 405, "method_not_allowed", "GET /lookup");
    harness.stop().await;
}

#[test]
fn debug_hides_admin_token_and_redis_url() {
    let admin = "CacheAdminToken-0123456789";
    let password = "RedisPassword0123";
    let redis_url = format!("redis://:{password}@127.0.0.1:6379/0");
    let config = parse_config(&serve_args(
        "http://127.0.0.1:9",
        &[
            "--misp-key",
            KEY,
            "--admin-token",
            admin,
            "--redis-url",
            &redis_url,
        ],
    ))
    .expect("the configuration is valid");

    let debug = format!("{config:?}");

    assert!(
        !debug.contains(admin),
        "Debug of the config shows the admin token"
    );
    assert!(
        !debug.contains(password),
        "Debug of the config shows the Redis password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accent_folded_value_found() {
    // MISP's collation ignores accents, so a key without them finds the stored value.
    let mut dataset = misp_lookup::demo::dataset::Dataset::demo();
    let mut attribute = dataset.attributes[0].clone();
    attribute["id"] = json!("9901");
    attribute["type"] = json!("filename");
    attribute["value"] = json!("Rechnung Prüfung.pdf");
    dataset.attributes.push(attribute);
    let emulator = start_emulator(misp_lookup::demo::EmulatorConfig::new(dataset, KEY)).await;
    let harness = Harness::start_with(emulator, &["--misp-key", KEY]).await;

    for key in ["rechnung prufung.pdf", "RECHNUNG PRÜFUNG.PDF"] {
        let reply = harness.lookup(key).await;
        assert_eq!(reply.status, 200, "{key}: {}", reply.text());
        assert_eq!(reply.json["found"], true, "{key}: {}", reply.text());
        assert_eq!(
            reply.json["matches"][0]["value"], "Rechnung Prüfung.pdf",
            "{key}"
        );
    }
    assert_eq!(
        harness.lookup("rechnung prufung.doc").await.json["found"],
        false
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_route_prefix_reads_key() {
    let harness = Harness::start(&[]).await;

    // The router decodes `%6C` to `l`, so this path reaches the lookup route.
    let url = format!(
        "{}/%6Cookup/{}",
        harness.url,
        graylog_encode("phish.example")
    );
    let reply = get_json(&harness.client, &url).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json["found"], true, "{}", reply.text());
    assert_eq!(reply.json["fields"]["value"], "phish.example");

    let metrics = harness.metrics().await;
    let served =
        "misp_lookup_http_requests_total{method=\"GET\",route=\"/lookup/{key}\",status=\"2xx\"}";
    assert_eq!(metric_value(&metrics, served), Some(1.0), "{metrics}");
    harness.stop().await;
}
