//! Walks the cache keys with SCAN (never KEYS, which blocks Redis for the
//! whole keyspace) and unlinks those that must go:
//!
//! - keys with no TTL: the API never writes a cache key without one, so such
//!   a key was left by something else and would live forever;
//! - keys under `cache:` whose record is gone or expired in the store.
//!
//! A step of the walk reads the TTLs of the keys its SCAN returned and
//! unlinks those without one; the keys with a TTL are then examined as a
//! batch on their own task (crate::batch) while the walk goes on.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesOrdered;

use platform::redis::PrimaryConnection;
use redis::{AsyncCommands, Script};
use store::Store;
use store::clock::Clock;
use tokio::task::JoinSet;

use crate::batch::BatchWorker;
use crate::budget::{Budget, StopReason};
use crate::error::CleanupError;
use crate::live_index::LiveIndex;
use crate::report::Tally;

/// One step of the walk: `SCAN cursor MATCH pattern COUNT n` from the
/// cursor kept in `KEYS[1]`, then the PTTL of every key it returned; a key
/// with no TTL is unlinked there and then (unless `ARGV[3]` is `1`, a dry
/// run). ARGV: pattern, count, dry run. Returns `{next cursor, keys SCAN
/// returned, keys with a TTL, keys with none}`, the cursor `done` once the
/// walk is over.
///
/// Doing all of it inside Redis sends each key name over the wire once
/// instead of three times (SCAN reply, PTTL request, PTTL reply) and spares
/// Redis the parsing and dispatch of one command per key, the larger part of
/// the job's cost before (docs/decisions.md, record 10).
/// Unlinking in the step that read the TTL needs no second look: nothing
/// runs between the two. Keeping the cursor in Redis lets the job send the
/// next step before the reply to the last one has come back, so Redis does
/// not sit idle for a round trip between steps. Another client's command
/// waits at most for the step Redis is running and the one queued behind
/// it, both short at the default COUNT (CLEANUP_SCAN_COUNT sets it).
/// The scanned keys are not declared in KEYS, which a single Redis (the
/// spec's redis-0) allows and Redis Cluster would not. The loop avoids
/// `ipairs`, `#t + 1` and looking `redis.call` up each time, which Redis's
/// Lua 5.1 runs with fewer instructions (callgrind, docs/decisions.md, record 10).
static SCAN_STEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cursor = redis.call('GET', KEYS[1])
if not cursor then
  return redis.error_reply('CURSORLOST the walk cursor is gone; was Redis restarted or flushed?')
end
if cursor == 'done' then
  return {'done', 0, {}, {}}
end
local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', ARGV[2])
local next = reply[1]
if next == '0' then next = 'done' end
redis.call('SET', KEYS[1], next, 'KEEPTTL')
local dry_run = ARGV[3] == '1'
local call = redis.call
local with_ttl, without_ttl = {}, {}
local n_with, n_without = 0, 0
local keys = reply[2]
for i = 1, #keys do
  local key = keys[i]
  local ttl = call('PTTL', key)
  if ttl >= 0 then
    n_with = n_with + 1
    with_ttl[n_with] = key
  elseif ttl == -1 then
    if not dry_run then call('UNLINK', key) end
    n_without = n_without + 1
    without_ttl[n_without] = key
  end
end
return {next, #keys, with_ttl, without_ttl}
",
    )
});

/// Batches examined at the same time: the store query and the deletions of
/// one batch overlap with those of others and with the walk; three is
/// enough to hide one round trip behind another on two cores.
const IN_FLIGHT: usize = 3;

/// Walk steps sent before the reply to the current one is in: one keeps
/// Redis busy while the job reads a reply. More would only queue steps
/// (each up to a millisecond of Redis time) in front of other clients.
const STEPS_AHEAD: usize = 1;

pub struct RedisSweep<'a> {
    pub connection: PrimaryConnection,
    pub store: &'a Store,
    pub clock: Arc<dyn Clock>,
    pub pattern: &'a str,
    pub scan_count: u64,
    pub dry_run: bool,
    pub budget: &'a Budget,
    /// The store's live keys, when they fit in memory; without it every
    /// batch asks the store.
    pub live_index: Option<Arc<LiveIndex>>,
    /// Where Redis keeps the walk's SCAN cursor during the run, and for how
    /// long at most if the run dies without removing it.
    pub cursor_key: String,
    pub cursor_ttl: Duration,
}

/// What one step of the walk returned.
struct Step {
    /// How many keys SCAN returned.
    scanned: u64,
    /// Those with a TTL: their records decide. (Keys are bytes: Redis keys
    /// need not be UTF-8.)
    with_ttl: Vec<Vec<u8>>,
    /// Those without one, unlinked by the step (or, in a dry run, not).
    without_ttl: Vec<Vec<u8>>,
    /// The walk is over: SCAN came back to cursor 0.
    last: bool,
}

/// Where the walk is. Steps are sent only while scanning; the steps already
/// sent are always received (a step may have unlinked keys, which must be
/// counted), and the batches in flight always awaited.
enum Phase {
    /// Sending steps, starting a batch for each step's keys with a TTL.
    Scanning,
    /// A step saw SCAN come back to cursor 0: no new step. Redis may run
    /// the steps already sent in another order than they were sent (a step
    /// retried after NOSCRIPT goes last), so their keys still get batches.
    Scanned,
    /// The budget ran out or something failed: no new step or batch.
    WindingDown(Ending),
}

/// Why a walk ended early.
enum Ending {
    Stopped(StopReason),
    Failed(CleanupError),
}

impl Phase {
    fn scanning(&self) -> bool {
        matches!(self, Self::Scanning)
    }

    fn winding_down(&self) -> bool {
        matches!(self, Self::WindingDown(_))
    }

    /// A failure ends the walk, whatever it was doing; the first one is
    /// the one reported.
    fn fail(&mut self, error: CleanupError) {
        if !matches!(self, Self::WindingDown(Ending::Failed(_))) {
            *self = Self::WindingDown(Ending::Failed(error));
        }
    }

    fn outcome(self) -> Result<Option<StopReason>, CleanupError> {
        match self {
            Self::Scanning | Self::Scanned => Ok(None),
            Self::WindingDown(Ending::Stopped(reason)) => Ok(Some(reason)),
            Self::WindingDown(Ending::Failed(error)) => Err(error),
        }
    }
}

impl RedisSweep<'_> {
    /// Walks the whole pattern, adding to `tally` step by step and batch by
    /// batch (so that a failure half way still reports what was done).
    /// Returns why it stopped early, if it did.
    pub async fn run(mut self, tally: &mut Tally) -> Result<Option<StopReason>, CleanupError> {
        let () = redis::cmd("SET")
            .arg(&self.cursor_key)
            .arg(0)
            .arg("PX")
            .arg(store::cache::millis(self.cursor_ttl))
            .query_async(&mut self.connection)
            .await?;
        let outcome = self.walk(tally).await;
        // Its TTL would remove the cursor too; a finished run leaves nothing.
        if let Err(error) = self.connection.del::<_, ()>(&self.cursor_key).await {
            tracing::warn!(%error, key = %self.cursor_key, "cannot remove the walk cursor; it expires by itself");
        }
        outcome
    }

    /// The walk itself (see [`Phase`]): all of what was done is counted
    /// before a failure is returned, so that the summary covers every
    /// deletion that happened.
    async fn walk(&self, tally: &mut Tally) -> Result<Option<StopReason>, CleanupError> {
        let worker = BatchWorker {
            connection: self.connection.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            dry_run: self.dry_run,
            live_index: self.live_index.clone(),
        };
        // Steps sent and not yet received, in the order they were sent.
        let mut steps = FuturesOrdered::new();
        let mut in_flight = JoinSet::new();
        // SCAN may return a key twice; a dry run must not count it twice.
        let mut counted = HashSet::new();
        let mut count_once = |key| !self.dry_run || counted.insert(key);
        let mut phase = Phase::Scanning;
        loop {
            if phase.scanning()
                && let Some(reason) = self.budget.exhausted()
            {
                phase = Phase::WindingDown(Ending::Stopped(reason));
            }
            // While batches are at their limit, the walk waits for one.
            let receive_step = in_flight.len() < IN_FLIGHT || phase.winding_down();
            // Steps are sent only here, right before one is received: a
            // step sent earlier would go out after a stop.
            while receive_step && phase.scanning() && steps.len() <= STEPS_AHEAD {
                steps.push_back(self.step());
            }
            if receive_step && let Some(step) = steps.next().await {
                match step {
                    Ok(step) => {
                        tally.scanned += step.scanned;
                        for key in step.without_ttl {
                            if count_once(key) {
                                tally.deleted_no_ttl += 1;
                            }
                        }
                        if step.last && phase.scanning() {
                            phase = Phase::Scanned;
                        }
                        if !phase.winding_down() && !step.with_ttl.is_empty() {
                            in_flight.spawn(worker.clone().process(step.with_ttl));
                        }
                    }
                    Err(error) => phase.fail(error),
                }
                if !phase.winding_down() {
                    self.budget.pace(tally.scanned).await;
                }
                continue;
            }
            let Some(done) = in_flight.join_next().await else {
                return phase.outcome();
            };
            match done {
                Ok(Ok(removed)) => {
                    for key in removed {
                        if count_once(key) {
                            tally.deleted_record_gone += 1;
                        }
                    }
                }
                Ok(Err(error)) => phase.fail(error),
                Err(panicked) => phase.fail(panicked.into()),
            }
        }
    }

    /// The next step of the walk, on its own connection handle so that it
    /// can be sent while earlier steps are still out.
    fn step(&self) -> impl Future<Output = Result<Step, CleanupError>> + 'static {
        let mut connection = self.connection.clone();
        let mut invocation = SCAN_STEP.key(&self.cursor_key);
        invocation
            .arg(self.pattern)
            .arg(self.scan_count)
            .arg(if self.dry_run { "1" } else { "0" });
        async move {
            let (cursor, scanned, with_ttl, without_ttl): (String, u64, _, _) =
                invocation.invoke_async(&mut connection).await?;
            Ok(Step {
                scanned,
                with_ttl,
                without_ttl,
                last: cursor == "done",
            })
        }
    }
}
