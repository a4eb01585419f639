//! What the key and value rules promise, seen from a client: every key the
//! API accepts can be written, read and deleted with the key percent-encoded
//! in the path, whatever characters it holds; a body of any shape gets a
//! 201 or a clear 4xx, and what is stored reads back; a value PostgreSQL
//! cannot hold is refused alike on both engines.

use std::cell::Cell;

use crate::common::{Engine, Options, TestApp, spawn_app};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

/// The key as one path segment: every byte outside RFC 3986's unreserved
/// set percent-encoded, as a careful client would send it.
fn path_of(key: &str) -> String {
    let mut path = String::from("/api/v1/data/");
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// `n` cases; a failure prints its minimal input rather than writing a
/// regression file beside the test.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

async fn app_without_redis(engine: Engine) -> TestApp {
    let mut options = Options::new(engine);
    options.redis = None;
    spawn_app(options).await
}

/// Writes `key`, reads it and deletes it through its encoded path; `Err`
/// says which step answered what.
async fn round_trip(app: &TestApp, key: &str, value: &str) -> Result<(), String> {
    let response = app.post_json(&json!({"key": key, "value": value})).await;
    if response.status() != 201 {
        return Err(format!("POST {key:?}: {}", response.status()));
    }
    let path = path_of(key);
    let (status, body) = app.get_json(&path).await;
    if status != 200 || body["key"] != key || body["value"] != value {
        return Err(format!("GET {path}: {status} {body}"));
    }
    let deleted = app.http.delete(app.url(&path)).send().await.unwrap();
    if deleted.status() != 204 {
        return Err(format!("DELETE {path}: {}", deleted.status()));
    }
    let (status, _) = app.get_json(&path).await;
    if status != 404 {
        return Err(format!("GET {path} after DELETE: {status}"));
    }
    Ok(())
}

#[tokio::test]
async fn keys_with_url_delimiters_are_retrievable_percent_encoded() {
    let app = app_without_redis(Engine::Sqlite).await;
    let keys = [
        "a/b",
        "/leading",
        "trailing/",
        "//",
        "100%",
        "%2F",
        "%",
        "a?b",
        "?",
        "a#b",
        "#",
        "a+b",
        "a&b=c",
        "...",
        ".a",
        "a..",
        "./",
        "../x",
        "ключ/значение",
        "日本語?#%",
        "😀",
        "\\",
    ];
    let mut failures = Vec::new();
    for key in keys {
        if let Err(failure) = round_trip(&app, key, "v").await {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Keys drawn from characters that URLs, JSON and Unicode treat specially,
/// plus ordinary letters; whatever the key rules accept must round-trip.
fn key_candidates() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        '/', '%', '?', '#', '.', '+', '&', '=', ';', '\\', '"', '\'', '<', '>', '[', ']', '{', '}',
        '|', '^', '`', '~', '@', ':', '!', '$', '*', ',', 'a', 'Z', '0', 'é', 'ß', 'ж', '語', '😀',
        '\u{202E}', '\u{200D}', '\u{00AD}', '\u{FEFF}', '\u{0301}', '\u{FFFD}', ' ', '\t',
        '\u{0000}', '\u{007F}',
    ]);
    prop::collection::vec(tricky, 1..12).prop_map(|chars| chars.into_iter().collect())
}

#[test]
fn every_accepted_key_round_trips_through_its_encoded_path() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(app_without_redis(Engine::Sqlite));
    let mut runner = TestRunner::new(cases(300));
    let accepted = Cell::new(0_u32);
    runner
        .run(&key_candidates(), |key| {
            if store::domain::Key::parse(key.as_str()).is_err() {
                // Refused keys are the bad-input tests' business; here the
                // API must refuse them too, with a 4xx.
                let status = runtime.block_on(async {
                    let response = app.post_json(&json!({"key": key, "value": "v"})).await;
                    response.status().as_u16()
                });
                prop_assert_eq!(status, 422, "{:?}", key);
                return Ok(());
            }
            accepted.set(accepted.get() + 1);
            runtime
                .block_on(round_trip(&app, &key, "v"))
                .map_err(TestCaseError::fail)
        })
        .unwrap();
    let accepted = accepted.get();
    assert!(accepted > 50, "only {accepted} generated keys were valid");
}

/// Bodies of every shape: objects with the three fields of any JSON type,
/// extra fields, and bodies that are not objects.
fn bodies() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |x| x.is_finite())
            .prop_map(Value::from),
        (1_i64..=400_000_000).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "[a-z:/%?#.]{1,12}".prop_map(Value::from),
    ];
    // Mostly the right type, so that many bodies are stored; any type at
    // times, and an unknown field now and then.
    let text = || prop_oneof![4 => "\\PC{1,12}".prop_map(Value::from), 1 => scalar.clone()];
    let ttl = prop_oneof![
        2 => (1_i64..=315_360_000).prop_map(Value::from),
        1 => scalar.clone(),
    ];
    let object = (
        prop::option::weighted(0.95, text()),
        prop::option::weighted(0.95, text()),
        prop::option::weighted(0.6, ttl),
        prop::option::weighted(0.1, scalar.clone()),
    )
        .prop_map(|(key, value, ttl, extra)| {
            let mut object = serde_json::Map::new();
            for (name, field) in [("key", key), ("value", value), ("ttl", ttl), ("x", extra)] {
                if let Some(field) = field {
                    object.insert(name.to_owned(), field);
                }
            }
            Value::Object(object)
        });
    prop_oneof![
        4 => object,
        1 => scalar.clone(),
        1 => prop::collection::vec(scalar, 0..3).prop_map(Value::Array),
    ]
}

#[test]
fn any_json_body_gets_201_or_a_clear_4xx_and_what_is_stored_reads_back() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(app_without_redis(Engine::Sqlite));
    let mut runner = TestRunner::new(cases(400));
    let stored = Cell::new(0_u32);
    runner
        .run(&bodies(), |body| {
            let (status, answer) = runtime.block_on(async {
                let response = app.post_json(&body).await;
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            });
            match status {
                201 => {
                    stored.set(stored.get() + 1);
                    let key = answer["key"].as_str().unwrap_or_default().to_owned();
                    let (read, got) = runtime.block_on(app.get_json(&path_of(&key)));
                    prop_assert_eq!(read, 200, "{} stored as {}", body, answer);
                    prop_assert_eq!(&got["value"], &body["value"]);
                }
                400 | 413 | 415 | 422 => {
                    let code = answer["error"]["code"].as_str().unwrap_or_default();
                    prop_assert!(!code.is_empty(), "{} answered {} {}", body, status, answer);
                }
                _ => prop_assert!(false, "{} answered {} {}", body, status, answer),
            }
            Ok(())
        })
        .unwrap();
    let stored = stored.get();
    assert!(stored > 10, "only {stored} generated bodies were stored");
}

#[tokio::test]
async fn a_value_holding_nul_gets_422_on_both_engines() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let app = app_without_redis(engine).await;
        let response = app
            .post_json(&json!({"key": "nul", "value": "before\u{0000}after"}))
            .await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid_value")),
            "{engine:?}: {body}"
        );
        assert_eq!(app.get("nul").await.0, 404, "{engine:?}");
    }
}

#[tokio::test]
async fn a_ttl_out_of_range_names_the_range_however_large() {
    let app = app_without_redis(Engine::Sqlite).await;
    for ttl in [
        "0",
        "315360001",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
        "1e30",
        "1.5",
        "-1",
    ] {
        let body = format!(r#"{{"key": "k", "value": "v", "ttl": {ttl}}}"#);
        let response = app
            .http
            .post(app.url("/api/v1/data"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some("invalid_ttl")),
            "ttl {ttl}: {answer}"
        );
        assert!(
            message.contains("from 1 to 315360000"),
            "ttl {ttl}: {message}"
        );
    }
}
