//! Admission and the time limit of every request, run by the request's
//! [envelope](super::envelope).
//!
//! Load shedding: a replica takes on a bounded number of API requests and
//! request-body bytes at once, and answers the rest at once with 503 and
//! `Retry-After` instead of queueing them until memory or the time limit
//! runs out.
//!
//! The time limit: 408 (our JSON error) when a request takes longer than
//! `REQUEST_TIMEOUT_SECONDS`. Dropping the handler's future cancels its
//! work; the store and cache operations it was running are each atomic, so
//! nothing is left half done.
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

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use tokio::time::Sleep;
use tower::{Service, ServiceExt as _};

use crate::config::RequestLimits;
use crate::error::ApiError;

/// A count of something in flight with a ceiling. Not tokio's semaphore:
/// nothing waits here, and its release takes a mutex, which every request
/// would then contend for.
#[derive(Debug)]
struct Budget {
    used: AtomicU64,
    limit: u64,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            limit,
        }
    }

    /// Takes `amount`, or `None` when it would go over the limit.
    fn take(&self, amount: u64) -> Option<Taken<'_>> {
        let before = self.used.fetch_add(amount, Ordering::AcqRel);
        if before.saturating_add(amount) > self.limit {
            self.used.fetch_sub(amount, Ordering::AcqRel);
            return None;
        }
        Some(Taken {
            budget: self,
            amount,
        })
    }
}

/// What a request took from a [`Budget`], given back when dropped.
#[derive(Debug)]
struct Taken<'a> {
    budget: &'a Budget,
    amount: u64,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.amount, Ordering::AcqRel);
    }
}

#[derive(Debug)]
pub struct Admission {
    requests: Budget,
    body_bytes: Budget,
    /// What a body of unknown length may grow to (the body limit).
    body_limit: u64,
    /// How long a request may take; also how long a shed request's body
    /// may take to arrive.
    timeout: Duration,
}

impl Admission {
    pub fn new(limits: RequestLimits, body_limit: usize) -> Self {
        Self {
            requests: Budget::new(u64::try_from(limits.max_in_flight).unwrap_or(u64::MAX)),
            body_bytes: Budget::new(limits.max_body_bytes_in_flight),
            body_limit: u64::try_from(body_limit).unwrap_or(u64::MAX),
            timeout: limits.timeout,
        }
    }

    /// The bytes a request's body may occupy: its declared length, else (a
    /// chunked body) the most the body limit lets through.
    fn body_bytes(&self, request: &Request) -> u64 {
        let body = request.body();
        if body.is_end_stream() {
            return 0;
        }
        body.size_hint()
            .exact()
            .unwrap_or(self.body_limit)
            .min(self.body_limit)
    }
}

/// Admits the request and has `inner` answer it within the time limit,
/// or answers 503 `overloaded` when the replica is at either limit.
/// Permits are held until the response is ready.
pub async fn admit<S>(admission: &Admission, request: Request, inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    if !request.uri().path().starts_with("/api/") {
        return answer(inner, request).await;
    }
    let Some(_request) = admission.requests.take(1) else {
        return shed(request, admission).await;
    };
    let _body = match admission.body_bytes(&request) {
        0 => None,
        bytes => match admission.body_bytes.take(bytes) {
            Some(taken) => Some(taken),
            None => return shed(request, admission).await,
        },
    };
    // Pinned where they stand: nothing moves the answer's future, and the
    // sleep has a place before it is set.
    let mut answer = pin!(answer(inner, request));
    let mut sleep = pin!(None::<Sleep>);
    poll_fn(|cx| within_time_limit(cx, answer.as_mut(), sleep.as_mut(), admission.timeout)).await
}

/// Polls `answer`, or answers 408 once it has waited `limit`.
///
/// The timer is set when the answer first waits: an answer ready at once
/// (an L1 hit, a rejected request) costs no clock read, no timer handle
/// and no sleep, which `tokio::time::timeout` would set up front. The
/// time until then is the CPU time of one poll.
fn within_time_limit(
    cx: &mut Context<'_>,
    answer: Pin<&mut impl Future<Output = Response>>,
    mut sleep: Pin<&mut Option<Sleep>>,
    limit: Duration,
) -> Poll<Response> {
    if let Poll::Ready(response) = answer.poll(cx) {
        return Poll::Ready(response);
    }
    if sleep.is_none() {
        sleep.set(Some(tokio::time::sleep(limit)));
    }
    let Some(sleep) = sleep.as_pin_mut() else {
        // Set just above.
        return Poll::Pending;
    };
    sleep
        .poll(cx)
        .map(|()| ApiError::RequestTimeout(limit).into_response())
}

async fn answer<S>(inner: S, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
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
    let _ = tokio::time::timeout(admission.timeout, drain).await;
    ApiError::Overloaded.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_admits_up_to_its_limit_and_takes_back_what_is_dropped() {
        let budget = Budget::new(10);
        let six = budget.take(6);
        assert!(six.is_some());
        assert!(budget.take(5).is_none(), "6 + 5 > 10");
        let four = budget.take(4);
        assert!(four.is_some());
        assert!(budget.take(1).is_none());
        drop(six);
        assert!(budget.take(6).is_some());
        assert_eq!(
            budget.used.load(Ordering::Acquire),
            4,
            "refusals took nothing"
        );
    }
}
