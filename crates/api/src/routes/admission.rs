//! Load shedding: a replica takes on a bounded number of API requests and
//! request-body bytes at once, and answers the rest at once with 503 and
//! `Retry-After` instead of queueing them until memory or the time limit
//! runs out.
//!
//! Bodies are bounded apart from requests because they are what costs
//! memory: a write's body is buffered, parsed into a value and passed on to
//! the store and Redis, a few copies of up to `2 * MAX_VALUE_BYTES` each,
//! where a read costs a few kilobytes. The probes and `/metrics` are never
//! shed: a busy replica is alive and should say so.
//!
//! A shed request's body is read and dropped before the 503 goes out (one
//! frame at a time, so it costs no memory): a server that closes a
//! connection with unread bytes in it makes the kernel reset it, and the
//! client would see a reset instead of the 503.

use std::sync::Arc;
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use tokio::sync::Semaphore;

use super::RequestLimits;
use crate::error::ApiError;

/// Body bytes are counted in KiB: a semaphore counts in `u32`s.
const UNIT: u64 = 1024;

#[derive(Debug)]
pub struct Admission {
    requests: Semaphore,
    body_units: Semaphore,
    /// What a body of unknown length may grow to (the body limit).
    body_limit: u64,
    /// How long a shed request's body may take to arrive.
    drain_timeout: Duration,
}

impl Admission {
    pub fn new(limits: RequestLimits, body_limit: usize) -> Self {
        let body_units = (limits.max_body_bytes_in_flight / UNIT).min(u64::from(u32::MAX));
        Self {
            requests: Semaphore::new(limits.max_in_flight.min(Semaphore::MAX_PERMITS)),
            body_units: Semaphore::new(usize::try_from(body_units).unwrap_or(usize::MAX)),
            body_limit: u64::try_from(body_limit).unwrap_or(u64::MAX),
            drain_timeout: limits.timeout,
        }
    }

    /// The KiB a request's body may occupy: its declared length, else (a
    /// chunked body) the most the body limit lets through.
    fn body_units(&self, request: &Request) -> u32 {
        let body = request.body();
        let bytes = if body.is_end_stream() {
            0
        } else {
            body.size_hint()
                .exact()
                .unwrap_or(self.body_limit)
                .min(self.body_limit)
        };
        u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
    }
}

/// Admits the request, or answers 503 `overloaded` when the replica is at
/// either limit. Permits are held until the response is ready.
pub async fn admit(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let Ok(_request) = admission.requests.try_acquire() else {
        return shed(request, &admission).await;
    };
    let units = admission.body_units(&request);
    let _body = match units {
        0 => None,
        units => match admission.body_units.try_acquire_many(units) {
            Ok(permit) => Some(permit),
            Err(_) => return shed(request, &admission).await,
        },
    };
    next.run(request).await
}

/// 503 `overloaded`, once the body is read (up to the body limit, within
/// the request time limit; past either the connection may be reset, and
/// that client was misbehaving anyway).
async fn shed(request: Request, admission: &Admission) -> Response {
    let mut body = request.into_body();
    let mut left = admission.body_limit;
    let drain = async {
        while let Some(Ok(frame)) = body.frame().await {
            let len = frame.data_ref().map_or(0, |data| data.len() as u64);
            left = left.saturating_sub(len);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(admission.drain_timeout, drain).await;
    ApiError::Overloaded.into_response()
}
