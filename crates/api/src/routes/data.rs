//! The data endpoints: write, read and delete records.

use std::ops::ControlFlow;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use store::domain::{Key, Ttl, TtlError, Value};
use utoipa::ToSchema;

use super::AppState;
use super::extract::{JsonBody, Object, RecordKey};
use super::record_json::{ReadRecord, StoredRecord, json_response};
use crate::error::{ApiError, ErrorBody};
use crate::service::Served;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// 1 to 256 bytes of printable UTF-8: no whitespace, control or format
    /// characters (zero-width, bidirectional controls, soft hyphen), and
    /// not `.` or `..`.
    #[schema(example = "user:123", min_length = 1, max_length = 256)]
    pub key: String,
    /// UTF-8 text without U+0000, up to MAX_VALUE_BYTES (1 MiB by default).
    #[schema(example = "John Doe")]
    pub value: String,
    /// Lifetime in seconds (1 to 315360000); absent or null: no expiry.
    /// Any other number, however large or fractional, is `invalid_ttl`.
    #[schema(value_type = Option<i64>, example = 3600, minimum = 1, maximum = 315_360_000)]
    #[serde(default)]
    pub ttl: Option<serde_json::Number>,
}

/// Write a record (store first, then cache).
#[utoipa::path(post, path = "/api/v1/data", tag = "data", request_body = WriteRequest,
    responses(
        (status = 201, description = "Stored", body = StoredRecord),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Value or body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid field, key, value or ttl", body = ErrorBody),
        (status = 503, description = "Store unavailable or overloaded", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    JsonBody(Object(request)): JsonBody<Object<WriteRequest>>,
) -> Result<Response, ApiError> {
    let key = Key::parse(request.key).map_err(ApiError::InvalidKeyField)?;
    let ttl = request.ttl.as_ref().map(ttl_seconds).transpose()?;
    let value = Value::parse(request.value, state.config.max_value_bytes)?;
    let record = state.service.put(&key, value.into_string(), ttl).await?;
    let stored = StoredRecord {
        timestamp: platform::timestamp::rfc3339(record.updated_at_ms),
        expires_at: record.expires_at_ms.map(platform::timestamp::rfc3339),
        version: record.version,
        key: key.as_str().to_owned(),
        value: record.value,
        ttl: ttl.map(Ttl::seconds),
    };
    Ok((StatusCode::CREATED, json_response(stored.to_json())).into_response())
}

/// A ttl as JSON gives it: any number, of which only whole seconds in range
/// are a ttl.
fn ttl_seconds(number: &serde_json::Number) -> Result<Ttl, TtlError> {
    let whole = number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from));
    match whole {
        Some(seconds) => Ttl::from_seconds(seconds),
        None => Err(TtlError(number.to_string())),
    }
}

/// Read a record: cache first, then the store.
#[utoipa::path(get, path = "/api/v1/data/{key}", tag = "data",
    params(("key" = String, Path, description = "The record's key")),
    responses(
        (status = 200, description = "Found", body = ReadRecord),
        (status = 400, description = "Invalid key", body = ErrorBody),
        (status = 404, description = "Absent or expired", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn read(state: Arc<AppState>, key: Key) -> Result<Response, ApiError> {
    // `read_from_l1` parsed `key` and found no live record in L1.
    let served = state
        .service
        .get_below_l1(&key)
        .await?
        .ok_or_else(|| ApiError::RecordNotFound(key.as_str().to_owned()))?;
    Ok(json_response(render_read(&key, &served)))
}

/// A read of the record path `path` as far as it goes without I/O: the
/// answer when L1 holds a live record under its key, or when the key is
/// invalid (see [`dispatch`](super::dispatch)); otherwise the key, parsed
/// once, for [`read`] to look below L1.
pub fn read_from_l1(path: &str, state: &AppState) -> ControlFlow<Response, Key> {
    let key = match RecordKey::from_path(path) {
        Ok(RecordKey(key)) => key,
        Err(error) => return ControlFlow::Break(error.into_response()),
    };
    match state.service.get_from_l1(&key) {
        Some(served) => ControlFlow::Break(json_response(l1_hit_body(&key, &served))),
        None => ControlFlow::Continue(key),
    }
}

/// The body of an L1 hit. Every hit on one L1 entry renders the same bytes
/// (an entry is replaced, never changed), so the first hit renders them
/// into the entry's slot and the rest share them.
fn l1_hit_body(key: &Key, served: &Served) -> Bytes {
    let slot = &served.loaded.rendered;
    if let Some(body) = slot.get() {
        return body.clone();
    }
    let body = render_read(key, served);
    // Two first hits may both render; the bytes are the same.
    slot.get_or_init(|| body).clone()
}

/// The body of a read: the JSON of [`ReadRecord`].
fn render_read(key: &Key, served: &Served) -> Bytes {
    let record = served.record();
    ReadRecord {
        key: key.as_str(),
        value: &record.value,
        cached: served.cached(),
        source: served.source.as_str(),
        timestamp: platform::timestamp::rfc3339(record.updated_at_ms),
        expires_at: record.expires_at_ms.map(platform::timestamp::rfc3339),
        version: record.version,
    }
    .to_json()
}

/// Delete a record from the store and the cache.
#[utoipa::path(delete, path = "/api/v1/data/{key}", tag = "data",
    params(("key" = String, Path, description = "The record's key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid key", body = ErrorBody),
        (status = 404, description = "Absent or expired", body = ErrorBody),
        (status = 503, description = "Store unavailable", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    RecordKey(key): RecordKey,
) -> Result<StatusCode, ApiError> {
    if state.service.delete(&key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::RecordNotFound(key.as_str().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use store::domain::Record;

    use super::*;
    use crate::cache::l1::{LoadedRecord, Source};

    #[test]
    fn every_l1_hit_on_an_entry_shares_the_first_hits_bytes() {
        let record = Record {
            value: "v".into(),
            version: 3,
            updated_at_ms: 1_800_000_000_000,
            expires_at_ms: None,
        };
        let served = Served {
            loaded: Arc::new(LoadedRecord::new(record, Source::Redis, true)),
            source: Source::L1,
        };
        let key = Key::parse("k").unwrap();
        let first = l1_hit_body(&key, &served);
        let second = l1_hit_body(&key, &served);
        assert_eq!(first.as_ptr(), second.as_ptr(), "rendered once, shared");
        let json: serde_json::Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(
            (json["source"].as_str(), json["cached"].as_bool()),
            (Some("l1"), Some(true))
        );
    }
}
