//! When a read's fill of Redis goes out: after the read is answered, or
//! before it for a value the fills in flight cannot take. A Redis that
//! holds its writes back (`CLIENT PAUSE ... WRITE`, reads still answered)
//! tells the two apart: a read that waited for its fill waited for the
//! pause.

use std::time::{Duration, Instant};

use store::domain::Key;

use crate::common::{Engine, Options, TestApp, spawn_app};

/// How long Redis holds writes back: far longer than a read of the store,
/// and within the Redis timeout below, so that the held fill is not a
/// failure that takes Redis down.
const PAUSE: Duration = Duration::from_secs(3);

/// The fills sent before their reads were answered.
const BEFORE_ANSWER: &str = "cache_fills_before_answer_total";

async fn app_with_a_record(value: &str) -> TestApp {
    let mut options = Options::new(Engine::Sqlite);
    options.redis_timeout_ms = 10_000;
    let app = spawn_app(options).await;
    // Straight into the store: Redis holds nothing under the key.
    let key = Key::parse("cold").unwrap();
    app.store
        .put(&key, value, None, 1_800_000_000_000)
        .await
        .unwrap();
    app
}

/// A timed read of the key [`app_with_a_record`] wrote, while Redis holds
/// writes back.
async fn read_while_redis_holds_writes(app: &TestApp) -> (serde_json::Value, Duration) {
    let mut redis = app.redis_connection().await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE.as_millis().to_string())
        .arg("WRITE")
        .query_async(&mut redis)
        .await
        .unwrap();
    let started = Instant::now();
    let (status, body) = app.get("cold").await;
    let took = started.elapsed();
    assert_eq!((status, &body["source"]), (200, &"store".into()), "{body}");
    (body, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_from_the_store_is_answered_before_its_fill() {
    let app = app_with_a_record("from the store").await;
    let (body, took) = read_while_redis_holds_writes(&app).await;
    assert_eq!(body["value"], "from the store");
    assert!(took < PAUSE / 2, "the read waited {took:?} for its fill");
    // Held by the pause, the fill counts its key and entry (and its
    // overhead) until it lands.
    let held = app.metric("cache_fills_in_flight_bytes").await;
    let key_and_value = ("cold".len() + "from the store".len()) as f64;
    assert!(
        held.is_some_and(|bytes| bytes > key_and_value),
        "fills in flight hold {held:?} bytes"
    );
    // The fill lands once Redis takes writes again.
    app.wait_for_fill("cold").await;
    assert_eq!(app.get("cold").await.1["cached"], true);
    testkit::eventually("the landed fill holds nothing", || async {
        app.metric("cache_fills_in_flight_bytes").await == Some(0.0)
    })
    .await;
    assert_eq!(app.metric(BEFORE_ANSWER).await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_larger_than_the_fills_in_flight_may_hold_is_filled_before_the_answer() {
    // Above the fills' bound (`cache::fills::MAX_IN_FLIGHT_BYTES`, 4 MiB).
    let large = "x".repeat(5 << 20);
    let app = app_with_a_record(&large).await;
    assert_eq!(app.metric(BEFORE_ANSWER).await, Some(0.0));
    let (body, took) = read_while_redis_holds_writes(&app).await;
    assert_eq!(body["value"].as_str().map(str::len), Some(large.len()));
    assert!(
        took >= PAUSE / 2,
        "answered in {took:?}, before its fill could land"
    );
    assert_eq!(app.metric(BEFORE_ANSWER).await, Some(1.0));
    assert_eq!(app.get("cold").await.1["cached"], true);
}
