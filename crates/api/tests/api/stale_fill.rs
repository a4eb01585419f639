//! The stale-fill race, forced step by step.
//!
//! Cache-aside has a classic race: a reader misses, loads version N from the
//! store, stalls; a writer stores N+1 and caches it; the reader wakes up and
//! fills the cache with N, which is then served until its TTL runs out. The
//! tests below run the reader's two halves, a store read and then the fill
//! as the service sends it (the cache format's entry, through the
//! version-checked script of `store::cache` or, when the reader's own read
//! found the key empty, `SET NX`), with the write (or delete) in between, on
//! real Redis, and check that the old value never reaches a client through
//! the API.

#![allow(clippy::print_stdout)]

use crate::common::{Engine, Options, TestApp, spawn_app};
use store::cache::{cache_key, entry, scripts};
use store::clock::Clock;
use store::domain::{Key, Record};

/// The first half of a reader's miss: the record as the store has it now.
async fn read_store(app: &TestApp, key: &Key) -> Record {
    app.store
        .get(key, app.clock.now_ms())
        .await
        .unwrap()
        .expect("the record exists")
}

/// How a reader fills: which depends on what its read of Redis found.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// Something: the version-checked script.
    Checked,
    /// Nothing: `SET NX`.
    IfEmpty,
}

/// The second half, arriving late: the reader offers what it read to Redis,
/// each way in turn (a refused fill changes nothing, so both meet the
/// same state).
async fn fill(app: &TestApp, key: &Key, record: &Record) {
    for how in [Fill::Checked, Fill::IfEmpty] {
        fill_as(app, key, record, how).await;
    }
}

async fn fill_as(app: &TestApp, key: &Key, record: &Record, how: Fill) {
    let mut redis = app.redis_connection().await;
    let cache_key = cache_key(key.as_str());
    let entry = entry::encode_live(record);
    let written = match how {
        Fill::Checked => {
            let written: i64 = scripts::SET_UNLESS_NEWER
                .key(cache_key)
                .arg(record.version)
                .arg(entry)
                .arg(60_000)
                .invoke_async(&mut redis)
                .await
                .unwrap();
            written == 1
        }
        Fill::IfEmpty => {
            let written: Option<String> = scripts::set_if_empty(cache_key, &entry, 60_000)
                .query_async(&mut redis)
                .await
                .unwrap();
            written.is_some()
        }
    };
    assert!(!written, "{how:?}: the late fill was written");
}

async fn a_slow_reader_cannot_overwrite_a_newer_write(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let key = Key::parse("race:update").unwrap();
    app.put(key.as_str(), "old", None).await;
    let mut redis = app.redis_connection().await;
    let _: i64 = redis::cmd("DEL")
        .arg("cache:race:update")
        .query_async(&mut redis)
        .await
        .unwrap();

    // The reader misses and loads "old" from the store...
    let loaded = read_store(&app, &key).await;
    assert_eq!(loaded.value, "old");
    // ...a writer stores and caches "new" meanwhile...
    app.put(key.as_str(), "new", None).await;
    // ...and the reader's fill arrives last.
    fill(&app, &key, &loaded).await;

    let (status, body) = app.get(key.as_str()).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], "new", "the late fill must be refused");
    assert_eq!(body["cached"], true);
}

async fn a_slow_reader_cannot_resurrect_a_deleted_record(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let key = Key::parse("race:delete").unwrap();
    app.put(key.as_str(), "doomed", None).await;

    let loaded = read_store(&app, &key).await;
    assert_eq!(app.delete(key.as_str()).await, 204);
    fill(&app, &key, &loaded).await;

    let (status, body) = app.get(key.as_str()).await;
    assert_eq!(status, 404, "the deleted value came back: {body}");
}

async fn a_fill_older_than_the_cached_value_is_refused_even_when_the_write_was_not_cached(
    engine: Engine,
) {
    // The writer's own cache update can be lost (Redis blip): the entry then
    // still holds an older version. A reader holding an even older version
    // must not replace it with its own.
    let app = spawn_app(Options::new(engine)).await;
    let key = Key::parse("race:three").unwrap();
    app.put(key.as_str(), "v1", None).await;
    let v1 = read_store(&app, &key).await;
    app.put(key.as_str(), "v2", None).await;
    let v2 = read_store(&app, &key).await;
    assert!(v2.version > v1.version);

    fill(&app, &key, &v1).await;
    let (_, body) = app.get(key.as_str()).await;
    assert_eq!(body["value"], "v2");
    assert_eq!(body["version"], v2.version);
}

testkit::on_both_engines!(
    a_slow_reader_cannot_overwrite_a_newer_write,
    a_slow_reader_cannot_resurrect_a_deleted_record,
    a_fill_older_than_the_cached_value_is_refused_even_when_the_write_was_not_cached,
);
