//! L1: a small in-process cache in front of Redis, with coalesced loads.
//!
//! Entries live for `CACHE_L1_TTL_MS` (1 s by default) at most, which bounds
//! how stale a replica can be even if an invalidation message is lost.
//! Normally they go much sooner: every write, delete, expiry or eviction of
//! a `cache:` key in Redis is pushed to every replica ([`super::tracking`]),
//! which evicts it here. The map that holds the entries, within their byte
//! budget and lifetime, is [`super::l1_entries`].
//!
//! Concurrent store loads of one key are shared ([`platform::single_flight`]),
//! so a thousand readers of a cold key cause one store read and one Redis fill;
//! a reader that saw a write complete never takes a load that began before
//! it (see [`LocalCache::get_or_load`]).
//! Redis reads are not shared: a GET costs Redis less than the coalescing
//! would cost here, and it keeps the path of a Redis hit short.
//!
//! A value read before an invalidation must not be inserted after it: it
//! may be the value the invalidation was about. Each reader notes the
//! generation of its key's stripe ([`Snapshot`]) before it reads below L1;
//! invalidations bump it; a value whose key's generation moved is handed to
//! its callers without being cached.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use platform::single_flight::{SingleFlight, Tail};
use store::StoreError;
use store::domain::Record;
use tokio::sync::Mutex;

use super::l1_entries::L1Entries;

/// Invalidation stripes: a write to one key holds back inserts of about one
/// key in a thousand, not of every key being loaded.
const STRIPES: usize = 1024;

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    L1,
    Redis,
    Store,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::Redis => "redis",
            Self::Store => "store",
        }
    }
}

/// A record as a read below L1 found it: what L1 holds, and what a load
/// hands to every caller that joined it.
#[derive(Debug, Clone)]
pub struct LoadedRecord {
    pub record: Record,
    /// The level it was read from: Redis, or the store.
    pub found_in: Source,
    /// False when the load itself wrote the value to Redis: Redis will
    /// announce that write to every replica, this one included, and the
    /// announcement would evict the entry anyway (possibly after a racing
    /// write elsewhere). The next load finds the value in Redis and caches
    /// it.
    pub cacheable: bool,
    /// The HTTP layer's rendering of an L1 hit on this entry, kept here so
    /// that it lives and dies with the entry it renders (see
    /// `routes::data`); the data path never reads it.
    pub rendered: OnceLock<Bytes>,
}

impl LoadedRecord {
    pub fn new(record: Record, found_in: Source, cacheable: bool) -> Self {
        Self {
            record,
            found_in,
            cacheable,
            rendered: OnceLock::new(),
        }
    }
}

/// The invalidation state of one key at one moment (see
/// [`LocalCache::snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    epoch: u64,
    stripe: u64,
}

impl Snapshot {
    /// Whether this snapshot was taken no earlier than `other` (of the same
    /// key): every invalidation `other` had seen, this one had seen too.
    fn covers(self, other: Self) -> bool {
        self.epoch >= other.epoch && self.stripe >= other.stripe
    }
}

/// What a load below L1 read: the live record, if any.
pub type LoadRead = Result<Option<LoadedRecord>, Arc<StoreError>>;

/// A load's read, and its tail: work that no caller waits for (the fill of
/// Redis), which runs on a task of its own.
pub type Load = (LoadRead, Option<Tail>);

/// A load as every caller that joined it sees it, with the snapshot it
/// began from.
#[derive(Debug)]
pub struct SharedLoad {
    began: Snapshot,
    pub outcome: LoadOutcome,
}

/// What a coalesced load found.
#[derive(Debug)]
pub enum LoadOutcome {
    /// No live record.
    NotFound,
    /// Loaded, but not to be cached: invalidations are not flowing, or the
    /// load is not cacheable.
    Uncached(LoadedRecord),
    /// Loaded and offered to [`LocalCache::insert_if_current`], which
    /// cached it unless an invalidation came since the load began.
    Cacheable(Arc<LoadedRecord>),
    /// The store read failed.
    Failed(Arc<StoreError>),
}

#[derive(Debug)]
pub struct LocalCache {
    entries: L1Entries,
    loads: Arc<SingleFlight<Arc<SharedLoad>>>,
    /// False while invalidations may be missed (the tracking connection is
    /// down): nothing is inserted then.
    armed: AtomicBool,
    generations: Box<[AtomicU64]>,
    /// Per stripe: held while an insert checks its snapshot and inserts,
    /// and while an invalidation bumps the generation and evicts. Without
    /// it an insert that passed its check just before an invalidation could
    /// land just after the eviction, and stay readable until the check that
    /// follows the insert evicts it: a reader that began after the write
    /// completed could read the value from before it in between.
    insert_turns: Box<[Mutex<()>]>,
    /// Bumped by a flush; part of every load's snapshot.
    epoch: AtomicU64,
}

impl LocalCache {
    /// `ttl` zero keeps nothing (loads are still coalesced).
    pub fn new(ttl: Duration, max_bytes: u64, armed: bool) -> Self {
        Self {
            entries: L1Entries::new(ttl, max_bytes),
            loads: Arc::default(),
            armed: AtomicBool::new(armed),
            generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            insert_turns: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            epoch: AtomicU64::new(0),
        }
    }

    /// The cached record, if any (however old the record's own expiry: the
    /// caller checks it).
    pub fn get(&self, key: &str) -> Option<Arc<LoadedRecord>> {
        self.entries.get(key)
    }

    /// Caches `loaded` under `key` unless an invalidation of `key` (or a
    /// flush) came after `taken`, or invalidations are not flowing.
    pub async fn insert_if_current(&self, key: &str, taken: Snapshot, loaded: Arc<LoadedRecord>) {
        {
            let _turn = self.insert_turns[self.stripe_index(key)].lock().await;
            if !self.is_armed() || self.snapshot(key) != taken {
                return;
            }
            self.entries.insert(key, loaded);
        }
        // A flush is not taken in turns: one between the check and the
        // insert is caught here.
        self.evict_if_superseded(key, taken);
    }

    /// Gets `key`, loading it once for all concurrent callers on a miss.
    /// `taken` is the snapshot the caller took before it started looking
    /// below L1: a value is cached only if nothing invalidated `key` since.
    /// A load's tail (its fill of Redis) runs after its callers have the
    /// value, and callers arriving before it ends share the load too.
    ///
    /// A caller may join a load that began before a write or delete of
    /// `key` that this caller saw complete (its `taken` is newer than the
    /// load's): that load can return the value from before the write, or
    /// nothing from before a re-creation. Such a caller does not take it and
    /// runs a load of its own (`load` is called again), uncoalesced: one
    /// extra store read, and only when a write raced a load of the same key.
    pub async fn get_or_load<L, F>(&self, key: &str, taken: Snapshot, load: L) -> Arc<SharedLoad>
    where
        L: Fn() -> F,
        F: Future<Output = Load>,
    {
        let shared = self
            .loads
            .run(key, || async {
                let (read, tail) = load().await;
                (Arc::new(self.guarded(key, taken, read).await), tail)
            })
            .await;
        if shared.began.covers(taken) {
            return shared;
        }
        let (read, tail) = load().await;
        if let Some(tail) = tail {
            tokio::spawn(tail);
        }
        Arc::new(self.guarded(key, taken, read).await)
    }

    /// What `read`, a load that began at `taken`, shares with its callers;
    /// its value is cached unless it is not cacheable or an invalidation of
    /// `key` came since `taken`.
    async fn guarded(&self, key: &str, taken: Snapshot, read: LoadRead) -> SharedLoad {
        let outcome = match read {
            Ok(None) => LoadOutcome::NotFound,
            Err(error) => LoadOutcome::Failed(error),
            Ok(Some(loaded)) if !loaded.cacheable || !self.is_armed() => {
                LoadOutcome::Uncached(loaded)
            }
            Ok(Some(loaded)) => {
                let entry = Arc::new(loaded);
                self.insert_if_current(key, taken, entry.clone()).await;
                LoadOutcome::Cacheable(entry)
            }
        };
        SharedLoad {
            began: taken,
            outcome,
        }
    }

    /// The check after an insert: an invalidation that bumped the
    /// generation between the check before the insert and the insert itself
    /// may have evicted nothing yet, so the entry goes. An invalidation
    /// after this check evicts it by itself (it bumps, then evicts).
    fn evict_if_superseded(&self, key: &str, taken: Snapshot) {
        if !self.is_armed() || self.snapshot(key) != taken {
            self.entries.remove(key);
        }
    }

    /// Notes that `key` changed in Redis without evicting anything: loads
    /// of it that are in flight are not cached, and callers holding an
    /// older snapshot know to look at Redis again.
    pub fn note_change(&self, key: &str) {
        self.stripe(key).fetch_add(1, Ordering::AcqRel);
    }

    /// Evicts `key` and holds back loads of it that are in flight.
    pub async fn invalidate(&self, key: &str) {
        let _turn = self.insert_turns[self.stripe_index(key)].lock().await;
        self.note_change(key);
        self.entries.remove(key);
    }

    /// Evicts everything and holds back every load in flight.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    /// Turns inserts on (invalidations flow) or off (they may be missed).
    /// Either way the cache is cleared: what it held may be stale.
    pub fn set_armed(&self, armed: bool) {
        self.armed.store(armed, Ordering::Release);
        self.clear();
    }

    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    fn stripe(&self, key: &str) -> &AtomicU64 {
        &self.generations[self.stripe_index(key)]
    }

    fn stripe_index(&self, key: &str) -> usize {
        platform::hash::stripe_of(key, STRIPES)
    }

    /// Where the invalidations of `key` stand; compare with a later one to
    /// learn whether `key` may have changed in between.
    pub fn snapshot(&self, key: &str) -> Snapshot {
        Snapshot {
            epoch: self.epoch.load(Ordering::Acquire),
            stripe: self.stripe(key).load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests;
