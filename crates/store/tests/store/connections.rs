//! PostgreSQL's pooled connections: one the server closed while it waited in
//! the pool is replaced before a query meets it.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use testkit::Engine;

use crate::{NOW, key, open, until_other_sessions_end};

/// Longer than the store lets a connection wait before it pings it again.
const IDLE: Duration = Duration::from_millis(1_500);

#[tokio::test]
async fn connections_the_server_closed_while_idle_are_replaced_before_a_query() {
    let test = open(Engine::Postgres).await;
    let store = &test.store;
    let written = store.put(&key("a"), "1", None, NOW).await.unwrap();
    tokio::time::sleep(IDLE).await;

    // What a restart of the server does to the connections in the pool.
    let mut admin = PgConnection::connect(test.database.url()).await.unwrap();
    // Materialized, so that no session of another role (a superuser's,
    // which this role may not close) reaches `pg_terminate_backend`.
    let closed: i64 = sqlx::query_scalar(
        "WITH others AS MATERIALIZED ( \
             SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND usename = current_user \
             AND pid <> pg_backend_pid()) \
         SELECT count(*) FROM others WHERE pg_terminate_backend(pid)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(closed >= 1, "the store's pool holds no connection to close");
    until_other_sessions_end(&mut admin).await;

    for _ in 0..3 {
        let read = store.get(&key("a"), NOW).await.unwrap();
        assert_eq!(read, Some(written.record.clone()));
    }
    store.put(&key("a"), "2", None, NOW).await.unwrap();
}
