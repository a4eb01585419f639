//! Examining one batch of the walk: the cache keys with a TTL whose record
//! is gone or expired in the store, and unlinking them.
//!
//! Records are looked up in the index of live keys, and those it does not
//! know in one store query per batch. Deletions re-check each key inside
//! Redis (one Lua call per batch) so that a key gone since it was examined,
//! or a delete tombstone the API relies on, is left alone. (Keys with no TTL
//! never get here: the walk's step unlinks them.)

use std::sync::Arc;

use platform::redis::PrimaryConnection;
use store::Store;
use store::cache::{KEY_PREFIX, scripts};
use store::clock::Clock;
use store::domain::Key;

use crate::error::CleanupError;
use crate::live_index::LiveIndex;

/// What examining one SCAN batch needs; cloned into each batch's task.
#[derive(Clone)]
pub struct BatchWorker {
    pub connection: PrimaryConnection,
    pub store: Store,
    /// Decides which records have expired.
    pub clock: Arc<dyn Clock>,
    pub dry_run: bool,
    /// The store's live keys, when they fit in memory.
    pub live_index: Option<Arc<LiveIndex>>,
}

impl BatchWorker {
    /// Examines one batch of keys that have a TTL; returns the keys removed
    /// (or, in a dry run, that would be) because their record is gone.
    /// Keys are bytes: Redis keys need not be UTF-8, and a key that is not
    /// names no record.
    pub async fn process(mut self, keys: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, CleanupError> {
        let doomed = self.records_gone(keys).await?;
        self.unlink(doomed).await
    }

    /// Which of `keys` name a record that is gone or expired.
    async fn records_gone(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, CleanupError> {
        let Triage {
            mut doomed,
            to_check,
        } = triage(keys, self.live_index.as_deref());
        if to_check.is_empty() {
            return Ok(doomed);
        }
        let mut records: Vec<&str> = to_check
            .iter()
            .filter_map(|key| record_name(key)?.ok())
            .collect();
        // SCAN returns keys in hash order; probing the store's b-tree in key
        // order instead makes neighbouring lookups share pages.
        records.sort_unstable();
        let dead = self
            .store
            .keys_without_live_record(&records, self.clock.now_ms())
            .await?;
        for key in to_check {
            let gone = record_name(&key)
                .and_then(Result::ok)
                .is_some_and(|record| dead.contains(record));
            if gone {
                doomed.push(key);
            }
        }
        Ok(doomed)
    }

    /// Unlinks (or, in a dry run, counts) `doomed` keys that are still stale
    /// when Redis looks again.
    async fn unlink(&mut self, doomed: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, CleanupError> {
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        let removed: Vec<i64> = scripts::UNLINK_IF_STILL_STALE
            .key(&doomed)
            .arg(if self.dry_run { "1" } else { "0" })
            .invoke_async(&mut self.connection)
            .await?;
        Ok(doomed
            .into_iter()
            .zip(removed)
            .filter(|(_, removed)| *removed == 1)
            .map(|(key, _)| key)
            .collect())
    }
}

/// What the index tells about a batch without asking the store.
#[derive(Debug, Default, PartialEq, Eq)]
struct Triage {
    /// Cache keys whose record is gone, or could never exist.
    doomed: Vec<Vec<u8>>,
    /// Cache keys whose record the store must be asked about.
    to_check: Vec<Vec<u8>>,
}

/// The record a key names: `None` outside `cache:`, an error when the name
/// is not UTF-8 (so no record can have it).
fn record_name(key: &[u8]) -> Option<Result<&str, std::str::Utf8Error>> {
    key.strip_prefix(KEY_PREFIX.as_bytes())
        .map(std::str::from_utf8)
}

fn triage(keys: Vec<Vec<u8>>, index: Option<&LiveIndex>) -> Triage {
    let mut triage = Triage::default();
    for key in keys {
        match record_name(&key) {
            // Outside `cache:` there is no record to compare with.
            None => {}
            // Live when the index was read: nothing to ask. (Asked first:
            // almost every key is, and the index only holds keys the API
            // accepted.)
            Some(Ok(record)) if index.is_some_and(|index| index.contains(record)) => {}
            Some(Ok(record)) if Key::parse(record).is_ok() => triage.to_check.push(key),
            // No record can exist under a name the API would refuse, or one
            // that is not even UTF-8.
            Some(_) => triage.doomed.push(key),
        }
    }
    triage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(keys: &[&[u8]]) -> Vec<Vec<u8>> {
        keys.iter().map(|key| key.to_vec()).collect()
    }

    #[test]
    fn key_shapes_decide_without_the_store() {
        let keys = owned(&[b"cache:c", b"cache:bad key", b"cache:\xff", b"session:1"]);
        let triage = triage(keys, None);
        assert_eq!(triage.doomed, owned(&[b"cache:bad key", b"cache:\xff"]));
        // Without an index, every other cache key is asked about.
        assert_eq!(triage.to_check, owned(&[b"cache:c"]));
    }

    #[test]
    fn keys_the_index_does_not_know_are_still_asked_about() {
        // "late" was written after the index was read: the index does not
        // know it, so the store decides, not the index.
        let index = LiveIndex::from_keys(["live"]);
        let keys = owned(&[b"cache:live", b"cache:late"]);
        let triage = triage(keys, Some(&index));
        assert_eq!(triage.to_check, owned(&[b"cache:late"]));
        assert!(triage.doomed.is_empty());
    }
}
