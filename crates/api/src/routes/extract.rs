//! Extractors that answer bad requests with our JSON errors.

use std::fmt;
use std::marker::PhantomData;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use store::domain::Key;

use super::paths;
use crate::error::ApiError;

/// `axum::Json`, with [`ApiError`] as its rejection.
#[derive(Debug, FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// The key of a record route (`/api/v1/data/{key}`), percent-decoded and
/// parsed.
///
/// Read from the path itself rather than through `axum::extract::Path`:
/// the record routes do not go through axum's router (see
/// [`dispatch`](super::dispatch)), and a key needs no copy but the one
/// [`Key`] keeps.
#[derive(Debug)]
pub struct RecordKey(pub Key);

impl<S: Sync> FromRequestParts<S> for RecordKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Self::from_path(parts.uri.path())
    }
}

impl RecordKey {
    /// The key of the record path `path`.
    pub fn from_path(path: &str) -> Result<Self, ApiError> {
        let encoded =
            paths::encoded_key(path).ok_or_else(|| ApiError::RouteNotFound(path.to_owned()))?;
        // Most keys are written without escapes; they need no decoding.
        if !encoded.contains('%') {
            return Ok(Self(Key::parse(encoded)?));
        }
        let decoded = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| {
                ApiError::InvalidPath("the key in the path does not decode to UTF-8".into())
            })?;
        Ok(Self(Key::parse(decoded)?))
    }
}

/// A `T` that must be written as a JSON object.
///
/// Serde's derived structs also accept a JSON array of the fields in order
/// (`["k", "v"]`); an API whose schema says "object" should not.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}
