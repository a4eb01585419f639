//! Walks the cache keys with SCAN (never KEYS, which blocks Redis for the
//! whole keyspace) and unlinks those that must go:
//!
//! - keys with no TTL: the API never writes a cache key without one, so such
//!   a key was left by something else and would live forever;
//! - keys under `cache:` whose record is gone or expired in the store.
//!
//! TTLs are read in one pipeline per SCAN batch, records checked in one
//! query per batch, and deletions re-check the key inside Redis (a Lua
//! script) so that a key rewritten since it was examined, or a delete
//! tombstone the API relies on, is left alone.

use std::collections::HashSet;
use std::sync::LazyLock;

use platform::cache::KEY_PREFIX;
use platform::clock::{Clock, SystemClock};
use platform::domain::Key;
use platform::store::{Store, StoreError};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::budget::{Budget, StopReason};
use crate::report::Tally;

/// KEYS[1] a cache key; ARGV[1] `no_ttl` or `gone`; ARGV[2] `1` for a dry
/// run. Returns 1 when the key was (or would be) unlinked.
static UNLINK_IF_STILL_STALE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
if ARGV[1] == 'no_ttl' then
  if ttl ~= -1 then return 0 end
elseif redis.call('TYPE', KEYS[1]).ok == 'string' then
  -- A delete tombstone refuses stale fills for a minute; keep it.
  local head = redis.call('GETRANGE', KEYS[1], 0, 31)
  if string.match(head, '^%d+ T$') then return 0 end
end
if ARGV[2] ~= '1' then redis.call('UNLINK', KEYS[1]) end
return 1
",
    )
});

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    NoTtl,
    RecordGone,
}

impl Reason {
    fn arg(self) -> &'static str {
        match self {
            Self::NoTtl => "no_ttl",
            Self::RecordGone => "gone",
        }
    }
}

pub struct RedisSweep<'a> {
    pub connection: ConnectionManager,
    pub store: &'a Store,
    pub pattern: &'a str,
    pub scan_count: u64,
    pub dry_run: bool,
    pub budget: &'a Budget,
}

impl RedisSweep<'_> {
    /// Walks the whole pattern, adding to `tally` batch by batch (so that a
    /// failure half way still reports what was done). Returns why it stopped
    /// early, if it did.
    pub async fn run(mut self, tally: &mut Tally) -> Result<Option<StopReason>, SweepError> {
        let script_hash = UNLINK_IF_STILL_STALE
            .prepare_invoke()
            .load_async(&mut self.connection)
            .await?;
        // SCAN may return a key twice; a dry run must not count it twice.
        let mut counted = HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            if let Some(reason) = self.budget.exhausted() {
                return Ok(Some(reason));
            }
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.pattern)
                .arg("COUNT")
                .arg(self.scan_count)
                .query_async(&mut self.connection)
                .await?;
            tally.scanned += keys.len() as u64;
            let doomed = self.classify(keys).await?;
            let deleted = self.unlink(&script_hash, doomed, &mut counted).await?;
            for reason in deleted {
                match reason {
                    Reason::NoTtl => tally.deleted_no_ttl += 1,
                    Reason::RecordGone => tally.deleted_record_gone += 1,
                }
            }
            self.budget.pace(tally.scanned).await;
            cursor = next;
            if cursor == 0 {
                return Ok(None);
            }
        }
    }

    /// Which of `keys` must go, and why.
    async fn classify(&mut self, keys: Vec<String>) -> Result<Vec<(String, Reason)>, SweepError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for key in &keys {
            pipeline.cmd("PTTL").arg(key);
        }
        let ttls: Vec<i64> = pipeline.query_async(&mut self.connection).await?;

        let mut doomed = Vec::new();
        let mut to_check = Vec::new();
        for (key, ttl) in keys.into_iter().zip(ttls) {
            match ttl {
                -2 => {} // gone since SCAN saw it
                -1 => doomed.push((key, Reason::NoTtl)),
                _ => match key.strip_prefix(KEY_PREFIX) {
                    // No record can exist under a key the API would refuse.
                    Some(record) if Key::parse(record).is_err() => {
                        doomed.push((key, Reason::RecordGone));
                    }
                    Some(_) => to_check.push(key),
                    // Outside `cache:` there is no record to compare with.
                    None => {}
                },
            }
        }
        if !to_check.is_empty() {
            let records: Vec<&str> = to_check
                .iter()
                .filter_map(|key| key.strip_prefix(KEY_PREFIX))
                .collect();
            let live = self.store.live_keys(&records, SystemClock.now_ms()).await?;
            for key in to_check {
                let record = key.strip_prefix(KEY_PREFIX).unwrap_or_default();
                if !live.contains(record) {
                    doomed.push((key, Reason::RecordGone));
                }
            }
        }
        Ok(doomed)
    }

    /// Unlinks (or, in a dry run, counts) `doomed` keys that are still stale
    /// when Redis looks again. Returns the reasons of those removed.
    async fn unlink(
        &mut self,
        script_hash: &str,
        doomed: Vec<(String, Reason)>,
        counted: &mut HashSet<String>,
    ) -> Result<Vec<Reason>, SweepError> {
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        let dry_run = if self.dry_run { "1" } else { "0" };
        let mut pipeline = redis::pipe();
        for (key, reason) in &doomed {
            pipeline
                .cmd("EVALSHA")
                .arg(script_hash)
                .arg(1)
                .arg(key)
                .arg(reason.arg())
                .arg(dry_run);
        }
        let removed: Vec<i64> = pipeline.query_async(&mut self.connection).await?;
        Ok(doomed
            .into_iter()
            .zip(removed)
            .filter(|(_, removed)| *removed == 1)
            .filter(|((key, _), _)| !self.dry_run || counted.insert(key.clone()))
            .map(|((_, reason), _)| reason)
            .collect())
    }
}
