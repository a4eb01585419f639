//! The store alone under the history checker, on each engine: two stores on
//! one database (two replicas of the API, each with its own writer, reads
//! and checkpoints on SQLite), many concurrent clients writing unique
//! values, deleting and reading a few keys through both, every operation
//! recorded and handed to `testkit::history`. The store is the source of
//! truth, so every read must see every change that completed before it
//! began, through either store (a cross-replica bound of zero), and nothing
//! written may be lost.
//! `STORE_HISTORY_OPERATIONS` sets the number of operations (20,000 by
//! default).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use store::{Store, StoreOptions};
use testkit::Engine;
use testkit::history::{self, Operation, Outcome};

use crate::{NOW, TestStore, key, open, until_other_sessions_end};

const KEYS: usize = 4;
const CLIENTS: usize = 32;

fn operations() -> usize {
    std::env::var("STORE_HISTORY_OPERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20_000)
}

/// One client: random operations on random stores until `total` are done.
async fn client(
    id: usize,
    stores: Arc<[Store; 2]>,
    started: Instant,
    done: Arc<AtomicUsize>,
    total: usize,
) -> Vec<Operation> {
    let mut rng = fastrand::Rng::with_seed(id as u64);
    let mut operations = Vec::new();
    let mut sequence = 0;
    while done.fetch_add(1, Ordering::Relaxed) < total {
        let replica = rng.usize(0..2);
        let store = &stores[replica];
        let name = format!("k{}", rng.usize(0..KEYS));
        let key = key(&name);
        let invoked = started.elapsed();
        let (outcome, detail) = match rng.u8(0..100) {
            0..45 => {
                sequence += 1;
                let value = format!("c{id}-{sequence}");
                match store.put(&key, value.clone(), None, NOW).await {
                    Ok(written) => (
                        Outcome::Written(value),
                        Some(format!("version {}", written.record.version)),
                    ),
                    Err(_) => (Outcome::Unknown { write: Some(value) }, None),
                }
            }
            45..90 => match store.get(&key, NOW).await {
                Ok(Some(record)) => (
                    Outcome::Read(record.value),
                    Some(format!("version {}", record.version)),
                ),
                Ok(None) => (Outcome::NotFound, None),
                Err(_) => (Outcome::ReadFailed, None),
            },
            _ => match store.delete(&key, NOW).await {
                Ok(Some(floor)) => (Outcome::Deleted, Some(format!("floor {floor}"))),
                Ok(None) => (Outcome::NotFound, None),
                Err(_) => (Outcome::Unknown { write: None }, None),
            },
        };
        operations.push(Operation {
            key: name,
            replica,
            invoked,
            completed: started.elapsed(),
            outcome,
            detail,
        });
    }
    operations
}

/// Runs the clients over two stores on a fresh database of `engine` and
/// checks what they saw.
async fn check_two_stores(engine: Engine) {
    let TestStore { store, database } = open(engine).await;
    let other = Store::connect(database.url(), StoreOptions::point_reads(4))
        .await
        .unwrap();
    let stores = Arc::new([store, other]);
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let total = operations();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(client(id, stores.clone(), started, done.clone(), total)))
        .collect();
    let mut operations = Vec::new();
    for client in clients {
        operations.extend(client.await.unwrap());
    }
    let report = history::check(&operations, Duration::ZERO);
    assert!(report.reads_checked > total / 4, "{report:?}");
    let mut stored = HashMap::new();
    for at in 0..KEYS {
        let name = format!("k{at}");
        let record = stores[0].get(&key(&name), NOW).await.unwrap();
        stored.insert(name, record.map(|record| record.value));
    }
    let mut violations = report.violations;
    violations.extend(history::check_final(&operations, &stored));
    assert!(
        violations.is_empty(),
        "{} violations, the first: {:?}",
        violations.len(),
        violations.iter().take(5).collect::<Vec<_>>()
    );
    if engine == Engine::Postgres {
        // Each store writes its batches in one statement; two of them on
        // one server must neither fail a write nor wait on each other.
        let failed = operations.iter().filter(|operation| {
            matches!(
                operation.outcome,
                Outcome::Unknown { .. } | Outcome::ReadFailed
            )
        });
        assert_eq!(failed.count(), 0, "operations failed");
        for store in stores.iter() {
            store.close().await;
        }
        assert_eq!(deadlocks_once_closed(database.url()).await, 0);
    }
}

/// The deadlocks PostgreSQL broke in the database at `url`, counted once
/// every other session of this role has ended (a session reports its
/// counts as it ends).
async fn deadlocks_once_closed(url: &str) -> i64 {
    let mut admin = PgConnection::connect(url).await.unwrap();
    until_other_sessions_end(&mut admin).await;
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_stores_on_one_database_show_no_stale_read_and_lose_no_write() {
    check_two_stores(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_stores_on_one_database_show_no_stale_read_and_lose_no_write() {
    check_two_stores(Engine::Postgres).await;
}
