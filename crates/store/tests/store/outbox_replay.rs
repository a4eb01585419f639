//! Replaying the cache outbox into a real Redis: which entries a replay
//! applies, and which it removes, with the outbox in write order.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sqlx::{Connection, PgConnection};
use store::cache::entry;
use store::cache::{ReplayWindow, cache_key, replay_outbox};
use store::{OutboxEntry, Store};
use testkit::{EmptyDatabase, Engine, RedisServer};

use crate::{NOW, connect, key, migrations_up_to, notes, open, outbox_notes};

/// Replays `window` to the end, and returns how many entries it applied.
async fn replay(store: &Store, redis: &mut MultiplexedConnection, window: ReplayWindow) -> u64 {
    replay_passing_over(store, redis, window, |_| false).await
}

/// Replays `window` to the end, passing over the entries `known_applied`
/// names, and returns how many entries it applied.
async fn replay_passing_over(
    store: &Store,
    redis: &mut MultiplexedConnection,
    window: ReplayWindow,
    known_applied: impl FnMut(&OutboxEntry) -> bool,
) -> u64 {
    let mut applied = 0;
    let no_stop = || None::<()>;
    replay_outbox(
        store,
        redis,
        window,
        Duration::from_secs(5),
        known_applied,
        no_stop,
        &mut applied,
    )
    .await
    .unwrap();
    applied
}

fn aged_before(cutoff_ms: i64) -> ReplayWindow {
    ReplayWindow {
        written_before_ms: cutoff_ms,
        remove_before_ms: cutoff_ms,
    }
}

/// The version Redis holds under each of `names`' cache keys, if any.
async fn versions_in_redis(redis: &mut MultiplexedConnection, names: &[&str]) -> Vec<Option<i64>> {
    let mut versions = Vec::new();
    for name in names {
        let raw: Option<String> = redis::cmd("GET")
            .arg(cache_key(name))
            .query_async(redis)
            .await
            .unwrap();
        versions.push(raw.map(|raw| entry::decode(&raw).unwrap().version()));
    }
    versions
}

/// The keys left in the outbox, in order.
async fn outbox_keys(store: &Store) -> Vec<String> {
    let notes = outbox_notes(store).await;
    notes.into_iter().map(|(key, _)| key).collect()
}

async fn a_replay_applies_entries_in_write_order_up_to_the_first_young_one(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let redis_server = RedisServer::start();
    let mut redis = redis_server.connection().await;
    let mut versions = Vec::new();
    for (name, written_at_ms) in [("a", NOW), ("b", NOW + 10), ("c", NOW + 20), ("d", NOW)] {
        let written = store.put(&key(name), "v", None, written_at_ms).await;
        versions.push(Some(written.unwrap().record.version));
    }

    // `d` was written last, by a clock behind: it waits behind `c`.
    assert_eq!(replay(store, &mut redis, aged_before(NOW + 15)).await, 2);
    let names = ["a", "b", "c", "d"];
    assert_eq!(
        versions_in_redis(&mut redis, &names).await,
        [versions[0], versions[1], None, None]
    );
    assert_eq!(outbox_keys(store).await, ["c", "d"]);

    // Everything is applied; only what is past the cutoff goes.
    let everything = ReplayWindow {
        written_before_ms: i64::MAX,
        remove_before_ms: NOW + 15,
    };
    assert_eq!(replay(store, &mut redis, everything).await, 2);
    assert_eq!(versions_in_redis(&mut redis, &names).await, versions);
    assert_eq!(outbox_keys(store).await, ["c"]);

    // A later write of a removed key is replayed at its own version.
    let a_again = store.put(&key("a"), "w", None, NOW + 30).await.unwrap();
    assert_eq!(replay(store, &mut redis, aged_before(NOW + 40)).await, 2);
    assert_eq!(
        versions_in_redis(&mut redis, &["a"]).await,
        [Some(a_again.record.version)]
    );
    assert!(outbox_keys(store).await.is_empty());
}

/// More entries than a page: the replay goes on from the last id read.
async fn a_replay_goes_through_every_page(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let redis_server = RedisServer::start();
    let mut redis = redis_server.connection().await;
    // In one statement: its trigger notes each record, and the test adds
    // one commit to the machine's disk instead of a thousand.
    let written = 1_234;
    let pool = sqlx::AnyPool::connect(test.database.url()).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO records (key, value, version, updated_at_ms) \
         SELECT 'k' || i, 'v', i, $2 FROM n",
    )
    .bind(written)
    .bind(NOW)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let applied = replay(store, &mut redis, aged_before(NOW + 1)).await;
    assert_eq!(applied, u64::try_from(written).unwrap());
    assert!(outbox_keys(store).await.is_empty());
    let names = ["k1", "k617", "k1234"];
    assert_eq!(
        versions_in_redis(&mut redis, &names).await,
        [Some(1), Some(617), Some(1234)]
    );
}

/// Entries the caller knows Redis holds are not sent, yet count as applied
/// and leave the outbox with the others.
async fn entries_known_applied_are_not_sent(engine: Engine) {
    let test = open(engine).await;
    let store = &test.store;
    let redis_server = RedisServer::start();
    let mut redis = redis_server.connection().await;
    let mut versions = Vec::new();
    for name in ["a", "b", "c"] {
        let written = store.put(&key(name), "v", None, NOW).await.unwrap();
        versions.push(written.record.version);
    }

    let known_b = |entry: &OutboxEntry| entry.key == "b" && entry.version == versions[1];
    let applied = replay_passing_over(store, &mut redis, aged_before(NOW + 1), known_b).await;
    assert_eq!(applied, 3);
    assert_eq!(
        versions_in_redis(&mut redis, &["a", "b", "c"]).await,
        [Some(versions[0]), None, Some(versions[2])]
    );
    assert!(outbox_keys(store).await.is_empty());
}

testkit::on_both_engines!(
    a_replay_applies_entries_in_write_order_up_to_the_first_young_one,
    a_replay_goes_through_every_page,
    entries_known_applied_are_not_sent,
);

/// PostgreSQL gives an entry its id when its transaction inserts it, and
/// entries become visible when their transactions commit: an entry can
/// appear behind one a replay has already applied and removed. The next
/// replay applies it; none removes it unread.
#[tokio::test]
async fn an_entry_committed_behind_a_finished_replay_is_applied_by_the_next() {
    let database = EmptyDatabase::create(Engine::Postgres).await;
    let store = connect(&database).await;
    let redis_server = RedisServer::start();
    let mut redis = redis_server.connection().await;
    let other = sqlx::PgPool::connect(database.url()).await.unwrap();
    let mut open_write = other.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO records (key, value, version, updated_at_ms) VALUES ('late', 'v', 3, $1)",
    )
    .bind(NOW)
    .execute(&mut *open_write)
    .await
    .unwrap();
    let early = store.put(&key("early"), "v", None, NOW).await.unwrap();

    assert_eq!(replay(&store, &mut redis, aged_before(NOW + 1)).await, 1);
    assert!(outbox_keys(&store).await.is_empty());
    open_write.commit().await.unwrap();
    assert_eq!(outbox_keys(&store).await, ["late"]);
    assert_eq!(replay(&store, &mut redis, aged_before(NOW + 1)).await, 1);
    assert_eq!(
        versions_in_redis(&mut redis, &["early", "late"]).await,
        [Some(early.record.version), Some(3)]
    );
    assert!(outbox_keys(&store).await.is_empty());
    other.close().await;
    store.close().await;
}

/// PostgreSQL: another replica's removal holds the second of three entries
/// while this one removes all three, then asks for the first, which this
/// removal's scan took before it reached the held one. The removal must
/// not wait for the held entry while holding the first (a deadlock, one
/// side rolled back after a second), and every entry goes.
#[tokio::test]
async fn removing_entries_another_removal_holds_does_not_deadlock() {
    let test = open(Engine::Postgres).await;
    let store = &test.store;
    for raw in ["a", "b", "c"] {
        store.put(&key(raw), "v", None, NOW).await.unwrap();
    }
    let ids: Vec<i64> = store
        .outbox_page(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.id)
        .collect();
    assert_eq!(ids.len(), 3);

    let mut other = PgConnection::connect(test.database.url()).await.unwrap();
    let remove = "DELETE FROM cache_outbox WHERE id = $1";
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query(remove)
        .bind(ids[1])
        .execute(&mut other)
        .await
        .unwrap();
    let removal = {
        let store = store.clone();
        let ids = ids.clone();
        tokio::spawn(async move { store.outbox_remove(ids).await })
    };
    // Time for the removal to take the first entry and reach the second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = sqlx::query(remove).bind(ids[0]).execute(&mut other).await;
    let committed = sqlx::query("COMMIT").execute(&mut other).await;
    let removed = tokio::time::timeout(Duration::from_secs(5), removal)
        .await
        .expect("the removal ends")
        .unwrap();

    assert!(first.is_ok(), "the other removal's second entry: {first:?}");
    assert!(
        committed.is_ok(),
        "the other removal's commit: {committed:?}"
    );
    assert!(removed.is_ok(), "this removal: {removed:?}");
    assert!(outbox_keys(store).await.is_empty());
}

/// A PostgreSQL store from before the outbox was a log (migrations 1 to 3)
/// keeps its notes, in the order they were written, and appends the next.
#[tokio::test]
async fn a_postgres_outbox_from_before_the_log_moves_in_write_order() {
    let database = EmptyDatabase::create(Engine::Postgres).await;
    let before_the_log = migrations_up_to(Engine::Postgres, 3).await;
    let file = sqlx::PgPool::connect(database.url()).await.unwrap();
    before_the_log.run(&file).await.unwrap();
    sqlx::query(
        "INSERT INTO records (key, value, version, updated_at_ms) VALUES \
         ('b', 'v', 7, $1), ('a', 'v', 8, $1 + 1)",
    )
    .bind(NOW)
    .execute(&file)
    .await
    .unwrap();
    file.close().await;

    let store = connect(&database).await;
    let rewritten = store.put(&key("b"), "w", None, NOW + 2).await.unwrap();
    let expected = [("b", 7), ("a", 8), ("b", rewritten.record.version)];
    assert_eq!(outbox_notes(&store).await, notes(&expected));
    store.close().await;
}
