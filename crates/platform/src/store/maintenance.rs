//! Queries for the cleanup job: reclaiming expired records, and telling
//! which cache keys still have a live record.

use std::collections::HashSet;

use sqlx::AssertSqlSafe;

use super::{Store, StoreError};

/// One bounded transaction: at most `$2` expired rows.
const DELETE_EXPIRED_BATCH: &str = "\
DELETE FROM records WHERE key IN (
    SELECT key FROM records
    WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1
    LIMIT $2)";

const COUNT_EXPIRED: &str = "\
SELECT COUNT(*) FROM records WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1";

impl Store {
    /// Deletes up to `limit` records that expired at or before `now_ms`;
    /// returns how many it deleted. Call again until it returns less than
    /// `limit`.
    pub async fn delete_expired_batch(&self, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(DELETE_EXPIRED_BATCH)
            .bind(now_ms)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many records expired at or before `now_ms` and wait for removal.
    pub async fn count_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(COUNT_EXPIRED)
            .bind(now_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Which of `keys` have a live record at `now_ms`. One query per call;
    /// callers pass a bounded batch (SQLite takes up to 32,766 parameters,
    /// PostgreSQL 65,535).
    pub async fn live_keys(
        &self,
        keys: &[&str],
        now_ms: i64,
    ) -> Result<HashSet<String>, StoreError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let mut sql = String::from(
            "SELECT key FROM records \
             WHERE (expires_at_ms IS NULL OR expires_at_ms > $1) AND key IN (",
        );
        for n in 0..keys.len() {
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(n + 2).to_string());
        }
        sql.push(')');
        // Only placeholders are generated; every value is bound.
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(now_ms);
        for key in keys {
            query = query.bind(*key);
        }
        Ok(query.fetch_all(&self.pool).await?.into_iter().collect())
    }
}
