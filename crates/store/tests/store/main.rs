//! The store's contract, run against both engines (SQLite in a temporary
//! file, a fresh PostgreSQL database), and the cache format's scripts run in
//! a real Redis.

#![allow(clippy::unwrap_used)]

mod cache_scripts;
mod history;
mod maintenance;
mod records;
mod sqlite_log;
mod sqlite_schema;

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
    let store = Store::connect(database.url(), StoreOptions::point_reads(4))
        .await
        .unwrap();
    TestStore { store, database }
}

fn key(raw: &str) -> Key {
    Key::parse(raw).unwrap()
}
