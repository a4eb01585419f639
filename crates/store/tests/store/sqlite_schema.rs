//! SQLite's schema: what its migrations keep, and how much room a record
//! takes.

use std::path::Path;

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePool;
use store::{Store, StoreOptions};
use testkit::{EmptyDatabase, Engine};

use crate::{NOW, TestStore, key, open};

/// The SQLite migrations of this repository, as the store applies them.
async fn sqlite_migrations() -> Migrator {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    Migrator::new(directory).await.unwrap()
}

/// A connection of the test's own to the store's file, beside the store.
async fn open_file(database: &EmptyDatabase) -> SqlitePool {
    SqlitePool::connect(&format!("{}?mode=rwc", database.url()))
        .await
        .unwrap()
}

/// A store written before records had rowids (migrations 1 and 2) opens
/// with every record and outbox note as it was, and its writes go on
/// raising versions and noting them.
#[tokio::test]
async fn a_store_from_before_the_rowid_table_keeps_its_records_and_notes() {
    let database = EmptyDatabase::create(Engine::Sqlite).await;
    let file = open_file(&database).await;
    let mut before_rowids = sqlite_migrations().await;
    before_rowids.migrations = before_rowids
        .migrations
        .iter()
        .filter(|migration| migration.version <= 2)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before_rowids.run(&file).await.unwrap();
    let large = "x".repeat(4096);
    sqlx::query(
        "INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) VALUES \
         ('live', 'v', 7, $1, NULL), ('expiring', 'e', 8, $1, $1 + 1000), \
         ('large', $2, 9, $1, NULL), ('deleted', '', 10, $1, 0)",
    )
    .bind(NOW)
    .bind(&large)
    .execute(&file)
    .await
    .unwrap();
    file.close().await;

    let store = Store::connect(database.url(), StoreOptions::point_reads(2))
        .await
        .unwrap();
    let read = |name: &'static str| {
        let store = store.clone();
        async move { store.get(&key(name), NOW).await.unwrap() }
    };
    let live = read("live").await.unwrap();
    assert_eq!((live.value.as_str(), live.version), ("v", 7));
    let expiring = read("expiring").await.unwrap();
    assert_eq!(
        (expiring.version, expiring.expires_at_ms),
        (8, Some(NOW + 1000))
    );
    assert_eq!(read("large").await.unwrap().value, large);
    assert_eq!(read("deleted").await, None);
    let noted: Vec<_> = store
        .outbox_page("", i64::MAX, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| (entry.key, entry.version))
        .collect();
    let written_before = [("deleted", 10), ("expiring", 8), ("large", 9), ("live", 7)]
        .map(|(name, version)| (name.to_owned(), version));
    assert_eq!(noted, written_before, "the outbox notes as they were");

    // Written again with a clock behind the stored versions: one above
    // them, noted in the outbox; a delete's marker row still lifts the
    // next write.
    let rewritten = store.put(&key("live"), "w", None, 0).await.unwrap();
    assert_eq!(rewritten.record.version, 8);
    assert!(!rewritten.created, "a row from before counts as written");
    let recreated = store.put(&key("deleted"), "d", None, 0).await.unwrap();
    assert_eq!(recreated.record.version, 11);
    let noted = store.outbox_page("", i64::MAX, 10).await.unwrap();
    let versions: Vec<_> = noted.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, [11, 8, 9, 8]);
    store.close().await;
}

/// Records of a kibibyte take about their size in the file: three fit a
/// page of 4 KiB. A row too long for a cell of the key's B-tree would
/// spill into an overflow page of its own, four times the value's size.
#[tokio::test]
async fn records_of_a_kibibyte_take_about_their_size_in_the_file() {
    let TestStore { store, database } = open(Engine::Sqlite).await;
    let records = 256;
    let value = "v".repeat(1024);
    for i in 0..records {
        let name = format!("kibibyte:{i}");
        store
            .put(&key(&name), value.as_str(), None, NOW)
            .await
            .unwrap();
    }
    let file = open_file(&database).await;
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&file)
        .await
        .unwrap();
    let page_bytes: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&file)
        .await
        .unwrap();
    let written = records * value.len();
    let taken = usize::try_from(pages * page_bytes).unwrap();
    assert!(
        taken < written * 2,
        "{taken} bytes in the file for {written} bytes of values"
    );
    file.close().await;
    store.close().await;
}
