//! The routes answered before axum's router (the record routes
//! `/api/v1/data/{key}`, the probes and the other fixed `GET` routes)
//! answer every method as a route of axum's router would: `HEAD` as `GET`
//! without the body, any method the route does not serve with 405 and an
//! `Allow` header. A read L1 answers is answered there at once, and the
//! same as the read handler answers it.

use crate::common::{Engine, Options, TestApp, spawn_app};
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
    assert_head_answers_as_get(&app, &url, &get_body).await;

    let methods = [Method::PUT, Method::POST, Method::PATCH, Method::OPTIONS];
    assert_not_allowed(&app, &url, methods, "GET,HEAD,DELETE").await;
    // A missing key is a missing route, not a record path.
    let response = app.http.get(app.url("/api/v1/data/")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_l1_hit_is_answered_as_the_read_handler_answers_it() {
    let mut options = Options::new(Engine::Sqlite);
    // Without Redis, L1 takes entries as soon as the store is read.
    options.redis = None;
    let app = spawn_app(options).await;
    app.put("dir/k", "a value", None).await;
    // An escaped key is the key it decodes to.
    let url = app.url("/api/v1/data/dir%2Fk");
    let first = app.http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let from_store: serde_json::Value = first.json().await.unwrap();
    assert_eq!(from_store["source"], "store", "{from_store}");

    let hits = || app.metric(r#"cache_hits_total{level="l1"}"#);
    let misses = || app.metric(r#"cache_misses_total{level="l1"}"#);
    let (hits_before, misses_before) = (hits().await, misses().await);
    let get = app.http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()[header::CONTENT_TYPE], "application/json");
    let get_body = get.bytes().await.unwrap();
    let from_l1: serde_json::Value = serde_json::from_slice(&get_body).unwrap();
    let mut expected = from_store.clone();
    expected["source"] = "l1".into();
    expected["cached"] = true.into();
    assert_eq!(from_l1, expected);
    assert_head_answers_as_get(&app, &url, &get_body).await;
    // One hit a read, and no miss besides.
    assert_eq!(hits().await, hits_before.map(|hits| hits + 2.0));
    assert_eq!(misses().await, misses_before);

    // What L1 cannot answer, the handler does.
    let (status, body) = app.get_json("/api/v1/data/%FF").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &"invalid_path".into())
    );
    let (status, body) = app.get("absent").await;
    assert_eq!((status, &body["error"]["code"]), (404, &"not_found".into()));
}

#[tokio::test]
async fn the_fixed_get_routes_answer_head_as_get_and_list_their_methods_on_405() {
    let mut options = Options::new(Engine::Sqlite);
    options.redis = None;
    let app = spawn_app(options).await;
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/api/v1/cache/test",
        "/api/v1/config",
    ] {
        let url = app.url(path);
        let get = app.http.get(&url).send().await.unwrap();
        assert_eq!(get.status(), 200, "{path}");
        let content_type = get.headers()[header::CONTENT_TYPE].clone();
        let head = app.http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()[header::CONTENT_TYPE], content_type, "{path}");
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");

        let methods = [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS];
        assert_not_allowed(&app, &url, methods, "GET,HEAD").await;
        // A path is matched whole, as the router matched it.
        let response = app.http.get(format!("{url}/")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}/");
    }
}

/// `HEAD` of the record at `url` answers as its `GET` did with `get_body`,
/// without the body.
async fn assert_head_answers_as_get(app: &TestApp, url: &str, get_body: &[u8]) {
    let head = app.http.head(url).send().await.unwrap();
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
}

/// Each of `methods` on `url` gets 405 `method_not_allowed`, with `allow`
/// as its `Allow` header.
async fn assert_not_allowed(app: &TestApp, url: &str, methods: [Method; 4], allow: &str) {
    for method in methods {
        let response = app.http.request(method.clone(), url).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {url}");
        assert_eq!(response.headers()[header::ALLOW], allow, "{method} {url}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {url}"
        );
    }
}
