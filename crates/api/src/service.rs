//! Cache-aside over the store: the rules of reading and writing records.
//!
//! Reads: L1, then Redis, then the store, filling the levels above with
//! what was found; with L1 on, concurrent misses of one key share one load. Writes: the
//! store first (the source of truth, with its outbox entry), then Redis,
//! then this replica's L1 (other replicas' L1 hear of it from Redis). Every
//! Redis write is version-checked (or, filling a key found empty, written
//! only while it still is), so the order in which concurrent requests reach
//! Redis does not matter. Redis failures never fail a request: they
//! are logged, counted and repaired later.

use std::sync::Arc;

use platform::single_flight::Tail;
use store::clock::Clock;
use store::domain::{Key, Record, Ttl};
use store::{Store, StoreError};

use crate::cache::fills::{self, Fills};
use crate::cache::l1::{Load, LoadOutcome, LoadedRecord, LocalCache, Snapshot, Source};
use crate::cache::{CacheError, CacheWrite, Found, RedisCache, RedisEntry};
use crate::metrics::{CacheLevel, Metrics, Readings};

/// A read's answer: the record and the level that answered now.
#[derive(Debug)]
pub struct Served {
    /// The record as loaded: the very entry L1 holds when L1 answered, so
    /// reading it clones nothing.
    pub loaded: Arc<LoadedRecord>,
    /// The response's `source`: L1 when L1 answered, though the entry was
    /// found in Redis or the store when it was loaded.
    pub source: Source,
}

impl Served {
    fn new(loaded: Arc<LoadedRecord>, source: Source) -> Self {
        Self { loaded, source }
    }

    pub fn record(&self) -> &Record {
        &self.loaded.record
    }

    /// True when a cache level answered, false when the store did.
    pub fn cached(&self) -> bool {
        self.source != Source::Store
    }
}

/// What a reader learnt from Redis.
enum RedisRead {
    Hit(Record),
    /// Not served from Redis; `fill` is how a value loaded from the store
    /// goes back.
    Miss {
        fill: CacheWrite,
    },
}

#[derive(Debug, Clone)]
pub struct DataService {
    store: Store,
    cache: Option<Arc<RedisCache>>,
    l1: Arc<LocalCache>,
    l1_enabled: bool,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Fills in flight after their reads were answered.
    fills: Fills,
}

impl DataService {
    pub fn new(
        store: Store,
        cache: Option<Arc<RedisCache>>,
        l1: Arc<LocalCache>,
        l1_enabled: bool,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            cache,
            l1,
            l1_enabled,
            clock,
            metrics,
            fills: Fills::new(fills::MAX_IN_FLIGHT_BYTES),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn cache(&self) -> Option<&Arc<RedisCache>> {
        self.cache.as_ref()
    }

    /// What `/metrics` reads from the service: whether L1 is on and takes
    /// entries (its invalidations flow; without Redis, always), and what
    /// the fills in flight hold.
    pub fn readings(&self) -> Readings {
        Readings {
            l1_armed: self.l1_enabled && self.l1.is_armed(),
            fills_in_flight_bytes: self.fills.in_flight_bytes(),
        }
    }

    /// The live record under `key`, if any, once [`Self::get_from_l1`]
    /// found none: from Redis or the store. A read takes L1's answer first
    /// and comes here with the key it parsed, so that a miss looks L1 up
    /// once.
    pub async fn get_below_l1(&self, key: &Key) -> Result<Option<Served>, StoreError> {
        if self.l1_enabled {
            self.metrics.level_miss(CacheLevel::L1);
        }
        let served = self.lookup_below_l1(key).await?;
        let now_ms = self.clock.now_ms();
        // Every level may hold a record that lapsed a moment ago; its own
        // expiry time decides.
        let served = served.filter(|served| served.record().is_live_at(now_ms));
        self.metrics
            .served(served.as_ref().is_some_and(Served::cached));
        Ok(served)
    }

    /// The live record under `key` if L1 holds it: a read's answer when it
    /// needs no I/O, which a caller can take without a future. `None` when
    /// L1 is off or holds no live record under `key`; nothing is counted
    /// then, and [`Self::get_below_l1`] looks further (an entry whose record
    /// lapsed is a miss: the levels below know the record lapsed too).
    pub fn get_from_l1(&self, key: &Key) -> Option<Served> {
        if !self.l1_enabled {
            return None;
        }
        let hit = self.l1.get(key.as_str())?;
        if !hit.record.is_live_at(self.clock.now_ms()) {
            return None;
        }
        self.metrics.level_hit(CacheLevel::L1);
        self.metrics.served(true);
        Some(Served::new(hit, Source::L1))
    }

    /// Redis, then the store, filling the levels above.
    async fn lookup_below_l1(&self, key: &Key) -> Result<Option<Served>, StoreError> {
        // Taken before Redis is read: an invalidation after this point keeps
        // what the read returns out of L1.
        let snapshot = self.l1.snapshot(key.as_str());
        let fill = match self.read_redis(key).await {
            RedisRead::Hit(record) => {
                let entry = Arc::new(LoadedRecord::new(record, Source::Redis, true));
                if self.l1_enabled {
                    self.l1
                        .insert_if_current(key.as_str(), snapshot, entry.clone())
                        .await;
                }
                return Ok(Some(Served::new(entry, Source::Redis)));
            }
            RedisRead::Miss { fill } => fill,
        };
        if !self.l1_enabled {
            // Not shared: a load this replica shares may have begun before
            // another replica's write completed, and without L1 this
            // replica hears of no other replica's writes, so it could not
            // tell. With L1 off every read sees every write that completed
            // before it began, on any replica (docs/api.md).
            let (read, fill) = self.load(key, snapshot, fill).await;
            if let Some(fill) = fill {
                tokio::spawn(fill);
            }
            let Some(loaded) = read.map_err(StoreError::Shared)? else {
                return Ok(None);
            };
            let found_in = loaded.found_in;
            return Ok(Some(Served::new(Arc::new(loaded), found_in)));
        }
        // Boxed: the load's future is large, and a Redis hit would carry
        // it too, though only Redis misses run it.
        let load = Box::pin(
            self.l1
                .get_or_load(key.as_str(), snapshot, || self.load(key, snapshot, fill)),
        )
        .await;
        let entry = match &load.outcome {
            LoadOutcome::NotFound => return Ok(None),
            LoadOutcome::Uncached(loaded) => Arc::new(loaded.clone()),
            LoadOutcome::Cacheable(entry) => entry.clone(),
            LoadOutcome::Failed(error) => return Err(StoreError::Shared(error.clone())),
        };
        let found_in = entry.found_in;
        Ok(Some(Served::new(entry, found_in)))
    }

    /// The live entry Redis holds for `key`, if Redis is in use and holds
    /// one; otherwise the fill that suits what it holds.
    async fn read_redis(&self, key: &Key) -> RedisRead {
        let checked = RedisRead::Miss {
            fill: CacheWrite::Fill,
        };
        let Some(cache) = &self.cache else {
            return checked;
        };
        match cache.get(key).await {
            Ok(Found::Entry(RedisEntry::Live(record))) => {
                self.metrics.level_hit(CacheLevel::Redis);
                RedisRead::Hit(record)
            }
            Ok(Found::Nothing) => {
                self.metrics.level_miss(CacheLevel::Redis);
                RedisRead::Miss {
                    fill: CacheWrite::FillEmpty,
                }
            }
            Ok(Found::Entry(RedisEntry::Tombstone { .. }) | Found::Foreign) => {
                self.metrics.level_miss(CacheLevel::Redis);
                checked
            }
            Err(CacheError::Unusable) => checked,
            Err(error) => {
                tracing::debug!(%key, %error, "cache read failed; reading the store");
                checked
            }
        }
    }

    /// A Redis miss: read the store and fill Redis. Runs once per key for
    /// any number of concurrent callers.
    ///
    /// A caller whose Redis read missed just before another load filled
    /// Redis may arrive here after that load finished; the fill moved the
    /// key's generation past the caller's `snapshot`, so it looks at Redis
    /// again instead of reading the store a second time. `fill` suits what
    /// the caller's read found in Redis (the last read, when it looked again).
    async fn load(&self, key: &Key, snapshot: Snapshot, mut fill: CacheWrite) -> Load {
        if self.l1.snapshot(key.as_str()) != snapshot {
            match self.read_redis(key).await {
                RedisRead::Hit(record) => {
                    return (
                        Ok(Some(LoadedRecord::new(record, Source::Redis, true))),
                        None,
                    );
                }
                RedisRead::Miss { fill: refreshed } => fill = refreshed,
            }
        }
        self.metrics.store_read();
        let now_ms = self.clock.now_ms();
        let record = match self.store.get(key, now_ms).await {
            Ok(Some(record)) => record,
            Ok(None) => return (Ok(None), None),
            Err(error) => return (Err(Arc::new(error)), None),
        };
        let fill = self.fill(key, &record, fill).await;
        // Without Redis no announcement will come to evict it.
        let cacheable = self.cache.is_none();
        (
            Ok(Some(LoadedRecord::new(record, Source::Store, cacheable))),
            fill,
        )
    }

    /// Offers `record`, just read from the store, to Redis, which keeps
    /// whatever is newer: a write that landed since this read keeps its
    /// value. The read need not wait for it: the fill comes back to send
    /// after the read is answered, unless the fills in flight hold too
    /// much already; then it is sent here.
    async fn fill(&self, key: &Key, record: &Record, why: CacheWrite) -> Option<Tail> {
        let cache = self.cache.as_ref()?;
        let write = cache.prepare(record, self.clock.now_ms(), why)?;
        match self.fills.later(cache, &self.l1, key, write) {
            Ok(later) => Some(later),
            Err(write) => {
                self.metrics.fill_before_answer();
                cache.send_and_note(&self.l1, key, &write).await;
                None
            }
        }
    }

    /// Writes `record`, just written to the store, through to Redis, which
    /// keeps whatever is newer.
    async fn write_through(&self, key: &Key, record: &Record, why: CacheWrite) {
        let Some(cache) = &self.cache else {
            return;
        };
        match cache.prepare(record, self.clock.now_ms(), why) {
            Some(write) => cache.send_and_note(&self.l1, key, &write).await,
            // Nothing to cache; readers that missed Redis before this write
            // still look again (see `load`).
            None => self.l1.note_change(key.as_str()),
        }
    }

    /// Stores `value` under `key` and caches it. The cache update may fail;
    /// the store's outbox entry repairs Redis later in that case.
    pub async fn put(
        &self,
        key: &Key,
        value: impl Into<String>,
        ttl: Option<Ttl>,
    ) -> Result<Record, StoreError> {
        let now_ms = self.clock.now_ms();
        let written = self.store.put(key, value, ttl, now_ms).await?;
        let why = if written.created {
            CacheWrite::Create
        } else {
            CacheWrite::Change
        };
        self.write_through(key, &written.record, why).await;
        self.l1.invalidate(key.as_str()).await;
        Ok(written.record)
    }

    /// Deletes the live record under `key`; false when there was none.
    pub async fn delete(&self, key: &Key) -> Result<bool, StoreError> {
        let Some(floor) = self.store.delete(key, self.clock.now_ms()).await? else {
            return Ok(false);
        };
        if let Some(cache) = &self.cache
            && let Err(error) = cache.bury(key, floor).await
        {
            tracing::debug!(%key, %error, "cache invalidation deferred to the outbox");
        }
        self.l1.invalidate(key.as_str()).await;
        Ok(true)
    }
}
