//! The agent's small HTTP port: `/health` for the liveness probe, `/ready`
//! for the readiness probe, `/metrics` for Prometheus.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::kubernetes::{Metadata, WatchState};

pub fn router(registry: Arc<Registry>, kubernetes: Option<Metadata>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route(
            "/ready",
            get(move || async move { axum::Json(ready(kubernetes.as_ref())) }),
        )
        .route(
            "/metrics",
            get(move || async move {
                platform::metrics::scrape_response(platform::metrics::render(&registry))
            }),
        )
}

/// Ready whenever the agent runs: lines ship with the path's metadata when
/// the API server cannot be reached, so its state is reported, not turned
/// into unreadiness (which would only hide the agent's own metrics).
fn ready(kubernetes: Option<&Metadata>) -> serde_json::Value {
    let Some(kubernetes) = kubernetes else {
        return json!({"status": "ready", "kubernetes": "off"});
    };
    let watches: serde_json::Map<String, serde_json::Value> = kubernetes
        .status()
        .into_iter()
        .map(|(watch, state)| {
            let state = match state {
                WatchState::Starting => "starting".to_owned(),
                WatchState::Synced => "synced".to_owned(),
                WatchState::Failing(why) => format!("failing: {why}"),
            };
            (watch.to_owned(), json!(state))
        })
        .collect();
    json!({"status": "ready", "kubernetes": watches})
}
