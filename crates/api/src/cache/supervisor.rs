//! Watches Redis and decides when the cache may be used.
//!
//! While Redis is usable, the supervisor checks it every second and replays
//! outbox entries older than the retention window (covering writes whose
//! cache update was lost, e.g. because a replica died right after its
//! commit), then removes them. When Redis has failed, or restarted (its
//! `run_id` changed, so it may have come back with older data), the
//! supervisor keeps trying; once Redis answers it lets writes through,
//! replays the *whole* outbox, and only then lets requests read Redis.
//!
//! Each second it also reports the age of the outbox's oldest write: within
//! the retention (and a tick) while the routine replay keeps up, growing
//! while Redis cannot be repaired from it (the `CacheOutboxNotDraining`
//! alert).

use std::sync::Arc;
use std::time::Duration;

use store::cache::{ReplayError, ReplayWindow, replay_outbox};
use store::clock::Clock;
use store::{OutboxEntry, Store};

use super::{CacheError, RedisCache};
use crate::metrics::OutboxReplay as Replay;

/// How often Redis is checked while healthy, and retried while not.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Supervisor {
    cache: Arc<RedisCache>,
    store: Store,
    clock: Arc<dyn Clock>,
    retention: Duration,
}

impl Supervisor {
    pub fn new(
        cache: Arc<RedisCache>,
        store: Store,
        clock: Arc<dyn Clock>,
        retention: Duration,
    ) -> Self {
        Self {
            cache,
            store,
            clock,
            retention,
        }
    }

    /// Runs until the task is aborted.
    pub async fn run(self) {
        self.cache.metrics.set_outbox_retention(self.retention);
        let mut known_run_id: Option<String> = None;
        // Say once that Redis is unavailable, not every second.
        let mut reported = false;
        loop {
            if self.cache.is_usable() {
                if let Err(error) = self.check_healthy(&mut known_run_id).await {
                    self.cache.mark_unusable(&error);
                }
            } else {
                match self.repair(&mut known_run_id).await {
                    Ok(()) => {
                        reported = false;
                        tracing::info!("redis is available; cache in use");
                    }
                    Err(error) if !reported => {
                        reported = true;
                        tracing::warn!(%error, "redis unavailable; retrying every second");
                    }
                    Err(error) => tracing::debug!(%error, "redis still unavailable"),
                }
            }
            self.observe_outbox().await;
            // A failed command wakes the supervisor early.
            tokio::select! {
                () = tokio::time::sleep(CHECK_INTERVAL) => {}
                () = self.cache.trouble.notified() => {}
            }
        }
    }

    async fn check_healthy(&self, known_run_id: &mut Option<String>) -> Result<(), CacheError> {
        let run_id = self.run_id().await?;
        if known_run_id.as_ref().is_some_and(|known| *known != run_id) {
            return Err(CacheError::Restarted);
        }
        *known_run_id = Some(run_id);
        self.replay(Replay::Aged).await
    }

    /// Writes first, then the replay of everything Redis may have missed,
    /// then reads: a write that skipped Redis committed before writes
    /// resumed, so the replay sees its outbox entry. All on one connection:
    /// a replay that ended on another (the primary moved meanwhile) may
    /// have left part of the outbox on the server before.
    async fn repair(&self, known_run_id: &mut Option<String>) -> Result<(), CacheError> {
        let run_id = self.run_id().await?;
        let generation = self.cache.connection.generation();
        // A restarted Redis has no scripts; load the one every request uses
        // now rather than on a request's first (failed) call.
        self.cache.load_scripts().await?;
        self.cache.usage.resume_writes(generation);
        let replayed = self
            .replay(Replay::Repair)
            .await
            .and_then(|()| self.cache.on_repaired_connection());
        if let Err(error) = replayed {
            // Failed half way: back to not using Redis at all.
            self.cache.usage.take_down();
            return Err(error);
        }
        if !self.cache.resume_reads() {
            return Err(CacheError::Unusable);
        }
        *known_run_id = Some(run_id);
        Ok(())
    }

    /// The identity of the running Redis process; it changes on restart.
    async fn run_id(&self) -> Result<String, CacheError> {
        let mut connection = self.cache.connection.clone();
        let mut command = redis::cmd("INFO");
        command.arg("server");
        let info = command.query_async::<String>(&mut connection);
        let info = self.cache.within_timeout(info).await?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .unwrap_or_default()
            .trim()
            .to_owned())
    }

    async fn replay(&self, which: Replay) -> Result<(), CacheError> {
        let cutoff_ms = self
            .clock
            .now_ms()
            .saturating_sub(i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX));
        let window = ReplayWindow {
            written_before_ms: match which {
                // After an outage nothing in Redis can be trusted.
                Replay::Repair => i64::MAX,
                Replay::Aged => cutoff_ms,
            },
            remove_before_ms: cutoff_ms,
        };
        let mut connection = self.cache.connection.clone();
        // A page is one script over a few hundred keys: allow it more
        // than one command's time.
        let page_timeout = self.cache.timeout * 10;
        // After an outage every entry is sent: Redis may have lost what it
        // answered before.
        let known_applied = |entry: &OutboxEntry| {
            which == Replay::Aged && self.cache.written_through.holds(&entry.key, entry.version)
        };
        let no_stop = || None::<()>;
        let mut applied = 0;
        let replayed = replay_outbox(
            &self.store,
            &mut connection,
            window,
            page_timeout,
            known_applied,
            no_stop,
            &mut applied,
        )
        .await;
        self.cache.metrics.outbox_replayed(which, applied);
        match replayed {
            Ok(_) => Ok(()),
            Err(ReplayError::Redis(error)) => Err(CacheError::Redis(error)),
            Err(ReplayError::Timeout(limit)) => Err(CacheError::Timeout(limit)),
            Err(ReplayError::Store(error)) => {
                // The store failing is not Redis' fault: in routine replays
                // keep the cache state and try again on the next tick; a
                // repair cannot finish without the outbox.
                tracing::warn!(%error, "cannot apply the cache outbox");
                match which {
                    Replay::Repair => Err(CacheError::OutboxUnreadable),
                    Replay::Aged => Ok(()),
                }
            }
        }
    }

    /// Sets the age of the outbox's oldest entry, whatever Redis' state:
    /// while Redis is in use the routine replay keeps it within the
    /// retention (and a tick); during an outage it grows with the writes
    /// the repair will replay.
    async fn observe_outbox(&self) {
        match self.store.outbox_page(0, 1).await {
            Ok(first) => {
                let now_ms = self.clock.now_ms();
                let age_ms = first.first().map_or(0, |oldest| {
                    u64::try_from(now_ms.saturating_sub(oldest.written_at_ms)).unwrap_or(0)
                });
                self.cache.metrics.set_outbox_oldest_age(age_ms);
            }
            Err(error) => tracing::debug!(%error, "cannot read the cache outbox's oldest entry"),
        }
    }
}
