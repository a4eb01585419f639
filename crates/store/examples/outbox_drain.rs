//! How fast a backlog of cache-outbox entries drains into Redis once Redis
//! is back: `OUTBOX_ENTRIES` entries (100,000 by default) are seeded into a
//! fresh store of each engine, then replayed and removed the way the API's
//! supervisor does after an outage. Prints entries per second per engine.
//!
//! Starts its own `redis-server`; PostgreSQL comes from `TEST_POSTGRES_URL`
//! (`scripts/bench outbox` starts one). Run with `--release`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use store::cache::{ReplayWindow, replay_outbox};
use store::{Engine, Store, StoreOptions};
use testkit::{Persistence, RedisServer, TestDatabase};

#[tokio::main]
async fn main() {
    let entries: i64 = std::env::var("OUTBOX_ENTRIES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(100_000);
    let redis = RedisServer::start_with(None, Persistence::None);
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let database = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(TestDatabase::create().await),
        };
        let url = match &database {
            Some(database) => database.url().to_owned(),
            None => format!("sqlite://{}", dir.path().join("store.db").display()),
        };
        let store = Store::connect(&url, StoreOptions::point_reads(4))
            .await
            .unwrap();
        seed(&url, entries).await;
        let mut connection = redis.connection().await;
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut connection)
            .await
            .unwrap();

        let started = Instant::now();
        let mut applied = 0;
        let window = ReplayWindow {
            written_before_ms: i64::MAX,
            remove_before_ms: i64::MAX,
        };
        replay_outbox(
            &store,
            &mut connection,
            window,
            std::time::Duration::from_secs(30),
            |_| false,
            || None::<()>,
            &mut applied,
        )
        .await
        .unwrap();
        let seconds = started.elapsed().as_secs_f64();

        let left = store.outbox_count(i64::MAX).await.unwrap();
        let tombstones: i64 = redis::cmd("DBSIZE")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!((left, tombstones), (0, entries), "drained and applied");
        println!(
            "{}: {applied} outbox entries applied and removed in {seconds:.2} s: {:.0} entries/s",
            engine.name(),
            applied as f64 / seconds
        );
        store.close().await;
    }
}

/// `entries` outbox rows, as a backlog of writes made while Redis was away.
async fn seed(url: &str, entries: i64) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO cache_outbox (key, version, written_at_ms) \
         SELECT 'backlog:' || i, i, 1800000000000 FROM n",
    )
    .bind(entries)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}
