//! The store's share of the job: delete expired records in bounded
//! batches, and apply cache-outbox entries that no API replica took care of.

use std::time::Duration;

use platform::redis::PrimaryConnection;
use store::cache::{ReplayWindow, replay_outbox};
use store::{Store, StoreError};

use crate::budget::{Budget, StopReason};
use crate::error::CleanupError;
use crate::report::Tally;

/// Deletes the records expired at `now_ms`, `batch_size` rows per
/// transaction, until none are left or the budget runs out. A dry run only
/// counts them.
pub async fn delete_expired_records(
    store: &Store,
    now_ms: i64,
    batch_size: u32,
    dry_run: bool,
    budget: &Budget,
    tally: &mut Tally,
) -> Result<Option<StopReason>, StoreError> {
    if dry_run {
        tally.rows_deleted = store.count_expired(now_ms).await?;
        return Ok(None);
    }
    loop {
        if let Some(reason) = budget.exhausted() {
            return Ok(Some(reason));
        }
        let deleted = store.delete_expired_batch(now_ms, batch_size).await?;
        tally.rows_deleted += deleted;
        if deleted < u64::from(batch_size) {
            return Ok(None);
        }
    }
}

/// API replicas replay and clear their outbox entries within seconds; an
/// entry older than `min_age` at `now_ms` was left by replicas that
/// stopped. Make sure Redis holds nothing older than each entry's version,
/// then remove it.
pub async fn apply_outbox_leftovers(
    store: &Store,
    connection: &mut PrimaryConnection,
    now_ms: i64,
    min_age: Duration,
    dry_run: bool,
    budget: &Budget,
    tally: &mut Tally,
) -> Result<Option<StopReason>, CleanupError> {
    let cutoff_ms = now_ms.saturating_sub(i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX));
    if dry_run {
        tally.outbox_applied = store.outbox_count(cutoff_ms).await?;
        return Ok(None);
    }
    let window = ReplayWindow {
        written_before_ms: cutoff_ms,
        remove_before_ms: cutoff_ms,
    };
    // A batch job can wait for a busy Redis; the budget still bounds the run.
    let page_timeout = Duration::from_secs(30);
    Ok(replay_outbox(
        store,
        connection,
        window,
        page_timeout,
        |_| false,
        || budget.exhausted(),
        &mut tally.outbox_applied,
    )
    .await?)
}
