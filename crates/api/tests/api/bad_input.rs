//! Bad input, table-driven: every case gets the right 4xx and a JSON error
//! `{"error":{"code","message"}}`, never a 5xx, a hang or a stored record.

#![allow(clippy::print_stdout)]

use crate::common::{Engine, Options, TestApp, spawn_app};
use reqwest::Method;

const VALUE_LIMIT: u64 = 1024;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

fn post(name: &'static str, body: impl Into<String>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: Method::POST,
        path: "/api/v1/data".into(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        code,
    }
}

fn request(
    name: &'static str,
    method: Method,
    path: impl Into<String>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        content_type: None,
        body: String::new(),
        status,
        code,
    }
}

fn cases() -> Vec<Case> {
    let long_key = "k".repeat(257);
    let big_value = "v".repeat(usize::try_from(VALUE_LIMIT).unwrap() + 1);
    vec![
        post(
            "malformed JSON",
            r#"{"key": "a", "value": "#,
            400,
            "malformed_json",
        ),
        post("not JSON at all", "key=a&value=b", 400, "malformed_json"),
        post("missing key", r#"{"value": "v"}"#, 422, "invalid_field"),
        post("missing value", r#"{"key": "k"}"#, 422, "invalid_field"),
        post(
            "key is a number",
            r#"{"key": 5, "value": "v"}"#,
            422,
            "invalid_field",
        ),
        post(
            "value is an object",
            r#"{"key": "k", "value": {"a": 1}}"#,
            422,
            "invalid_field",
        ),
        post("body is an array", r#"["k", "v"]"#, 422, "invalid_field"),
        post("body is null", "null", 422, "invalid_field"),
        post(
            "unknown field",
            r#"{"key": "k", "value": "v", "tll": 5}"#,
            422,
            "invalid_field",
        ),
        post(
            "empty key",
            r#"{"key": "", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key over 256 bytes",
            format!(r#"{{"key": "{long_key}", "value": "v"}}"#),
            422,
            "invalid_key",
        ),
        post(
            "key with a space",
            r#"{"key": "a b", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with a tab",
            r#"{"key": "a\tb", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with a newline",
            r#"{"key": "a\nb", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with a control character",
            r#"{"key": "a\u0001b", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with NUL",
            r#"{"key": "a\u0000", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key that is a dot segment",
            r#"{"key": ".", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key that is a double-dot segment",
            r#"{"key": "..", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with a right-to-left override",
            r#"{"key": "a\u202eb", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with a bidirectional isolate",
            r#"{"key": "a\u2066b", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with a soft hyphen",
            r#"{"key": "a\u00adb", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "key with a zero-width joiner",
            r#"{"key": "a\u200db", "value": "v"}"#,
            422,
            "invalid_key",
        ),
        post(
            "value with NUL",
            r#"{"key": "k", "value": "a\u0000b"}"#,
            422,
            "invalid_value",
        ),
        post(
            "ttl of 2^63",
            r#"{"key": "k", "value": "v", "ttl": 9223372036854775808}"#,
            422,
            "invalid_ttl",
        ),
        post(
            "ttl of 2^64",
            r#"{"key": "k", "value": "v", "ttl": 18446744073709551616}"#,
            422,
            "invalid_ttl",
        ),
        post(
            "value over the limit",
            format!(r#"{{"key": "k", "value": "{big_value}"}}"#),
            413,
            "value_too_large",
        ),
        post(
            "body far over the limit",
            format!(
                r#"{{"key": "k", "value": "{}"}}"#,
                "v".repeat(10 * 1024 * 1024)
            ),
            413,
            "payload_too_large",
        ),
        post(
            "ttl zero",
            r#"{"key": "k", "value": "v", "ttl": 0}"#,
            422,
            "invalid_ttl",
        ),
        post(
            "ttl negative",
            r#"{"key": "k", "value": "v", "ttl": -5}"#,
            422,
            "invalid_ttl",
        ),
        post(
            "ttl fractional",
            r#"{"key": "k", "value": "v", "ttl": 1.5}"#,
            422,
            "invalid_ttl",
        ),
        post(
            "ttl a string",
            r#"{"key": "k", "value": "v", "ttl": "60"}"#,
            422,
            "invalid_field",
        ),
        post(
            "ttl beyond ten years",
            r#"{"key": "k", "value": "v", "ttl": 315360001}"#,
            422,
            "invalid_ttl",
        ),
        post(
            "ttl beyond i64",
            r#"{"key": "k", "value": "v", "ttl": 99999999999999999999999}"#,
            422,
            "invalid_ttl",
        ),
        post(
            "ttl in exponent form",
            r#"{"key": "k", "value": "v", "ttl": 1e30}"#,
            422,
            "invalid_ttl",
        ),
        Case {
            content_type: Some("text/plain"),
            ..post(
                "wrong content type",
                r#"{"key": "k", "value": "v"}"#,
                415,
                "unsupported_media_type",
            )
        },
        Case {
            content_type: None,
            ..post(
                "no content type",
                r#"{"key": "k", "value": "v"}"#,
                415,
                "unsupported_media_type",
            )
        },
        request(
            "unknown route",
            Method::GET,
            "/api/v1/nothing-here",
            404,
            "route_not_found",
        ),
        request(
            "unknown deep route",
            Method::GET,
            "/api/v1/data/a/b",
            404,
            "route_not_found",
        ),
        request(
            "wrong method on data",
            Method::PUT,
            "/api/v1/data",
            405,
            "method_not_allowed",
        ),
        request(
            "wrong method on a record",
            Method::PATCH,
            "/api/v1/data/k",
            405,
            "method_not_allowed",
        ),
        request(
            "wrong method on health",
            Method::DELETE,
            "/health",
            405,
            "method_not_allowed",
        ),
        request(
            "key with a space in the path",
            Method::GET,
            "/api/v1/data/a%20b",
            400,
            "invalid_key",
        ),
        request(
            "key with a control character in the path",
            Method::GET,
            "/api/v1/data/a%01b",
            400,
            "invalid_key",
        ),
        request(
            "key over 256 bytes in the path",
            Method::GET,
            format!("/api/v1/data/{long_key}"),
            400,
            "invalid_key",
        ),
        request(
            "key with a bidirectional override in the path",
            Method::GET,
            "/api/v1/data/a%E2%80%AEb",
            400,
            "invalid_key",
        ),
        request(
            "path that is not UTF-8",
            Method::GET,
            "/api/v1/data/%FF%FE",
            400,
            "invalid_path",
        ),
        request(
            "delete with a bad key",
            Method::DELETE,
            "/api/v1/data/a%09b",
            400,
            "invalid_key",
        ),
        request(
            "absent record",
            Method::GET,
            "/api/v1/data/never-written",
            404,
            "not_found",
        ),
        request(
            "delete an absent record",
            Method::DELETE,
            "/api/v1/data/never-written",
            404,
            "not_found",
        ),
    ]
}

/// Input validation needs no Redis; a small value limit keeps bodies small.
async fn spawn_small_app() -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.redis = None;
    options.max_value_bytes = VALUE_LIMIT;
    spawn_app(options).await
}

async fn send(app: &TestApp, case: &Case) -> reqwest::Response {
    let mut builder = app
        .http
        .request(case.method.clone(), app.url(&case.path))
        .body(case.body.clone());
    if let Some(content_type) = case.content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.send().await.unwrap()
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_4xx() {
    let app = spawn_small_app().await;

    let mut failures = Vec::new();
    for case in cases() {
        let response = send(&app, &case).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if status != case.status
            || code != case.code
            || message.is_empty()
            || content_type != "application/json"
        {
            failures.push(format!(
                "{}: want {} {}, got {status} {content_type} {body}",
                case.name, case.status, case.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // None of it stored anything.
    assert_eq!(app.get("k").await.0, 404);
}

#[tokio::test]
async fn the_largest_allowed_value_and_key_are_accepted() {
    let app = spawn_small_app().await;

    let key = "語".repeat(85); // 255 bytes
    let value = "é".repeat(512); // 1024 bytes
    app.put(&key, &value, Some(315_360_000)).await;
    let (status, body) = app.get(&key).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_str(), Some(value.as_str()));
}
