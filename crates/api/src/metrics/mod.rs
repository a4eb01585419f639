//! The API's Prometheus metrics. Names and labels are contracts
//! (docs/decisions.md, record 9): the dashboard and the alert rules under
//! `deploy/observability/` query them.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod requests;

use requests::RequestMetrics;
pub use requests::{ROUTE_SLOTS, RequestRoute, RouteLabels};

/// Which cache level answered (or missed).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabels {
    pub level: &'static str,
}

/// A cache level, the `level` label of the hit and miss counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLevel {
    L1,
    Redis,
}

impl CacheLevel {
    fn label(self) -> LevelLabels {
        LevelLabels {
            level: match self {
                Self::L1 => "l1",
                Self::Redis => "redis",
            },
        }
    }
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PodLabels {
    pub pod: String,
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

/// A replay of the cache outbox, the `replay` label of
/// `cache_outbox_replayed_entries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxReplay {
    /// A repair's, after Redis failed or restarted: every entry.
    Repair,
    /// The routine one, each second while Redis is in use: the entries past
    /// their retention, which it then removes.
    Aged,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplayLabels {
    pub replay: &'static str,
}

impl OutboxReplay {
    fn label(self) -> ReplayLabels {
        let replay = match self {
            Self::Repair => "repair",
            Self::Aged => "aged",
        };
        ReplayLabels { replay }
    }
}

/// Every metric the API exports, registered once at start.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    level_hits: [Counter; 2],
    level_misses: [Counter; 2],
    /// GETs answered by some cache level, and by the store (or 404): the
    /// hit rate is the share of the first.
    served_cached: Counter,
    served_uncached: Counter,
    store_reads: Counter,
    cache_hit_rate: Gauge<f64, AtomicU64>,
    redis_connected: Gauge,
    l1_armed: Gauge,
    /// Per [`CacheOperation`], in its order: held, like the level counters,
    /// so that timing an operation looks nothing up.
    cache_operation_durations: [Histogram; 3],
    /// Per [`OutboxReplay`], in its order.
    outbox_replayed: [Counter; 2],
    outbox_oldest_age: Gauge<f64, AtomicU64>,
    outbox_retention: Gauge,
    fills_before_answer: Counter,
    fills_in_flight: Gauge,
    requests: RequestMetrics,
}

/// What `/metrics` reads from elsewhere at each scrape.
#[derive(Debug, Clone, Copy)]
pub struct Readings {
    /// Whether L1 takes entries, from L1 itself.
    pub l1_armed: bool,
    /// The bytes the fills sent after their answers hold.
    pub fills_in_flight_bytes: usize,
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
            "Share of reads answered by a cache level (L1 or Redis) since start",
            cache_hit_rate.clone(),
        );
        registry.register(
            "redis_connected",
            "1 when this replica uses Redis, 0 while it is unreachable or being repaired",
            redis_connected_family,
        );
        let l1_armed = Gauge::default();
        registry.register(
            "cache_l1_armed",
            "1 while L1 takes entries (its invalidations flow from Redis), 0 while it is paused or off",
            l1_armed.clone(),
        );
        registry.register(
            "cache_operation_duration_seconds",
            "Time of Redis cache operations",
            cache_operation_duration.clone(),
        );
        let requests = RequestMetrics::register(&mut registry, latency_histogram);
        // Created up front, so that the series exist from the first scrape,
        // and held, so that counting a hit takes no lock.
        let levels = [CacheLevel::L1, CacheLevel::Redis];
        let level_hits = levels.map(|level| cache_hits.get_or_create(&level.label()).clone());
        let level_misses = levels.map(|level| cache_misses.get_or_create(&level.label()).clone());
        let operations = [
            CacheOperation::Get,
            CacheOperation::Set,
            CacheOperation::Del,
        ];
        let cache_operation_durations = operations.map(|operation| {
            cache_operation_duration
                .get_or_create(&operation.label())
                .clone()
        });
        let store_queries = Family::<StoreLabels, Counter>::default();
        let store_reads = store_queries
            .get_or_create(&StoreLabels { operation: "get" })
            .clone();
        registry.register(
            "store_queries",
            "Queries sent to the store by the read path",
            store_queries,
        );
        let outbox_replayed_family = Family::<ReplayLabels, Counter>::default();
        let outbox_replayed = [OutboxReplay::Repair, OutboxReplay::Aged].map(|replay| {
            outbox_replayed_family
                .get_or_create(&replay.label())
                .clone()
        });
        registry.register(
            "cache_outbox_replayed_entries",
            "Cache outbox entries applied to Redis by replays: every entry after an outage, those past their retention each second",
            outbox_replayed_family,
        );
        let outbox_oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "cache_outbox_oldest_entry_age_seconds",
            "Age of the oldest write in the cache outbox (0 when it is empty); it outgrows the retention only while Redis is not repaired from it",
            outbox_oldest_age.clone(),
        );
        let outbox_retention = Gauge::default();
        registry.register(
            "cache_outbox_retention_seconds",
            "How long the cache outbox keeps a write before the routine replay applies it (CACHE_OUTBOX_RETENTION_SECONDS; 0 without Redis)",
            outbox_retention.clone(),
        );
        let fills_before_answer = Counter::default();
        registry.register(
            "cache_fills_before_answer",
            "Fills of Redis sent before their reads were answered, because the fills in flight held all they may",
            fills_before_answer.clone(),
        );
        let fills_in_flight = Gauge::default();
        registry.register(
            "cache_fills_in_flight_bytes",
            "Bytes held by fills of Redis sent after their reads were answered and not yet landed",
            fills_in_flight.clone(),
        );

        Self {
            registry,
            level_hits,
            level_misses,
            served_cached: Counter::default(),
            served_uncached: Counter::default(),
            store_reads,
            cache_hit_rate,
            redis_connected,
            l1_armed,
            cache_operation_durations,
            outbox_replayed,
            outbox_oldest_age,
            outbox_retention,
            fills_before_answer,
            fills_in_flight,
            requests,
        }
    }

    pub fn level_hit(&self, level: CacheLevel) {
        self.level_hits[level as usize].inc();
    }

    pub fn level_miss(&self, level: CacheLevel) {
        self.level_misses[level as usize].inc();
    }

    /// One GET answered: by a cache level, or not.
    pub fn served(&self, cached: bool) {
        if cached {
            self.served_cached.inc();
        } else {
            self.served_uncached.inc();
        }
    }

    pub fn store_read(&self) {
        self.store_reads.inc();
    }

    /// (answered by a cache level, answered by the store or 404) so far.
    pub fn served_totals(&self) -> (u64, u64) {
        (self.served_cached.get(), self.served_uncached.get())
    }

    /// The share of GETs a cache level answered, 0 before the first.
    pub fn hit_rate(&self) -> f64 {
        let (cached, uncached) = self.served_totals();
        let lookups = cached + uncached;
        if lookups == 0 {
            0.0
        } else {
            // Precision loss only past 2^53 lookups.
            #[allow(clippy::cast_precision_loss)]
            let rate = cached as f64 / lookups as f64;
            rate
        }
    }

    pub fn set_redis_connected(&self, connected: bool) {
        self.redis_connected.set(i64::from(connected));
    }

    pub fn observe_cache_operation(&self, operation: CacheOperation, seconds: f64) {
        self.cache_operation_durations[operation as usize].observe(seconds);
    }

    /// `entries` more applied to Redis by a replay of the cache outbox.
    pub fn outbox_replayed(&self, replay: OutboxReplay, entries: u64) {
        self.outbox_replayed[replay as usize].inc_by(entries);
    }

    /// The age of the cache outbox's oldest entry, in milliseconds; 0 for
    /// an empty outbox.
    pub fn set_outbox_oldest_age(&self, age_ms: u64) {
        // Precision loss only past 2^53 ms.
        #[allow(clippy::cast_precision_loss)]
        let seconds = age_ms as f64 / 1000.0;
        self.outbox_oldest_age.set(seconds);
    }

    /// The cache outbox's retention: the oldest entry's age stays within
    /// it (and a tick) while the routine replay keeps up.
    pub fn set_outbox_retention(&self, retention: Duration) {
        self.outbox_retention
            .set(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    }

    /// A fill sent before its read was answered: the fills in flight held
    /// all they may.
    pub fn fill_before_answer(&self) {
        self.fills_before_answer.inc();
    }

    pub fn observe_request(&self, route: RequestRoute, status: u16, seconds: f64) {
        self.requests.observe(route, status, seconds);
    }

    /// The exposition for `/metrics`, with the gauges that are read from
    /// elsewhere (the hit rate from the counters, the rest from `readings`)
    /// set as of now.
    pub fn render(&self, readings: Readings) -> Result<String, std::fmt::Error> {
        self.cache_hit_rate.set(self.hit_rate());
        self.l1_armed.set(i64::from(readings.l1_armed));
        self.fills_in_flight
            .set(i64::try_from(readings.fills_in_flight_bytes).unwrap_or(i64::MAX));
        platform::metrics::render(&self.registry)
    }
}
