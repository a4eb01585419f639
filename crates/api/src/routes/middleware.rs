//! Request metrics and the tracing span of each request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;

use super::paths;
use crate::metrics::{Metrics, RouteLabels};

/// The methods with a label of their own; any other is counted as `other`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// Counts and times each request under its route template (never the raw
/// path, which would give every key its own series), with whatever status
/// it got: time-outs and shed requests included. Methods outside our list
/// share one label, and paths no route serves another, so no client can add
/// series.
pub async fn record_metrics(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = paths::template_of(request.uri().path()).unwrap_or("unmatched");
    let method = listed(&METHODS, request.method().as_str());
    let response = next.run(request).await;
    metrics.observe_request(
        RouteLabels { method, route },
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `value` as the static string of `list` that equals it, or `other`.
fn listed(list: &[&'static str], value: &str) -> &'static str {
    list.iter()
        .find(|listed| **listed == value)
        .copied()
        .unwrap_or("other")
}

/// One span per request, carrying its request id.
pub fn request_span(request: &axum::http::Request<axum::body::Body>) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}
