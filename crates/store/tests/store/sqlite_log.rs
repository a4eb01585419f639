//! SQLite's write-ahead log: the writer's commits reach the database file
//! through checkpoints run beside the writer, and the log goes once the
//! store has closed.

use std::time::Duration;

use testkit::{EmptyDatabase, Engine};

use crate::{NOW, TestStore, key, open};

/// SQLite runs its own checkpoint in the commit that takes the log past a
/// thousand pages.
const SQLITES_OWN_MARK: u64 = 1000;

/// Commits of one write each between two looks at the files: enough for
/// the store to ask for a checkpoint once, few enough that two rounds stay
/// below [`SQLITES_OWN_MARK`].
const COMMITS_PER_ROUND: usize = 110;

fn database_path(database: &EmptyDatabase) -> &str {
    database.url().trim_start_matches("sqlite://")
}

/// Bytes in the database file itself. In WAL mode only a checkpoint
/// writes it: commits go to the log beside it.
fn file_bytes(database: &EmptyDatabase) -> u64 {
    std::fs::metadata(database_path(database)).unwrap().len()
}

/// The store's write-ahead log file, beside the database file.
fn log_path(database: &EmptyDatabase) -> String {
    format!("{}-wal", database_path(database))
}

/// Pages in the store's write-ahead log file: its header, then a header
/// and a page for each frame. The file only grows until SQLite truncates
/// it, which the store never asks for.
fn log_pages(database: &EmptyDatabase) -> u64 {
    let bytes = std::fs::metadata(log_path(database)).unwrap().len();
    bytes.saturating_sub(32) / (24 + 4096)
}

/// Whether the database file grows past `bytes` within `patience`. A
/// checkpoint syncs the log before it copies: on a disk that other tests
/// keep busy with their own commits that can take seconds.
async fn file_grows_past(database: &EmptyDatabase, bytes: u64, patience: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + patience;
    while file_bytes(database) <= bytes {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The records reach the file before the log reaches SQLite's own mark
/// only if the store checkpoints of its own accord. A pass that meets a
/// commit may copy part of the log, or nothing at all (a passive
/// checkpoint reports itself busy rather than wait for a lock): the next
/// pass the writer asks for copies the rest, so the test writes a second
/// round before it gives up.
#[tokio::test]
async fn commits_reach_the_database_file_before_the_log_is_full() {
    let TestStore { store, database } = open(Engine::Sqlite).await;
    let before = file_bytes(&database);
    let mut written = 0;
    loop {
        // One at a time: each write is a commit of its own, of a few pages.
        for _ in 0..COMMITS_PER_ROUND {
            let name = format!("logged:{written}");
            store.put(&key(&name), "v", None, NOW).await.unwrap();
            written += 1;
        }
        let logged = log_pages(&database);
        assert!(
            logged < SQLITES_OWN_MARK,
            "the log reached SQLite's own mark after {written} commits \
             ({logged} pages); the database file has {} bytes, {before} before them",
            file_bytes(&database)
        );
        if file_grows_past(&database, before, Duration::from_secs(30)).await {
            break;
        }
    }
    // And every write reads back, whichever of the file and the log holds it.
    for i in 0..written {
        let name = format!("logged:{i}");
        assert!(store.get(&key(&name), NOW).await.unwrap().is_some());
    }
    store.close().await;
}

/// SQLite removes the write-ahead log once the last connection to the file
/// has closed: closing the store closes every one of its connections, the
/// writer's and the reader's with the rest.
#[tokio::test]
async fn closing_the_store_closes_every_connection_to_its_file() {
    let TestStore { store, database } = open(Engine::Sqlite).await;
    // A write and a read: the writer's and the reader's connections.
    store.put(&key("closing"), "v", None, NOW).await.unwrap();
    assert!(store.get(&key("closing"), NOW).await.unwrap().is_some());
    store.close().await;
    assert!(
        !std::path::Path::new(&log_path(&database)).exists(),
        "a connection to the file outlived the store's close"
    );
}
