//! The cache outbox: which keys were written recently, at which version,
//! in the order they were written.
//!
//! An entry is appended by the statement that writes the record (a trigger
//! on `records`, migrations/*/0002_outbox_trigger.sql; a log in write order
//! since sqlite/0005 and postgres/0004). The cache layer replays entries
//! against Redis (making sure Redis holds nothing older than the noted
//! version) after Redis was unreachable, and drops them once they are older
//! than a retention window, by which time any Redis restart that could bring
//! back older data would have been noticed.

use sqlx::sqlite::Sqlite;
use sqlx::{Any, AssertSqlSafe, Executor};

use super::driver::Driver;
use super::placeholders::Placeholders;
use super::{Engine, Store, StoreError};

const PAGE_AFTER: &str = "\
SELECT id, key, version, written_at_ms FROM cache_outbox
WHERE id > $1 ORDER BY id LIMIT $2";

/// The entries before the first one written at or after $1: a replay
/// stops at that one (see `cache::replay_outbox`).
const COUNT_REPLAYED_BEFORE: &str = "\
SELECT COUNT(*) FROM cache_outbox
WHERE id < COALESCE(
    (SELECT MIN(id) FROM cache_outbox WHERE written_at_ms >= $1),
    9223372036854775807)";

/// One key the cache must not hold below `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Grows with every entry appended, and is never reused.
    pub id: i64,
    pub key: String,
    pub version: i64,
    pub written_at_ms: i64,
}

impl Store {
    /// Up to `limit` outbox entries with ids above `after_id`, in id order
    /// (the order they were written); start with 0 and continue from the
    /// last id returned.
    pub async fn outbox_page(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        match &self.outbox_reads {
            Some(outbox_reads) => read_page::<Sqlite>(outbox_reads, after_id, limit).await,
            None => read_page::<Any>(&self.pool, after_id, limit).await,
        }
    }

    /// How many entries a replay of those written before
    /// `written_before_ms` applies: in write order, up to the first one
    /// written after (`i64::MAX` counts them all).
    pub async fn outbox_count(&self, written_before_ms: i64) -> Result<u64, StoreError> {
        self.count(COUNT_REPLAYED_BEFORE, &[written_before_ms])
            .await
    }

    /// Removes the entries with these ids, in one statement. Callers pass a
    /// bounded page (one parameter per id). On SQLite the statement queues
    /// to the writer with the record writes: taking SQLite's write lock
    /// from beside it would make the writer's next batch wait for it in the
    /// busy handler, which sleeps. PostgreSQL runs it beside the writer,
    /// whose batches it would otherwise hold up.
    pub async fn outbox_remove(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        match self.engine {
            Engine::Sqlite => self.group_commit.remove_outbox_entries(ids).await,
            Engine::Postgres => remove_outbox_entries(&self.pool, self.engine, &ids).await,
        }
    }
}

/// Up to `limit` entries with ids above `after_id`, in id order.
async fn read_page<'c, DB: Driver>(
    executor: impl Executor<'c, Database = DB>,
    after_id: i64,
    limit: u32,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let query = DB::bind_integer(sqlx::query(PAGE_AFTER), after_id);
    let rows = DB::bind_integer(query, i64::from(limit))
        .fetch_all(executor)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(OutboxEntry {
                id: DB::integer(row, 0)?,
                key: DB::text(row, 1)?.to_owned(),
                version: DB::integer(row, 2)?,
                written_at_ms: DB::integer(row, 3)?,
            })
        })
        .collect()
}

/// Removes the outbox entries with these ids, in one statement.
///
/// On PostgreSQL each entry is locked before it is deleted, and those
/// another transaction holds are skipped: only another removal holds
/// entries (the writes' trigger only appends), and it is removing them.
/// Two removals of overlapping pages whose plans take their rows in
/// different orders (by the index or by the heap) could otherwise each
/// hold an entry the other waits for, until the server's deadlock timeout
/// rolls one back (docs/decisions.md, record 61). An entry skipped for a
/// removal that then rolls back stays for a later replay.
/// SQLite runs one write at a time and needs none of this.
pub(crate) async fn remove_outbox_entries<'c, DB: Driver>(
    executor: impl Executor<'c, Database = DB>,
    engine: Engine,
    ids: &[i64],
) -> Result<(), StoreError> {
    // One statement for a page instead of one per entry: single-row deletes
    // were most of a large replay's time (docs/defects.md). The ids are
    // listed rather than given as a range: on PostgreSQL an entry can commit
    // inside a range after the replay read it.
    let (head, tail) = match engine {
        Engine::Sqlite => ("DELETE FROM cache_outbox WHERE id IN ", ""),
        Engine::Postgres => (
            "DELETE FROM cache_outbox WHERE id IN \
             (SELECT id FROM cache_outbox WHERE id IN ",
            " FOR UPDATE SKIP LOCKED)",
        ),
    };
    let mut sql = String::with_capacity(head.len() + tail.len() + ids.len() * 6);
    sql.push_str(head);
    Placeholders::new(engine).push_rows(&mut sql, 1, ids.len());
    sql.push_str(tail);
    // Only placeholders are generated; every id is bound, in order.
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for id in ids {
        query = DB::bind_integer(query, *id);
    }
    query.execute(executor).await?;
    Ok(())
}
