//! What every request goes through around the router, as one service: its
//! request id, its tracing span, its metrics, and admission with the time
//! limit ([`admission`]).
//!
//! One hand-written service rather than a stack of tower-http layers and
//! `axum::middleware::from_fn`: each of those wrapped the request's future
//! once more, and each `from_fn` boxed a clone of the service inside it for
//! every request; the request-id layers also gave the request and the
//! response an extension map each. Here a request costs one boxed future
//! (docs/decisions.md, record 27).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::HeaderName;
use axum::response::Response;
use tower::Service;
use tracing::Instrument as _;

use super::admission::{self, Admission};
use super::paths;
use crate::metrics::{Metrics, ROUTE_SLOTS, RequestRoute, RouteLabels};

/// The header that carries a request's id, in the request and back in the
/// response.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The methods with a label of their own; any other is counted as `other`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// What the envelope of every request shares.
#[derive(Debug)]
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub admission: Admission,
}

/// The router `S`, inside what every request goes through.
#[derive(Debug, Clone)]
pub struct Envelope<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Envelope<S> {
    pub fn new(inner: S, shared: Shared) -> Self {
        Self {
            inner,
            shared: Arc::new(shared),
        }
    }
}

impl<S> Service<Request> for Envelope<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        // Counted under its route template, never the raw path (which would
        // give every key its own series), with whatever status it gets:
        // time-outs and shed requests included. Methods outside the list
        // share one label, and paths no route serves another, so no client
        // can add series.
        let route = request_route(request.method().as_str(), request.uri().path());
        let request_id = request_id_of(&request);
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = request_id.to_str().unwrap_or_default(),
        );
        // The clone that was made ready is the one to call; the new clone
        // waits for the next request (tower's documented pattern).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(
            async move {
                let mut response = admission::admit(&shared.admission, request, inner).await;
                let status = response.status();
                let elapsed = started.elapsed();
                shared
                    .metrics
                    .observe_request(route, status.as_u16(), elapsed.as_secs_f64());
                tracing::debug!(
                    status = status.as_u16(),
                    elapsed_ms = elapsed.as_secs_f64() * 1e3,
                    "request finished"
                );
                response.headers_mut().insert(X_REQUEST_ID, request_id);
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The caller's request id, or a new UUID when it sent none.
fn request_id_of(request: &Request) -> HeaderValue {
    if let Some(id) = request.headers().get(X_REQUEST_ID) {
        return id.clone();
    }
    let mut text = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    // A UUID is always a valid header value.
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static(""))
}

// Every slot `request_route` hands out is one the metrics hold.
const _: () = assert!((METHODS.len() + 1) * (paths::ALL.len() + 1) <= ROUTE_SLOTS);

/// The labels of a request's metrics, and the slot of their series: one
/// for each method of [`METHODS`] and `other`, times each route template
/// and `unmatched`.
fn request_route(method: &str, path: &str) -> RequestRoute {
    let method_at = METHODS.iter().position(|listed| *listed == method);
    let route_at = paths::template_of(path)
        .and_then(|template| paths::ALL.iter().position(|listed| *listed == template));
    let labels = RouteLabels {
        method: method_at.map_or("other", |at| METHODS[at]),
        route: route_at.map_or("unmatched", |at| paths::ALL[at]),
    };
    let method_slot = method_at.unwrap_or(METHODS.len());
    let route_slot = route_at.unwrap_or(paths::ALL.len());
    RequestRoute {
        labels,
        slot: method_slot * (paths::ALL.len() + 1) + route_slot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_and_route_pair_has_a_slot_of_its_own() {
        let methods = METHODS.iter().copied().chain(["BREW"]);
        let paths = [
            "/health",
            "/ready",
            "/metrics",
            "/api/v1/cache/test",
            "/api/v1/config",
        ]
        .into_iter()
        .chain(["/api/v1/data", "/api/v1/data/k", "/docs/", "/nowhere"]);
        let mut seen = std::collections::HashMap::new();
        for method in methods {
            for path in paths.clone() {
                let route = request_route(method, path);
                assert!(route.slot < ROUTE_SLOTS, "{method} {path}");
                let labels = (route.labels.method, route.labels.route);
                if let Some(other) = seen.insert(route.slot, labels) {
                    panic!("slot {} for {other:?} and {labels:?}", route.slot);
                }
            }
        }
        assert_eq!(seen.len(), (METHODS.len() + 1) * (paths::ALL.len() + 1));
        assert_eq!(
            request_route("BREW", "/api/v1/data/k").labels,
            RouteLabels {
                method: "other",
                route: "/api/v1/data/{key}"
            }
        );
    }
}
