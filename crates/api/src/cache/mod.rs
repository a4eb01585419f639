//! The Redis cache level (L2): version-checked reads and writes under
//! `cache:{key}`, with short timeouts and a health state.
//!
//! Redis is an optimisation, never a dependency: every operation here either
//! answers within `REDIS_TIMEOUT_MS` or fails, and a failure flips the cache
//! to "unusable" at once, so that later requests skip Redis instead of
//! waiting on it. So does a reply on another connection than the one the
//! cache was last repaired on: under Sentinel that is a primary found since,
//! which may lack writes the old one took. The [`supervisor`] decides when
//! Redis may be used again, in two steps: writes first (fills,
//! write-through, tombstones), then the writes Redis missed are replayed
//! from the store's outbox, and only then reads. Every write that skipped
//! Redis committed before writes resumed, so the replay sees it, and a
//! value written during an outage is never served stale from Redis
//! afterwards.

pub mod fills;
pub mod l1;
mod l1_entries;
pub mod supervisor;
#[cfg(test)]
mod tests;
pub mod tracking;
mod usage;
mod write_queue;
mod writes;
mod written_through;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::redis::PrimaryConnection;
use store::domain::Key;
use tokio::sync::Notify;

pub use store::cache::RedisEntry;
use store::cache::{cache_key, entry, millis};

use self::usage::{Level, Usage};
use self::write_queue::WriteQueue;
pub use self::writes::PreparedWrite;
use self::written_through::WrittenThrough;
use crate::metrics::{CacheOperation, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis is not in use until it is back and repaired")]
    Unusable,
    #[error("redis restarted and may hold older data")]
    Restarted,
    #[error("the Redis primary changed since the cache was repaired, and may hold older data")]
    PrimaryChanged,
    #[error("cannot apply the cache outbox, so Redis cannot be repaired yet")]
    OutboxUnreadable,
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Why a value is written to Redis, which decides whether the write is
/// tried while Redis is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheWrite {
    /// A read filling the cache: skipped while Redis is down, so that reads
    /// never wait on it. Version-checked: it replaces a tombstone or an
    /// older entry.
    Fill,
    /// A fill whose own read found the key empty: written only while the key
    /// is still empty (`SET NX`), which costs Redis a plain command instead of
    /// a script. Whatever arrived in between (a write, a tombstone, another
    /// fill) stays.
    FillEmpty,
    /// A change's write-through or tombstone: tried even while this replica
    /// holds Redis down. Another replica may already have seen Redis back
    /// and read from it; a change that skipped Redis would be served stale
    /// there until this replica repairs Redis from the outbox. Against a
    /// Redis that refuses connections the try fails at once; against one
    /// that does not answer it waits `REDIS_TIMEOUT_MS`.
    Change,
    /// A change's write-through of a record whose row the write created
    /// (`store::Written::created`): sent as a change, but as a `SET NX`
    /// first, since Redis most likely holds nothing under the key; when it
    /// held something, the version-checked script follows
    /// (docs/decisions.md, record 38).
    Create,
}

impl CacheWrite {
    /// The least state in which the write is sent.
    fn needs(self) -> Level {
        match self {
            Self::Fill | Self::FillEmpty => Level::WritesOnly,
            Self::Change | Self::Create => Level::Down,
        }
    }
}

/// What a read found under a key: what it serves, and which fill follows a
/// miss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No such key.
    Nothing,
    Entry(RedisEntry),
    /// A value this service did not write: a miss, which the next
    /// version-checked fill replaces.
    Foreign,
}

/// The Redis cache level.
#[derive(Debug)]
pub struct RedisCache {
    connection: PrimaryConnection,
    timeout: Duration,
    max_ttl: Duration,
    usage: Usage,
    trouble: Notify,
    /// Where cache writes queue to go out as one pipeline with the others
    /// ready at the same moment.
    writes: WriteQueue,
    /// Changes Redis took, which the routine replay need not send again.
    written_through: WrittenThrough,
    metrics: Arc<Metrics>,
}

impl RedisCache {
    /// A cache over `connection`; unusable until the supervisor has seen
    /// Redis answer. `outbox_retention` is how long the store's outbox
    /// keeps an entry before the supervisor replays it.
    pub fn new(
        connection: PrimaryConnection,
        timeout: Duration,
        max_ttl: Duration,
        outbox_retention: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.set_redis_connected(false);
        Self {
            writes: WriteQueue::start(connection.clone()),
            connection,
            timeout,
            max_ttl,
            usage: Usage::new(),
            trouble: Notify::new(),
            written_through: WrittenThrough::new(outbox_retention),
            metrics,
        }
    }

    /// Whether requests read from Redis.
    pub fn is_usable(&self) -> bool {
        self.usage.level() == Level::Up
    }

    /// What Redis holds for `key`.
    pub async fn get(&self, key: &Key) -> Result<Found, CacheError> {
        let cache_key = cache_key(key.as_str());
        let raw: Option<String> = self
            .run(
                CacheOperation::Get,
                Level::Up,
                |mut connection| async move {
                    redis::cmd("GET")
                        .arg(cache_key)
                        .query_async(&mut connection)
                        .await
                },
            )
            .await?;
        let Some(raw) = raw else {
            return Ok(Found::Nothing);
        };
        Ok(match entry::decode(&raw) {
            Ok(entry) => Found::Entry(entry),
            Err(error) => {
                tracing::warn!(%key, %error, "ignoring a cache entry this service did not write");
                Found::Foreign
            }
        })
    }

    /// One PING, whatever the health state: a real round trip.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        let started = Instant::now();
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        self.within_timeout(ping).await?;
        Ok(started.elapsed())
    }

    /// `command`'s outcome, or a timeout error once the Redis timeout has
    /// passed.
    pub(crate) async fn within_timeout<T>(
        &self,
        command: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(result) => result.map_err(CacheError::from),
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        }
    }

    /// Runs one command if the state is at least `needs`, within the
    /// timeout, timing it. Any failure marks Redis down until the supervisor
    /// repairs it, and so does a reply on another connection than the one
    /// the last repair was made on: its server may be a primary found since
    /// (its result is then not used).
    async fn run<T, F, Fut>(
        &self,
        operation: CacheOperation,
        needs: Level,
        command: F,
    ) -> Result<T, CacheError>
    where
        F: FnOnce(PrimaryConnection) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let state = self.usage.level();
        if state < needs {
            return Err(CacheError::Unusable);
        }
        let started = Instant::now();
        let outcome = self
            .within_timeout(command(self.connection.clone()))
            .await
            .and_then(|value| self.on_repaired_connection().map(|()| value));
        self.metrics
            .observe_cache_operation(operation, started.elapsed().as_secs_f64());
        match outcome {
            Ok(value) => {
                if state == Level::Down {
                    // Redis answers again: repair it now, not on the next
                    // tick.
                    self.trouble.notify_one();
                }
                Ok(value)
            }
            Err(error) => {
                self.mark_unusable(&error);
                Err(error)
            }
        }
    }

    /// Whether commands still go to the connection the last repair was
    /// made on. Asked after a command (or a repair's replay): one sent on a
    /// newer connection finds the generation moved on.
    fn on_repaired_connection(&self) -> Result<(), CacheError> {
        if self.connection.generation() == self.usage.repaired_on() {
            Ok(())
        } else {
            Err(CacheError::PrimaryChanged)
        }
    }

    fn mark_unusable(&self, error: &CacheError) {
        if self.usage.take_down() {
            tracing::warn!(%error, "redis failed; serving from the store until it is back");
            self.metrics.set_redis_connected(false);
        }
        self.trouble.notify_one();
    }

    /// Last step of a repair: reads use Redis again. False when a write
    /// failed meanwhile (the state went back to down): repair again.
    fn resume_reads(&self) -> bool {
        let resumed = self.usage.resume_reads();
        if resumed {
            self.metrics.set_redis_connected(true);
        }
        resumed
    }

    fn max_ttl_ms(&self) -> u64 {
        millis(self.max_ttl)
    }
}
