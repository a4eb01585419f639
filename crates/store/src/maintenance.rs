//! Queries for the cleanup job: reclaiming expired records, and telling
//! which cache keys still have a live record.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlx::AssertSqlSafe;

use super::records::DELETED_MARKER_LIFE_MS;
use super::{Engine, Store, StoreError};

/// The condition of a row that expired at `$now`: a record past its
/// expiry, or a delete's marker row (`expires_at_ms` 0) once
/// `updated_at_ms` is `$life` old; until then the marker keeps the key's
/// next version above the deleted one (`records.rs`). A macro, so that the
/// statements below are constants with the condition written once.
macro_rules! expired {
    ($now:literal, $life:literal) => {
        concat!(
            "expires_at_ms IS NOT NULL AND expires_at_ms <= ",
            $now,
            " AND (expires_at_ms > 0 OR updated_at_ms <= ",
            $now,
            " - ",
            $life,
            ")"
        )
    };
}

/// One bounded transaction on SQLite: at most `$2` expired rows. SQLite
/// runs one write at a time, so the rows the subquery picks are still
/// expired when the `DELETE` takes them.
const DELETE_EXPIRED_BATCH_SQLITE: &str = concat!(
    "DELETE FROM records WHERE key IN (SELECT key FROM records WHERE ",
    expired!("$1", "$3"),
    " LIMIT $2)"
);

/// One bounded transaction on PostgreSQL: at most `$2` expired rows, each
/// locked before it is deleted, skipping those a writer holds.
///
/// Skipping is what keeps the job out of deadlocks: the writer locks a
/// batch's rows in key order (`group_commit`), and a `DELETE` that waited
/// for a row while holding others, taken in whatever order the scan found
/// them, could hold one the writer wanted next. The job never waits for a
/// row now, so no cycle of waits can pass through it; a row it skipped is
/// being written and is deleted by a later run if it is still expired.
///
/// Under READ COMMITTED a row a client re-wrote after the statement's
/// snapshot (made live again) is checked again, at its newest version, as
/// it is locked, and left alone if it no longer matches: deleting it would
/// give the client its 201 and then a 404.
const DELETE_EXPIRED_BATCH_POSTGRES: &str = concat!(
    "WITH batch AS (SELECT key FROM records WHERE ",
    expired!("$1", "$3"),
    " LIMIT $2 FOR UPDATE SKIP LOCKED) \
     DELETE FROM records USING batch WHERE records.key = batch.key"
);

/// One page of live keys after `$1`, in key order, joined by `$3` into a
/// single row: a row costs sqlx (through its `Any` driver) about a
/// microsecond whatever its size, so 800,000 keys took a second as rows
/// and a quarter of that as 80 rows. `string_agg` exists in both engines
/// (SQLite since 3.44). Keys holding the separator are left out: they
/// could not be told apart.
const LIVE_KEYS_PAGE: &str = "\
SELECT string_agg(key, $3) FROM (
    SELECT key FROM records
    WHERE key > $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2) AND key NOT LIKE $4
    ORDER BY key LIMIT $5) page";

/// Keys per page of [`LIVE_KEYS_PAGE`]: about 100 KiB of text.
const LIVE_KEYS_PER_PAGE: usize = 10_000;

/// Joins the keys of a page; API keys never contain it (no whitespace).
const KEY_SEPARATOR: &str = "\n";

const COUNT_EXPIRED: &str = concat!("SELECT COUNT(*) FROM records WHERE ", expired!("$1", "$2"));

impl Store {
    /// Deletes up to `limit` records that expired at or before `now_ms`
    /// (and deleted records' markers past their life); returns how many it
    /// deleted. Call again until it returns less than `limit`.
    pub async fn delete_expired_batch(&self, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let statement = match self.engine {
            Engine::Sqlite => DELETE_EXPIRED_BATCH_SQLITE,
            Engine::Postgres => DELETE_EXPIRED_BATCH_POSTGRES,
        };
        let done = sqlx::query(statement)
            .bind(now_ms)
            .bind(i64::from(limit))
            .bind(DELETED_MARKER_LIFE_MS)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many records expired at or before `now_ms` and wait for removal.
    pub async fn count_expired(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.count(COUNT_EXPIRED, &[now_ms, DELETED_MARKER_LIFE_MS])
            .await
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
        // instead of every live one.
        let mut placeholders = self.placeholders();
        let mut sql = String::with_capacity(96 + keys.len() * 8);
        sql.push_str("WITH batch(key) AS (VALUES ");
        placeholders.push_rows(&mut sql, keys.len(), 1);
        sql.push_str(
            ") SELECT batch.key FROM batch WHERE NOT EXISTS (\
             SELECT 1 FROM records WHERE records.key = batch.key \
             AND (records.expires_at_ms IS NULL OR records.expires_at_ms > ",
        );
        placeholders.push_next(&mut sql);
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

    /// Calls `visit` with the key of every record live at `now_ms` until it
    /// returns `ControlFlow::Break`. Reads the table a page at a time: to
    /// check many keys at once, far cheaper than one indexed lookup per
    /// key. A key holding a newline (only a row not written through the API
    /// can) is skipped.
    pub async fn for_each_live_key(
        &self,
        now_ms: i64,
        mut visit: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        // Keys are never empty, so every key sorts after "".
        let mut page = self.live_keys_page("", now_ms).await?;
        while let Some(joined) = page {
            // The next page starts after this one's greatest key, if the
            // engine aggregated in the subquery's order (both do); any other
            // key of the page still moves forward without skipping one, at
            // the cost of reading a few again.
            let last = joined.rsplit(KEY_SEPARATOR).next().unwrap_or_default();
            let visit_page = async {
                for key in joined.split(KEY_SEPARATOR) {
                    visit(key)?;
                }
                ControlFlow::Continue(())
            };
            // The engine reads the next page (on its own thread, or server)
            // while this one is visited: the cleanup benchmark's 800,000 keys
            // took 0.20-0.34 s so, 0.29-0.54 s one page after the other. The
            // last page costs one more query, which finds nothing.
            let (next, visited) = tokio::join!(self.live_keys_page(last, now_ms), visit_page);
            if visited.is_break() {
                return Ok(());
            }
            page = next?;
        }
        Ok(())
    }

    /// The live keys after `after`, at most a page of them, joined by
    /// [`KEY_SEPARATOR`]; `None` past the last one.
    async fn live_keys_page(&self, after: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(LIVE_KEYS_PAGE)
            .bind(after)
            .bind(now_ms)
            .bind(KEY_SEPARATOR)
            .bind(format!("%{KEY_SEPARATOR}%"))
            .bind(LIVE_KEYS_PER_PAGE as i64)
            .fetch_one(&self.pool)
            .await?)
    }
}
