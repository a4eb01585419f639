//! The supervisor's replays of the cache outbox, through a running app on
//! real Redis: once a change has outlived the outbox's retention, Redis is
//! made to hold nothing older than it, unless this replica wrote it through
//! and Redis answered; after Redis restarts, every change is sent again.

use std::time::Duration;

use redis::AsyncCommands;
use store::cache::{cache_key, entry};
use store::clock::Clock;
use store::domain::Key;
use testkit::Persistence;

use crate::common::{Engine, Options, TestApp, spawn_app};

/// The version Redis holds under `key`'s cache key, live or tombstone.
async fn version_in_redis(app: &TestApp, key: &str) -> Option<i64> {
    let mut redis = app.redis_connection().await;
    let raw: Option<String> = redis.get(cache_key(key)).await.unwrap();
    raw.map(|raw| entry::decode(&raw).unwrap().version())
}

/// Puts a tombstone one version below `version` under `key`'s cache key,
/// behind the app's back: Redis now holds less than the change.
async fn move_redis_behind(app: &TestApp, key: &str, version: i64) {
    let mut redis = app.redis_connection().await;
    let () = redis
        .set(cache_key(key), entry::encode_tombstone(version - 1))
        .await
        .unwrap();
}

async fn version_of(app: &TestApp, key: &str, value: &str, ttl: Option<u64>) -> i64 {
    app.put(key, value, ttl).await["version"].as_i64().unwrap()
}

/// A change committed without its write-through (as by a replica that died
/// in between) is put right by the routine replay. A change Redis answered
/// is not sent again: moved behind in Redis, it stays there; unless its
/// entry would have lapsed in Redis before the replay.
async fn the_routine_replay_sends_what_redis_did_not_take(engine: Engine) {
    let app = spawn_app(Options::new(engine)).await;
    app.wait_for_redis(true).await;
    let taken = version_of(&app, "taken", "a", None).await;
    // Its record, and so its entry in Redis, lives 12 s: the entry would
    // lapse before the replay (past the retention of 10 s, and a few
    // seconds of grace).
    let short = version_of(&app, "short", "s", Some(12)).await;
    let cached = version_of(&app, "lost", "1", None).await;
    let lost = app
        .store
        .put(&Key::parse("lost").unwrap(), "2", None, app.clock.now_ms())
        .await
        .unwrap()
        .record
        .version;
    assert!(lost > cached);
    assert_eq!(version_in_redis(&app, "lost").await, Some(cached));
    move_redis_behind(&app, "taken", taken).await;
    move_redis_behind(&app, "short", short).await;

    // Past the retention (10 s in the tests' config), by the app's clock.
    app.clock.advance(Duration::from_secs(11));
    testkit::eventually("the routine replay empties the outbox", || async {
        app.store.outbox_count(i64::MAX).await.unwrap() == 0
    })
    .await;
    assert_eq!(version_in_redis(&app, "lost").await, Some(lost));
    assert_eq!(version_in_redis(&app, "short").await, Some(short));
    assert_eq!(
        version_in_redis(&app, "taken").await,
        Some(taken - 1),
        "a change Redis answered is passed over"
    );
    let (status, body) = app.get("lost").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("2")));
}

/// After Redis restarts, every change in the outbox is sent again, those
/// it answered before included: it may have come back without them.
async fn after_redis_restarts_every_change_is_sent_again(engine: Engine) {
    let mut options = Options::new(engine);
    options.redis = Some(Persistence::AppendOnlyAlways);
    let mut app = spawn_app(options).await;
    app.wait_for_redis(true).await;
    let taken = version_of(&app, "taken", "a", None).await;
    move_redis_behind(&app, "taken", taken).await;

    const REPAIRED: &str = r#"cache_outbox_replayed_entries_total{replay="repair"}"#;
    let repaired_before = app.metric(REPAIRED).await.unwrap();

    app.redis_mut().restart();
    testkit::eventually("the repair sends the change again", || async {
        version_in_redis(&app, "taken").await == Some(taken)
    })
    .await;
    app.wait_for_redis(true).await;
    assert!(
        app.metric(REPAIRED).await.unwrap() > repaired_before,
        "the repair counts the entries it applied"
    );
}

/// The outbox's metrics: the age of its oldest entry follows the app's
/// clock until the routine replay has applied the entry and removed it,
/// each replay counts the entries it applied, and the retention the age
/// is held to is exported beside it (the alert on the age subtracts it).
async fn the_outbox_metrics_follow_its_oldest_entry_and_the_replays(engine: Engine) {
    const AGE: &str = "cache_outbox_oldest_entry_age_seconds";
    const AGED: &str = r#"cache_outbox_replayed_entries_total{replay="aged"}"#;
    let app = spawn_app(Options::new(engine)).await;
    app.wait_for_redis(true).await;
    assert_eq!(app.metric(AGE).await, Some(0.0), "the outbox starts empty");
    assert_eq!(
        app.metric("cache_outbox_retention_seconds").await,
        Some(10.0)
    );

    app.put("first", "a", None).await;
    app.clock.advance(Duration::from_secs(4));
    app.put("second", "b", None).await;
    app.clock.advance(Duration::from_secs(3));
    testkit::eventually("the first write's age, by the app's clock", || async {
        app.metric(AGE).await == Some(7.0)
    })
    .await;
    assert_eq!(
        app.metric(AGED).await,
        Some(0.0),
        "nothing is past the retention yet"
    );

    // Past the retention (10 s) for the first write only.
    app.clock.advance(Duration::from_secs(4));
    testkit::eventually("the second write is the oldest left", || async {
        app.metric(AGE).await == Some(7.0) && app.metric(AGED).await == Some(1.0)
    })
    .await;
    app.clock.advance(Duration::from_secs(4));
    testkit::eventually("the outbox is empty", || async {
        app.metric(AGE).await == Some(0.0) && app.metric(AGED).await == Some(2.0)
    })
    .await;
}

testkit::on_both_engines!(
    the_routine_replay_sends_what_redis_did_not_take,
    after_redis_restarts_every_change_is_sent_again,
    the_outbox_metrics_follow_its_oldest_entry_and_the_replays,
);
