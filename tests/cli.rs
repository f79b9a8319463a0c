//! The binary's command line: start-up errors and the `query` subcommand.

use std::process::Command;

use serde_json::Value;

fn misp_lookup(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_misp-lookup"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

#[test]
fn bad_flag_rejected_with_reason() {
    // A file that exists but contains no PEM certificate.
    let not_pem = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cases: &[(&[&str], &str)] = &[
        (&["serve"], "--misp-url"),
        (&["serve", "--misp-url", "ftp://x"], "--misp-url"),
        (
            &[
                "serve",
                "--misp-url",
                "http://127.0.0.1:9",
                "--misp-key",
                "short",
            ],
            "--misp-key",
        ),
        (&["serve", "--demo", "--ttl-hit", "ip=1h"], "--ttl-hit"),
        (&["serve", "--demo", "--field", "bad name=$.x"], "--field"),
        (
            &["serve", "--demo", "--redis-url", "http://127.0.0.1:6379"],
            "--redis-url",
        ),
        (&["serve", "--demo", "--batch-max", "0"], "--batch-max"),
        (
            &["serve", "--demo", "--redis-ca-cert", not_pem],
            "--redis-ca-cert",
        ),
        (
            &[
                "serve",
                "--demo",
                "--redis-url",
                "redis://127.0.0.1:6379",
                "--redis-ca-cert",
                not_pem,
            ],
            "--redis-ca-cert",
        ),
        (
            &[
                "serve",
                "--demo",
                "--redis-url",
                "rediss://127.0.0.1:6379",
                "--redis-ca-cert",
                not_pem,
            ],
            "--redis-ca-cert",
        ),
    ];
    for (args, flag) in cases {
        let output = misp_lookup(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        // Clap's own parse errors add a usage hint after the first line.
        let first_line = stderr.lines().next().unwrap_or_default();
        assert!(
            first_line.contains(flag),
            "{args:?} must name {flag}: {stderr}"
        );
        assert!(
            first_line.contains("invalid"),
            "{args:?} must say why: {stderr}"
        );
    }
}

#[test]
fn secret_flag_values_never_printed() {
    let output = misp_lookup(&[
        "serve",
        "--misp-url",
        "http://127.0.0.1:9",
        "--misp-key",
        "s3cret!",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("s3cret"), "the key leaked: {stderr}");
    let help = misp_lookup(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("MISP_LOOKUP_MISP_KEY"),
        "help lists the env var"
    );
}

#[test]
fn query_demo_prints_lookup_json() {
    let output = misp_lookup(&[
        "query",
        "--demo",
        "44d88612fea8a8f36de82e1278abb02f",
        "unknown.example",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON document per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["found"], true);
    assert_eq!(lines[0]["fields"]["kind"], "md5");
    assert_eq!(lines[1]["found"], false);
}

#[test]
fn query_refused_key_fails() {
    let output = misp_lookup(&["query", "--demo", "!1.2.3.4"]);
    assert_eq!(output.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&output.stdout).expect("an error body");
    assert_eq!(body["code"], "key_operator");
}

#[test]
fn parsed_arguments_debug_hides_secrets() {
    use clap::Parser as _;
    let cli = misp_lookup::cli::Cli::try_parse_from([
        "misp-lookup",
        "serve",
        "--misp-url",
        "http://127.0.0.1:9",
        "--misp-key",
        "KeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKey1",
        "--api-token",
        "api-token-api-token-1",
        "--admin-token",
        "admin-token-admin-token-1",
        "--redis-url",
        "redis://:hunter2@127.0.0.1:6379",
    ])
    .expect("the command line parses");
    let debug = format!("{cli:?}");
    for secret in ["KeyKeyKey", "api-token-api", "admin-token-admin", "hunter2"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}
