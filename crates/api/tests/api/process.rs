//! The `api` binary as a process: its command line, its handling of bad
//! configuration and secrets, and its graceful shutdown on SIGTERM.

use std::io::Write;
use std::time::Duration;

use crate::common::process::{Running, api, output_of, read_response, serving};

const SECRET: &str = "s3cret-Pa55-do-not-print";

#[test]
fn help_lists_every_variable_and_no_secret() {
    let (status, help) = output_of(
        api()
            .arg("--help")
            .env("REDIS_PASSWORD", SECRET)
            .env("REDIS_SENTINEL_PASSWORD", SECRET)
            .env("DATABASE_URL", format!("postgres://app:{SECRET}@db/app")),
    );
    assert_eq!(status, Some(0));
    for variable in [
        "PORT",
        "BIND_ADDRESS",
        "APP_ENV",
        "POD_NAME",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "REDIS_PASSWORD_FILE",
        "REDIS_TIMEOUT_MS",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
        "REDIS_SENTINEL_PASSWORD",
        "REDIS_SENTINEL_PASSWORD_FILE",
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "CACHE_TTL_SECONDS",
        "CACHE_L1_TTL_MS",
        "CACHE_L1_MAX_BYTES",
        "CACHE_OUTBOX_RETENTION_SECONDS",
        "MAX_VALUE_BYTES",
        "REQUEST_TIMEOUT_SECONDS",
        "HEADER_READ_TIMEOUT_SECONDS",
        "MAX_CONNECTIONS",
        "MAX_REQUESTS_IN_FLIGHT",
        "MAX_BODY_BYTES_IN_FLIGHT",
        "SHUTDOWN_DRAIN_SECONDS",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "--help lacks {variable}:\n{help}"
        );
    }
    assert!(!help.contains(SECRET), "--help shows a secret:\n{help}");
}

#[test]
fn a_wrong_value_stops_the_program_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("api.db").display());
    let missing_file = dir.path().join("no-such-password-file");
    let cases: Vec<(&str, String, &str)> = vec![
        ("PORT", "abc".into(), "PORT"),
        ("PORT", "70000".into(), "PORT"),
        ("REDIS_PORT", "-1".into(), "REDIS_PORT"),
        ("REDIS_TIMEOUT_MS", "0".into(), "REDIS_TIMEOUT_MS"),
        ("CACHE_TTL_SECONDS", "soon".into(), "CACHE_TTL_SECONDS"),
        ("BIND_ADDRESS", "not-an-ip".into(), "BIND_ADDRESS"),
        ("DATABASE_URL", "mysql://db/app".into(), "DATABASE_URL"),
        (
            "REDIS_PASSWORD_FILE",
            missing_file.display().to_string(),
            "REDIS_PASSWORD_FILE",
        ),
        ("REDIS_SENTINELS", "redis-0".into(), "REDIS_SENTINELS"),
        ("REDIS_SENTINELS", "redis-0:0".into(), "REDIS_SENTINELS"),
        (
            "REDIS_SENTINELS",
            "127.0.0.1:26379".into(),
            "REDIS_SENTINEL_MASTER",
        ),
    ];
    for (variable, value, named) in cases {
        let (status, text) = output_of(
            api()
                .env("DATABASE_URL", &sqlite)
                .env("REDIS_HOST", "127.0.0.1")
                .env("PORT", "0")
                .env(variable, &value),
        );
        assert_ne!(status, Some(0), "{variable}={value} was accepted");
        assert!(
            text.contains(named),
            "{variable}={value}: the message does not name {named}:\n{text}"
        );
        assert!(
            !text.contains("panicked"),
            "{variable}={value} panicked:\n{text}"
        );
    }
}

#[test]
fn sigterm_drains_finishes_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::start(serving(dir.path()).env("SHUTDOWN_DRAIN_SECONDS", "2"));
    assert_eq!(running.request("GET", "/ready").0, 200);

    // A slow client: headers and half of the body now, the rest after the
    // SIGTERM.
    let body = r#"{"key":"in-flight","value":"finished after SIGTERM"}"#;
    let (first, rest) = body.split_at(20);
    let mut slow = running.connect();
    write!(
        slow,
        "POST /api/v1/data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    running.sigterm();
    running.wait_for_log("draining");
    let (status, ready) = running.request("GET", "/ready");
    assert_eq!(status, 503, "readiness during the drain: {ready}");
    assert!(ready.contains(r#""draining":true"#), "{ready}");
    assert_eq!(
        running.request("GET", "/health").0,
        200,
        "still alive while draining"
    );

    slow.write_all(rest.as_bytes()).unwrap();
    let (status, stored) = read_response(&mut slow);
    assert_eq!(status, 201, "the in-flight request completes: {stored}");

    let (code, logs) = running.wait();
    assert_eq!(code, Some(0), "exit status; logs:\n{}", logs.join("\n"));
    assert!(logs.iter().any(|line| line.contains("\"stopped\"")));
}

#[test]
fn secrets_never_reach_logs_or_the_config_endpoint() {
    let redis = testkit::RedisServer::start_with(Some(SECRET), testkit::Persistence::None);
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{SECRET}\n")).unwrap();
    let mut running = Running::start(
        serving(dir.path())
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", redis.port().to_string())
            .env("REDIS_PASSWORD_FILE", &password_file)
            .env("SHUTDOWN_DRAIN_SECONDS", "0")
            .env("RUST_LOG", "debug"),
    );
    // The password from the file works: the cache comes into use.
    running.wait_for_log("cache in use");
    let (status, test) = running.request("GET", "/api/v1/cache/test");
    assert_eq!(status, 200);
    assert!(test.contains(r#""redis_connected":true"#), "{test}");
    let (_, config) = running.request("GET", "/api/v1/config");
    assert!(config.contains(r#""version":"v0.2.0""#), "{config}");
    assert!(config.contains(r#""redis_host":"127.0.0.1""#), "{config}");

    running.sigterm();
    let (code, logs) = running.wait();
    assert_eq!(code, Some(0));
    for text in logs.iter().chain([&test, &config]) {
        assert!(!text.contains(SECRET), "a secret was shown: {text}");
    }
}

#[test]
fn a_request_over_the_time_limit_gets_a_json_408() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::start(
        serving(dir.path())
            .env("REQUEST_TIMEOUT_SECONDS", "1")
            .env("SHUTDOWN_DRAIN_SECONDS", "0"),
    );
    // A client that announces a body and never finishes sending it.
    let mut stalled = running.stalled_post();
    let (status, body) = read_response(&mut stalled);
    assert_eq!(status, 408, "{body}");
    assert!(body.contains(r#""code":"request_timeout""#), "{body}");

    running.sigterm();
    assert_eq!(running.wait().0, Some(0));
}
