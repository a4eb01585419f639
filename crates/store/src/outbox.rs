//! The cache outbox: which keys were written recently, at which version.
//!
//! A row is written by the statement that writes the record (a trigger on
//! `records`, migrations/*/0002_outbox_trigger.sql). The cache layer
//! replays rows against Redis (making sure Redis holds nothing older than the
//! noted version) after Redis was unreachable, and drops them once they are
//! older than a retention window, by which time any Redis restart that could
//! bring back older data would have been noticed.

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};

const PAGE_AFTER: &str = "\
SELECT key, version, written_at_ms FROM cache_outbox
WHERE key > $1 AND written_at_ms < $2 ORDER BY key LIMIT $3";

const COUNT_BEFORE: &str = "SELECT COUNT(*) FROM cache_outbox WHERE written_at_ms < $1";

/// One key the cache must not hold below `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub key: String,
    pub version: i64,
    pub written_at_ms: i64,
}

impl Store {
    /// Up to `limit` outbox entries written before `written_before_ms`,
    /// with keys after `after`, in key order; start with `""` and continue
    /// from the last key returned.
    pub async fn outbox_page(
        &self,
        after: &str,
        written_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(PAGE_AFTER)
            .bind(after)
            .bind(written_before_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(OutboxEntry {
                    key: row.try_get(0)?,
                    version: row.try_get(1)?,
                    written_at_ms: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// How many entries were written before `written_before_ms`.
    pub async fn outbox_count(&self, written_before_ms: i64) -> Result<u64, StoreError> {
        self.count(COUNT_BEFORE, &[written_before_ms]).await
    }

    /// Removes each of `entries` that was written before `cutoff_ms` and
    /// that no newer write of its key has replaced since it was read, in one
    /// statement. Callers pass a bounded page (two parameters per entry).
    pub async fn outbox_remove(
        &self,
        entries: &[OutboxEntry],
        cutoff_ms: i64,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // One statement for a page instead of one per entry: single-row
        // deletes were most of a large replay's time (docs/defects.md).
        let mut sql = String::with_capacity(96 + entries.len() * 16);
        sql.push_str("DELETE FROM cache_outbox WHERE (key, version) IN (VALUES ");
        let mut placeholders = self.placeholders();
        placeholders.push_rows(&mut sql, entries.len(), 2);
        sql.push_str(") AND written_at_ms < ");
        placeholders.push_next(&mut sql);
        // Only placeholders are generated; every value is bound, in the
        // order the placeholders appear.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for entry in entries {
            query = query.bind(entry.key.as_str()).bind(entry.version);
        }
        query.bind(cutoff_ms).execute(&self.pool).await?;
        Ok(())
    }
}
