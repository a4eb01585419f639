//! The record bodies of the data endpoints, and their JSON.
//!
//! A body carries the record's value, up to a mebibyte, and serde_json
//! escapes a string a byte at a time; [`platform::json`] skips over the runs
//! that need no escape, faster on a long value. The types
//! keep their `Serialize` derive as the reference: the tests hold the
//! bodies written here to serde_json's bytes for the same record.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use platform::json::Object;
use serde::Serialize;
use utoipa::ToSchema;

/// Room for a body's fields besides the key and value.
const FIELDS_BYTES: usize = 192;

#[derive(Debug, Serialize, ToSchema)]
pub struct StoredRecord {
    pub key: String,
    pub value: String,
    /// The lifetime requested, in seconds.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// When the value was written (RFC 3339, UTC).
    pub timestamp: String,
    /// When the record expires (RFC 3339, UTC), if it does.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Grows with every write of the key.
    pub version: i64,
}

impl StoredRecord {
    /// The fields in the order of the struct, as serde_json writes them.
    pub fn to_json(&self) -> Bytes {
        let mut object = Object::with_capacity(self.key.len() + self.value.len() + FIELDS_BYTES);
        object.string("key", &self.key).string("value", &self.value);
        if let Some(ttl) = self.ttl {
            object.integer("ttl", ttl);
        }
        object.string("timestamp", &self.timestamp);
        if let Some(expires_at) = &self.expires_at {
            object.string("expires_at", expires_at);
        }
        object.integer("version", self.version);
        Bytes::from(object.finish())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadRecord<'a> {
    pub key: &'a str,
    pub value: &'a str,
    /// True when a cache level answered, false when the store did.
    pub cached: bool,
    /// Which level answered: `l1` (this replica's memory), `redis` or
    /// `store`.
    #[schema(example = "redis")]
    pub source: &'static str,
    /// When the value was last written (RFC 3339, UTC).
    pub timestamp: String,
    /// When the record expires (RFC 3339, UTC), if it does.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub version: i64,
}

impl ReadRecord<'_> {
    /// The fields in the order of the struct, as serde_json writes them.
    pub fn to_json(&self) -> Bytes {
        let mut object = Object::with_capacity(self.key.len() + self.value.len() + FIELDS_BYTES);
        object
            .string("key", self.key)
            .string("value", self.value)
            .boolean("cached", self.cached)
            .string("source", self.source)
            .string("timestamp", &self.timestamp);
        if let Some(expires_at) = &self.expires_at {
            object.string("expires_at", expires_at);
        }
        object.integer("version", self.version);
        Bytes::from(object.finish())
    }
}

/// A response of `body`, JSON rendered beforehand.
pub fn json_response(body: Bytes) -> Response {
    let json = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, json)], body).into_response()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Text with the characters JSON escapes among others.
    fn text() -> impl Strategy<Value = String> {
        "[\"\\\\\u{0}-\u{1f}a-zé日🦀 ]{0,40}"
    }

    proptest! {
        #[test]
        fn a_stored_record_is_written_as_serde_json_writes_it(
            key in text(),
            value in text(),
            ttl in any::<Option<u64>>(),
            timestamp in text(),
            expires_at in any::<Option<String>>(),
            version in any::<i64>(),
        ) {
            let record = StoredRecord { key, value, ttl, timestamp, expires_at, version };
            prop_assert_eq!(record.to_json().to_vec(), serde_json::to_vec(&record).unwrap());
        }

        #[test]
        fn a_read_record_is_written_as_serde_json_writes_it(
            key in text(),
            value in text(),
            cached in any::<bool>(),
            source in prop::sample::select(vec!["l1", "redis", "store"]),
            timestamp in text(),
            expires_at in any::<Option<String>>(),
            version in any::<i64>(),
        ) {
            let record = ReadRecord {
                key: &key, value: &value, cached, source, timestamp, expires_at, version,
            };
            prop_assert_eq!(record.to_json().to_vec(), serde_json::to_vec(&record).unwrap());
        }
    }
}
