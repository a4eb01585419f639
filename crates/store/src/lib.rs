//! The data layer of the stack, used by `api` and `cleanup` (the collector
//! needs none of it, nor sqlx): the domain types parsed at the edge
//! ([`domain`]), the clock ([`clock`]), the Redis cache's key and entry
//! format with the scripts that read and write it ([`cache`]), and, at the
//! crate's root, the durable store: the source of truth for records.
//!
//! One code path serves SQLite (the embedded default) and PostgreSQL (the
//! cluster) through sqlx's `Any` driver: the SQL below is portable, and each
//! engine has its own migrations under `migrations/`. The writer runs the
//! same statements on each engine's own driver, as do SQLite's reader and
//! the outbox's page reads there (`driver.rs` says why).
//!
//! Besides the records, the store keeps a cache outbox: the statement of
//! every write also records `(key, version)`, so that the cache can be
//! repaired after Redis was unreachable or restarted with older data, even if
//! this process died in between.

mod batched_reads;
pub mod cache;
mod checkpointer;
pub mod clock;
pub mod domain;
mod driver;
mod group_commit;
mod held_connection;
mod maintenance;
mod outbox;
mod placeholders;
mod pools;
mod records;
mod sqlite_connections;

use std::sync::Arc;
use std::time::Duration;

use batched_reads::BatchedReads;
use group_commit::GroupCommit;
pub use outbox::OutboxEntry;
use placeholders::Placeholders;
use pools::{connect_options, engine_of, pool_options};
pub use records::Written;
use sqlx::AnyPool;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqlitePool;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which SQL engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DATABASE_URL must start with sqlite:// or postgres://")]
    UnsupportedUrl,
    #[error("cannot open the store: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// One failure handed to several waiters (a coalesced read).
    #[error("{0}")]
    Shared(Arc<StoreError>),
    /// The task that writes this process's records is gone: the
    /// store was closed, or the runtime is shutting down.
    #[error("the store's writer has stopped")]
    WriterStopped,
    /// The task that reads this process's records (SQLite) is gone: the
    /// runtime is shutting down.
    #[error("the store's reader has stopped")]
    ReaderStopped,
}

/// How a process opens its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// SQLite: bytes of the database file each connection maps into its
    /// address space (`PRAGMA mmap_size`); 0 reads pages through SQLite's
    /// own page cache. PostgreSQL ignores it.
    pub sqlite_mmap_bytes: u64,
}

impl StoreOptions {
    /// For a process that reads records one key at a time (the API).
    ///
    /// Without a memory map a read copies its leaf page out of the OS page
    /// cache with one system call; with one, each connection faults in its
    /// own mapping of every page it touches, and those pages count in the
    /// process's resident memory, growing with the store and the number of
    /// connections. Reads were no slower without the map (figures in
    /// docs/decisions.md, record 18).
    pub fn point_reads(max_connections: u32) -> Self {
        Self {
            max_connections,
            sqlite_mmap_bytes: 0,
        }
    }

    /// For a process that reads many records per query (the cleanup job):
    /// through a memory map, SQLite reads a batch's pages without a system
    /// call each; the job asking the store batch by batch took a third less
    /// time with the map than without.
    pub fn batch_reads(max_connections: u32) -> Self {
        Self {
            max_connections,
            sqlite_mmap_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A pool of connections to the store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// One connection of its own for [`Store::ping`], opened on first use:
    /// a readiness probe must learn whether the store answers, not wait
    /// behind requests for a connection of the busy pool.
    probe: AnyPool,
    engine: Engine,
    /// The one writer of this process's record writes, which writes all
    /// that wait with one statement. SQLite lets one connection write at a
    /// time, and a connection that finds the lock taken waits in its busy
    /// handler, which sleeps 1, 2, 5, 10... ms between tries (other
    /// writers, such as the cleanup job, still meet it). PostgreSQL takes
    /// concurrent writers, but each statement is a commit to wait for and
    /// round trips to make (docs/decisions.md, records 26 and 59).
    group_commit: GroupCommit,
    /// SQLite: point reads that wait at the same moment go as one query
    /// (each query is a round trip to a connection's thread). PostgreSQL
    /// reads one statement each.
    batched_reads: Option<BatchedReads>,
    /// SQLite: the cache outbox's pages, read on SQLite's own driver with
    /// a connection of their own (opened at the first replay). Through
    /// `Any`, a page crossed from the connection's thread fifty rows at a
    /// time (see [`sqlite_connections`]).
    outbox_reads: Option<SqlitePool>,
}

impl Store {
    /// Connects to `url` and applies the migrations of its engine.
    pub async fn connect(url: &str, store_options: StoreOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = engine_of(url)?;
        let options: AnyConnectOptions = connect_options(url, engine)?;
        let probe = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        let pool = pool_options(engine, store_options)
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        match engine {
            Engine::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Engine::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        let (group_commit, batched_reads, outbox_reads) = match engine {
            Engine::Sqlite => {
                // SQLite's own tasks run on SQLite's own driver, not `Any`'s
                // (see `driver.rs`), each on a pool of its own.
                let options = sqlite_connections::options(url)?;
                let pool_of = |max_connections| {
                    pool_options(
                        engine,
                        StoreOptions {
                            max_connections,
                            ..store_options
                        },
                    )
                    .connect_lazy_with(options.clone())
                };
                // The writer has a connection of its own: writes never wait
                // for one behind reads, and only that connection keeps the
                // prepared statements of the batch sizes. Its checkpoints
                // have another.
                let group_commit = GroupCommit::start_sqlite(pool_of(1), pool_of(1));
                // A read from SQLite's page cache keeps a core busy, not a
                // connection waiting, and the hand-offs to a query's thread
                // and back cost more than its lookups: more queries in flight
                // only split the reads waiting into smaller batches, each
                // paying the hand-offs. One per two cores leaves the others
                // to the runtime's workers (docs/decisions.md, records 28 and
                // 35).
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                let in_flight = u32::try_from(cores / 2)
                    .unwrap_or(u32::MAX)
                    .clamp(1, store_options.max_connections.max(1));
                let batched_reads = BatchedReads::start(pool_of(in_flight));
                let outbox_reads = pool_of(1);
                (group_commit, Some(batched_reads), Some(outbox_reads))
            }
            Engine::Postgres => {
                // The writer's connection is its own, on PostgreSQL's own
                // driver (see `driver.rs`): writes never wait for one behind
                // reads, and the pool checks it only as the writer takes it
                // after a pause and gives it back.
                let writer = pool_options(
                    engine,
                    StoreOptions {
                        max_connections: 1,
                        ..store_options
                    },
                )
                .connect_lazy_with(connect_options::<PgConnectOptions>(url, engine)?);
                (GroupCommit::start_postgres(writer), None, None)
            }
        };
        Ok(Self {
            pool,
            probe,
            engine,
            group_commit,
            batched_reads,
            outbox_reads,
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Numbered parameters for a statement built at run time.
    fn placeholders(&self) -> Placeholders {
        Placeholders::new(self.engine)
    }

    /// The count a `SELECT COUNT(*)` statement returns, with `parameters`
    /// bound in order.
    async fn count(&self, sql: &'static str, parameters: &[i64]) -> Result<u64, StoreError> {
        let mut query = sqlx::query_scalar::<_, i64>(sql);
        for parameter in parameters {
            query = query.bind(*parameter);
        }
        let count = query.fetch_one(&self.pool).await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// A trivial query on a connection of its own: does the store answer,
    /// however busy the pool is?
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.probe).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.probe.close().await;
        self.group_commit.close().await;
        if let Some(batched_reads) = &self.batched_reads {
            batched_reads.close().await;
        }
        if let Some(outbox_reads) = &self.outbox_reads {
            outbox_reads.close().await;
        }
        self.pool.close().await;
    }
}
