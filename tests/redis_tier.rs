//! The shared Redis tier against real `redis-server` processes on loopback ports: a single
//! server (plain and over TLS), a primary behind Redis Sentinel and a three-node Redis Cluster,
//! each shared by two service instances.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, KEY, metric_value, start_emulator};
use misp_lookup::demo::EmulatorConfig;
use misp_lookup::demo::dataset::Dataset;
use reqwest::StatusCode;

const ADMIN_TOKEN: &str = "admin-token-for-tests-0001";

/// A `redis-server` child process bound to 127.0.0.1, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start(port: u16, extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.path().display().to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed: run the README's test command");
        wait_for_ping(port);
        RedisServer {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Counts this service's entry keys (`misp-lookup:v1:e:*`) on this server.
    fn entry_count(&self) -> usize {
        redis_cli(self.port, &["--scan", "--pattern", "misp-lookup:v1:e:*"])
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed: run the README's test command");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_for_ping(port: u16) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && redis_cli(port, &["ping"]).contains("PONG")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server on port {port} did not answer PING within 10 s");
}

/// Picks a free port whose cluster bus port (port + 10000) is free and valid too.
fn free_port() -> u16 {
    for _ in 0..200 {
        let port = 20_000 + fastrand::u16(0..20_000);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair found in 200 tries");
}

/// Starts two service instances sharing one Redis URL, each with its own emulator of the same
/// data set so that MISP requests are counted per instance. Both link to the same public MISP
/// URL, as replicas do: the settings that shape a body are part of the cache key.
async fn two_instances(redis_url: &str, extra: &[&str]) -> (Harness, Harness) {
    let mut flags = vec![
        "--misp-key",
        KEY,
        "--misp-public-url",
        "https://misp.example.org",
        "--redis-url",
        redis_url,
        "--redis-timeout",
        "200ms",
        "--admin-token",
        ADMIN_TOKEN,
    ];
    flags.extend_from_slice(extra);
    let first_emulator = start_emulator(EmulatorConfig::new(Dataset::demo(), KEY)).await;
    let first = Harness::start_with(first_emulator, &flags).await;
    let second_emulator = start_emulator(EmulatorConfig::new(Dataset::demo(), KEY)).await;
    let second = Harness::start_with(second_emulator, &flags).await;
    (first, second)
}

/// Looks up a new key every 50 ms until an entry reaches `redis`, for at most 15 s. Each key is
/// new because a key already in the in-process tier is not written again.
async fn writes_reach(service: &Harness, redis: &RedisServer) -> bool {
    let mut attempt = 0;
    eventually(Duration::from_secs(15), async || {
        attempt += 1;
        service.lookup(&format!("write-{attempt}.example")).await;
        redis.entry_count() > 0
    })
    .await
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_shares_answers_between_instances() {
    let redis = RedisServer::start(free_port(), &[]);
    let (first, second) = two_instances(&redis.url(), &[]).await;

    let written = first.lookup("203.0.113.77").await;
    assert_eq!(written.status, StatusCode::OK);
    assert_eq!(written.x_cache(), "miss");
    assert!(
        eventually(Duration::from_secs(5), async || redis.entry_count() == 1).await,
        "the first instance did not write its answer to Redis"
    );

    let read = second.lookup("203.0.113.77").await;
    assert_eq!(read.x_cache(), "redis", "body: {}", read.text());
    assert_eq!(
        read.body, written.body,
        "both instances must send the same body"
    );
    assert_eq!(
        second.emulator().search_requests(),
        0,
        "the second instance must not ask MISP"
    );

    let again = second.lookup("203.0.113.77").await;
    assert_eq!(
        again.x_cache(),
        "hit",
        "a Redis answer fills the in-process tier"
    );
    let metrics = second.metrics().await;
    assert_eq!(
        metric_value(&metrics, "misp_lookup_cache_hits_total{tier=\"redis\"}"),
        Some(1.0)
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_entries_kept_apart_by_settings() {
    let redis = RedisServer::start(free_port(), &[]);
    let (first, _unused) = two_instances(&redis.url(), &[]).await;
    let (other, _unused_too) = two_instances(&redis.url(), &["--misp-limit", "7"]).await;
    assert_eq!(first.lookup("203.0.113.77").await.x_cache(), "miss");
    assert!(
        eventually(Duration::from_secs(5), async || redis.entry_count() == 1).await,
        "the answer was not written to Redis"
    );
    assert_eq!(
        other.lookup("203.0.113.77").await.x_cache(),
        "miss",
        "a replica with another --misp-limit must not read the entry"
    );
    first.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_expiry_agrees_between_instances() {
    let redis = RedisServer::start(free_port(), &[]);
    let flags = ["--ttl-hit", "1s", "--stale-max", "0s"];
    let (first, second) = two_instances(&redis.url(), &flags).await;

    assert_eq!(first.lookup("198.51.100.23").await.x_cache(), "miss");
    assert!(
        eventually(Duration::from_secs(5), async || redis.entry_count() == 1).await,
        "the answer was not written to Redis"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;

    let late = second.lookup("198.51.100.23").await;
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(
        late.x_cache(),
        "miss",
        "an entry past its TTL in one tier must be expired in the other"
    );
    assert_eq!(second.emulator().search_requests(), 1);
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_lookups_keep_answering() {
    let mut redis = RedisServer::start(free_port(), &[]);
    let (service, _unused) = two_instances(&redis.url(), &[]).await;
    assert_eq!(service.lookup("203.0.113.77").await.x_cache(), "miss");

    redis.kill();

    let cached = service.lookup("203.0.113.77").await;
    assert_eq!(cached.status, StatusCode::OK);
    assert_eq!(cached.x_cache(), "hit");
    for key in [
        "198.51.100.23",
        "192.0.2.44",
        "unknown-while-redis-down.example",
    ] {
        let started = Instant::now();
        let reply = service.lookup(key).await;
        assert_eq!(reply.status, StatusCode::OK, "{key}: {}", reply.text());
        assert_eq!(reply.x_cache(), "miss", "{key}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{key} took {:?} with Redis down",
            started.elapsed()
        );
    }
    let metrics = service.metrics().await;
    let errors = metric_value(
        &metrics,
        "misp_lookup_redis_errors_total{operation=\"get\"}",
    );
    assert!(errors.unwrap_or(0.0) >= 1.0, "Redis errors: {errors:?}");
    assert_eq!(metric_value(&metrics, "misp_lookup_redis_up"), Some(0.0));
    let ready = service.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "Redis down must not fail readiness"
    );
    assert_eq!(ready.json["cache"]["redis"], "down");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_reconnects() {
    let port = free_port();
    let mut redis = RedisServer::start(port, &[]);
    let (service, _unused) = two_instances(&redis.url(), &[]).await;
    assert_eq!(service.lookup("203.0.113.77").await.status, StatusCode::OK);

    redis.kill();
    assert_eq!(service.lookup("198.51.100.23").await.status, StatusCode::OK);
    let restarted = RedisServer::start(port, &[]);
    assert_eq!(restarted.entry_count(), 0, "a restarted Redis starts empty");

    assert!(
        writes_reach(&service, &restarted).await,
        "the service did not write to Redis after its restart"
    );
    let ready = service.get("/readyz").await;
    assert_eq!(ready.json["cache"]["redis"], "up");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_key_from_both_tiers() {
    let redis = RedisServer::start(free_port(), &[]);
    let (first, second) = two_instances(&redis.url(), &[]).await;
    assert_eq!(first.lookup("203.0.113.77").await.x_cache(), "miss");
    assert_eq!(
        first.get("/lookup/203.0.113.77?type=ip").await.x_cache(),
        "miss"
    );
    assert!(
        eventually(Duration::from_secs(5), async || redis.entry_count() == 2).await,
        "both answers must reach Redis"
    );

    let unauthorized = first
        .client
        .delete(format!("{}/cache/203.0.113.77", first.url))
        .send()
        .await
        .expect("purge request");
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);

    let purge = common::read_reply(
        first
            .client
            .delete(format!("{}/cache/203.0.113.77", first.url))
            .header("X-Admin-Token", ADMIN_TOKEN),
    )
    .await;
    assert_eq!(purge.status, StatusCode::OK, "{}", purge.text());
    assert_eq!(purge.json["memory"], 2);
    assert_eq!(purge.json["redis"], 2);
    assert_eq!(purge.json["removed"], 4);
    assert_eq!(redis.entry_count(), 0);

    assert_eq!(
        second.lookup("203.0.113.77").await.x_cache(),
        "miss",
        "a purged key must be asked of MISP again"
    );
    first.stop().await;
    second.stop().await;
}

/// A Redis Sentinel on a loopback port that monitors one primary as `mymaster`.
struct Sentinel {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(primary_port: u16) -> Sentinel {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let config = dir.path().join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 \
                 {primary_port} 1\nsentinel down-after-milliseconds mymaster 5000\n"
            ),
        )
        .expect("sentinel configuration written");
        let child = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed: run the README's test command");
        wait_for_ping(port);
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_shares_answers_between_instances() {
    let primary = RedisServer::start(free_port(), &[]);
    let sentinel = Sentinel::start(primary.port);
    let url = format!(
        "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName=mymaster",
        sentinel.port
    );
    let (first, second) = two_instances(&url, &[]).await;

    assert_eq!(first.lookup("203.0.113.77").await.x_cache(), "miss");
    assert!(
        eventually(Duration::from_secs(5), async || primary.entry_count() == 1).await,
        "the answer did not reach the primary found through Sentinel"
    );
    let read = second.lookup("203.0.113.77").await;
    assert_eq!(read.x_cache(), "redis", "{}", read.text());
    assert_eq!(second.emulator().search_requests(), 0);
    first.stop().await;
    second.stop().await;
}

/// A three-node Redis Cluster on loopback ports, without replicas.
struct Cluster {
    nodes: Vec<RedisServer>,
}

impl Cluster {
    fn start() -> Cluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            nodes.push(RedisServer::start(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
            ));
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        redis_cli(nodes[0].port, &create);

        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            let ready = nodes.iter().all(|node| {
                redis_cli(node.port, &["cluster", "info"]).contains("cluster_state:ok")
            });
            if ready {
                return Cluster { nodes };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the Redis Cluster did not reach cluster_state:ok within 20 s");
    }

    fn url(&self) -> String {
        let first = self.nodes[0].port;
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|node| format!("node=127.0.0.1:{}", node.port))
            .collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", others.join("&"))
    }

    fn entry_count(&self) -> usize {
        self.nodes.iter().map(RedisServer::entry_count).sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shares_answers_between_instances() {
    let cluster = Cluster::start();
    let (first, second) = two_instances(&cluster.url(), &[]).await;

    let keys = [
        "203.0.113.77",
        "198.51.100.23",
        "192.0.2.44",
        "c2.malware.example",
        "mb4z3nlfyrcjnoqf.onion",
        "unknown-in-cluster.example",
    ];
    for key in keys {
        let reply = first.lookup(key).await;
        assert_eq!(reply.status, StatusCode::OK, "{key}: {}", reply.text());
    }
    assert!(
        eventually(Duration::from_secs(5), async || cluster.entry_count()
            == keys.len())
        .await,
        "expected {} entries across the cluster, found {}",
        keys.len(),
        cluster.entry_count()
    );
    let nodes_used = cluster
        .nodes
        .iter()
        .filter(|node| node.entry_count() > 0)
        .count();
    assert!(
        nodes_used >= 2,
        "entries should spread over slots on several nodes"
    );

    for key in keys {
        let reply = second.lookup(key).await;
        assert_eq!(reply.x_cache(), "redis", "{key}: {}", reply.text());
    }
    assert_eq!(second.emulator().search_requests(), 0);

    let purge = common::read_reply(
        first
            .client
            .delete(format!("{}/cache", first.url))
            .header("Authorization", format!("Bearer {ADMIN_TOKEN}")),
    )
    .await;
    assert_eq!(purge.status, StatusCode::OK, "{}", purge.text());
    assert_eq!(purge.json["redis"], keys.len());
    assert_eq!(cluster.entry_count(), 0);
    first.stop().await;
    second.stop().await;
}

/// A test CA and a server certificate for 127.0.0.1 that it signed, as PEM files.
struct TlsFiles {
    dir: tempfile::TempDir,
}

impl TlsFiles {
    fn generate() -> TlsFiles {
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "misp-lookup test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");

        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("server parameters")
            .signed_by(&server_key, &ca)
            .expect("server certificate");

        let dir = tempfile::tempdir().expect("temporary directory");
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server-key.pem", server_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).expect("PEM file written");
        }
        TlsFiles { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Returns the `redis-server` flags that add a TLS port with the server certificate.
    fn server_flags(&self, tls_port: u16) -> Vec<String> {
        vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            self.path("server.pem"),
            "--tls-key-file".to_owned(),
            self.path("server-key.pem"),
            "--tls-ca-cert-file".to_owned(),
            self.path("ca.pem"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ]
    }
}

/// Starts a Redis with a plain port for the test's own `redis-cli` checks and a TLS port for
/// the service. Returns it with the TLS port's `rediss://` URL.
fn tls_redis(tls: &TlsFiles) -> (RedisServer, String) {
    let tls_port = free_port();
    let flags = tls.server_flags(tls_port);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let redis = RedisServer::start(free_port(), &flags);
    (redis, format!("rediss://127.0.0.1:{tls_port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_ca_cert_shares_answers() {
    let tls = TlsFiles::generate();
    let (redis, url) = tls_redis(&tls);
    let ca = tls.path("ca.pem");
    let (first, second) = two_instances(&url, &["--redis-ca-cert", &ca]).await;

    assert_eq!(first.lookup("203.0.113.77").await.x_cache(), "miss");
    assert!(
        eventually(Duration::from_secs(5), async || redis.entry_count() == 1).await,
        "the first instance did not write its answer to Redis over TLS"
    );
    let read = second.lookup("203.0.113.77").await;
    assert_eq!(read.x_cache(), "redis", "body: {}", read.text());
    assert_eq!(second.emulator().search_requests(), 0);

    let ready = second.get("/readyz").await;
    assert_eq!(ready.json["cache"]["redis"], "up");
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_untrusted_certificate_not_used() {
    let tls = TlsFiles::generate();
    let (redis, url) = tls_redis(&tls);
    // The test CA is in no system store, so without --redis-ca-cert the handshake fails.
    let (service, _unused) = two_instances(&url, &[]).await;

    for key in ["203.0.113.77", "198.51.100.23"] {
        let reply = service.lookup(key).await;
        assert_eq!(reply.status, StatusCode::OK, "{key}: {}", reply.text());
        assert_eq!(reply.x_cache(), "miss", "{key}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        redis.entry_count(),
        0,
        "an answer was written to a Redis whose certificate is not trusted"
    );
    let metrics = service.metrics().await;
    assert_eq!(metric_value(&metrics, "misp_lookup_redis_up"), Some(0.0));
    let ready = service.get("/readyz").await;
    assert_eq!(ready.json["cache"]["redis"], "down");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_started_late_is_used() {
    let port = free_port();
    let (service, _unused) = two_instances(&format!("redis://127.0.0.1:{port}"), &[]).await;
    assert_eq!(service.lookup("203.0.113.77").await.status, StatusCode::OK);

    let redis = RedisServer::start(port, &[]);
    assert!(
        writes_reach(&service, &redis).await,
        "the service never used a Redis that started after it"
    );
    let ready = service.get("/readyz").await;
    assert_eq!(ready.json["cache"]["redis"], "up");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_accent_variant_from_both_tiers() {
    let redis = RedisServer::start(free_port(), &[]);
    let (first, second) = two_instances(&redis.url(), &[]).await;
    assert_eq!(first.lookup("café menu.pdf").await.x_cache(), "miss");
    assert!(
        eventually(Duration::from_secs(5), async || redis.entry_count() == 1).await,
        "the answer was not written to Redis"
    );

    // MISP compares values without accents, so both spellings share one MISP result and one
    // purge.
    let purge = common::read_reply(
        first
            .client
            .delete(format!(
                "{}/cache/{}",
                first.url,
                common::graylog_encode("cafe menu.pdf")
            ))
            .header("X-Admin-Token", ADMIN_TOKEN),
    )
    .await;
    assert_eq!(purge.status, StatusCode::OK, "{}", purge.text());
    assert_eq!(purge.json["memory"], 1);
    assert_eq!(purge.json["redis"], 1);
    assert_eq!(redis.entry_count(), 0);
    assert_eq!(second.lookup("café menu.pdf").await.x_cache(), "miss");
    first.stop().await;
    second.stop().await;
}

#[test]
fn redis_ca_file_with_private_key_rejected() {
    let tls = TlsFiles::generate();
    let bundle = tls.path("bundle.pem");
    let ca = std::fs::read_to_string(tls.path("ca.pem")).expect("CA file");
    let key = std::fs::read_to_string(tls.path("server-key.pem")).expect("key file");
    std::fs::write(&bundle, format!("{ca}{key}")).expect("bundle written");

    let args = common::serve_args(
        "http://127.0.0.1:9",
        &[
            "--misp-key",
            KEY,
            "--redis-url",
            "rediss://127.0.0.1:6380",
            "--redis-ca-cert",
            &bundle,
        ],
    );
    let error = common::parse_config(&args).expect_err("a CA file with a private key");
    assert_eq!(error.flag, "--redis-ca-cert");
    assert!(error.reason.contains("private key"), "{}", error.reason);

    let args = common::serve_args(
        "http://127.0.0.1:9",
        &[
            "--misp-key",
            KEY,
            "--redis-url",
            "rediss://127.0.0.1:6380",
            "--redis-ca-cert",
            &tls.path("ca.pem"),
        ],
    );
    let config = common::parse_config(&args).expect("a CA file of certificates only");
    assert_eq!(config.redis.expect("Redis settings").ca_certs.len(), 1);
}
