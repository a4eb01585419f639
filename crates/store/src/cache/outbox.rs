//! Applying the store's cache outbox to Redis: the API's supervisor does it
//! after every outage (and for entries past their retention), the cleanup
//! job for entries stopped replicas left behind. One loop serves both.

use std::time::Duration;

use super::{TOMBSTONE_TTL, cache_key, entry, millis, scripts};
use crate::{OutboxEntry, Store, StoreError};

/// Entries read from the outbox per round trip.
const PAGE_SIZE: u32 = 500;
const _: () = assert!(PAGE_SIZE as usize <= crate::sqlite_connections::MOST_ROWS_PER_STATEMENT);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cache outbox: {0}")]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not apply an outbox page within {0:?}")]
    Timeout(Duration),
}

/// Which entries a replay applies, and which it then removes.
#[derive(Debug, Clone, Copy)]
pub struct ReplayWindow {
    /// Apply the entries written before this, in write order up to the
    /// first that was not (Unix ms; `i64::MAX` for all).
    pub written_before_ms: i64,
    /// Then remove the applied entries written before this. An entry of a
    /// key that was written again since stays in the outbox as a later one.
    pub remove_before_ms: i64,
}

/// Applies the outbox entries in `window` to Redis a page at a time: Redis
/// ends up holding nothing older than each entry's version. Entries
/// `known_applied` says Redis already holds at their version or newer are
/// not sent, and count as applied. `stop` is asked before each page and
/// ends the replay early with its reason. `applied` counts the entries
/// applied so far, also when an error ends the replay.
pub async fn replay_outbox<C, S>(
    store: &Store,
    connection: &mut C,
    window: ReplayWindow,
    page_timeout: Duration,
    mut known_applied: impl FnMut(&OutboxEntry) -> bool,
    mut stop: impl FnMut() -> Option<S>,
    applied: &mut u64,
) -> Result<Option<S>, ReplayError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut after_id = 0;
    loop {
        if let Some(reason) = stop() {
            return Ok(Some(reason));
        }
        let page = store.outbox_page(after_id, PAGE_SIZE).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        after_id = last.id;
        // Entries come in the order they were written, so the first one
        // written after the window ends the replay: those after it are
        // younger still. (An entry dated ahead of the ones after it, by a
        // clock ahead of the others, holds them until a later replay.)
        let in_window = page
            .iter()
            .position(|entry| entry.written_at_ms >= window.written_before_ms)
            .unwrap_or(page.len());
        let applying = &page[..in_window];
        let raising: Vec<&OutboxEntry> = applying
            .iter()
            .filter(|entry| !known_applied(entry))
            .collect();
        if !raising.is_empty() {
            match tokio::time::timeout(page_timeout, raise_floors(connection, &raising)).await {
                Ok(result) => result?,
                Err(_) => return Err(ReplayError::Timeout(page_timeout)),
            }
        }
        let aged: Vec<i64> = applying
            .iter()
            .filter(|entry| entry.written_at_ms < window.remove_before_ms)
            .map(|entry| entry.id)
            .collect();
        store.outbox_remove(aged).await?;
        *applied += applying.len() as u64;
        if in_window < page.len() || page.len() < PAGE_SIZE as usize {
            return Ok(None);
        }
    }
}

/// Makes sure Redis holds nothing older than each entry's version under
/// its cache key (older entries become tombstones of that version). One
/// script call for the page: a call per entry cost Redis the fixed work of
/// a call for every entry (docs/decisions.md, record 43).
async fn raise_floors<C>(connection: &mut C, entries: &[&OutboxEntry]) -> redis::RedisResult<()>
where
    C: redis::aio::ConnectionLike + Send,
{
    let mut invocation = scripts::RAISE_FLOORS.prepare_invoke();
    invocation.arg(millis(TOMBSTONE_TTL));
    for outboxed in entries {
        invocation
            .key(cache_key(&outboxed.key))
            .arg(outboxed.version)
            .arg(entry::encode_tombstone(outboxed.version));
    }
    invocation.invoke_async::<i64>(connection).await.map(drop)
}
