//! Every error the API answers with, and its one JSON shape:
//! `{"error":{"code":"...","message":"..."}}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use store::StoreError;
use store::domain::{KeyError, TtlError, ValueError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidKey(#[from] KeyError),
    /// A key in a request body: a bad field, like a bad ttl.
    #[error("{0}")]
    InvalidKeyField(KeyError),
    #[error("{0}")]
    InvalidTtl(#[from] TtlError),
    #[error("{0}")]
    InvalidValue(#[from] ValueError),
    #[error("{message}")]
    BadRequestBody { status: StatusCode, message: String },
    #[error("{0}")]
    InvalidPath(String),
    #[error("no record under key {0:?}")]
    RecordNotFound(String),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed for this route")]
    MethodNotAllowed,
    #[error("the request took longer than {0:?}")]
    RequestTimeout(std::time::Duration),
    #[error("the store is unavailable")]
    Store(#[from] StoreError),
    #[error("this replica is serving as many requests as it takes; retry in a second")]
    Overloaded,
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `invalid_key`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidKey(_) | Self::InvalidPath(_) => StatusCode::BAD_REQUEST,
            Self::InvalidKeyField(_) | Self::InvalidTtl(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidValue(ValueError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidValue(ValueError::Nul { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequestBody { status, .. } => *status,
            Self::RecordNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Store(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidKey(_) | Self::InvalidKeyField(_) => "invalid_key",
            Self::InvalidTtl(_) => "invalid_ttl",
            Self::InvalidPath(_) => "invalid_path",
            Self::InvalidValue(ValueError::TooLarge { .. }) => "value_too_large",
            Self::InvalidValue(ValueError::Nul { .. }) => "invalid_value",
            Self::BadRequestBody { status, .. } => match *status {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNPROCESSABLE_ENTITY => "invalid_field",
                _ => "malformed_json",
            },
            Self::RecordNotFound(_) => "not_found",
            Self::RouteNotFound(_) => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout(_) => "request_timeout",
            Self::Store(_) => "store_unavailable",
            Self::Overloaded => "overloaded",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The store's error text can name hosts and tables; log it, do not
        // send it.
        if let Self::Store(error) = &self {
            tracing::error!(%error, "store failure");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::Overloaded = self {
            // Shedding lasts as long as the requests in flight: a second.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "expected a body with content type application/json".to_owned()
            }
            _ => rejection.body_text(),
        };
        Self::BadRequestBody {
            status: rejection.status(),
            message,
        }
    }
}
