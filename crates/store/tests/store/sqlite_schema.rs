//! SQLite's schema: what its migrations keep, and how much room a record
//! takes.

use sqlx::sqlite::SqlitePool;
use testkit::{EmptyDatabase, Engine};

use crate::{NOW, TestStore, connect, key, migrations_up_to, notes, open, outbox_notes};

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
    let before_rowids = migrations_up_to(Engine::Sqlite, 2).await;
    before_rowids.run(&file).await.unwrap();
    let large = "x".repeat(4096);
    sqlx::query(
        "INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) VALUES \
         ('live', 'v', 7, $1, NULL), ('expiring', 'e', 8, $1 + 1, $1 + 1000), \
         ('large', $2, 9, $1 + 2, NULL), ('deleted', '', 10, $1 + 3, 0)",
    )
    .bind(NOW)
    .bind(&large)
    .execute(&file)
    .await
    .unwrap();
    file.close().await;

    let store = connect(&database).await;
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
    let written_before = [("live", 7), ("expiring", 8), ("large", 9), ("deleted", 10)];
    assert_eq!(
        outbox_notes(&store).await,
        notes(&written_before),
        "the outbox notes as they were, in the order they were written"
    );

    // Written again with a clock behind the stored versions: one above
    // them, noted in the outbox; a delete's marker row still lifts the
    // next write.
    let rewritten = store.put(&key("live"), "w", None, 0).await.unwrap();
    assert_eq!(rewritten.record.version, 8);
    assert!(!rewritten.created, "a row from before counts as written");
    let recreated = store.put(&key("deleted"), "d", None, 0).await.unwrap();
    assert_eq!(recreated.record.version, 11);
    let noted = outbox_notes(&store).await;
    let versions: Vec<_> = noted.iter().map(|(_, version)| *version).collect();
    assert_eq!(versions, [7, 8, 9, 10, 8, 11], "later writes come after");
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
