//! Prometheus exposition shared by every program's `/metrics`.

use prometheus_client::registry::Registry;

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Renders every metric of `registry` in the Prometheus text format 0.0.4.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut body = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?;
    Ok(body)
}

/// Buckets for latencies from 100 µs to about 3 s.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.5, 12)
}
