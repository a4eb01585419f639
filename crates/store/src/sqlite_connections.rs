//! How the connections of SQLite's own tasks open: the writer, its
//! checkpoints, the reader, and the cache outbox's pages. They run on
//! SQLite's own driver (`driver.rs` says why), each task on a pool of its
//! own, and each hands a statement's rows to the runtime without waiting
//! for it.

use sqlx::sqlite::SqliteConnectOptions;

use super::pools::connect_options;
use super::{Engine, StoreError};

/// The most rows a statement of SQLite's own tasks returns: a batch of
/// writes or of reads, a page of the cache outbox.
///
/// A statement runs on its connection's thread, which hands the rows to the
/// runtime through a channel of this many (sqlx's default is 50). A
/// statement with more stops at a full channel until the runtime, busy with
/// requests, has taken them. A page of the outbox waited so at every
/// fiftieth row. A batch of writes returns its rows before it commits, so
/// its commit waited too, with SQLite's write lock held (docs/decisions.md,
/// record 49).
pub(crate) const MOST_ROWS_PER_STATEMENT: usize = 512;

/// How a connection of SQLite's own tasks opens `url`.
pub(crate) fn options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(
        connect_options::<SqliteConnectOptions>(url, Engine::Sqlite)?
            .row_buffer_size(MOST_ROWS_PER_STATEMENT),
    )
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;
    use std::time::{Duration, Instant};

    use sqlx::{ConnectOptions, Connection};

    use super::*;

    /// How many rows `numbers` holds once it holds `expected`, or after
    /// five seconds; asked on a connection of its own, from a thread and a
    /// runtime of its own.
    fn committed_rows(url: String, expected: i64) -> i64 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut connection = options(&url).unwrap().connect().await.unwrap();
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM numbers")
                    .fetch_one(&mut connection)
                    .await
                    .unwrap();
                if rows == expected || Instant::now() > until {
                    return rows;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_statement_commits_without_waiting_for_the_runtime_to_take_its_rows() {
        let database = testkit::EmptyDatabase::create(testkit::Engine::Sqlite).await;
        let mut connection = options(database.url()).unwrap().connect().await.unwrap();
        sqlx::raw_sql("PRAGMA journal_mode = WAL; CREATE TABLE numbers (n INTEGER NOT NULL)")
            .execute(&mut connection)
            .await
            .unwrap();
        let rows = i64::try_from(MOST_ROWS_PER_STATEMENT).unwrap();
        let insert = sqlx::query_scalar::<_, i64>(
            "WITH RECURSIVE counted(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counted WHERE n < ?)
             INSERT INTO numbers SELECT n FROM counted RETURNING n",
        )
        .bind(rows);
        {
            let mut returned = pin!(insert.fetch_all(&mut connection));
            // One turn sends the statement to the connection's thread...
            let _ =
                std::future::poll_fn(|context| Poll::Ready(returned.as_mut().poll(context))).await;
            // ...and then this runtime's only thread takes none of its rows
            // until the statement's commit is seen from elsewhere.
            let url = database.url().to_owned();
            let committed = std::thread::spawn(move || committed_rows(url, rows))
                .join()
                .unwrap();
            assert_eq!(
                committed, rows,
                "the statement waited for its rows to be taken"
            );
            assert_eq!(returned.await.unwrap().len(), MOST_ROWS_PER_STATEMENT);
        }
        connection.close().await.unwrap();
    }
}
