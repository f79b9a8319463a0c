//! Helpers shared by the HTTP integration tests: a MISP emulator and the lookup service on
//! 127.0.0.1 with OS-assigned ports, a plain-HTTP client, Graylog's key encoding and readers
//! for bodies and Prometheus metrics.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use clap::Parser as _;
use misp_lookup::cli::{Cli, Command};
use misp_lookup::config::{Config, ConfigError};
use misp_lookup::demo::dataset::Dataset;
use misp_lookup::demo::{ApiKey, DEMO_API_KEY, Emulator, EmulatorConfig};
use misp_lookup::http::RunningServer;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The MISP key the service sends. The demo emulator accepts it for every event.
pub const KEY: &str = DEMO_API_KEY;

/// Time limit of every request a test sends, so that a hung service fails the test instead of
/// blocking it.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// EICAR test file hashes, present in the demo data set.
pub const EICAR_MD5: &str = "44d88612fea8a8f36de82e1278abb02f";
pub const EICAR_SHA1: &str = "3395856ce81f2b7382dee72602f798b642f14140";
pub const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

/// A MISP emulator and the lookup service configured to use it.
pub struct Harness {
    /// `None` once [`Harness::stop_emulator`] has run.
    emulator: Option<Emulator>,
    /// `None` once [`Harness::stop`] has run.
    server: Option<RunningServer>,
    /// Base URL of the emulator, kept after it stops.
    pub misp_url: String,
    /// Base URL of the service.
    pub url: String,
    /// Plain-HTTP client for the service and the emulator.
    pub client: reqwest::Client,
}

impl Harness {
    /// Starts the demo emulator and the service with the service's own key and `extra` flags.
    pub async fn start(extra: &[&str]) -> Harness {
        let emulator = start_emulator(EmulatorConfig::new(Dataset::demo(), KEY)).await;
        let mut flags = vec!["--misp-key", KEY];
        flags.extend_from_slice(extra);
        Harness::start_with(emulator, &flags).await
    }

    /// Starts the service against `emulator` with `flags` after the listen, worker and MISP URL
    /// flags. The caller chooses the key flags, so `--forward-caller-key` can run without one.
    pub async fn start_with(emulator: Emulator, flags: &[&str]) -> Harness {
        let misp_url = emulator.url();
        let config = parse_config(&serve_args(&misp_url, flags))
            .unwrap_or_else(|err| panic!("the test configuration is invalid: {err}"));
        let server = misp_lookup::http::start(config)
            .await
            .unwrap_or_else(|err| panic!("the service did not start: {err}"));
        Harness {
            emulator: Some(emulator),
            url: server.url(),
            server: Some(server),
            misp_url,
            client: client(),
        }
    }

    /// Returns the running emulator.
    pub fn emulator(&self) -> &Emulator {
        self.emulator
            .as_ref()
            .expect("the emulator was stopped earlier in this test")
    }

    /// Stops the emulator, so that its port refuses connections while the service runs on.
    pub async fn stop_emulator(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            emulator.stop().await;
        }
    }

    /// Returns the service URL of `GET /lookup/{key}` with `key` encoded as Graylog encodes it.
    pub fn lookup_url(&self, key: &str) -> String {
        format!("{}/lookup/{}", self.url, graylog_encode(key))
    }

    /// Looks `key` up through `/lookup` without extra headers.
    pub async fn lookup(&self, key: &str) -> Reply {
        get_json(&self.client, &self.lookup_url(key)).await
    }

    /// Sends `GET` to a path of the service, such as `/healthz`.
    pub async fn get(&self, path: &str) -> Reply {
        get_json(&self.client, &format!("{}{path}", self.url)).await
    }

    /// Returns the service's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics failed");
        assert_eq!(response.status(), 200, "GET /metrics status");
        response.text().await.expect("the /metrics body is text")
    }

    /// Asserts that no request reached MISP with a value MISP reads as an operator or as no
    /// filter, then stops the service and the emulator.
    pub async fn stop(mut self) {
        if let Some(emulator) = &self.emulator {
            assert_eq!(
                emulator.operator_requests(),
                0,
                "a search reached MISP with an operator value or without a value filter"
            );
        }
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.stop_emulator().await;
    }
}

/// Starts an emulator on 127.0.0.1 with an OS-assigned port.
pub async fn start_emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(config)
        .await
        .unwrap_or_else(|err| panic!("the MISP emulator did not start: {err}"))
}

/// Builds an emulator configuration whose keys each see only the listed event ids.
pub fn emulator_config_with_keys(keys: &[(&str, &[&str])]) -> EmulatorConfig {
    let mut config = EmulatorConfig::new(Dataset::demo(), KEY);
    config.keys = keys
        .iter()
        .map(|(key, events)| ApiKey {
            key: (*key).to_owned(),
            visible_events: Some(events.iter().map(|id| (*id).to_owned()).collect()),
        })
        .collect();
    config
}

/// Returns the full `misp-lookup serve` command line for a service on 127.0.0.1 port 0 with
/// two workers, MISP at `misp_url`, and `flags` appended.
pub fn serve_args(misp_url: &str, flags: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "misp-lookup",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--misp-url",
        misp_url,
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(flags.iter().map(|flag| (*flag).to_owned()));
    args
}

/// Parses a command line and validates it into a configuration, as the binary does.
pub fn parse_config(args: &[String]) -> Result<Config, ConfigError> {
    let cli = Cli::try_parse_from(args)
        .unwrap_or_else(|err| panic!("the command line {args:?} does not parse: {err}"));
    let Command::Serve(serve) = cli.command else {
        panic!("the command line {args:?} is not a serve command");
    };
    Config::from_args(&serve)
}

/// Returns a client that talks plain HTTP directly, without proxies or redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the test HTTP client builds")
}

/// A response read in full: status, headers and the body as JSON (`Value::Null` when the body
/// is not JSON), plus the raw bytes.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub body: Vec<u8>,
}

impl Reply {
    /// Returns a header as text, or `""` when it is absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// Returns the `X-Cache` header.
    pub fn x_cache(&self) -> &str {
        self.header("x-cache")
    }

    /// Returns the error body's `code`, or `""`.
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    /// Returns the body as text, for messages and byte comparisons.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `GET url` and reads the whole response.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Reply {
    read_reply(client.get(url)).await
}

/// Sends a prepared request and reads the whole response.
pub async fn read_reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the request failed");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .expect("the body was not read")
        .to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
        body,
    }
}

/// Encodes a lookup key as Graylog's HTTP JSONPath adapter does: Java's
/// `URLEncoder.encode(key, "UTF-8")`, then every `+` replaced by `%20`.
///
/// `URLEncoder` keeps ASCII letters, digits and `.-*_`, turns a space into `+`, and writes
/// every other byte of the UTF-8 form as `%XX` with uppercase hex. A literal `+` therefore
/// arrives as `%2B`, and only spaces become `%20`.
pub fn graylog_encode(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len() * 3);
    for byte in key.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                encoded.push(char::from(byte));
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded.replace('+', "%20")
}

/// Returns the value of one sample in Prometheus text, given its name and labels exactly as
/// printed, e.g. `misp_lookup_misp_errors_total{code="misp_timeout"}`, or `None` when absent.
pub fn metric_value(metrics: &str, sample: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(sample)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Returns the JSON bodies of the restSearch requests the emulator received, in order.
pub fn search_bodies(emulator: &Emulator) -> Vec<Value> {
    emulator
        .requests()
        .iter()
        .filter(|request| request.path.starts_with("/attributes/restSearch"))
        .map(|request| {
            serde_json::from_slice(&request.body).unwrap_or_else(|err| {
                panic!(
                    "a restSearch request body is not JSON ({err}): {}",
                    String::from_utf8_lossy(&request.body)
                )
            })
        })
        .collect()
}

/// Asks the emulator directly, with `key`, for `body` and returns the status and raw bytes.
pub async fn misp_search(misp_url: &str, key: &str, body: &Value) -> (StatusCode, Vec<u8>) {
    let response = client()
        .post(format!("{misp_url}/attributes/restSearch"))
        .header("Authorization", key)
        .header("Accept", "application/json")
        .json(body)
        .send()
        .await
        .expect("the direct MISP search failed");
    let status = response.status();
    let bytes = response.bytes().await.expect("the MISP body was not read");
    (status, bytes.to_vec())
}

/// Reads a fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}
