//! The cache's writes: fills, write-throughs and tombstones, each
//! version-checked (or, into a key found empty, `SET NX`).
//!
//! A write is prepared first (the record encoded as its entry, its TTL set)
//! and sent after: a fill can then go out after its read was answered,
//! holding the entry alone instead of the record.

use std::time::Duration;

use platform::redis::PrimaryConnection;
use redis::{ErrorKind, FromRedisValue, ServerErrorKind};
use store::cache::{TOMBSTONE_TTL, cache_key, entry, millis, scripts};
use store::domain::{Key, Record};

use super::l1::LocalCache;
use super::usage::Level;
use super::{CacheError, CacheWrite, RedisCache};
use crate::metrics::CacheOperation;

/// A record's cache write, ready to send.
#[derive(Debug)]
pub struct PreparedWrite {
    entry: String,
    version: i64,
    ttl_ms: u64,
    why: CacheWrite,
}

impl PreparedWrite {
    /// The bytes of the entry it writes.
    pub fn entry_bytes(&self) -> usize {
        self.entry.len()
    }
}

impl RedisCache {
    /// The write of `record` for [`Self::send_and_note`]; none when the
    /// record has lapsed at `now_ms`, since lapsed records are not cached.
    pub fn prepare(&self, record: &Record, now_ms: i64, why: CacheWrite) -> Option<PreparedWrite> {
        let remaining = record
            .expires_at_ms
            .map(|expires| u64::try_from(expires.saturating_sub(now_ms)).unwrap_or(0));
        let ttl_ms = remaining.map_or(self.max_ttl_ms(), |left| left.min(self.max_ttl_ms()));
        (ttl_ms > 0).then(|| PreparedWrite {
            entry: entry::encode_live(record),
            version: record.version,
            ttl_ms,
            why,
        })
    }

    /// Sends `write` under `key`, then notes the change in `l1`: readers
    /// that missed Redis before it look again (see `DataService::load`). A
    /// failure is logged only: the store holds the record, and the cache
    /// outbox's replay mends a write-through Redis missed.
    pub async fn send_and_note(&self, l1: &LocalCache, key: &Key, write: &PreparedWrite) {
        if let Err(error) = self.send(key, write).await {
            tracing::debug!(%key, %error, why = ?write.why, "cache write skipped");
        }
        l1.note_change(key.as_str());
    }

    /// Sends `write` under `key` unless Redis already holds a newer version
    /// of it (for [`CacheWrite::FillEmpty`], unless it holds anything; for
    /// [`CacheWrite::Create`], with `SET NX` when the key is empty). Returns
    /// whether it was written.
    async fn send(&self, key: &Key, write: &PreparedWrite) -> Result<bool, CacheError> {
        let PreparedWrite {
            ref entry,
            version,
            ttl_ms,
            why,
        } = *write;
        // A created key's write-through goes on to the script when `SET NX`
        // was refused (the key held something then): the script decides as
        // it would have alone, so the pair keeps whatever is newer, as the
        // script does.
        let written = match why {
            CacheWrite::FillEmpty => return self.set_if_empty(why, key, entry, ttl_ms).await,
            CacheWrite::Create if self.set_if_empty(why, key, entry, ttl_ms).await? => true,
            CacheWrite::Fill | CacheWrite::Create | CacheWrite::Change => {
                self.set_unless_newer(
                    CacheOperation::Set,
                    why.needs(),
                    key,
                    version,
                    entry,
                    ttl_ms,
                )
                .await?
            }
        };
        if matches!(why, CacheWrite::Change | CacheWrite::Create) {
            // Written or refused, Redis now holds this version or a newer
            // one.
            let lasts = Duration::from_millis(ttl_ms);
            self.written_through.note(key.as_str(), version, lasts);
        }
        Ok(written)
    }

    /// After a delete: refuse every version below `floor` for a while, so
    /// that a slow reader cannot put the deleted value back.
    pub async fn bury(&self, key: &Key, floor: i64) -> Result<bool, CacheError> {
        let entry = entry::encode_tombstone(floor);
        let written = self
            .set_unless_newer(
                CacheOperation::Del,
                CacheWrite::Change.needs(),
                key,
                floor,
                &entry,
                millis(TOMBSTONE_TTL),
            )
            .await?;
        self.written_through
            .note(key.as_str(), floor, TOMBSTONE_TTL);
        Ok(written)
    }

    async fn set_unless_newer(
        &self,
        operation: CacheOperation,
        needs: Level,
        key: &Key,
        version: i64,
        entry: &str,
        ttl_ms: u64,
    ) -> Result<bool, CacheError> {
        let cache_key = cache_key(key.as_str());
        self.run(operation, needs, |mut connection| async move {
            let command = || scripts::set_unless_newer(&cache_key, version, entry, ttl_ms);
            let reply = match self.writes.send(command()).await {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    // Redis forgot the script (a restart, `SCRIPT FLUSH`):
                    // load it and send the same command again.
                    load_set_unless_newer(&mut connection).await?;
                    self.writes.send(command()).await
                }
                reply => reply,
            };
            Ok(bool::from_redis_value(reply?)?)
        })
        .await
    }

    /// The `SET NX` of [`CacheWrite::FillEmpty`] and [`CacheWrite::Create`].
    async fn set_if_empty(
        &self,
        why: CacheWrite,
        key: &Key,
        entry: &str,
        ttl_ms: u64,
    ) -> Result<bool, CacheError> {
        let command = scripts::set_if_empty(cache_key(key.as_str()), entry, ttl_ms);
        self.run(CacheOperation::Set, why.needs(), |_| async move {
            let written = Option::<String>::from_redis_value(self.writes.send(command).await?)?;
            Ok(written.is_some())
        })
        .await
    }

    /// Loads the version-checked write's script (write-throughs, and fills
    /// of keys not found empty) into Redis' script cache.
    pub(crate) async fn load_scripts(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        self.within_timeout(load_set_unless_newer(&mut connection))
            .await
    }
}

/// Puts the version-checked script into Redis' script cache, where the
/// write queue's `EVALSHA` finds it.
async fn load_set_unless_newer(connection: &mut PrimaryConnection) -> redis::RedisResult<()> {
    let invocation = scripts::SET_UNLESS_NEWER.prepare_invoke();
    invocation.load_async(connection).await.map(drop)
}
