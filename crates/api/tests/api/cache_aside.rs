//! Cache-aside end to end, through HTTP, on real Redis and both store
//! engines: write-through on POST, refill after a Redis entry disappears
//! (or holds a tombstone, or a value this service did not write), record
//! expiry with a controlled clock, and DELETE.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use crate::common::{Engine, Options, TestApp, spawn_app};
use redis::AsyncCommands;
use serde_json::Value;
use store::cache::{RedisEntry, entry};
use store::clock::Clock;
use store::domain::{Key, Record};

async fn get_after_post_is_served_from_redis(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let stored = app.put("user:123", "John Doe", Some(3600)).await;
    assert_eq!(stored["key"], "user:123");
    assert_eq!(stored["value"], "John Doe");
    assert_eq!(stored["ttl"], 3600);

    let (status, body) = app.get("user:123").await;
    assert_eq!(status, 200);
    assert_eq!(body["key"], "user:123");
    assert_eq!(body["value"], "John Doe");
    assert_eq!(body["cached"], true, "the write put the value in Redis");
    assert_eq!(body["timestamp"], stored["timestamp"]);
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(timestamp.ends_with('Z'), "RFC 3339 in UTC: {timestamp}");

    // What Redis holds: the entry under cache:{key}, with a TTL no longer
    // than the record's.
    let mut redis = app.redis_connection().await;
    let ttl_ms: i64 = redis.pttl("cache:user:123").await.unwrap();
    assert!((1..=3_600_000).contains(&ttl_ms), "PTTL {ttl_ms}");
}

/// Reads `key` until L1 answers; returns the last body Redis answered with
/// and L1's. (Redis announces a write to this replica too, and an
/// announcement that arrives after a read keeps that read's value out of
/// L1, so the first read after a write may not fill it.)
async fn read_until_l1_answers(app: &TestApp, key: &str) -> (Value, Value) {
    let mut from_redis = Value::Null;
    for _ in 0..100 {
        let (status, body) = app.get(key).await;
        assert_eq!(status, 200, "{body}");
        match body["source"].as_str() {
            Some("l1") => return (from_redis, body),
            Some("redis") => from_redis = body,
            _ => panic!("neither L1 nor Redis answered: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("L1 never answered for {key}");
}

/// L1 answers with the fields Redis answered with; the body it keeps for
/// its hits goes with the entry when the record changes.
async fn an_l1_hit_answers_what_redis_answered(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    app.wait_for_l1_armed().await;
    app.put("user:9", "first", Some(3600)).await;

    let (from_redis, from_l1) = read_until_l1_answers(&app, "user:9").await;
    let mut expected = from_redis;
    expected["source"] = "l1".into();
    assert_eq!(from_l1, expected);
    assert_eq!(
        app.get("user:9").await.1,
        from_l1,
        "a second hit, same body"
    );

    let stored = app.put("user:9", "second", None).await;
    let (from_redis, from_l1) = read_until_l1_answers(&app, "user:9").await;
    assert_eq!(from_redis["value"], "second");
    assert_eq!(from_redis["version"], stored["version"]);
    assert!(from_redis.get("expires_at").is_none(), "{from_redis}");
    assert_eq!(from_l1["value"], "second");
    assert_eq!(from_l1["version"], stored["version"]);
}

async fn a_missing_redis_entry_is_refilled_from_the_store(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    app.put("user:7", "Ada", None).await;
    let mut redis = app.redis_connection().await;
    let removed: i64 = redis.del("cache:user:7").await.unwrap();
    assert_eq!(removed, 1);

    let (status, body) = app.get("user:7").await;
    assert_eq!((status, &body["cached"]), (200, &false.into()));
    assert_eq!(body["value"], "Ada");
    app.wait_for_fill("user:7").await;
    let (status, body) = app.get("user:7").await;
    assert_eq!((status, &body["cached"]), (200, &true.into()));
    assert_eq!(body["value"], "Ada");

    // A record without ttl is still cached with one: no cache key lives
    // forever.
    let ttl_ms: i64 = redis.pttl("cache:user:7").await.unwrap();
    assert!((3_590_000..=3_600_000).contains(&ttl_ms), "PTTL {ttl_ms}");
}

/// Two reads of `key`: the first from the store, the second from the cache
/// its fill wrote.
async fn assert_refilled(app: &TestApp, key: &str, value: &str) {
    let (status, body) = app.get(key).await;
    assert_eq!((status, &body["cached"]), (200, &false.into()), "{body}");
    assert_eq!(body["value"], value);
    app.wait_for_fill(key).await;
    let (status, body) = app.get(key).await;
    assert_eq!(
        (status, &body["cached"]),
        (200, &true.into()),
        "not refilled: {body}"
    );
    assert_eq!(body["value"], value);
}

/// A fill only allowed into an empty key would leave these keys misses for
/// good: the read found something there, so its fill is version-checked and
/// replaces it.
async fn a_fill_replaces_a_tombstone_or_a_value_this_service_did_not_write(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let mut redis = app.redis_connection().await;

    // A delete's tombstone, outlived by a record written again without a
    // cache update (as when the writer's Redis update failed).
    app.put("phoenix", "first", None).await;
    assert_eq!(app.delete("phoenix").await, 204);
    let key = Key::parse("phoenix").unwrap();
    app.store
        .put(&key, "again", None, app.clock.now_ms())
        .await
        .unwrap();
    let held: String = redis.get("cache:phoenix").await.unwrap();
    assert!(held.ends_with(" T"), "expected a tombstone, found {held:?}");
    assert_refilled(&app, "phoenix", "again").await;

    app.put("alien", "ours", None).await;
    let () = redis.set("cache:alien", "not an entry").await.unwrap();
    assert_refilled(&app, "alien", "ours").await;
}

/// The fill of a key the read found empty is a plain `SET NX`, which costs
/// Redis a fraction of a script call (docs/decisions.md, record 32).
async fn a_fill_of_an_empty_key_runs_no_script(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let mut redis = app.redis_connection().await;
    // Straight into the store: Redis holds nothing under the key.
    let key = Key::parse("plain").unwrap();
    app.store
        .put(&key, "value", None, app.clock.now_ms())
        .await
        .unwrap();

    let before = app.redis_command_calls().await;
    assert_refilled(&app, "plain", "value").await;
    let after = app.redis_command_calls().await;
    assert_eq!(after.since(&before, "set"), 1, "one SET filled the key");
    assert_eq!(after.scripts_since(&before), 0, "the fill ran a script");
    let ttl_ms: i64 = redis.pttl("cache:plain").await.unwrap();
    assert!((3_590_000..=3_600_000).contains(&ttl_ms), "PTTL {ttl_ms}");
}

/// The write-through of a write that created its key's row is a plain
/// `SET NX` too (docs/decisions.md, record 38); a write of a key the store
/// already held is version-checked.
async fn a_write_through_of_a_new_key_runs_no_script(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let before = app.redis_command_calls().await;
    let first = app.put("fresh", "first", None).await;
    let after = app.redis_command_calls().await;
    assert_eq!(after.since(&before, "set"), 1, "one SET wrote it through");
    assert_eq!(
        after.scripts_since(&before),
        0,
        "the write-through ran a script"
    );
    let (_, body) = app.get("fresh").await;
    assert_eq!(
        (&body["cached"], &body["version"]),
        (&true.into(), &first["version"])
    );

    app.put("fresh", "second", None).await;
    let again = app.redis_command_calls().await;
    assert_eq!(
        again.scripts_since(&after),
        1,
        "the second write was not checked"
    );
}

/// A key the store never held may still hold something in Redis: an entry
/// from before the store was restored from an older backup, or a value
/// this service did not write. The write that creates the key's row
/// replaces it all the same (`SET NX` refused, the version-checked script
/// after it).
async fn a_write_that_creates_a_row_replaces_what_redis_held(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let mut redis = app.redis_connection().await;
    let older = Record {
        value: "from an older store".to_owned(),
        version: 1,
        updated_at_ms: 0,
        expires_at_ms: None,
    };
    let () = redis
        .set("cache:restored", entry::encode_live(&older))
        .await
        .unwrap();
    let () = redis.set("cache:alien", "not an entry").await.unwrap();

    for key in ["restored", "alien"] {
        let stored = app.put(key, "new", None).await;
        let (status, body) = app.get(key).await;
        assert_eq!(status, 200);
        assert_eq!(body["value"], "new", "{key}");
        assert_eq!(body["cached"], true, "{key} was not written through");
        assert_eq!(body["version"], stored["version"]);
    }
}

/// Redis forgets its scripts when it restarts or is told to (`SCRIPT
/// FLUSH`). A version-checked write-through, sent in a pipeline as
/// `EVALSHA`, then loads the script and writes, before the write is
/// answered.
async fn a_write_through_loads_its_script_when_redis_forgot_it(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    app.put("remembered", "first", None).await;
    let mut redis = app.redis_connection().await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .unwrap();

    let second = app.put("remembered", "second", None).await;
    let held: String = redis.get("cache:remembered").await.unwrap();
    match entry::decode(&held).unwrap() {
        RedisEntry::Live(record) => {
            assert_eq!(record.value, "second");
            assert_eq!(Some(record.version), second["version"].as_i64());
        }
        tombstone => panic!("Redis holds {tombstone:?}"),
    }
}

async fn a_record_is_gone_once_its_ttl_lapses(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    app.put("session:1", "short-lived", Some(30)).await;
    app.put("session:2", "short-lived too", Some(30)).await;
    app.put("keeper", "stays", Some(120)).await;
    // session:2 is read from the store after expiry; session:1 from Redis.
    let mut redis = app.redis_connection().await;
    let _: i64 = redis.del("cache:session:2").await.unwrap();

    app.clock.advance(Duration::from_secs(29));
    assert_eq!(app.get("session:1").await.0, 200);

    app.clock.advance(Duration::from_secs(2));
    let (status, body) = app.get("session:1").await;
    assert_eq!(status, 404, "expired in Redis' copy: {body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(app.get("session:2").await.0, 404, "expired in the store");
    assert_eq!(app.get("keeper").await.0, 200);
    assert_eq!(
        app.delete("session:1").await,
        404,
        "an expired record cannot be deleted"
    );

    // Writing an expired key again brings it back.
    app.put("session:1", "again", Some(30)).await;
    let (status, body) = app.get("session:1").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("again")));
}

async fn delete_removes_from_store_and_cache(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    app.put("doomed", "soon gone", None).await;
    assert_eq!(app.get("doomed").await.1["cached"], true);

    assert_eq!(app.delete("doomed").await, 204);
    let (status, body) = app.get("doomed").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(app.delete("doomed").await, 404);

    // Written again after the delete: a newer version than ever before.
    let first = app.put("doomed", "back", None).await;
    let (status, body) = app.get("doomed").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("back")));
    assert_eq!(body["version"], first["version"]);
}

async fn every_write_gets_a_higher_version(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    let mut last = 0;
    for value in ["a", "b", "c", "d"] {
        let stored = app.put("counter", value, None).await;
        let version = stored["version"].as_i64().unwrap();
        assert!(version > last, "{version} after {last}");
        last = version;
        let (_, body) = app.get("counter").await;
        assert_eq!(body["value"], value);
        assert_eq!(body["cached"], true);
    }
}

testkit::on_both_engines!(
    get_after_post_is_served_from_redis,
    an_l1_hit_answers_what_redis_answered,
    a_missing_redis_entry_is_refilled_from_the_store,
    a_fill_replaces_a_tombstone_or_a_value_this_service_did_not_write,
    a_fill_of_an_empty_key_runs_no_script,
    a_write_through_of_a_new_key_runs_no_script,
    a_write_that_creates_a_row_replaces_what_redis_held,
    a_write_through_loads_its_script_when_redis_forgot_it,
    a_record_is_gone_once_its_ttl_lapses,
    delete_removes_from_store_and_cache,
    every_write_gets_a_higher_version,
);
