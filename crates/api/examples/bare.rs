//! The thinnest server that can answer the API's benchmark, for `scripts/bench
//! api` to measure the API against in the same run: axum and one redis-rs
//! multiplexed connection, the same routes and JSON shapes, nothing else. No
//! metrics, request ids, limits, time-outs, key validation, L1 or store: a
//! read is one Redis GET of the cache entry, a write one Redis SET.
//!
//! What the API spends beyond this is the price of its features; the
//! benchmark reports it as a ratio.
//!
//! `PORT` (default 8080) and `REDIS_HOST` / `REDIS_PORT` (127.0.0.1:6379)
//! as for the API: `cargo run --release -p api --example bare`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use store::cache::{RedisEntry, cache_key, entry};
use store::clock::{Clock, SystemClock};
use store::domain::Record;

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Serialize)]
struct ReadRecord<'a> {
    key: &'a str,
    value: &'a str,
    cached: bool,
    source: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    version: i64,
}

#[derive(Deserialize)]
struct WriteRequest {
    key: String,
    value: String,
    ttl: Option<u64>,
}

#[derive(Serialize)]
struct StoredRecord {
    key: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    version: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let variable =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let redis_url = format!(
        "redis://{}:{}/",
        variable("REDIS_HOST", "127.0.0.1"),
        variable("REDIS_PORT", "6379")
    );
    let connection = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let app = Router::new()
        .route("/health", get(|| async { Json(Health { status: "ok" }) }))
        .route("/api/v1/data", post(write))
        .route("/api/v1/data/{key}", get(read))
        .with_state(connection);
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", variable("PORT", "8080").parse::<u16>()?))
            .await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn read(State(mut redis): State<MultiplexedConnection>, Path(key): Path<String>) -> Response {
    let raw: Option<String> = match redis::cmd("GET")
        .arg(cache_key(&key))
        .query_async(&mut redis)
        .await
    {
        Ok(raw) => raw,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    match raw.as_deref().map(entry::decode) {
        Some(Ok(RedisEntry::Live(record))) => Json(ReadRecord {
            key: &key,
            value: &record.value,
            cached: true,
            source: "redis",
            timestamp: platform::timestamp::rfc3339(record.updated_at_ms),
            expires_at: record.expires_at_ms.map(platform::timestamp::rfc3339),
            version: record.version,
        })
        .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn write(
    State(mut redis): State<MultiplexedConnection>,
    Json(request): Json<WriteRequest>,
) -> Response {
    let now_ms = SystemClock.now_ms();
    let record = Record {
        value: request.value,
        version: now_ms * 1000,
        updated_at_ms: now_ms,
        expires_at_ms: request.ttl.map(|ttl| {
            now_ms.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX).saturating_mul(1000))
        }),
    };
    let written: redis::RedisResult<()> = redis::cmd("SET")
        .arg(cache_key(&request.key))
        .arg(entry::encode_live(&record))
        .query_async(&mut redis)
        .await;
    if written.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let stored = StoredRecord {
        timestamp: platform::timestamp::rfc3339(record.updated_at_ms),
        expires_at: record.expires_at_ms.map(platform::timestamp::rfc3339),
        version: record.version,
        key: request.key,
        value: record.value,
        ttl: request.ttl,
    };
    (StatusCode::CREATED, Json(stored)).into_response()
}
