//! Liveness and readiness, for the kubelet's probes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

const STORE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// Always `ok`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyBody {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub checks: ReadyChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// `ok` or `unavailable`: the only check that decides readiness.
    pub store: &'static str,
    /// `ok`, `unavailable` (served from the store meanwhile) or `disabled`
    /// (no REDIS_HOST: no shared cache). Never makes the replica unready.
    pub redis: &'static str,
    /// True after SIGTERM, while the replica finishes its requests.
    pub draining: bool,
}

/// Liveness: the process answers. No I/O, so a slow dependency never gets a
/// healthy replica restarted.
#[utoipa::path(get, path = "/health", tag = "probes",
    responses((status = 200, description = "The process is alive", body = HealthBody)))]
pub async fn health() -> Json<HealthBody> {
    Json(HealthBody { status: "ok" })
}

/// Readiness: the store answers and the replica is not draining.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses(
        (status = 200, description = "Ready for traffic", body = ReadyBody),
        (status = 503, description = "Not ready (store down or draining)", body = ReadyBody),
    ))]
pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<ReadyBody>) {
    let draining = state.draining.load(Ordering::Acquire);
    // A probe must answer quickly even when the store hangs.
    let store_ok = tokio::time::timeout(STORE_CHECK_TIMEOUT, state.service.store().ping())
        .await
        .is_ok_and(|pinged| pinged.is_ok());
    let redis = match state.service.cache() {
        None => "disabled",
        Some(cache) if cache.is_usable() => "ok",
        Some(_) => "unavailable",
    };
    let ready = store_ok && !draining;
    let body = ReadyBody {
        status: if ready { "ready" } else { "not_ready" },
        checks: ReadyChecks {
            store: if store_ok { "ok" } else { "unavailable" },
            redis,
            draining,
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
