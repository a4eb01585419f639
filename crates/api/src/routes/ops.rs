//! Operational endpoints: metrics, the cache self-test, the configuration.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::config::VERSION;

/// Prometheus text exposition format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4",
               content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    platform::metrics::scrape_response(state.metrics.render(state.service.readings()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheTestBody {
    /// Whether a PING to Redis just succeeded.
    pub redis_connected: bool,
    /// cache hits / (hits + misses) since this replica started.
    pub cache_hit_rate: f64,
    /// Reads (hits + misses) since this replica started.
    pub total_requests: u64,
    /// Reads a cache level (L1 or Redis) answered.
    pub cache_hits: u64,
    /// Reads the store answered (or found nothing).
    pub cache_misses: u64,
    /// `redis` when a Redis host is configured, `disabled` otherwise.
    pub cache: &'static str,
    /// Whether requests currently use Redis (false while it is being
    /// repaired after an outage, even if it answers).
    pub redis_in_use: bool,
    /// Round-trip time of the PING, in milliseconds.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why the PING failed.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A real round trip to Redis, and this replica's cache statistics.
#[utoipa::path(get, path = "/api/v1/cache/test", tag = "operations",
    responses((status = 200, description = "Cache status", body = CacheTestBody)))]
pub async fn cache_test(State(state): State<Arc<AppState>>) -> Json<CacheTestBody> {
    let metrics = &state.metrics;
    let (hits, misses) = metrics.served_totals();
    let (cache, redis_in_use, ping) = match state.service.cache() {
        None => ("disabled", false, None),
        Some(cache) => ("redis", cache.is_usable(), Some(cache.ping().await)),
    };
    let (redis_connected, latency_ms, error) = match ping {
        None => (
            false,
            None,
            Some("no Redis configured (REDIS_HOST or REDIS_SENTINELS)".to_owned()),
        ),
        Some(Ok(latency)) => (true, Some(latency.as_secs_f64() * 1000.0), None),
        Some(Err(error)) => (false, None, Some(error.to_string())),
    };
    Json(CacheTestBody {
        redis_connected,
        cache_hit_rate: metrics.hit_rate(),
        total_requests: hits + misses,
        cache_hits: hits,
        cache_misses: misses,
        cache,
        redis_in_use,
        latency_ms,
        error,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigBody {
    pub app_env: String,
    /// The Redis host; null when the service runs without Redis, or finds
    /// the primary through Sentinel.
    pub redis_host: Option<String>,
    pub redis_port: u16,
    /// The Sentinels asked for the primary (`host:port`), when Redis runs
    /// under Sentinel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_sentinels: Option<Vec<String>>,
    /// The name the Sentinels know the primary by, when Redis runs under
    /// Sentinel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_sentinel_master: Option<String>,
    /// The release, `v` and the crate version (`v0.2.0`).
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
    pub pod: String,
    pub cache_ttl_seconds: u64,
    pub max_value_bytes: usize,
}

/// The configuration in effect. Secrets (passwords, the database URL) are
/// never shown.
#[utoipa::path(get, path = "/api/v1/config", tag = "operations",
    responses((status = 200, description = "Configuration in effect", body = ConfigBody)))]
pub async fn config(State(state): State<Arc<AppState>>) -> Json<ConfigBody> {
    let config = &state.config;
    Json(ConfigBody {
        app_env: config.app_env.clone(),
        redis_host: config.redis_host.clone(),
        redis_port: config.redis_port,
        redis_sentinels: config.redis_sentinels.clone(),
        redis_sentinel_master: config.redis_sentinel_master.clone(),
        version: VERSION,
        store: state.service.store().engine().name(),
        pod: config.pod.clone(),
        cache_ttl_seconds: config.cache_ttl_seconds,
        max_value_bytes: config.max_value_bytes,
    })
}
