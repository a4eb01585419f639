//! The writer's failures: a store that cannot take a batch fails the
//! batch's writes once, and the writes queued behind it with them.

use std::time::{Duration, Instant};

use testkit::Engine;

use crate::{NOW, key, open};

/// SQLite's busy timeout, as the store sets it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes queued together while another program holds SQLite's write lock
/// past the busy timeout fail together, once: a batch is not retried write
/// by write, each waiting out the busy timeout again.
#[tokio::test]
async fn a_batch_that_meets_a_held_lock_fails_once_for_all_its_writes() {
    let test = open(Engine::Sqlite).await;
    let admin = sqlx::AnyPool::connect(test.database.url()).await.unwrap();
    let mut holder = admin.acquire().await.unwrap();
    // The first write waits out the busy timeout alone, the others queue
    // meanwhile.
    let held_for = BUSY_TIMEOUT * 5 / 2;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let mut writes = Vec::new();
    for name in (0..20).map(|i| format!("k{i}")) {
        let store = test.store.clone();
        writes.push(tokio::spawn(async move {
            store.put(&key(&name), name.as_str(), None, NOW).await
        }));
    }
    tokio::time::sleep(held_for).await;
    sqlx::raw_sql("COMMIT").execute(&mut *holder).await.unwrap();
    let mut failed = 0;
    for write in writes {
        if let Err(error) = write.await.unwrap() {
            assert!(error.to_string().contains("locked"), "{error}");
            failed += 1;
        }
    }
    assert_eq!(failed, 20, "every write met the lock past the busy timeout");
    assert!(
        started.elapsed() < held_for + BUSY_TIMEOUT,
        "the batch failed once, not write by write: {:?}",
        started.elapsed()
    );
}

/// Writes that queue while a batch waits out the busy timeout fail with it,
/// unsent: in a batch of their own they would wait for the same lock in
/// turn, past their callers' time limits, and be made after their callers
/// gave up.
#[tokio::test]
async fn writes_queued_behind_a_batch_that_met_a_held_lock_fail_with_it() {
    let test = open(Engine::Sqlite).await;
    let admin = sqlx::AnyPool::connect(test.database.url()).await.unwrap();
    let mut holder = admin.acquire().await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let put = |name: String| {
        let store = test.store.clone();
        tokio::spawn(async move {
            let written = store.put(&key(&name), name.as_str(), None, NOW).await;
            (written, started.elapsed())
        })
    };
    let first = put("first".to_owned());
    // The writer is in SQLite's busy handler with the first write.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queued: Vec<_> = (0..10).map(|i| put(format!("k{i}"))).collect();
    // Released after the busy timeout: a second batch would succeed.
    tokio::time::sleep(BUSY_TIMEOUT + Duration::from_millis(1_500) - started.elapsed()).await;
    sqlx::raw_sql("COMMIT").execute(&mut *holder).await.unwrap();

    let (first, failed_at) = first.await.unwrap();
    assert!(first.is_err(), "the lock was held past the busy timeout");
    for write in queued {
        let (written, elapsed) = write.await.unwrap();
        let error = written.expect_err("a write queued behind the failed batch was made");
        assert!(error.to_string().contains("locked"), "{error}");
        assert!(
            elapsed < failed_at + Duration::from_millis(500),
            "failed at {elapsed:?}, the batch before it at {failed_at:?}"
        );
    }
    // The next write tries the store again.
    test.store
        .put(&key("after"), "after", None, NOW)
        .await
        .unwrap();
}
