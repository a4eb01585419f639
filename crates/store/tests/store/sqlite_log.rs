//! SQLite's write-ahead log: the writer's commits reach the database file
//! through checkpoints run beside the writer.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use testkit::{EmptyDatabase, Engine};

use crate::{NOW, TestStore, key, open};

/// Records in the database file itself: an immutable connection reads the
/// file alone, not the log beside it. `None` while a checkpoint is still
/// writing the file (a reader that ignores the log may find it torn).
async fn records_in_the_file(database: &EmptyDatabase) -> Option<i64> {
    let options: SqliteConnectOptions = database.url().parse().ok()?;
    let mut file = options
        .immutable(true)
        .read_only(true)
        .connect()
        .await
        .ok()?;
    sqlx::query_scalar("SELECT COUNT(*) FROM records")
        .fetch_one(&mut file)
        .await
        .ok()
}

/// Pages in the store's write-ahead log file: its header, then a header
/// and a page for each frame. The file only grows until SQLite truncates
/// it, which the store never asks for.
fn log_pages(database: &EmptyDatabase) -> u64 {
    let path = format!("{}-wal", database.url().trim_start_matches("sqlite://"));
    let bytes = std::fs::metadata(path).unwrap().len();
    bytes.saturating_sub(32) / (24 + 4096)
}

/// SQLite's own checkpoint runs in the commit that takes the log past a
/// thousand pages, and these writes stay below that: the records reach the
/// file only if the store checkpoints of its own accord.
#[tokio::test]
async fn commits_reach_the_database_file_before_the_log_is_full() {
    let TestStore { store, database } = open(Engine::Sqlite).await;
    // One at a time: each write is a commit of its own, of a few pages.
    let writes = 120;
    for i in 0..writes {
        let name = format!("logged:{i}");
        store.put(&key(&name), "v", None, NOW).await.unwrap();
    }
    let logged = log_pages(&database);
    assert!(
        logged < 1000,
        "the log reached SQLite's own mark: {logged} pages"
    );

    // The checkpoint syncs the log and the file: on a disk that other
    // tests keep busy with their own commits that can take seconds.
    let mut in_the_file = None;
    for _ in 0..600 {
        in_the_file = records_in_the_file(&database).await;
        if in_the_file.is_some_and(|records| records > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        in_the_file.is_some_and(|records| records > 0 && records <= writes),
        "records in the database file after {writes} commits: {in_the_file:?}"
    );
    // And every write reads back, whichever of the file and the log holds it.
    for i in 0..writes {
        let name = format!("logged:{i}");
        assert!(store.get(&key(&name), NOW).await.unwrap().is_some());
    }
    store.close().await;
}
