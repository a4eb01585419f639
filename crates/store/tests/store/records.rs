//! Reading and writing records: versions, expiry and the outbox.

use store::domain::Ttl;
use store::{StoreError, Written};
use testkit::Engine;

use crate::{NOW, TestStore, key, notes, open, outbox_notes};

async fn put_then_get_returns_the_record(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let expected = match engine {
        Engine::Sqlite => store::Engine::Sqlite,
        Engine::Postgres => store::Engine::Postgres,
    };
    assert_eq!(store.engine(), expected);
    assert_eq!(store.get(&key("a"), NOW).await.unwrap(), None);

    let written = store
        .put(&key("a"), "value with 'quotes' and ünïcode", None, NOW)
        .await
        .unwrap();
    assert!(written.created, "the first write of a key creates its row");
    let read = store.get(&key("a"), NOW + 1).await.unwrap().unwrap();
    assert_eq!(read, written.record);
    assert_eq!(read.updated_at_ms, NOW);
    assert_eq!(read.expires_at_ms, None);
    store.ping().await.unwrap();
}

async fn versions_grow_across_writes_and_deletes(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let k = key("v");
    let first = store.put(&k, "1", None, NOW).await.unwrap();
    assert!(first.created);
    // Same millisecond: still strictly larger.
    let second = store.put(&k, "2", None, NOW).await.unwrap();
    assert!(second.record.version > first.record.version);
    assert!(!second.created, "a second write creates nothing");
    // A clock that went backwards cannot lower the version either.
    let third = store
        .put(&k, "3", None, NOW - 60_000)
        .await
        .unwrap()
        .record
        .version;
    assert!(third > second.record.version);

    let floor = store.delete(&k, NOW).await.unwrap().unwrap();
    assert_eq!(floor, third + 1);
    assert_eq!(store.delete(&k, NOW).await.unwrap(), None);
    let again = store.put(&k, "4", None, NOW + 1).await.unwrap();
    let version = again.record.version;
    assert!(version >= floor, "{version} < {floor}");
    assert!(!again.created, "the delete's marker row is still there");
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
    let again = store.put(&k, "2", None, NOW - 60_000).await.unwrap().record;
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
    let reborn = store.put(&k, "3", None, NOW + 61_000).await.unwrap();
    assert!(reborn.created, "the reclaimed row is written anew");
}

async fn expired_records_are_invisible(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let k = key("short");
    let ttl = Ttl::from_seconds(10).unwrap();
    let written = store.put(&k, "x", Some(ttl), NOW).await.unwrap().record;
    assert_eq!(written.expires_at_ms, Some(NOW + 10_000));
    assert!(store.get(&k, NOW + 9_999).await.unwrap().is_some());
    assert_eq!(store.get(&k, NOW + 10_000).await.unwrap(), None);
    assert_eq!(store.delete(&k, NOW + 10_000).await.unwrap(), None);
    // Writing it again revives it, with a higher version.
    let revived = store.put(&k, "y", None, NOW + 20_000).await.unwrap();
    assert!(revived.record.version > written.version);
    assert!(!revived.created, "a lapsed record's row is still there");
    assert_eq!(
        store.get(&k, NOW + 20_001).await.unwrap().unwrap().value,
        "y"
    );
}

async fn every_write_and_delete_lands_in_the_outbox(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let a = store.put(&key("a"), "1", None, NOW).await.unwrap().record;
    let b = store
        .put(&key("b"), "1", None, NOW + 5)
        .await
        .unwrap()
        .record;
    let b_floor = store.delete(&key("b"), NOW + 10).await.unwrap().unwrap();
    let c = store
        .put(&key("c"), "1", None, NOW + 20)
        .await
        .unwrap()
        .record;

    let all = store.outbox_page(0, 100).await.unwrap();
    let seen: Vec<_> = all.iter().map(|e| (e.key.as_str(), e.version)).collect();
    assert_eq!(
        seen,
        [
            ("a", a.version),
            ("b", b.version),
            ("b", b_floor),
            ("c", c.version)
        ],
        "one entry per write, in write order"
    );
    assert!(b_floor > b.version);
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));
    let written_at: Vec<_> = all.iter().map(|e| e.written_at_ms).collect();
    assert_eq!(written_at, [NOW, NOW + 5, NOW + 10, NOW + 20]);

    // Paging by id.
    let page = store.outbox_page(all[0].id, 2).await.unwrap();
    assert_eq!(page, all[1..3]);

    // Removal by id, of those listed only; a later write of a removed key
    // is a new entry.
    store
        .outbox_remove(vec![all[0].id, all[2].id])
        .await
        .unwrap();
    let a_again = store.put(&key("a"), "2", None, NOW + 30).await.unwrap();
    let expected = [
        ("b", b.version),
        ("c", c.version),
        ("a", a_again.record.version),
    ];
    assert_eq!(outbox_notes(store).await, notes(&expected));
    store.outbox_remove(Vec::new()).await.unwrap();
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
        }));
    }
    let mut versions = Vec::new();
    let mut created = 0;
    for task in tasks {
        let written = task.await.unwrap();
        versions.push(written.record.version);
        created += usize::from(written.created);
    }
    assert_eq!(created, 1, "one of the writes created the row");
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 16, "every write got its own version");
    let last = store.get(&key("hot"), NOW).await.unwrap().unwrap();
    assert_eq!(last.version, *versions.last().unwrap());
}

/// Writes each of `names` (each its name as value, each at a time of its
/// own, so with a version of its own) from its own task while another
/// connection holds the write lock, so that they queue together (SQLite
/// writes them with one statement); returns their outcomes.
async fn put_queued_together(
    test: &TestStore,
    engine: Engine,
    names: Vec<String>,
) -> Vec<(String, Result<Written, StoreError>)> {
    let admin = sqlx::AnyPool::connect(test.database.url()).await.unwrap();
    let mut holder = admin.acquire().await.unwrap();
    let lock = match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN; LOCK TABLE records IN SHARE ROW EXCLUSIVE MODE",
    };
    sqlx::raw_sql(lock).execute(&mut *holder).await.unwrap();
    let mut writes = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let store = test.store.clone();
        let now = NOW + i64::try_from(i).unwrap();
        writes.push(tokio::spawn(async move {
            let outcome = store.put(&key(&name), name.as_str(), None, now).await;
            (name, outcome)
        }));
    }
    // Let every write queue behind the lock before releasing it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::raw_sql("COMMIT").execute(&mut *holder).await.unwrap();
    let mut outcomes = Vec::new();
    for write in writes {
        outcomes.push(write.await.unwrap());
    }
    outcomes
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("k{i}")).collect()
}

async fn writes_queued_together_each_get_their_own_record(engine: Engine) {
    let test = open(engine).await;
    for (name, outcome) in put_queued_together(&test, engine, names(40)).await {
        let written = outcome.unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(written.record.value, name);
        assert!(written.created, "{name}");
        let read = test.store.get(&key(&name), NOW + 100).await.unwrap();
        assert_eq!(read, Some(written.record), "{name}");
    }
}

/// A trigger that refuses writes of the key `refused`, as a constraint
/// would.
const REFUSE_SQLITE: &str = "\
CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.key = 'refused'
BEGIN SELECT RAISE(ABORT, 'refused by the test'); END";
const REFUSE_POSTGRES: &str = "\
CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
    IF NEW.key = 'refused' THEN RAISE EXCEPTION 'refused by the test'; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION refuse()";

/// Of writes queued together, the one the database refuses fails; the
/// others are stored.
async fn a_refused_write_among_concurrent_ones_fails_alone(engine: Engine) {
    let test = open(engine).await;
    let refuse = match engine {
        Engine::Sqlite => REFUSE_SQLITE,
        Engine::Postgres => REFUSE_POSTGRES,
    };
    let admin = sqlx::AnyPool::connect(test.database.url()).await.unwrap();
    sqlx::raw_sql(refuse).execute(&admin).await.unwrap();
    let mut writes = names(40);
    writes.insert(20, "refused".to_owned());
    for (name, outcome) in put_queued_together(&test, engine, writes).await {
        if name == "refused" {
            let error = outcome.expect_err("the refused write fails").to_string();
            assert!(error.contains("refused by the test"), "{error}");
            assert_eq!(test.store.get(&key(&name), NOW + 100).await.unwrap(), None);
        } else {
            let written = outcome.unwrap_or_else(|error| panic!("{name}: {error}"));
            let read = test.store.get(&key(&name), NOW + 100).await.unwrap();
            assert_eq!(read, Some(written.record), "{name}");
        }
    }
}

/// Many reads at once, of keys live, expired, deleted and absent, each at a
/// clock of its own: every read gets its own key's record as of its clock
/// (SQLite reads those that wait together with one query).
async fn concurrent_reads_each_get_their_own_record(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let ttl = Ttl::from_seconds(1).unwrap();
    let mut written = Vec::new();
    for i in 0..40 {
        let name = format!("k{i}");
        let record = match i % 4 {
            0 => None,
            1 => {
                store
                    .put(&key(&name), name.as_str(), None, NOW)
                    .await
                    .unwrap();
                store.delete(&key(&name), NOW).await.unwrap();
                None
            }
            2 => Some(
                store
                    .put(&key(&name), name.as_str(), Some(ttl), NOW)
                    .await
                    .unwrap()
                    .record,
            ),
            _ => Some(
                store
                    .put(&key(&name), name.as_str(), None, NOW)
                    .await
                    .unwrap()
                    .record,
            ),
        };
        written.push((name, record));
    }
    let mut reads = Vec::new();
    for round in 0..10 {
        for (name, record) in &written {
            // Half the reads come after the ttl'd records expired.
            let now = NOW + if round % 2 == 0 { 999 } else { 1_000 };
            let expected = record.clone().filter(|record| record.is_live_at(now));
            let (store, name) = (store.clone(), name.clone());
            reads.push(tokio::spawn(async move {
                let read = store.get(&key(&name), now).await.unwrap();
                (name, now, read, expected)
            }));
        }
    }
    for read in reads {
        let (name, now, read, expected) = read.await.unwrap();
        assert_eq!(read, expected, "{name} at {now}");
    }
}

testkit::on_both_engines!(
    put_then_get_returns_the_record,
    versions_grow_across_writes_and_deletes,
    a_key_recreated_by_a_clock_behind_gets_a_higher_version,
    expired_records_are_invisible,
    every_write_and_delete_lands_in_the_outbox,
    concurrent_writers_to_one_key_all_succeed,
    writes_queued_together_each_get_their_own_record,
    a_refused_write_among_concurrent_ones_fails_alone,
    concurrent_reads_each_get_their_own_record,
);
