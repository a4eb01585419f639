//! A pooled connection that a store task keeps from one query to the next
//! while its work keeps coming.
//!
//! sqlx gives a connection back to its pool after every query run on the
//! pool, and tests it on the way back with a ping: on SQLite one more trip
//! to the connection's thread and back, as dear as the query's own; on
//! PostgreSQL one more round trip to the server. The writer waits for that test before its next batch can have the one
//! connection it writes with (docs/decisions.md, record 33). The writer and
//! the reader's query slots run query after query under load, so each keeps
//! its connection between them. It goes back to the pool, tested as usual,
//! after a failure; once held for [`HOLD_FOR`], so that other users of its
//! pool get their turn however busy the holder is; and once its task has
//! waited that long for work, because closing the pool waits for every
//! connection to come back.

use std::pin::pin;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

use crate::StoreError;

/// How long a connection is held at most, and how long a task waits for
/// work before it gives its connection back. Long next to a query: a busy
/// holder pays twenty pings a second instead of one per query, and the
/// pool's other users wait for a connection no longer than this.
const HOLD_FOR: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub(crate) struct HeldConnection<DB: Database> {
    pool: Pool<DB>,
    /// The connection, and when it was taken from the pool.
    held: Option<(PoolConnection<DB>, Instant)>,
}

impl<DB: Database> HeldConnection<DB> {
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool, held: None }
    }

    /// Runs `query` on the held connection, or on one taken from the pool
    /// and held from then on. A failure gives the connection back, for the
    /// pool to test.
    pub async fn run<T>(
        &mut self,
        query: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some((_, since)) = &self.held
            && (since.elapsed() >= HOLD_FOR || self.pool.is_closed())
        {
            // Back to the pool before asking it for one (the writer's pool
            // has this one only), or closed if the pool is.
            self.release();
        }
        let held = match self.held.take() {
            Some(held) => held,
            None => (self.pool.acquire().await?, Instant::now()),
        };
        let (connection, _) = self.held.insert(held);
        let outcome = query(&mut **connection).await;
        if outcome.is_err() {
            self.release();
        }
        outcome
    }

    /// Awaits `work`, what the task waits for next; if it takes longer than
    /// [`HOLD_FOR`], gives the connection back meanwhile.
    pub async fn wait_for<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = pin!(work);
        if self.held.is_some() {
            if let Ok(ready) = tokio::time::timeout(HOLD_FOR, work.as_mut()).await {
                return ready;
            }
            self.release();
        }
        work.await
    }

    /// Gives the connection back to the pool, which tests it.
    fn release(&mut self) {
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool, SqlitePoolOptions};

    use super::*;

    async fn pool_of_one() -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap()
    }

    async fn select_one(connection: &mut SqliteConnection) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT 1").fetch_one(connection).await?)
    }

    /// Waits (at most 5 s) until the pool has its connection idle again:
    /// a connection given back reaches the pool through a task of sqlx's.
    async fn until_idle(pool: &SqlitePool) {
        for _ in 0..500 {
            if pool.num_idle() == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the connection never went back to the pool");
    }

    #[tokio::test]
    async fn the_connection_stays_held_between_queries_and_goes_back_when_idle() {
        let pool = pool_of_one().await;
        let mut connection = HeldConnection::new(pool.clone());
        for _ in 0..3 {
            assert_eq!(connection.run(select_one).await.unwrap(), 1);
            assert_eq!(pool.num_idle(), 0, "held between queries");
        }
        // Held past the longest hold, it is given back and taken again,
        // also from a pool of one.
        let until = Instant::now() + HOLD_FOR * 3;
        let queries = async {
            while Instant::now() < until {
                connection.run(select_one).await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(5), queries)
            .await
            .expect("taking the connection again waited on itself");
        // Work that comes within the idle time keeps it...
        connection.wait_for(async {}).await;
        assert_eq!(pool.num_idle(), 0);
        // ...a longer wait gives it back.
        connection.wait_for(tokio::time::sleep(HOLD_FOR * 2)).await;
        until_idle(&pool).await;
        assert_eq!(connection.run(select_one).await.unwrap(), 1);
    }

    /// A task that holds `pool`'s connection (it has run a query) and then
    /// goes on with `then`; returns once the connection is held.
    async fn spawn_holder<F>(
        pool: &SqlitePool,
        then: impl FnOnce(HeldConnection<Sqlite>) -> F + Send + 'static,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (holding, held) = tokio::sync::oneshot::channel();
        let mut connection = HeldConnection::new(pool.clone());
        let holder = tokio::spawn(async move {
            connection.run(select_one).await.unwrap();
            holding.send(()).unwrap();
            then(connection).await;
        });
        held.await.unwrap();
        assert_eq!(pool.num_idle(), 0);
        holder
    }

    #[tokio::test]
    async fn a_busy_holder_lets_other_queries_of_the_pool_have_their_turn() {
        let pool = pool_of_one().await;
        let holder = spawn_holder(&pool, |mut connection| async move {
            loop {
                connection.run(select_one).await.unwrap();
            }
        })
        .await;
        let other = tokio::time::timeout(Duration::from_secs(2), pool.acquire()).await;
        assert!(other.is_ok(), "the pool's other users waited on the holder");
        holder.abort();
    }

    #[tokio::test]
    async fn a_failed_query_gives_the_connection_back() {
        let pool = pool_of_one().await;
        let mut connection = HeldConnection::new(pool.clone());
        let failed = connection
            .run(async |connection| {
                Ok(sqlx::query("SELECT * FROM no_such_table")
                    .execute(connection)
                    .await?)
            })
            .await;
        assert!(failed.is_err());
        until_idle(&pool).await;
    }

    #[tokio::test]
    async fn closing_the_pool_waits_for_an_idle_holder_no_longer_than_the_idle_time() {
        let pool = pool_of_one().await;
        // Idle for good, as a writer with nothing to write.
        let holder = spawn_holder(&pool, |mut connection| async move {
            connection.wait_for(std::future::pending::<()>()).await;
        })
        .await;
        tokio::time::timeout(Duration::from_secs(5), pool.close())
            .await
            .expect("closing waited on the idle holder");
        holder.abort();
    }
}
