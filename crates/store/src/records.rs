//! Reading and writing records.

use std::sync::LazyLock;

use sqlx::{AssertSqlSafe, Executor};

use super::driver::{Driver, StatementOf};
use super::placeholders::Placeholders;
use super::{Engine, Store, StoreError};
use crate::cache::TOMBSTONE_TTL;
use crate::domain::{Key, Record, Ttl};

/// The upsert's columns, in the order of each row's parameters.
const UPSERT_INTO: &str =
    "INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) VALUES ";

/// Versions are microseconds of the writer's clock, or one more than the
/// previous version when that is larger. So they grow with every write of a
/// key, and a key deleted and written again starts above its old versions.
/// Microseconds stay below 2^53 until the year 2255, which keeps them exact in
/// Redis' Lua numbers.
const UPSERT_ON_CONFLICT: &str = "
ON CONFLICT (key) DO UPDATE SET
    value = excluded.value,
    version = CASE WHEN records.version >= excluded.version
                   THEN records.version + 1 ELSE excluded.version END,
    updated_at_ms = excluded.updated_at_ms,
    expires_at_ms = excluded.expires_at_ms,
    write_count = records.write_count + 1
RETURNING version, write_count, key";

const SELECT_LIVE: &str = "\
SELECT value, version, updated_at_ms, expires_at_ms FROM records
WHERE key = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2)";

/// A delete keeps the row as a marker: no value, `expires_at_ms` 0 (lapsed
/// for every clock), and a version one above the deleted record's. A write
/// of the key that follows then takes a version above it through the
/// upsert's `previous + 1`, whatever the writer's clock says; a row deleted
/// outright would leave the next write the writer's clock alone, and a
/// clock behind gave a version the cache's tombstone refused. The cleanup
/// job reclaims markers once that tombstone has lapsed
/// ([`DELETED_MARKER_LIFE_MS`]).
pub(crate) const DELETE_LIVE: &str = "\
UPDATE records
SET value = '', version = version + 1, updated_at_ms = $2, expires_at_ms = 0,
    write_count = write_count + 1
WHERE key = $1 AND (expires_at_ms IS NULL OR expires_at_ms > $2)
RETURNING version";

/// How long a delete's marker row outlives the delete: as long as the
/// cache's tombstone of it, whose version it carries on.
pub const DELETED_MARKER_LIFE_MS: i64 = TOMBSTONE_TTL.as_millis() as i64;

impl Store {
    /// The live record under `key` at `now_ms`, if any. Expired records are
    /// invisible even before `cleanup` removes them.
    pub async fn get(&self, key: &Key, now_ms: i64) -> Result<Option<Record>, StoreError> {
        match &self.batched_reads {
            Some(batched_reads) => batched_reads.get(key.as_str(), now_ms).await,
            None => select_live(&self.pool, key.as_str(), now_ms).await,
        }
    }

    /// Writes `value` under `key`; the same statement notes the write in the
    /// cache outbox (a trigger, migrations/*/0002_outbox_trigger.sql).
    /// Returns the record as stored, and whether the write created the key's
    /// row. Takes the value by value: it becomes the returned record's
    /// without a copy (a value can be a mebibyte).
    pub async fn put(
        &self,
        key: &Key,
        value: impl Into<String>,
        ttl: Option<Ttl>,
        now_ms: i64,
    ) -> Result<Written, StoreError> {
        let expires_at_ms = ttl.map(|ttl| now_ms.saturating_add(ttl.millis()));
        let write = RecordWrite {
            key: key.as_str().to_owned(),
            value: value.into(),
            proposed_version: now_ms.saturating_mul(1000),
            updated_at_ms: now_ms,
            expires_at_ms,
        };
        let (upserted, value) = self.group_commit.put(write).await?;
        let record = Record {
            value,
            version: upserted.version,
            updated_at_ms: now_ms,
            expires_at_ms,
        };
        Ok(Written {
            record,
            created: upserted.created,
        })
    }

    /// Deletes the live record under `key`. Returns the version the cache
    /// must not go below from now on (one above the deleted record's), or
    /// `None` when there was no live record. The row stays behind as a
    /// marker that keeps the key's versions growing (see `DELETE_LIVE`);
    /// the same statement notes the delete in the cache outbox.
    pub async fn delete(&self, key: &Key, now_ms: i64) -> Result<Option<i64>, StoreError> {
        self.group_commit.delete(key.as_str(), now_ms).await
    }
}

/// What [`Store::put`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub record: Record,
    /// Whether the write created the key's row: the store held no record of
    /// the key, live, lapsed or deleted. Redis then most likely holds
    /// nothing under it either (docs/decisions.md, record 38).
    pub created: bool,
}

/// What the upsert returns of one row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upserted {
    pub version: i64,
    pub created: bool,
}

impl Upserted {
    /// From a row of the upsert's `RETURNING version, write_count, key`.
    pub(crate) fn from_row<DB: Driver>(row: &DB::Row) -> Result<Self, StoreError> {
        Ok(Self {
            version: DB::integer(row, 0)?,
            created: DB::integer(row, 1)? == 1,
        })
    }

    /// The key of such a row.
    pub(crate) fn key_of<DB: Driver>(row: &DB::Row) -> Result<&str, StoreError> {
        Ok(DB::text(row, 2)?)
    }
}

/// One record as a write stores it.
#[derive(Debug)]
pub(crate) struct RecordWrite {
    pub key: String,
    pub value: String,
    /// The version the writer's clock gives; the statement raises it above
    /// the stored one.
    pub proposed_version: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// The statement that writes `rows` records and returns each one's
/// `version, write_count, key`. Only placeholders are spliced into it.
pub(crate) fn upsert_statement(engine: Engine, rows: usize) -> AssertSqlSafe<String> {
    let mut sql = String::with_capacity(UPSERT_INTO.len() + UPSERT_ON_CONFLICT.len() + rows * 24);
    sql.push_str(UPSERT_INTO);
    Placeholders::new(engine).push_rows(&mut sql, rows, 5);
    sql.push_str(UPSERT_ON_CONFLICT);
    AssertSqlSafe(sql)
}

/// The one-row statement of each engine, built once: every write the
/// writer makes alone uses it.
fn upsert_one_statement(engine: Engine) -> AssertSqlSafe<&'static str> {
    static SQLITE: LazyLock<String> = LazyLock::new(|| upsert_statement(Engine::Sqlite, 1).0);
    static POSTGRES: LazyLock<String> = LazyLock::new(|| upsert_statement(Engine::Postgres, 1).0);
    AssertSqlSafe(match engine {
        Engine::Sqlite => SQLITE.as_str(),
        Engine::Postgres => POSTGRES.as_str(),
    })
}

/// Binds `writes` to `statement`, in the order of its placeholders.
pub(crate) fn bind_writes<'q, 'w, DB: Driver>(
    mut query: StatementOf<'q, DB>,
    writes: impl IntoIterator<Item = &'w RecordWrite>,
) -> StatementOf<'q, DB> {
    for write in writes {
        query = DB::bind_text(query, &write.key);
        query = DB::bind_text(query, &write.value);
        query = DB::bind_integer(query, write.proposed_version);
        query = DB::bind_integer(query, write.updated_at_ms);
        query = DB::bind_integer(query, write.expires_at_ms);
    }
    query
}

/// Writes one record with a statement of its own.
pub(crate) async fn upsert_one<'c, DB: Driver>(
    executor: impl Executor<'c, Database = DB>,
    engine: Engine,
    write: &RecordWrite,
) -> Result<Upserted, StoreError> {
    let query = bind_writes::<DB>(sqlx::query(upsert_one_statement(engine)), [write]);
    Upserted::from_row::<DB>(&query.fetch_one(executor).await?)
}

/// Reads the live record under `key` with a query of its own.
pub(crate) async fn select_live<'c, DB: Driver>(
    executor: impl Executor<'c, Database = DB>,
    key: &str,
    now_ms: i64,
) -> Result<Option<Record>, StoreError> {
    let query = DB::bind_integer(DB::bind_text(sqlx::query(SELECT_LIVE), key), now_ms);
    let row = query.fetch_optional(executor).await?;
    row.map(|row| record_from_row::<DB>(&row, 0)).transpose()
}

/// The rows of a list of keys, live or not, each its key and then the
/// record's columns as [`record_from_row`] reads them; the list of
/// placeholders follows.
pub(crate) const SELECT_BY_KEYS: &str =
    "SELECT key, value, version, updated_at_ms, expires_at_ms FROM records WHERE key IN ";

/// The record in `row`'s columns from `first` on: value, version,
/// updated_at_ms, expires_at_ms.
pub(crate) fn record_from_row<DB: Driver>(
    row: &DB::Row,
    first: usize,
) -> Result<Record, StoreError> {
    Ok(Record {
        value: DB::text(row, first)?.to_owned(),
        version: DB::integer(row, first + 1)?,
        updated_at_ms: DB::integer(row, first + 2)?,
        expires_at_ms: DB::optional_integer(row, first + 3)?,
    })
}

pub(crate) async fn delete_one<'c, DB: Driver>(
    executor: impl Executor<'c, Database = DB>,
    key: &str,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let query = DB::bind_integer(DB::bind_text(sqlx::query(DELETE_LIVE), key), now_ms);
    let row = query.fetch_optional(executor).await?;
    Ok(row.map(|row| DB::integer(&row, 0)).transpose()?)
}
