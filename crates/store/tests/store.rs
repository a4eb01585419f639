//! The store's contract, run against both engines: SQLite in a temporary
//! file and a fresh PostgreSQL database.

#![allow(clippy::unwrap_used)]

use store::domain::{Key, Ttl};
use store::{Engine, Store, StoreOptions};

const NOW: i64 = 1_800_000_000_000;

struct TestStore {
    store: Store,
    url: String,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<testkit::TestDatabase>,
}

async fn open(engine: Engine) -> TestStore {
    match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("store.db").display());
            let store = Store::connect(&url, StoreOptions::point_reads(4))
                .await
                .unwrap();
            TestStore {
                store,
                url,
                _sqlite: Some(dir),
                _postgres: None,
            }
        }
        Engine::Postgres => {
            let database = testkit::TestDatabase::create().await;
            let store = Store::connect(database.url(), StoreOptions::point_reads(4))
                .await
                .unwrap();
            TestStore {
                store,
                url: database.url().to_owned(),
                _sqlite: None,
                _postgres: Some(database),
            }
        }
    }
}

fn key(raw: &str) -> Key {
    Key::parse(raw).unwrap()
}

async fn put_then_get_returns_the_record(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    assert_eq!(store.engine(), engine);
    assert_eq!(store.get(&key("a"), NOW).await.unwrap(), None);

    let written = store
        .put(&key("a"), "value with 'quotes' and ünïcode", None, NOW)
        .await
        .unwrap();
    let read = store.get(&key("a"), NOW + 1).await.unwrap().unwrap();
    assert_eq!(read, written);
    assert_eq!(read.updated_at_ms, NOW);
    assert_eq!(read.expires_at_ms, None);
    store.ping().await.unwrap();
}

async fn versions_grow_across_writes_and_deletes(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let k = key("v");
    let first = store.put(&k, "1", None, NOW).await.unwrap().version;
    // Same millisecond: still strictly larger.
    let second = store.put(&k, "2", None, NOW).await.unwrap().version;
    assert!(second > first);
    // A clock that went backwards cannot lower the version either.
    let third = store
        .put(&k, "3", None, NOW - 60_000)
        .await
        .unwrap()
        .version;
    assert!(third > second);

    let floor = store.delete(&k, NOW).await.unwrap().unwrap();
    assert_eq!(floor, third + 1);
    assert_eq!(store.delete(&k, NOW).await.unwrap(), None);
    let again = store.put(&k, "4", None, NOW + 1).await.unwrap().version;
    assert!(again >= floor, "{again} < {floor}");
}

/// A replica whose clock is behind deletes nothing it should not, and a key
/// it writes again after another replica deleted it still gets a version
/// above the deleted one: the cache's tombstone would refuse a lower one.
async fn a_key_recreated_by_a_clock_behind_gets_a_higher_version(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let k = key("skew");
    store.put(&k, "1", None, NOW).await.unwrap();
    let floor = store.delete(&k, NOW).await.unwrap().unwrap();
    assert_eq!(
        store.get(&k, NOW - 60_000).await.unwrap(),
        None,
        "deleted for every clock"
    );
    let again = store.put(&k, "2", None, NOW - 60_000).await.unwrap();
    assert!(again.version >= floor, "{} < {floor}", again.version);
    let read = store.get(&k, NOW - 60_000).await.unwrap().unwrap();
    assert_eq!((read.value.as_str(), read.version), ("2", again.version));
    // Deleted again, and reclaimed by the cleanup only once the cache's
    // tombstone of the delete has lapsed.
    store.delete(&k, NOW).await.unwrap().unwrap();
    assert_eq!(
        store.delete_expired_batch(NOW + 1_000, 100).await.unwrap(),
        0
    );
    assert_eq!(
        store.delete_expired_batch(NOW + 61_000, 100).await.unwrap(),
        1
    );
}

async fn expired_records_are_invisible(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let k = key("short");
    let ttl = Ttl::from_seconds(10).unwrap();
    let written = store.put(&k, "x", Some(ttl), NOW).await.unwrap();
    assert_eq!(written.expires_at_ms, Some(NOW + 10_000));
    assert!(store.get(&k, NOW + 9_999).await.unwrap().is_some());
    assert_eq!(store.get(&k, NOW + 10_000).await.unwrap(), None);
    assert_eq!(store.delete(&k, NOW + 10_000).await.unwrap(), None);
    // Writing it again revives it, with a higher version.
    let revived = store.put(&k, "y", None, NOW + 20_000).await.unwrap();
    assert!(revived.version > written.version);
    assert_eq!(
        store.get(&k, NOW + 20_001).await.unwrap().unwrap().value,
        "y"
    );
}

async fn every_write_and_delete_lands_in_the_outbox(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let a = store.put(&key("a"), "1", None, NOW).await.unwrap();
    let b = store.put(&key("b"), "1", None, NOW + 5).await.unwrap();
    let b_floor = store.delete(&key("b"), NOW + 10).await.unwrap().unwrap();
    let c = store.put(&key("c"), "1", None, NOW + 20).await.unwrap();

    let all = store.outbox_page("", i64::MAX, 100).await.unwrap();
    let seen: Vec<_> = all.iter().map(|e| (e.key.as_str(), e.version)).collect();
    assert_eq!(seen, [("a", a.version), ("b", b_floor), ("c", c.version)]);
    assert!(b_floor > b.version);

    // Paging by key, and by age.
    let page = store.outbox_page("a", i64::MAX, 1).await.unwrap();
    assert_eq!(page[0].key, "b");
    let aged = store.outbox_page("", NOW + 10, 100).await.unwrap();
    assert_eq!(aged.len(), 1, "only a was written before NOW + 10");

    // Removal needs the same version and an old enough entry.
    let entry_a = all[0].clone();
    store
        .outbox_remove(std::slice::from_ref(&entry_a), NOW)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_page("", i64::MAX, 100).await.unwrap().len(),
        3,
        "not older than the cutoff"
    );
    store.put(&key("a"), "2", None, NOW + 30).await.unwrap();
    store.outbox_remove(&[entry_a], NOW + 1_000).await.unwrap();
    assert_eq!(
        store.outbox_page("", i64::MAX, 100).await.unwrap().len(),
        3,
        "a newer write replaced it"
    );
    // One call removes the entries that qualify and keeps the rest: `a` was
    // replaced, `b` and `c` go.
    store.outbox_remove(&all, NOW + 1_000).await.unwrap();
    let left: Vec<_> = store
        .outbox_page("", i64::MAX, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(left, ["a"]);
    store.outbox_remove(&[], NOW + 1_000).await.unwrap();
}

async fn concurrent_writers_to_one_key_all_succeed(engine: Engine) {
    let test = open(engine).await;
    let store = test.store.clone();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put(&key("hot"), &i.to_string(), None, NOW)
                .await
                .unwrap()
                .version
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 16, "every write got its own version");
    let last = store.get(&key("hot"), NOW).await.unwrap().unwrap();
    assert_eq!(last.version, *versions.last().unwrap());
}

async fn maintenance_finds_dead_keys_and_reclaims_expired_rows(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let ttl = Ttl::from_seconds(10).unwrap();
    store.put(&key("live"), "v", None, NOW).await.unwrap();
    store
        .put(&key("lasting"), "v", Some(ttl), NOW)
        .await
        .unwrap();
    for i in 0..25 {
        store
            .put(&key(&format!("old:{i}")), "v", Some(ttl), NOW - 60_000)
            .await
            .unwrap();
    }

    let dead = store
        .keys_without_live_record(
            &["live", "lasting", "old:3", "never", "it's \"quoted\""],
            NOW,
        )
        .await
        .unwrap();
    let mut dead: Vec<_> = dead.into_iter().collect();
    dead.sort();
    assert_eq!(dead, ["it's \"quoted\"", "never", "old:3"]);
    // A batch as large as the job sends.
    let many: Vec<String> = (0..500).map(|i| format!("old:{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        store
            .keys_without_live_record(&many, NOW)
            .await
            .unwrap()
            .len(),
        500
    );
    assert!(
        store
            .keys_without_live_record(&[], NOW)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.count_expired(NOW).await.unwrap(), 25);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 10);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 10);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 5);
    assert_eq!(store.delete_expired_batch(NOW, 10).await.unwrap(), 0);
    assert!(store.get(&key("live"), NOW).await.unwrap().is_some());
    assert!(store.get(&key("lasting"), NOW).await.unwrap().is_some());
}

/// Rows written with plain SQL, as another program might: many at once,
/// and keys the API would refuse.
async fn insert_rows(test: &TestStore, sql: &str) {
    let pool = sqlx::AnyPool::connect(&test.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn live_keys_are_read_page_by_page(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    // More live records than one page holds (10,000), and some that are not
    // live.
    insert_rows(
        &test,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10050) \
             INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) \
             SELECT 'page:' || i, 'v', 1, {NOW}, NULL FROM n"
        ),
    )
    .await;
    let ttl = Ttl::from_seconds(10).unwrap();
    store
        .put(&key("lasting"), "v", Some(ttl), NOW)
        .await
        .unwrap();
    store
        .put(&key("expired"), "v", Some(ttl), NOW - 60_000)
        .await
        .unwrap();
    let newline = match engine {
        Engine::Sqlite => "'odd' || char(10) || 'key'",
        Engine::Postgres => "'odd' || chr(10) || 'key'",
    };
    insert_rows(
        &test,
        &format!(
            "INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) \
             VALUES ({newline}, 'v', 1, {NOW}, NULL)"
        ),
    )
    .await;

    let mut seen = Vec::new();
    store
        .for_each_live_key(NOW, |key| {
            seen.push(key.to_owned());
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    let read = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(read, seen.len(), "no key is read twice");
    let mut expected: Vec<String> = (1..=10_050).map(|i| format!("page:{i}")).collect();
    expected.push("lasting".to_owned());
    expected.sort();
    // Neither the expired record nor the key holding a newline.
    assert_eq!(seen, expected);

    let mut visited = 0;
    store
        .for_each_live_key(NOW, |_| {
            visited += 1;
            if visited == 3 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .await
        .unwrap();
    assert_eq!(visited, 3, "Break stops the read");
}

/// Records written with a 1 s TTL and long expired, re-written without a
/// TTL by concurrent clients while the cleanup's reclaim runs batch after
/// batch: a re-written record is live, and no batch may take it.
async fn reclaiming_expired_records_spares_those_rewritten_meanwhile(engine: Engine) {
    const EXPIRED: i64 = 100_000;
    const WRITERS: usize = 8;
    const REWRITES_PER_WRITER: usize = 400;
    let test = open(engine).await;
    let seed = sqlx::AnyPool::connect(&test.url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO records (key, value, version, updated_at_ms, expires_at_ms) \
         SELECT 'expired:' || i, 'old', i, $2, $3 FROM n",
    )
    .bind(EXPIRED)
    .bind(NOW - 61_000)
    .bind(NOW - 60_000)
    .execute(&seed)
    .await
    .unwrap();
    seed.close().await;

    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reclaim = {
        let store = test.store.clone();
        let writing = writing.clone();
        tokio::spawn(async move {
            let mut reclaimed = 0;
            loop {
                let done = store.delete_expired_batch(NOW, 10_000).await.unwrap();
                reclaimed += done;
                if done == 0 && !writing.load(std::sync::atomic::Ordering::Acquire) {
                    return reclaimed;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = test.store.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(writer as u64);
            let mut rewritten = Vec::new();
            for _ in 0..REWRITES_PER_WRITER {
                let k = key(&format!("expired:{}", rng.i64(1..=EXPIRED)));
                store.put(&k, "rewritten", None, NOW).await.unwrap();
                rewritten.push(k);
            }
            rewritten
        }));
    }
    let mut rewritten = Vec::new();
    for writer in writers {
        rewritten.extend(writer.await.unwrap());
    }
    writing.store(false, std::sync::atomic::Ordering::Release);
    let reclaimed = reclaim.await.unwrap();

    let mut lost = Vec::new();
    for k in &rewritten {
        match test.store.get(k, NOW).await.unwrap() {
            Some(record) if record.value == "rewritten" => {}
            other => lost.push(format!("{k}: {other:?}")),
        }
    }
    rewritten.sort();
    rewritten.dedup();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged rewrites gone, e.g. {:?}",
        lost.len(),
        WRITERS * REWRITES_PER_WRITER,
        &lost[..lost.len().min(5)]
    );
    // Everything else went, once.
    let rewritten = u64::try_from(rewritten.len()).unwrap();
    assert!(reclaimed >= u64::try_from(EXPIRED).unwrap() - rewritten);
    assert_eq!(test.store.count_expired(NOW).await.unwrap(), 0);
}

testkit::on_both_engines!(
    Engine;
    reclaiming_expired_records_spares_those_rewritten_meanwhile,
    put_then_get_returns_the_record,
    versions_grow_across_writes_and_deletes,
    a_key_recreated_by_a_clock_behind_gets_a_higher_version,
    expired_records_are_invisible,
    every_write_and_delete_lands_in_the_outbox,
    concurrent_writers_to_one_key_all_succeed,
    maintenance_finds_dead_keys_and_reclaims_expired_rows,
    live_keys_are_read_page_by_page,
);

/// The cleanup job's deletion script reads the entry format this crate
/// writes: entries and tombstones encoded by [`store::cache::entry`], run
/// through the script in a real Redis.
#[tokio::test]
async fn the_cleanup_script_keeps_tombstones_the_entry_format_writes() {
    use store::cache::{cache_key, entry, scripts};
    use store::domain::Record;

    let redis = testkit::RedisServer::start();
    let mut connection = redis.connection().await;
    let live = Record {
        value: "a value that ends in T".into(),
        version: 7,
        updated_at_ms: NOW,
        expires_at_ms: None,
    };
    let keys = [
        cache_key("live"),
        cache_key("tombstone"),
        cache_key("gone"),
        cache_key("a-list"),
    ];
    let _: () = redis::pipe()
        .set(&keys[0], entry::encode_live(&live))
        .set(&keys[1], entry::encode_tombstone(9))
        .rpush(&keys[3], "not a string")
        .query_async(&mut connection)
        .await
        .unwrap();
    // Three keys exist ("gone" does not); a real run leaves the tombstone.
    for (dry_run, expected_left) in [("1", 3), ("0", 1)] {
        let unlinked: Vec<i64> = scripts::UNLINK_IF_STILL_STALE
            .key(&keys)
            .arg(dry_run)
            .invoke_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(unlinked, [1, 0, 0, 1], "dry run {dry_run}");
        let left: i64 = redis::cmd("EXISTS")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(left, expected_left, "dry run {dry_run}");
    }
}
