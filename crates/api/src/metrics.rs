//! The API's Prometheus metrics. Names and labels are contracts (DESIGN.md
//! section 2): dashboards and alerts query them.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Which cache level answered (or missed).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabels {
    pub level: &'static str,
}

const REDIS_LEVEL: LevelLabels = LevelLabels { level: "redis" };

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PodLabels {
    pub pod: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

/// A cache operation timed by `cache_operation_duration_seconds`.
#[derive(Debug, Clone, Copy)]
pub enum CacheOperation {
    Get,
    Set,
    Del,
}

impl CacheOperation {
    fn label(self) -> OperationLabels {
        let operation = match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Del => "del",
        };
        OperationLabels { operation }
    }
}

/// Every metric the API exports, registered once at start.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    redis_hits: Counter,
    redis_misses: Counter,
    cache_hit_rate: Gauge<f64, AtomicU64>,
    redis_connected: Gauge,
    cache_operation_duration: Family<OperationLabels, Histogram>,
    http_requests: Family<RequestLabels, Counter>,
    http_request_duration: Family<RouteLabels, Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(platform::metrics::latency_buckets())
}

impl Metrics {
    pub fn new(pod: String) -> Self {
        let mut registry = Registry::default();
        let cache_hits = Family::<LevelLabels, Counter>::default();
        let cache_misses = Family::<LevelLabels, Counter>::default();
        let cache_hit_rate = Gauge::<f64, AtomicU64>::default();
        let redis_connected_family = Family::<PodLabels, Gauge>::default();
        let redis_connected = redis_connected_family
            .get_or_create(&PodLabels { pod })
            .clone();
        let cache_operation_duration = Family::<OperationLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );

        registry.register(
            "cache_hits",
            "Reads answered by a cache level",
            cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Reads a cache level could not answer",
            cache_misses.clone(),
        );
        registry.register(
            "cache_hit_rate",
            "cache_hits / (cache_hits + cache_misses) since start",
            cache_hit_rate.clone(),
        );
        registry.register(
            "redis_connected",
            "1 when this replica uses Redis, 0 while it is unreachable or being repaired",
            redis_connected_family,
        );
        registry.register(
            "cache_operation_duration_seconds",
            "Time of Redis cache operations",
            cache_operation_duration.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route template",
            http_request_duration.clone(),
        );
        // Created up front, so that the series exist from the first scrape,
        // and held, so that counting a hit takes no lock.
        let redis_hits = cache_hits.get_or_create(&REDIS_LEVEL).clone();
        let redis_misses = cache_misses.get_or_create(&REDIS_LEVEL).clone();

        Self {
            registry,
            redis_hits,
            redis_misses,
            cache_hit_rate,
            redis_connected,
            cache_operation_duration,
            http_requests,
            http_request_duration,
        }
    }

    pub fn cache_hit(&self) {
        self.redis_hits.inc();
    }

    pub fn cache_miss(&self) {
        self.redis_misses.inc();
    }

    pub fn cache_hits_total(&self) -> u64 {
        self.redis_hits.get()
    }

    pub fn cache_misses_total(&self) -> u64 {
        self.redis_misses.get()
    }

    /// hits / (hits + misses), 0 before the first lookup.
    pub fn hit_rate(&self) -> f64 {
        let hits = self.cache_hits_total();
        let lookups = hits + self.cache_misses_total();
        if lookups == 0 {
            0.0
        } else {
            // Precision loss only past 2^53 lookups.
            #[allow(clippy::cast_precision_loss)]
            let rate = hits as f64 / lookups as f64;
            rate
        }
    }

    pub fn set_redis_connected(&self, connected: bool) {
        self.redis_connected.set(i64::from(connected));
    }

    pub fn redis_connected(&self) -> bool {
        self.redis_connected.get() == 1
    }

    pub fn observe_cache_operation(&self, operation: CacheOperation, seconds: f64) {
        self.cache_operation_duration
            .get_or_create(&operation.label())
            .observe(seconds);
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_request_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The exposition for `/metrics`.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        self.cache_hit_rate.set(self.hit_rate());
        platform::metrics::render(&self.registry)
    }
}
