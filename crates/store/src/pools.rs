//! How the store's connections open: the engine a URL names, each driver's
//! options for it, and the pool settings that set a connection up as it
//! opens.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Database, Executor};

use super::{Engine, StoreError, StoreOptions};

/// How a connection to `url` opens, with the driver `O` is of.
pub(crate) fn connect_options<O: ConnectOptions>(
    url: &str,
    engine: Engine,
) -> Result<O, StoreError> {
    Ok(O::from_str(&with_create_mode(url, engine))
        .map_err(StoreError::Connect)?
        // Statement logging at INFO would log every request's queries.
        .log_statements(log::LevelFilter::Debug)
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// A pool of up to `store_options.max_connections` connections, each set up
/// for `engine` as it opens.
pub(crate) fn pool_options<DB: Database>(
    engine: Engine,
    store_options: StoreOptions,
) -> PoolOptions<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mmap_bytes = store_options.sqlite_mmap_bytes;
    let options = PoolOptions::new()
        .max_connections(store_options.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx would ping every connection before handing it out. A SQLite
        // connection has no server to lose; its ping is only a second trip
        // to the connection's thread, which the API's miss benchmark
        // measured as a cost (docs/decisions.md, record 16).
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if engine == Engine::Sqlite {
                    // WAL lets readers run beside the writer; the busy
                    // timeout makes concurrent writers queue instead of
                    // failing with SQLITE_BUSY.
                    let pragmas = format!(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 5000; PRAGMA mmap_size = {mmap_bytes};"
                    );
                    // Safe to splice: the only value is a number.
                    sqlx::raw_sql(AssertSqlSafe(pragmas))
                        .execute(&mut *connection)
                        .await?;
                }
                Ok(())
            })
        });
    match engine {
        Engine::Sqlite => options,
        // A PostgreSQL connection can be closed by the server (a restart, a
        // proxy's idle limit) while it waits in the pool, and a query on it
        // would fail. Pinging every connection before handing it out finds
        // those, at a round trip per statement; a connection that was in use
        // a moment ago was alive then, so only the ones idle for longer are
        // pinged (docs/decisions.md, record 58).
        Engine::Postgres => options.before_acquire(|connection, metadata| {
            Box::pin(async move {
                if metadata.idle_for >= PING_CONNECTIONS_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        }),
    }
}

/// How long a PostgreSQL connection can wait in the pool and still be
/// handed out without a ping.
const PING_CONNECTIONS_IDLE_FOR: Duration = Duration::from_secs(1);

/// SQLite opens an existing file only unless told otherwise; the embedded
/// default must work on a fresh machine, so create the file when the URL does
/// not say which mode it wants.
fn with_create_mode(url: &str, engine: Engine) -> String {
    if engine != Engine::Sqlite || url.contains("mode=") || url.contains(":memory:") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

/// The engine `url` names by its scheme.
pub(crate) fn engine_of(url: &str) -> Result<Engine, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Engine::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Engine::Postgres)
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    #[tokio::test]
    async fn sqlite_connections_map_the_file_as_their_options_say() {
        let database = testkit::EmptyDatabase::create(testkit::Engine::Sqlite).await;
        for (store_options, expected) in [
            (StoreOptions::point_reads(2), 0),
            (StoreOptions::batch_reads(2), 256 * 1024 * 1024),
        ] {
            let store = Store::connect(database.url(), store_options).await.unwrap();
            let mapped: i64 = sqlx::query_scalar("PRAGMA mmap_size")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(mapped, expected, "{store_options:?}");
            store.close().await;
        }
    }
}
