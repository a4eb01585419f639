//! `http_requests_total` counts each request under its route template and
//! method; paths and methods a client makes up share one label each, so no
//! client can add series.

use crate::common::{Engine, Options, TestApp, spawn_app};
use reqwest::Method;

/// The `http_requests_total` lines of `/metrics`, without the value.
async fn request_series(app: &TestApp) -> Vec<String> {
    app.metrics_text()
        .await
        .lines()
        .filter(|line| line.starts_with("http_requests_total{"))
        .map(|line| line.rsplit_once(' ').unwrap().0.to_owned())
        .collect()
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_known_method() {
    let mut options = Options::new(Engine::Sqlite);
    options.redis = None;
    let app = spawn_app(options).await;

    app.put("metric-key", "v", None).await;
    assert_eq!(app.get("metric-key").await.0, 200);
    assert_eq!(app.delete("metric-key").await, 204);
    for path in ["/health", "/ready", "/api/v1/config", "/no/such/route"] {
        app.http.get(app.url(path)).send().await.unwrap();
    }
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let response = app
        .http
        .request(purge, app.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

    let series = request_series(&app).await;
    for expected in [
        r#"method="POST",route="/api/v1/data",status="201""#,
        r#"method="GET",route="/api/v1/data/{key}",status="200""#,
        r#"method="DELETE",route="/api/v1/data/{key}",status="204""#,
        r#"method="GET",route="/health",status="200""#,
        r#"method="GET",route="/ready",status="200""#,
        r#"method="GET",route="/api/v1/config",status="200""#,
        r#"method="GET",route="unmatched",status="404""#,
        r#"method="other",route="/health",status="405""#,
    ] {
        let line = format!("http_requests_total{{{expected}}}");
        assert!(series.contains(&line), "{line} not in {series:#?}");
    }
    let leaked: Vec<_> = series
        .iter()
        .filter(|line| line.contains("metric-key") || line.contains("PURGE"))
        .collect();
    assert!(
        leaked.is_empty(),
        "raw paths or methods as labels: {leaked:?}"
    );

    // The metrics route is counted too, from the second scrape on.
    let series = request_series(&app).await;
    let metrics = r#"http_requests_total{method="GET",route="/metrics",status="200"}"#;
    assert!(series.iter().any(|line| line == metrics), "{series:#?}");
}
