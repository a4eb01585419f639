//! An in-memory index of the store's live record keys, read once per run,
//! so that the Redis walk can tell a live cache key from a stale one
//! without asking the store about each key.
//!
//! Asking costs the store one indexed lookup per cache key, most of the
//! job's CPU on a large cache; reading the live keys page by page costs a
//! small fraction of that (figures in docs/decisions.md, record 12). The
//! index keeps a 64-bit hash per key (with the set's buckets, about 20
//! bytes a record at most), so it is built only up to a configured number
//! of records; above that, the walk asks the store batch by batch.
//!
//! The index answers "was live when the index was read". A cache key whose
//! record it does not know is still checked against the store before
//! anything is deleted, so a record written during the run keeps its cache
//! entry; a record that expires during the run keeps its entry until the
//! next run, as if its key had been examined a little earlier.
//!
//! Hashes can collide: a stale key whose hash equals a live key's is left
//! for its TTL to remove. The hash is keyed afresh each run, so no key is
//! missed twice in a row; with a million live records and a million stale
//! keys, the chance that any key is missed in a run is about one in twenty
//! million.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::ops::ControlFlow;
use std::time::Instant;

use store::{Store, StoreError};

/// The keys of the store's live records, as hashes.
///
/// A hash set rather than a sorted array: a binary search over a few
/// megabytes misses the CPU cache at almost every step, which made it as
/// slow as asking SQLite; a hash set misses about once.
#[derive(Debug)]
pub struct LiveIndex {
    hasher: RandomState,
    hashes: HashSet<u64, BuildHasherDefault<AlreadyHashed>>,
}

impl LiveIndex {
    /// Reads the keys of the records live at `now_ms`. `None` when the
    /// store holds more than `max_records` of them (or `max_records` is 0):
    /// the index would take more memory than it was allowed.
    pub async fn load(
        store: &Store,
        now_ms: i64,
        max_records: u64,
    ) -> Result<Option<Self>, StoreError> {
        if max_records == 0 {
            tracing::info!("no index of live records (turned off); one store query per batch");
            return Ok(None);
        }
        let started = Instant::now();
        let hasher = RandomState::new();
        let mut hashes = HashSet::default();
        let mut too_many = false;
        store
            .for_each_live_key(now_ms, |key| {
                if hashes.len() as u64 == max_records {
                    too_many = true;
                    return ControlFlow::Break(());
                }
                hashes.insert(hasher.hash_one(key));
                ControlFlow::Continue(())
            })
            .await?;
        if too_many {
            tracing::info!(
                max_records,
                "more live records than the index may hold; one store query per batch"
            );
            return Ok(None);
        }
        tracing::info!(
            records = hashes.len(),
            seconds = started.elapsed().as_secs_f64(),
            "read the live record keys into an index"
        );
        Ok(Some(Self { hasher, hashes }))
    }

    /// An index of exactly `keys`.
    #[cfg(test)]
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let hasher = RandomState::new();
        let hashes = keys.into_iter().map(|key| hasher.hash_one(key)).collect();
        Self { hasher, hashes }
    }

    /// Whether `record_key` had a live record when the index was read (or
    /// its hash collides with one that had).
    pub fn contains(&self, record_key: &str) -> bool {
        self.hashes.contains(&self.hasher.hash_one(record_key))
    }
}

/// The set's own hasher: its items are already keyed hashes, evenly spread;
/// hashing them again made reading the benchmark's index 0.45 s instead of
/// 0.26 s.
#[derive(Debug, Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    /// Only `u64`s are hashed here; anything else is folded in, not lost.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
}
