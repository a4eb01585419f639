//! Walks the cache keys with SCAN (never KEYS, which blocks Redis for the
//! whole keyspace) and unlinks those that must go:
//!
//! - keys with no TTL: the API never writes a cache key without one, so such
//!   a key was left by something else and would live forever;
//! - keys under `cache:` whose record is gone or expired in the store.
//!
//! TTLs are read by the same script step as the SCAN, records checked in one
//! query per batch, and deletions re-check each key inside Redis (one Lua
//! call per batch) so that a key rewritten since it was examined, or a
//! delete tombstone the API relies on, is left alone.

use std::collections::HashSet;
use std::sync::LazyLock;

use platform::cache::KEY_PREFIX;
use platform::clock::{Clock, SystemClock};
use platform::domain::Key;
use platform::store::{Store, StoreError};
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::task::JoinSet;

use crate::budget::{Budget, StopReason};
use crate::report::Tally;

/// KEYS: the cache keys of one batch that looked stale; ARGV[1] `1` for a
/// dry run, then per key `no_ttl` or `gone`. Returns, per key, 1 when it was
/// (or would be) unlinked: a key rewritten since it was examined, or a
/// delete tombstone, is left alone.
///
/// One call per batch rather than per key: Redis's fixed cost of a script
/// call dominated the job (100,000 calls took about 2 s of Redis CPU on the
/// benchmark); a batch of up to 500 keys runs in about a millisecond.
static UNLINK_IF_STILL_STALE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local dry_run = ARGV[1] == '1'
local removed = {}
for i, key in ipairs(KEYS) do
  local reason = ARGV[i + 1]
  local ttl = redis.call('PTTL', key)
  local stale = 1
  if ttl == -2 then
    stale = 0
  elseif reason == 'no_ttl' then
    if ttl ~= -1 then stale = 0 end
  elseif redis.call('TYPE', key).ok == 'string' then
    -- A delete tombstone refuses stale fills for a minute; keep it.
    local head = redis.call('GETRANGE', key, 0, 31)
    if string.match(head, '^%d+ T$') then stale = 0 end
  end
  if stale == 1 and not dry_run then redis.call('UNLINK', key) end
  removed[i] = stale
end
return removed
",
    )
});

/// One step of the walk: `SCAN cursor MATCH pattern COUNT n`, and the PTTL of
/// every key it returned. ARGV: cursor, pattern, count. Returns
/// `{next cursor, keys, pttls}`.
///
/// Doing both inside Redis sends each key name over the wire once instead
/// of three times (SCAN reply, PTTL request, PTTL reply) and spares Redis
/// the parsing and dispatch of one command per key: it roughly doubled the
/// job's throughput on the benchmark (docs/decisions.md). A step runs well
/// under a millisecond for COUNT 500, so Redis stays responsive. The keys
/// are not declared in KEYS, which a single Redis (the spec's redis-0)
/// allows and Redis Cluster would not.
static SCAN_STEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys = reply[2]
local ttls = {}
for i, key in ipairs(keys) do
  ttls[i] = redis.call('PTTL', key)
end
return {reply[1], keys, ttls}
",
    )
});

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("a batch task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Outbox(#[from] platform::cache::ReplayError),
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

/// Batches examined at the same time. SCAN, the TTL pipeline, the store
/// query and the deletions of different batches overlap, which keeps both
/// Redis and the store busy; three is enough to hide one round trip behind
/// another on two cores.
const IN_FLIGHT: usize = 3;

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
    ///
    /// When a batch fails, no new batch starts, and the ones in flight are
    /// awaited and counted before the error is returned: the summary then
    /// covers every deletion that happened.
    pub async fn run(mut self, tally: &mut Tally) -> Result<Option<StopReason>, SweepError> {
        let worker = BatchWorker {
            connection: self.connection.clone(),
            store: self.store.clone(),
            dry_run: self.dry_run,
        };
        // SCAN may return a key twice; a dry run must not count it twice.
        let mut counted = HashSet::new();
        let mut in_flight = JoinSet::new();
        let mut cursor: u64 = 0;
        let mut walked = false;
        let mut stopped = None;
        let mut failure = None;
        loop {
            while !walked && stopped.is_none() && failure.is_none() && in_flight.len() < IN_FLIGHT {
                if let Some(reason) = self.budget.exhausted() {
                    stopped = Some(reason);
                    break;
                }
                match self.scan(cursor).await {
                    Ok((next, keys, ttls)) => {
                        tally.scanned += keys.len() as u64;
                        in_flight.spawn(worker.clone().process(keys, ttls));
                        cursor = next;
                        walked = cursor == 0;
                    }
                    Err(error) => failure = Some(error),
                }
                self.budget.pace(tally.scanned).await;
            }
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            match done {
                Ok(Ok(removed)) => {
                    for (key, reason) in removed {
                        if self.dry_run && !counted.insert(key) {
                            continue;
                        }
                        match reason {
                            Reason::NoTtl => tally.deleted_no_ttl += 1,
                            Reason::RecordGone => tally.deleted_record_gone += 1,
                        }
                    }
                }
                Ok(Err(error)) => {
                    failure.get_or_insert(error);
                }
                Err(panicked) => {
                    failure.get_or_insert(SweepError::Task(panicked.to_string()));
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(stopped),
        }
    }

    /// The next batch: keys and their PTTLs, and the cursor to go on with.
    async fn scan(&mut self, cursor: u64) -> Result<(u64, Vec<String>, Vec<i64>), SweepError> {
        let (next, keys, ttls): (String, Vec<String>, Vec<i64>) = SCAN_STEP
            .arg(cursor)
            .arg(self.pattern)
            .arg(self.scan_count)
            .invoke_async(&mut self.connection)
            .await?;
        let next = next.parse().map_err(|_| {
            SweepError::Redis(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "SCAN returned a cursor that is not a number",
            )))
        })?;
        Ok((next, keys, ttls))
    }
}

/// What examining one SCAN batch needs; cloned into each batch's task.
#[derive(Clone)]
struct BatchWorker {
    connection: ConnectionManager,
    store: Store,
    dry_run: bool,
}

impl BatchWorker {
    /// Examines one batch; returns the keys removed (or, in a dry run, that
    /// would be) and why.
    async fn process(
        mut self,
        keys: Vec<String>,
        ttls: Vec<i64>,
    ) -> Result<Vec<(String, Reason)>, SweepError> {
        let doomed = self.classify(keys, ttls).await?;
        self.unlink(doomed).await
    }

    /// Which of `keys` must go, and why.
    async fn classify(
        &mut self,
        keys: Vec<String>,
        ttls: Vec<i64>,
    ) -> Result<Vec<(String, Reason)>, SweepError> {
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
            let mut records: Vec<&str> = to_check
                .iter()
                .filter_map(|key| key.strip_prefix(KEY_PREFIX))
                .collect();
            // SCAN returns keys in hash order; probing the store's b-tree in
            // key order instead makes neighbouring lookups share pages.
            records.sort_unstable();
            let dead = self
                .store
                .keys_without_live_record(&records, SystemClock.now_ms())
                .await?;
            for key in to_check {
                let record = key.strip_prefix(KEY_PREFIX).unwrap_or_default();
                if dead.contains(record) {
                    doomed.push((key, Reason::RecordGone));
                }
            }
        }
        Ok(doomed)
    }

    /// Unlinks (or, in a dry run, counts) `doomed` keys that are still stale
    /// when Redis looks again.
    async fn unlink(
        &mut self,
        doomed: Vec<(String, Reason)>,
    ) -> Result<Vec<(String, Reason)>, SweepError> {
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = UNLINK_IF_STILL_STALE.prepare_invoke();
        invocation.arg(if self.dry_run { "1" } else { "0" });
        for (key, reason) in &doomed {
            invocation.key(key).arg(reason.arg());
        }
        let removed: Vec<i64> = invocation.invoke_async(&mut self.connection).await?;
        Ok(doomed
            .into_iter()
            .zip(removed)
            .filter(|(_, removed)| *removed == 1)
            .map(|(doomed, _)| doomed)
            .collect())
    }
}
