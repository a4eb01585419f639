//! `/ready` says whether this replica can serve, not whether its pool of
//! store connections is busy: with every pooled connection taken by
//! requests waiting on the store, the probe still answers 200 at once.

use std::time::{Duration, Instant};

use crate::common::{Engine, Options, spawn_app};
use sqlx::{Connection, Executor, PgConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_store_pool_does_not_make_the_replica_unready() {
    let mut options = Options::new(Engine::Postgres);
    options.redis = None;
    options.database_max_connections = 2;
    let app = spawn_app(options).await;
    for i in 0..4 {
        app.put(&format!("k{i}"), "v", None).await;
    }

    // Every read now waits for the table lock, holding a pooled connection.
    let mut blocker = PgConnection::connect(&app.database_url).await.unwrap();
    blocker.execute("BEGIN").await.unwrap();
    blocker
        .execute("LOCK TABLE records IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let reads: Vec<_> = (0..4)
        .map(|i| {
            let http = app.http.clone();
            let url = app.url(&format!("/api/v1/data/k{i}"));
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let (status, body) = app.get_json("/ready").await;
    let took = started.elapsed();
    blocker.execute("ROLLBACK").await.unwrap();

    assert_eq!(status, 200, "{body} after {took:?}");
    assert!(took < Duration::from_millis(900), "took {took:?}");
    for read in reads {
        assert_eq!(read.await.unwrap(), 200);
    }
}
