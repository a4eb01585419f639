//! The agent's small HTTP port: `/health` for the liveness probe and
//! `/metrics` for Prometheus.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use prometheus_client::registry::Registry;

pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/metrics",
            get(move || async move {
                platform::metrics::scrape_response(platform::metrics::render(&registry))
            }),
        )
}
