//! The agent's small HTTP port: `/health` for the liveness probe and
//! `/metrics` for Prometheus.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
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
                match platform::metrics::render(&registry) {
                    Ok(body) => (
                        [(header::CONTENT_TYPE, platform::metrics::CONTENT_TYPE)],
                        body,
                    )
                        .into_response(),
                    Err(error) => {
                        tracing::error!(%error, "cannot encode metrics");
                        StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }),
        )
}
