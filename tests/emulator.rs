//! Tests of the MISP emulator over HTTP, against the fixtures in `tests/fixtures/`.

use std::time::{Duration, Instant};

use misp_lookup::demo::dataset::Dataset;
use misp_lookup::demo::{ApiKey, DEMO_API_KEY, Emulator, EmulatorConfig, Fault};
use serde_json::{Value, json};

const RESULT_PATH: &str = "/attributes/restSearch";

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

async fn start(dataset: Dataset) -> Emulator {
    Emulator::start(EmulatorConfig::new(dataset, DEMO_API_KEY))
        .await
        .expect("emulator starts")
}

async fn search(emulator: &Emulator, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{RESULT_PATH}", emulator.url()))
        .header("Authorization", DEMO_API_KEY)
        .json(&body)
        .send()
        .await
        .expect("request succeeds")
}

/// Sends a search and returns the `Attribute` array.
async fn attributes(emulator: &Emulator, body: Value) -> Vec<Value> {
    let response = search(emulator, body).await;
    assert_eq!(response.status(), 200);
    let parsed: Value = response.json().await.expect("JSON body");
    parsed["response"]["Attribute"]
        .as_array()
        .expect("Attribute array")
        .clone()
}

fn field(attributes: &[Value], name: &str) -> Vec<String> {
    attributes
        .iter()
        .map(|attribute| attribute[name].as_str().unwrap_or_default().to_string())
        .collect()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .expect("ASCII header")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_fixture_round_trips() {
    let wire = fixture("restsearch-basic.json");
    let dataset = Dataset::from_rest_search_json(&wire).expect("fixture parses");
    let values = field(&dataset.attributes, "value");
    assert_eq!(values.len(), 5);
    let emulator = start(dataset).await;

    let response = search(&emulator, json!({"returnFormat": "json", "value": values})).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "application/json; charset=UTF-8"
    );
    assert_eq!(header(&response, "x-result-count"), "5");
    assert_eq!(header(&response, "x-export-module-used"), "json");
    assert_eq!(header(&response, "x-response-format"), "json");
    assert_eq!(header(&response, "x-skipped-elements-count"), "0");
    assert_eq!(response.text().await.unwrap(), wire);
}

#[tokio::test(flavor = "multi_thread")]
async fn rich_fixture_round_trips() {
    let wire = fixture("restsearch-rich.json");
    let dataset = Dataset::from_rest_search_json(&wire).expect("fixture parses");
    assert!(dataset.events.is_empty());
    let emulator = start(dataset).await;

    let body = json!({
        "value": "6c73d338ec64e0e44bd54ea61b6988b2",
        "includeSightings": 1,
        "includeCorrelations": 1,
        "includeContext": 1,
    });
    let response = search(&emulator, body).await;

    assert_eq!(response.text().await.unwrap(), wire);
}

#[tokio::test(flavor = "multi_thread")]
async fn pymisp_shape_parses() {
    let dataset = Dataset::from_rest_search_json(r#"{"Attribute": [{"id": "1"}]}"#).unwrap();
    assert_eq!(dataset.attributes.len(), 1);
    assert!(Dataset::from_rest_search_json(r#"{"response": []}"#).is_err());
    assert!(Dataset::from_rest_search_json("not json").is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_result_matches_fixture() {
    let emulator = start(Dataset::demo()).await;

    let response = search(&emulator, json!({"value": "absent.example"})).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-result-count"), "0");
    assert_eq!(
        response.text().await.unwrap(),
        fixture("restsearch-empty.json")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn composite_halves_match() {
    let emulator = start(Dataset::demo()).await;
    let sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
    let md5 = "44d88612fea8a8f36de82e1278abb02f";

    let found = attributes(&emulator, json!({"value": sha256})).await;
    assert_eq!(field(&found, "type"), ["sha256", "filename|sha256"]);

    let found = attributes(&emulator, json!({"value": md5})).await;
    assert_eq!(field(&found, "type"), ["md5", "malware-sample"]);

    let found = attributes(&emulator, json!({"value": "192.0.2.44"})).await;
    assert_eq!(field(&found, "type"), ["ip-dst|port"]);

    let found = attributes(&emulator, json!({"value": "443"})).await;
    assert_eq!(field(&found, "type"), ["ip-dst|port"]);

    let found = attributes(&emulator, json!({"value": "203.0.113.77"})).await;
    assert_eq!(field(&found, "type"), ["ip-dst", "domain|ip"]);

    let found = attributes(
        &emulator,
        json!({"value": "c2.malware.example|203.0.113.77"}),
    )
    .await;
    assert!(found.is_empty(), "full composite string matched {found:?}");

    let found = attributes(&emulator, json!({"value": "eicar.com|" .to_string() + md5})).await;
    assert!(
        found.is_empty(),
        "full malware-sample string matched {found:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn value_case_insensitive() {
    let emulator = start(Dataset::demo()).await;

    let found = attributes(&emulator, json!({"value": "PHISH.Example"})).await;
    assert_eq!(field(&found, "value"), ["phish.example"]);

    // List members are not trimmed by MISP, but the collation ignores trailing spaces.
    let found = attributes(
        &emulator,
        json!({"value": ["Phisher@Bad-Sender.example  "]}),
    )
    .await;
    assert_eq!(field(&found, "value"), ["phisher@bad-sender.example"]);

    let found = attributes(&emulator, json!({"value": "2001:DB8:0:0::BAD:1"})).await;
    assert_eq!(field(&found, "value"), ["2001:db8::bad:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_value_in_two_events() {
    let emulator = start(Dataset::demo()).await;

    let found = attributes(&emulator, json!({"value": "update-check.example"})).await;

    assert_eq!(field(&found, "event_id"), ["12", "15"]);
    assert_eq!(found[0]["to_ids"], true);
    assert_eq!(found[1]["to_ids"], false);
    let older = found[0]["timestamp"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let newer = found[1]["timestamp"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(older < newer);
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_required_values_present() {
    let emulator = start(Dataset::demo()).await;
    let cases = [
        ("3395856ce81f2b7382dee72602f798b642f14140", "sha1"),
        ("mb4z3nlfyrcjnoqf.onion", "domain"),
        ("198.51.100.23", "ip-src"),
        ("2001:db8::bad:1", "ip-dst"),
        ("http://malware.example/payload.exe", "url"),
        ("https://phish.example/login?session=1", "url"),
        ("phisher@bad-sender.example", "email-src"),
    ];
    for (value, kind) in cases {
        let found = attributes(&emulator, json!({"value": value})).await;
        assert_eq!(field(&found, "type"), [kind], "search for {value}");
    }

    let found = attributes(&emulator, json!({"value": "198.51.100.23"})).await;
    assert_eq!(found[0]["first_seen"], "2026-03-01T10:00:00.000000+00:00");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_hidden_by_default() {
    let emulator = start(Dataset::demo()).await;
    let value = "retired-dropper.example";

    let found = attributes(&emulator, json!({"value": value})).await;
    assert!(found.is_empty());

    let found = attributes(&emulator, json!({"value": value, "deleted": 1})).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["deleted"], true);

    let found = attributes(&emulator, json!({"value": value, "deleted": [0, 1]})).await;
    assert_eq!(found.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_type_and_to_ids() {
    let emulator = start(Dataset::demo()).await;
    let value = "update-check.example";

    let found = attributes(&emulator, json!({"value": value, "to_ids": 1})).await;
    assert_eq!(field(&found, "event_id"), ["12"]);

    let found = attributes(&emulator, json!({"value": value, "to_ids": "exclude"})).await;
    assert_eq!(field(&found, "event_id"), ["15"]);

    // Boolean false is skipped by MISP, so both rows come back.
    let found = attributes(&emulator, json!({"value": value, "to_ids": false})).await;
    assert_eq!(found.len(), 2);

    let found = attributes(
        &emulator,
        json!({"value": "203.0.113.77", "type": "domain|ip"}),
    )
    .await;
    assert_eq!(field(&found, "type"), ["domain|ip"]);

    let found = attributes(
        &emulator,
        json!({"value": "phisher@bad-sender.example", "type": "email-dst"}),
    )
    .await;
    assert!(found.is_empty());

    let found = attributes(&emulator, json!({"value": "198.51.100.23", "published": 1})).await;
    assert!(found.is_empty(), "event 14 is unpublished");
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_and_page() {
    let emulator = start(Dataset::demo()).await;
    let everything = attributes(&emulator, json!({"value": "%.example%"})).await;
    assert!(everything.len() > 4);

    let response = search(&emulator, json!({"value": "%.example%", "limit": 2})).await;
    assert_eq!(header(&response, "x-result-count"), "3");
    let body: Value = response.json().await.unwrap();
    let first_page = body["response"]["Attribute"].as_array().unwrap().clone();
    assert_eq!(field(&first_page, "id"), field(&everything[..2], "id"));

    let found = attributes(
        &emulator,
        json!({"value": "%.example%", "limit": "2", "page": 2}),
    )
    .await;
    assert_eq!(field(&found, "id"), field(&everything[2..4], "id"));

    let found = attributes(&emulator, json!({"value": "%.example%", "limit": 0})).await;
    assert_eq!(found.len(), everything.len());

    let found = attributes(&emulator, json!({"value": "%.example%", "page": 2})).await;
    assert_eq!(
        found.len(),
        everything.len(),
        "page without limit is ignored"
    );

    let last = everything.len();
    let response = search(&emulator, json!({"value": "%.example%", "limit": last + 1})).await;
    assert_eq!(header(&response, "x-result-count"), last.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_counted() {
    let emulator = start(Dataset::demo()).await;
    let counted = [
        json!({"value": "!phish.example"}),
        json!({"value": ["!phish.example"]}),
        json!({"value": "%.example"}),
        json!({"value": "phish.example&&198.51.100.23"}),
        json!({"value": "phish.example||198.51.100.23"}),
        json!({"value": ""}),
        json!({"value": "0"}),
        json!({"value": 0}),
        json!({"value": null}),
        json!({"type": "domain"}),
    ];
    for (index, body) in counted.iter().enumerate() {
        search(&emulator, body.clone()).await;
        assert_eq!(emulator.operator_requests(), index + 1, "body {body}");
    }

    let plain = [
        json!({"value": "phish.example"}),
        json!({"value": ["phish.example", "198.51.100.23"]}),
        json!({"value": {"OR": ["!phish.example"]}}),
    ];
    for body in plain {
        search(&emulator, body.clone()).await;
        assert_eq!(emulator.operator_requests(), counted.len(), "body {body}");
    }
    assert_eq!(emulator.search_requests(), counted.len() + 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_change_results() {
    let emulator = start(Dataset::demo()).await;
    let everything = attributes(&emulator, json!({})).await;
    assert_eq!(everything.len(), 19, "every live demo attribute");

    let found = attributes(&emulator, json!({"value": "!phish.example"})).await;
    assert_eq!(found.len(), everything.len() - 1);

    let found = attributes(&emulator, json!({"value": "phish.example&&198.51.100.23"})).await;
    assert_eq!(field(&found, "value"), ["phish.example", "198.51.100.23"]);

    let found = attributes(&emulator, json!({"value": "phish.example||198.51.100.23"})).await;
    assert_eq!(found.len(), 2);

    let found = attributes(&emulator, json!({"value": {"OR": ["!phish.example"]}})).await;
    assert!(found.is_empty(), "a leading ! inside OR is literal");

    let found = attributes(&emulator, json!({"value": "0"})).await;
    assert_eq!(found.len(), everything.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn searches_for_counts_value() {
    let emulator = start(Dataset::demo()).await;

    search(&emulator, json!({"value": "Phish.Example"})).await;
    search(
        &emulator,
        json!({"value": ["phish.example", "198.51.100.23"]}),
    )
    .await;
    search(&emulator, json!({"request": {"value": "198.51.100.23"}})).await;

    assert_eq!(emulator.searches_for("phish.example"), 2);
    assert_eq!(emulator.searches_for("198.51.100.23"), 2);
    assert_eq!(emulator.searches_for("absent.example"), 0);
    assert_eq!(emulator.search_requests(), 3);

    emulator.reset_counters();
    assert_eq!(emulator.search_requests(), 0);
    assert_eq!(emulator.searches_for("phish.example"), 0);
    assert!(emulator.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_recorded() {
    let emulator = start(Dataset::demo()).await;

    search(&emulator, json!({"value": "phish.example"})).await;

    let requests = emulator.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, RESULT_PATH);
    let authorization = requests[0]
        .headers
        .iter()
        .find(|(name, _)| name == "authorization")
        .map(|(_, value)| value.as_str());
    assert_eq!(authorization, Some(DEMO_API_KEY));
    assert_eq!(&requests[0].body[..], br#"{"value":"phish.example"}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_failure_body() {
    let emulator = start(Dataset::demo()).await;
    let url = format!("{}{RESULT_PATH}", emulator.url());
    let wrong_key = "A".repeat(40);
    let cases: [(&str, Option<(&str, &str)>); 4] = [
        ("no key", None),
        ("unknown key", Some(("Authorization", &wrong_key))),
        ("short key", Some(("Authorization", "abc123"))),
        ("X-MISP-Auth wins", Some(("X-MISP-Auth", &wrong_key))),
    ];
    for (case, auth) in cases {
        let mut request = client()
            .post(&url)
            .header("Content-Type", "application/json")
            .body(r#"{"value":"phish.example"}"#);
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        if case == "X-MISP-Auth wins" {
            request = request.header("Authorization", DEMO_API_KEY);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{case}");
        assert_eq!(
            header(&response, "content-type"),
            "application/json",
            "{case}"
        );
        assert_eq!(
            response.text().await.unwrap(),
            fixture("error-403-auth-failed.json"),
            "{case}"
        );
    }

    let response = client()
        .post(&url)
        .header("X-MISP-Auth", DEMO_API_KEY)
        .json(&json!({"value": "phish.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_sees_only_its_events() {
    let limited_key = "LimitedKey000000000000000000000000000000";
    let mut config = EmulatorConfig::new(Dataset::demo(), DEMO_API_KEY);
    config.keys.push(ApiKey {
        key: limited_key.to_string(),
        visible_events: Some(vec!["11".to_string()]),
    });
    let emulator = Emulator::start(config).await.unwrap();

    let response = client()
        .post(format!("{}{RESULT_PATH}", emulator.url()))
        .header("Authorization", limited_key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let found = body["response"]["Attribute"].as_array().unwrap();

    assert_eq!(found.len(), 4);
    assert!(found.iter().all(|attribute| attribute["event_id"] == "11"));
}

#[tokio::test(flavor = "multi_thread")]
async fn request_errors() {
    let emulator = start(Dataset::demo()).await;
    let url = format!("{}{RESULT_PATH}", emulator.url());

    let response = client()
        .post(&url)
        .header("Authorization", DEMO_API_KEY)
        .header("Content-Type", "application/json")
        .body("{\"value\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Invalid JSON input.")
    );

    let response = search(&emulator, json!({"value": "x", "returnFormat": "csv"})).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"name":"Invalid output format.","message":"Invalid output format.","url":"\/attributes\/restSearch"}"#
    );

    let response = client()
        .get(&url)
        .header("Authorization", DEMO_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("using GET and no parameters")
    );

    let response = client()
        .get(format!("{}/no/such/path", emulator.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"name":"Not Found","message":"Not Found","url":"\/no\/such\/path"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn body_without_json_type_unfiltered() {
    let emulator = start(Dataset::demo()).await;

    let response = client()
        .post(format!("{}{RESULT_PATH}.json", emulator.url()))
        .header("Authorization", DEMO_API_KEY)
        .body(r#"{"value":"phish.example"}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-result-count"), "19");
    assert_eq!(emulator.operator_requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_named_parameter_searches() {
    let emulator = start(Dataset::demo()).await;

    let response = client()
        .get(format!(
            "{}{RESULT_PATH}/value:198.51.100.23",
            emulator.url()
        ))
        .header("Authorization", DEMO_API_KEY)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response"]["Attribute"][0]["type"], "ip-src");
    assert_eq!(emulator.searches_for("198.51.100.23"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn includes_add_members_in_order() {
    let emulator = start(Dataset::demo()).await;

    let plain = attributes(&emulator, json!({"value": "phish.example"})).await;
    assert!(
        plain[0].get("Tag").is_none(),
        "Tag must be absent when empty"
    );

    let body = json!({
        "value": "http://malware.example/payload.exe",
        "includeEventUuid": true,
        "includeEventTags": 1,
        "includeSightings": "1",
        "includeCorrelations": 1,
        "includeDecayScore": 1,
    });
    let found = attributes(&emulator, body).await;
    let attribute = found[0].as_object().unwrap();
    let keys: Vec<&str> = attribute.keys().map(String::as_str).collect();
    assert_eq!(
        keys[17..],
        [
            "Sighting",
            "RelatedAttribute",
            "event_uuid",
            "decay_score",
            "Event",
            "Tag"
        ]
    );
    assert_eq!(keys[16], "value");
    assert_eq!(attribute["event_uuid"], attribute["Event"]["uuid"]);
    assert_eq!(attribute["Sighting"], json!([]));
    let tags = attribute["Tag"].as_array().unwrap();
    let inherited: Vec<&str> = tags
        .iter()
        .filter(|tag| tag["inherited"] == 1)
        .map(|tag| tag["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        inherited,
        ["misp-galaxy:mitre-attack-pattern=\"Malicious File - T1204.002\""]
    );

    let found = attributes(
        &emulator,
        json!({"value": "203.0.113.77", "includeContext": 1, "includeCorrelations": 1}),
    )
    .await;
    assert_eq!(found[0]["Event"]["Orgc"]["name"], "Demo SOC");
    assert_eq!(found[0]["Event"]["Tag"][0]["name"], "tlp:amber");
    assert_eq!(
        field(found[0]["RelatedAttribute"].as_array().unwrap(), "id"),
        ["1015"]
    );

    let found = attributes(
        &emulator,
        json!({"value": "44d88612fea8a8f36de82e1278abb02f"}),
    )
    .await;
    assert_eq!(found[0]["Object"]["id"], "201");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_version_requires_key() {
    let emulator = start(Dataset::demo()).await;
    let url = format!("{}/servers/getVersion", emulator.url());

    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 403);

    let response = client()
        .get(&url)
        .header("Authorization", DEMO_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], "2.5.1");
    assert_eq!(emulator.search_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_error_statuses() {
    let emulator = start(Dataset::demo()).await;

    emulator.set_fault(Fault::InternalError);
    let response = search(&emulator, json!({"value": "phish.example"})).await;
    assert_eq!(response.status(), 500);
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        fixture("error-500-internal.json")
    );

    emulator.set_fault(Fault::AuthFailed);
    let response = search(&emulator, json!({"value": "phish.example"})).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.text().await.unwrap(),
        fixture("error-403-auth-failed.json")
    );

    emulator.set_fault(Fault::RateLimited { reset_seconds: 873 });
    let response = search(&emulator, json!({"value": "phish.example"})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(header(&response, "x-rate-limit-remaining"), "0");
    assert_eq!(header(&response, "x-rate-limit-reset"), "873");
    assert!(response.headers().contains_key("x-rate-limit-limit"));
    assert_eq!(
        response.text().await.unwrap(),
        fixture("error-429-rate-limit.json")
    );

    let response = client()
        .post(format!("{}{RESULT_PATH}", emulator.url()))
        .header("Authorization", DEMO_API_KEY)
        .header("User-Agent", "PyMISP 2.5.1 - Python 3.12")
        .json(&json!({"value": "phish.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"name":"Rate limit exceeded.","message":"Rate limit exceeded.","url":"/attributes/restSearch"}"#
    );

    emulator.set_fault(Fault::InternalError);
    let response = client()
        .get(format!("{}/servers/getVersion", emulator.url()))
        .header("Authorization", DEMO_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);

    emulator.set_fault(Fault::None);
    let response = search(&emulator, json!({"value": "phish.example"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(emulator.search_requests(), 5, "getVersion is not a search");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_non_json_answers() {
    let emulator = start(Dataset::demo()).await;

    emulator.set_fault(Fault::MaintenanceRedirect);
    let response = search(&emulator, json!({"value": "phish.example"})).await;
    assert_eq!(response.status(), 302);
    let location = header(&response, "location");
    assert_eq!(location, format!("{}/users/login", emulator.url()));
    let login = client().get(&location).send().await.unwrap();
    assert_eq!(login.status(), 200);
    assert!(header(&login, "content-type").starts_with("text/html"));

    emulator.set_fault(Fault::HtmlPage);
    let response = search(&emulator, json!({"value": "phish.example"})).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/html"));

    emulator.set_fault(Fault::InvalidJson);
    let response = search(&emulator, json!({"value": "phish.example"})).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("application/json"));
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_reset_mid_body() {
    let emulator = start(Dataset::demo()).await;
    emulator.set_fault(Fault::ResetMidBody);

    let response = search(&emulator, json!({"value": "phish.example"})).await;

    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err(), "body must be cut short");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_hang_until_stop() {
    let emulator = start(Dataset::demo()).await;
    emulator.set_fault(Fault::Hang);

    let result = client()
        .post(format!("{}{RESULT_PATH}", emulator.url()))
        .header("Authorization", DEMO_API_KEY)
        .timeout(Duration::from_millis(300))
        .json(&json!({"value": "phish.example"}))
        .send()
        .await;

    let error = result.expect_err("a hanging emulator must not answer");
    assert!(error.is_timeout(), "{error}");
    assert_eq!(emulator.search_requests(), 1);
    let stopped = tokio::time::timeout(Duration::from_secs(5), emulator.stop()).await;
    assert!(
        stopped.is_ok(),
        "stop must not wait for the hanging request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_delays_answer() {
    let emulator = start(Dataset::demo()).await;
    emulator.set_latency(Duration::from_millis(300));

    let started = Instant::now();
    let response = search(&emulator, json!({"value": "phish.example"})).await;

    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_refuses_connections() {
    let emulator = start(Dataset::demo()).await;
    let addr = emulator.addr();
    assert_eq!(emulator.url(), format!("http://{addr}"));
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());

    emulator.stop().await;

    let connected = tokio::net::TcpStream::connect(addr).await;
    assert!(connected.is_err(), "port still accepts after stop");
}
