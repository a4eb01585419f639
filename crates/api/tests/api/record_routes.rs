//! The record routes (`/api/v1/data/{key}`) answer every method as a route
//! of axum's router would: `HEAD` as `GET` without the body, anything but
//! `GET`, `HEAD` and `DELETE` with 405 and an `Allow` header.

use crate::common::{Engine, Options, spawn_app};
use reqwest::{Method, header};

#[tokio::test]
async fn a_record_answers_head_as_get_and_lists_its_methods_on_405() {
    let mut options = Options::new(Engine::Sqlite);
    options.redis = None;
    // Every read from the store, so that GET and HEAD render the same body.
    options.l1_ttl_ms = 0;
    let app = spawn_app(options).await;
    app.put("k", "a value", None).await;
    let url = app.url("/api/v1/data/k");

    let get = app.http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 200);
    let get_body = get.bytes().await.unwrap();
    let head = app.http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()[header::CONTENT_TYPE],
        "application/json",
        "{head:?}"
    );
    assert_eq!(
        head.headers()[header::CONTENT_LENGTH],
        get_body.len().to_string().as_str(),
        "HEAD names the length GET sends"
    );
    assert!(head.bytes().await.unwrap().is_empty());

    for method in [Method::PUT, Method::POST, Method::PATCH, Method::OPTIONS] {
        let response = app.http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(
            response.headers()[header::ALLOW],
            "GET,HEAD,DELETE",
            "{method}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{method}");
    }
    // A missing key is a missing route, not a record path.
    let response = app.http.get(app.url("/api/v1/data/")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}
