//! Queries for the cleanup job: reclaiming expired records, and telling
//! which cache keys still have a live record.

use std::collections::HashSet;

use sqlx::AssertSqlSafe;

use super::{Engine, Store, StoreError};

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

    /// Which of `keys` have no live record at `now_ms` (absent or
    /// expired). One query per call, returning only those keys, which are
    /// rare: callers pass a bounded batch (SQLite takes up to 32,766
    /// parameters, PostgreSQL 65,535).
    pub async fn keys_without_live_record(
        &self,
        keys: &[&str],
        now_ms: i64,
    ) -> Result<HashSet<String>, StoreError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        // WITH batch(key) AS (VALUES (..), (..)) is understood by both
        // engines, and lets the database answer with the few dead keys
        // instead of every live one. SQLite gets anonymous `?` parameters:
        // it looks named ones up by a linear search, which for a few hundred
        // parameters costs more than the query.
        let placeholder = |n: usize| match self.engine {
            Engine::Sqlite => "?".to_owned(),
            Engine::Postgres => format!("${n}"),
        };
        let mut sql = String::with_capacity(96 + keys.len() * 8);
        sql.push_str("WITH batch(key) AS (VALUES ");
        for n in 1..=keys.len() {
            if n > 1 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&placeholder(n));
            sql.push(')');
        }
        sql.push_str(
            ") SELECT batch.key FROM batch WHERE NOT EXISTS (\
             SELECT 1 FROM records WHERE records.key = batch.key \
             AND (records.expires_at_ms IS NULL OR records.expires_at_ms > ",
        );
        sql.push_str(&placeholder(keys.len() + 1));
        sql.push_str("))");
        // Only placeholders are generated; every value is bound, in the
        // order the placeholders appear.
        let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for key in keys {
            query = query.bind(*key);
        }
        query = query.bind(now_ms);
        Ok(query.fetch_all(&self.pool).await?.into_iter().collect())
    }
}
