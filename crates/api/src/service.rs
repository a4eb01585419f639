//! Cache-aside over the store: the rules of reading and writing records.
//!
//! Reads: Redis, then the store, filling Redis with what the store returned.
//! Writes: the store first (the source of truth, with its outbox entry), then
//! Redis. Every Redis write is version-checked, so the order in which
//! concurrent requests reach Redis does not matter. Redis failures never fail
//! a request: they are logged, counted and repaired later.

use std::sync::Arc;

use platform::clock::Clock;
use platform::domain::{Key, Record, Ttl};
use platform::store::{Store, StoreError};

use crate::cache::{CacheError, Entry, RedisCache};
use crate::metrics::Metrics;

/// A record and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub record: Record,
    /// True when a cache level answered, false when the store did.
    pub cached: bool,
}

#[derive(Debug, Clone)]
pub struct DataService {
    store: Store,
    cache: Option<Arc<RedisCache>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl DataService {
    pub fn new(
        store: Store,
        cache: Option<Arc<RedisCache>>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            cache,
            clock,
            metrics,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn cache(&self) -> Option<&Arc<RedisCache>> {
        self.cache.as_ref()
    }

    /// The live record under `key`, if any.
    pub async fn get(&self, key: &Key) -> Result<Option<Served>, StoreError> {
        let now_ms = self.clock.now_ms();
        if let Some(cache) = &self.cache {
            match cache.get(key).await {
                Ok(Some(Entry::Live(record))) => {
                    self.metrics.cache_hit();
                    // Redis' own expiry is close but not exact; the record's
                    // expiry time decides.
                    return Ok(record.is_live_at(now_ms).then_some(Served {
                        record,
                        cached: true,
                    }));
                }
                Ok(Some(Entry::Tombstone { .. }) | None) => self.metrics.cache_miss(),
                Err(CacheError::Unusable) => {}
                Err(error) => {
                    tracing::debug!(%key, %error, "cache read failed; reading the store");
                }
            }
        }
        let Some(record) = self.load(key).await? else {
            return Ok(None);
        };
        self.fill(key, &record).await;
        Ok(Some(Served {
            record,
            cached: false,
        }))
    }

    /// The first half of a miss: read the record from the store.
    pub async fn load(&self, key: &Key) -> Result<Option<Record>, StoreError> {
        self.store.get(key, self.clock.now_ms()).await
    }

    /// The second half of a miss: offer what the store returned to Redis,
    /// which keeps whatever is newer.
    pub async fn fill(&self, key: &Key, record: &Record) {
        if let Some(cache) = &self.cache
            && let Err(error) = cache.put(key, record, self.clock.now_ms()).await
        {
            tracing::debug!(%key, %error, "cache fill skipped");
        }
    }

    /// Stores `value` under `key` and caches it. The cache update may fail;
    /// the store's outbox entry repairs Redis later in that case.
    pub async fn put(
        &self,
        key: &Key,
        value: &str,
        ttl: Option<Ttl>,
    ) -> Result<Record, StoreError> {
        let now_ms = self.clock.now_ms();
        let record = self.store.put(key, value, ttl, now_ms).await?;
        self.fill(key, &record).await;
        Ok(record)
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
        Ok(true)
    }
}
