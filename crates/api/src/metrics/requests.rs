//! The HTTP request metrics, `http_requests_total` and
//! `http_request_duration_seconds`, and the series of each route held once
//! resolved.
//!
//! A family finds a series by taking its lock and hashing the labels, and
//! every request looked up two (docs/decisions.md, record 27). So each
//! method and route pair gets a slot, resolved on its first request: its
//! histogram, and a counter for each of the statuses answered most. A
//! series appears in the exposition when first used, as before.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Static strings, so that counting a request allocates nothing: the
/// method is one of a fixed set or `other`, and the route one of the route
/// templates (`routes/mod.rs`, `/docs` for Swagger UI) or `unmatched`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: &'static str,
}

/// A request's labels and its slot: a number below [`ROUTE_SLOTS`] that
/// only these labels have (the caller numbers its methods and routes). A
/// slot out of range still counts, through the families.
#[derive(Debug, Clone, Copy)]
pub struct RequestRoute {
    pub labels: RouteLabels,
    pub slot: usize,
}

/// Slots for every pair of the methods and routes the API numbers.
pub const ROUTE_SLOTS: usize = 128;

/// The statuses with a counter held per route; others go through the
/// family.
const HELD_STATUSES: [u16; 6] = [200, 201, 204, 400, 404, 503];

/// The series of one method and route.
#[derive(Debug)]
struct RouteSeries {
    duration: Histogram,
    /// By position in [`HELD_STATUSES`], each resolved on first use.
    counts: [OnceLock<Counter>; HELD_STATUSES.len()],
}

#[derive(Debug)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    routes: Box<[OnceLock<RouteSeries>]>,
}

impl RequestMetrics {
    /// Registers both families in `registry`.
    pub fn register(registry: &mut Registry, histogram: fn() -> Histogram) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(histogram);
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route template",
            durations.clone(),
        );
        Self {
            requests,
            durations,
            routes: (0..ROUTE_SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    pub fn observe(&self, route: RequestRoute, status: u16, seconds: f64) {
        let RouteLabels {
            method,
            route: template,
        } = route.labels;
        let labels = RequestLabels {
            method,
            route: template,
            status,
        };
        let Some(slot) = self.routes.get(route.slot) else {
            self.requests.get_or_create(&labels).inc();
            self.durations.get_or_create(&route.labels).observe(seconds);
            return;
        };
        let series = slot.get_or_init(|| RouteSeries {
            duration: self.durations.get_or_create(&route.labels).clone(),
            counts: Default::default(),
        });
        series.duration.observe(seconds);
        match HELD_STATUSES.iter().position(|held| *held == status) {
            Some(at) => series.counts[at]
                .get_or_init(|| self.requests.get_or_create(&labels).clone())
                .inc(),
            None => self.requests.get_or_create(&labels).inc(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &'static str, template: &'static str, slot: usize) -> RequestRoute {
        RequestRoute {
            labels: RouteLabels {
                method,
                route: template,
            },
            slot,
        }
    }

    #[test]
    fn held_and_looked_up_series_count_into_the_same_exposition() {
        let mut registry = Registry::default();
        let metrics = RequestMetrics::register(&mut registry, || Histogram::new([0.1]));
        let health = route("GET", "/health", 3);
        metrics.observe(health, 200, 0.01);
        metrics.observe(health, 200, 0.01);
        metrics.observe(health, 418, 0.01);
        // Out of range: through the families, into the same series.
        metrics.observe(route("GET", "/health", ROUTE_SLOTS), 200, 0.5);
        let text = platform::metrics::render(&registry).unwrap();
        for line in [
            r#"http_requests_total{method="GET",route="/health",status="200"} 3"#,
            r#"http_requests_total{method="GET",route="/health",status="418"} 1"#,
            r#"http_request_duration_seconds_count{method="GET",route="/health"} 4"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
