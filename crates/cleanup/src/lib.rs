//! The `cleanup` job: run hourly by a CronJob, it reclaims expired records
//! from the store and prunes stale keys from the Redis cache, without ever
//! blocking Redis (SCAN, pipelines, UNLINK; never KEYS).
//!
//! A run: take the lock (or exit 3), delete expired records in batches,
//! walk `CLEANUP_PATTERN` and unlink cache keys with no TTL or no live
//! record, apply outbox entries stopped API replicas left behind, log a
//! summary, push metrics, release the lock (the push adds this run's counts
//! to the previous ones, which only one run at a time may do). The deadline
//! and SIGTERM stop the run between batches; what was done is reported, and
//! the next run picks up the rest (every step is idempotent).
//!
//! Which records have expired is decided by the clock the caller passes in,
//! as in the API, so that a test can move time instead of waiting for it.

mod batch;
mod budget;
mod config;
mod error;
mod live_index;
mod lock;
mod pushgateway;
mod report;
mod sweep_redis;
mod sweep_store;

use std::sync::Arc;
use std::time::Duration;

use store::clock::Clock;
use store::{Store, StoreOptions};

pub use config::Config;
pub use error::CleanupError;
pub use report::{Status, Summary, Tally};

use budget::{Budget, StopReason};
use live_index::LiveIndex;
use lock::Lock;
use sweep_redis::RedisSweep;

/// The process exit codes, documented in `--help` and docs/cleanup.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done, or stopped at the deadline or by SIGTERM after reporting what
    /// it did.
    Done = 0,
    /// Something failed (Redis or the store unreachable, a command refused);
    /// the CronJob's backoffLimit retries.
    Failed = 1,
    /// The configuration is wrong (clap uses 2 as well).
    BadConfig = 2,
    /// Another run holds the lock; nothing was done.
    Locked = 3,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        Self::from(code as u8)
    }
}

/// How long a run under Sentinel keeps trying to release its lock while no
/// primary answers: longer than the Sentinels take to agree a primary is
/// down (`down-after-milliseconds`, 5 s in deploy/k8s/components/redis-ha)
/// and to promote a replica.
const LOCK_RELEASE_PATIENCE_UNDER_SENTINEL: Duration = Duration::from_secs(15);

/// One run of the job, with `clock` deciding which records have expired.
pub async fn run(config: Config, clock: Arc<dyn Clock>) -> ExitCode {
    match run_job(&config, clock).await {
        Ok(code) => code,
        Err(error) => {
            // Where the job was looking, so that the operator knows which
            // end to check; the database URL without its password.
            let redis = config
                .redis
                .settings()
                .ok()
                .flatten()
                .map(|settings| settings.target.to_string());
            let database = platform::config::redact_userinfo(&config.store.database_url);
            if error.is_config() {
                tracing::error!(%error, "bad configuration");
                ExitCode::BadConfig
            } else {
                tracing::error!(%error, redis, %database, "cleanup failed");
                ExitCode::Failed
            }
        }
    }
}

async fn run_job(config: &Config, clock: Arc<dyn Clock>) -> Result<ExitCode, CleanupError> {
    let mut settings = config.redis.settings()?.ok_or(CleanupError::NoRedis)?;
    // A batch job can wait longer for a busy Redis than a request can.
    settings.timeout = settings.timeout.max(Duration::from_secs(2));
    // One connection per batch in flight, and one for the rest.
    let store = Store::connect(&config.store.database_url, StoreOptions::batch_reads(4)).await?;
    let mut connection = platform::redis::primary_connection(&settings)?;

    let Some(lock) = Lock::acquire(&mut connection, &config.lock_key, config.lock_ttl()).await?
    else {
        tracing::warn!(lock = %config.lock_key, "another cleanup run holds the lock; exiting");
        return Ok(ExitCode::Locked);
    };

    let budget = Budget::new(config.deadline(), config.rate_limit);
    let stop_flag = budget.stop_flag();
    let signal = tokio::spawn(async move {
        platform::shutdown::signal().await;
        stop_flag.store(true, std::sync::atomic::Ordering::Release);
    });

    let mut tally = Tally::default();
    let outcome = sweep(config, &store, &connection, &clock, &budget, &mut tally).await;
    signal.abort();

    let (status, stopped_by) = match &outcome {
        Ok(None) => (Status::Complete, None),
        Ok(Some(reason)) => (Status::Partial, Some(*reason)),
        Err(_) => (Status::Failed, None),
    };
    let summary = Summary {
        status,
        stopped_by,
        dry_run: config.dry_run,
        keys_deleted: tally.keys_deleted(),
        tally,
        duration_seconds: budget.elapsed().as_secs_f64(),
    };
    summary.log();
    // Under the lock: the push reads the totals so far and writes them back
    // with this run's counts added; two runs doing that at once would lose
    // one run's counts.
    // A lock that cannot be checked (Redis unreachable) cannot have been
    // taken by another run meanwhile either: only a lock seen gone stops
    // the push.
    if let (Some(url), false) = (&config.pushgateway_url, config.dry_run) {
        if !matches!(lock.is_held(&mut connection).await, Ok(false)) {
            if let Err(error) =
                pushgateway::push(url, &summary, clock.now_ms() as f64 / 1000.0).await
            {
                let pushgateway = platform::config::redact_userinfo(url);
                tracing::error!(%error, %pushgateway, "cannot push metrics");
            }
        } else {
            tracing::error!(
                lock = %config.lock_key,
                "the lock is no longer this run's (it expired, or a Redis failover lost it): \
                 metrics not pushed, as another run may be pushing"
            );
        }
    }
    // A failover takes the Sentinels a few seconds to notice: wait that
    // long for the new primary rather than leave the lock to expire.
    let patience = if connection.follows_sentinel() {
        LOCK_RELEASE_PATIENCE_UNDER_SENTINEL
    } else {
        Duration::ZERO
    };
    match lock.release(&mut connection, patience).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("the lock had expired before the run released it"),
        Err(error) => tracing::warn!(%error, "cannot release the lock; it expires by itself"),
    }
    store.close().await;
    outcome.map(|_| ExitCode::Done)
}

/// The three steps, each stopping at a batch boundary when the budget runs
/// out.
async fn sweep(
    config: &Config,
    store: &Store,
    connection: &platform::redis::PrimaryConnection,
    clock: &Arc<dyn Clock>,
    budget: &Budget,
    tally: &mut Tally,
) -> Result<Option<StopReason>, CleanupError> {
    let expired = sweep_store::delete_expired_records(
        store,
        clock.now_ms(),
        config.batch_size,
        config.dry_run,
        budget,
        tally,
    )
    .await?;
    if let Some(reason) = expired {
        return Ok(Some(reason));
    }
    let live_index = LiveIndex::load(store, clock.now_ms(), config.index_max_records).await?;
    let redis_sweep = RedisSweep {
        connection: connection.clone(),
        store,
        clock: clock.clone(),
        pattern: &config.pattern,
        scan_count: config.scan_count,
        dry_run: config.dry_run,
        budget,
        live_index: live_index.map(Arc::new),
        cursor_key: format!("{}:cursor", config.lock_key),
        cursor_ttl: config.lock_ttl(),
    };
    if let Some(reason) = redis_sweep.run(tally).await? {
        return Ok(Some(reason));
    }
    sweep_store::apply_outbox_leftovers(
        store,
        &mut connection.clone(),
        clock.now_ms(),
        Duration::from_secs(config.outbox_min_age_seconds),
        config.dry_run,
        budget,
        tally,
    )
    .await
}
