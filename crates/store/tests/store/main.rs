//! The store's contract, run against both engines (SQLite in a temporary
//! file, a fresh PostgreSQL database), and the cache format's scripts run in
//! a real Redis.

#![allow(clippy::unwrap_used)]

mod cache_scripts;
mod connections;
mod history;
mod maintenance;
mod outbox_replay;
mod records;
mod sqlite_log;
mod sqlite_schema;
mod writer_failures;

use std::path::Path;

use sqlx::PgConnection;
use sqlx::migrate::Migrator;
use store::domain::Key;
use store::{Store, StoreOptions};
use testkit::{EmptyDatabase, Engine};

/// The clock of these tests: a fixed instant, in milliseconds.
const NOW: i64 = 1_800_000_000_000;

/// A store over an empty database of `engine`.
struct TestStore {
    store: Store,
    database: EmptyDatabase,
}

async fn open(engine: Engine) -> TestStore {
    let database = EmptyDatabase::create(engine).await;
    let store = connect(&database).await;
    TestStore { store, database }
}

/// A store over `database`, as it is: its migrations still to apply.
async fn connect(database: &EmptyDatabase) -> Store {
    Store::connect(database.url(), StoreOptions::point_reads(4))
        .await
        .unwrap()
}

/// The migrations of `engine` in this repository up to `last_version`, as
/// the store would have applied them before the later ones existed.
async fn migrations_up_to(engine: Engine, last_version: i64) -> Migrator {
    let directory = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(directory);
    let mut migrator = Migrator::new(directory).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|migration| migration.version <= last_version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    migrator
}

/// What the cache outbox holds, in order: each entry's key and version.
async fn outbox_notes(store: &Store) -> Vec<(String, i64)> {
    let entries = store.outbox_page(0, 100).await.unwrap();
    entries
        .into_iter()
        .map(|entry| (entry.key, entry.version))
        .collect()
}

/// `notes` as [`outbox_notes`] gives them.
fn notes(notes: &[(&str, i64)]) -> Vec<(String, i64)> {
    let owned = notes
        .iter()
        .map(|(key, version)| ((*key).to_owned(), *version));
    owned.collect()
}

fn key(raw: &str) -> Key {
    Key::parse(raw).unwrap()
}

/// Waits (at most 5 s) until `admin` is the only session of its role on its
/// database (PostgreSQL): closed connections end a moment after.
async fn until_other_sessions_end(admin: &mut PgConnection) {
    for _ in 0..500 {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND usename = current_user \
             AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if others == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("other sessions still open after 5 s");
}
