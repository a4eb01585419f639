//! Reading and writing records.

use sqlx::Row;

use super::{Store, StoreError, outbox};
use crate::domain::{Key, Record, Ttl};

/// Versions are microseconds of the writer's clock, or one more than the
/// previous version when that is larger. So they grow with every write of a
/// key, and a key deleted and written again starts above its old versions.
/// Microseconds stay below 2^53 until the year 2255, which keeps them exact in
/// Redis' Lua numbers.
const UPSERT: &str = "\
INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (key) DO UPDATE SET
    value = excluded.value,
    version = CASE WHEN records.version >= excluded.version
                   THEN records.version + 1 ELSE excluded.version END,
    updated_at_ms = excluded.updated_at_ms,
    expires_at_ms = excluded.expires_at_ms
RETURNING version";

const SELECT_LIVE: &str = "\
SELECT value, version, updated_at_ms, expires_at_ms FROM records
WHERE key = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2)";

const DELETE_LIVE: &str = "\
DELETE FROM records
WHERE key = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2)
RETURNING version";

impl Store {
    /// The live record under `key` at `now_ms`, if any. Expired records are
    /// invisible even before `cleanup` removes them.
    pub async fn get(&self, key: &Key, now_ms: i64) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(SELECT_LIVE)
            .bind(key.as_str())
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Record {
                value: row.try_get(0)?,
                version: row.try_get(1)?,
                updated_at_ms: row.try_get(2)?,
                expires_at_ms: row.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Writes `value` under `key` and notes the write in the cache outbox,
    /// in one transaction. Returns the record as stored.
    pub async fn put(
        &self,
        key: &Key,
        value: &str,
        ttl: Option<Ttl>,
        now_ms: i64,
    ) -> Result<Record, StoreError> {
        let expires_at_ms = ttl.map(|ttl| now_ms.saturating_add(ttl.millis()));
        let _turn = self.write_turn().await;
        let mut transaction = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar(UPSERT)
            .bind(key.as_str())
            .bind(value)
            .bind(now_ms.saturating_mul(1000))
            .bind(now_ms)
            .bind(expires_at_ms)
            .fetch_one(&mut *transaction)
            .await?;
        outbox::note(&mut transaction, key, version, now_ms).await?;
        transaction.commit().await?;
        Ok(Record {
            value: value.to_owned(),
            version,
            updated_at_ms: now_ms,
            expires_at_ms,
        })
    }

    /// Deletes the live record under `key`. Returns the version the cache
    /// must not go below from now on (one above the deleted record's), or
    /// `None` when there was no live record.
    pub async fn delete(&self, key: &Key, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let _turn = self.write_turn().await;
        let mut transaction = self.pool.begin().await?;
        let deleted: Option<i64> = sqlx::query_scalar(DELETE_LIVE)
            .bind(key.as_str())
            .bind(now_ms)
            .fetch_optional(&mut *transaction)
            .await?;
        let Some(deleted) = deleted else {
            return Ok(None);
        };
        let floor = deleted.saturating_add(1);
        outbox::note(&mut transaction, key, floor, now_ms).await?;
        transaction.commit().await?;
        Ok(Some(floor))
    }
}
