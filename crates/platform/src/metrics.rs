//! Prometheus exposition shared by every program's `/metrics`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::registry::Registry;

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Renders every metric of `registry` in the Prometheus text format 0.0.4.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut body = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?;
    Ok(body)
}

/// The answer to a scrape: `exposition` (from [`render`]) with the text
/// format's content type, or a logged 500 if it could not be encoded.
pub fn scrape_response(exposition: Result<String, std::fmt::Error>) -> Response {
    match exposition {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Buckets for latencies from 100 µs to about 3 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.5, 12)
}
