//! Every response carries an `x-request-id`: the caller's when it sent one,
//! a fresh UUID otherwise, on every route and on errors too.

use crate::common::{Engine, Options, spawn_app};

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let mut options = Options::new(Engine::Sqlite);
    options.redis = None;
    let app = spawn_app(options).await;

    let mut generated = Vec::new();
    for path in ["/health", "/api/v1/data/absent", "/no/such/route"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        let id = response
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{path}: no x-request-id"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        generated.push(id);
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 3, "each request gets its own id");

    let response = app
        .http
        .get(app.url("/api/v1/data/absent"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}
