//! L1's entries: a `quick_cache` map bounded by `CACHE_L1_MAX_BYTES`, whose
//! entries stop being served `CACHE_L1_TTL_MS` after their insert.
//!
//! A hit is a shard's read lock, a probe, a reference bit and a look at the
//! clock: nothing is queued for a maintenance pass to account for later.
//! Eviction (S3-FIFO) runs in the insert that needs the room. An expired
//! entry is not served, and stays within the budget until the load that
//! follows replaces it or an insert evicts it (docs/decisions.md,
//! record 48). The rules of when to insert and when to evict are
//! [`super::l1`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::Weighter;

use super::l1::LoadedRecord;

/// The weight of a small record's entry, from which the map sizes its
/// shards for the budget: an estimate, not a limit.
const TYPICAL_ENTRY_WEIGHT: u64 = 512;

/// An entry as the map holds it: the record, and when it stops being
/// served.
#[derive(Debug, Clone)]
struct Held {
    loaded: Arc<LoadedRecord>,
    until: Instant,
}

/// What an entry counts against the budget: the key and value, then again
/// in the rendered response, which is counted up front: it comes with the
/// first hit.
#[derive(Debug, Clone, Copy)]
struct HeldWeight;

impl Weighter<String, Held> for HeldWeight {
    fn weight(&self, key: &String, held: &Held) -> u64 {
        let bytes = key.len().saturating_add(held.loaded.record.value.len());
        u64::try_from(bytes)
            .unwrap_or(u64::MAX)
            .saturating_mul(2)
            .saturating_add(256)
    }
}

#[derive(Debug)]
pub struct L1Entries {
    map: quick_cache::sync::Cache<String, Held, HeldWeight>,
    /// How long an entry is served; zero keeps nothing.
    ttl: Duration,
}

impl L1Entries {
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        let estimated = usize::try_from(max_bytes / TYPICAL_ENTRY_WEIGHT).unwrap_or(usize::MAX);
        Self {
            map: quick_cache::sync::Cache::with_weighter(estimated, max_bytes, HeldWeight),
            ttl,
        }
    }

    /// The entry under `key`, unless its time is up.
    pub fn get(&self, key: &str) -> Option<Arc<LoadedRecord>> {
        let held = self.map.get(key)?;
        (Instant::now() < held.until).then_some(held.loaded)
    }

    /// Holds `loaded` under `key` for the map's lifetime from now, in
    /// place of any entry there; with a zero lifetime, holds nothing.
    pub fn insert(&self, key: &str, loaded: Arc<LoadedRecord>) {
        if self.ttl.is_zero() {
            return;
        }
        // A lifetime past what the clock can count is not held at all,
        // rather than held for ever.
        let Some(until) = Instant::now().checked_add(self.ttl) else {
            self.map.remove(key);
            return;
        };
        self.map.insert(key.to_owned(), Held { loaded, until });
    }

    pub fn remove(&self, key: &str) {
        self.map.remove(key);
    }

    pub fn clear(&self) {
        self.map.clear();
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use store::domain::Record;

    use super::*;
    use crate::cache::l1::Source;

    fn loaded(value: &str) -> Arc<LoadedRecord> {
        let record = Record {
            value: value.into(),
            version: 1,
            updated_at_ms: 0,
            expires_at_ms: None,
        };
        Arc::new(LoadedRecord::new(record, Source::Store, true))
    }

    #[test]
    fn an_entry_is_not_served_once_its_ttl_has_passed() {
        let ttl = Duration::from_millis(50);
        let entries = L1Entries::new(ttl, 1 << 20);
        entries.insert("k", loaded("v"));
        assert!(entries.get("k").is_some());
        std::thread::sleep(ttl);
        assert!(entries.get("k").is_none());
    }

    #[test]
    fn the_entries_stay_within_the_byte_budget() {
        let max_bytes = 64 * 1024;
        let entries = L1Entries::new(Duration::from_secs(60), max_bytes);
        for n in 0..10_000 {
            entries.insert(&format!("k{n}"), loaded("v"));
        }
        assert!(entries.map.weight() <= max_bytes);
        assert!(entries.get("k9999").is_some(), "the newest entry is kept");
    }
}
