//! Redis dies under load and comes back: nothing fails, nothing stale.
//!
//! A stream of reads and writes runs while `redis-server` is killed with
//! SIGKILL and later restarted. The server keeps an fsync-always append-only
//! file, so it comes back holding exactly what it had when it died: older
//! versions of every key written during the outage. The API must have
//! served every request meanwhile, must report `redis_connected` 0 then 1,
//! and must never serve those older versions after the restart.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Engine, Options, TestApp, spawn_app};
use testkit::Persistence;
use tokio::sync::Mutex;

const KEYS: usize = 40;

#[derive(Default)]
struct Tally {
    reads: AtomicU64,
    failed_reads: AtomicU64,
    writes: AtomicU64,
    failed_writes: AtomicU64,
    slowest_ms: AtomicU64,
}

impl Tally {
    fn took(&self, started: Instant) {
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.slowest_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

fn key(i: usize) -> String {
    format!("outage:{i}")
}

async fn read_loop(app: Arc<TestApp>, tally: Arc<Tally>, stop: Arc<AtomicBool>, seed: usize) {
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i = (i * 7 + 3) % KEYS;
        let started = Instant::now();
        let (status, _) = app.get(&key(i)).await;
        tally.took(started);
        tally.reads.fetch_add(1, Ordering::Relaxed);
        if status != 200 {
            tally.failed_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn write_loop(
    app: Arc<TestApp>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    latest: Arc<Mutex<HashMap<String, String>>>,
) {
    let mut n = 0_usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (key, value) = (key(n % KEYS), format!("value-{n}"));
        let started = Instant::now();
        let response = app
            .post_json(&serde_json::json!({"key": key, "value": value}))
            .await;
        tally.took(started);
        tally.writes.fetch_add(1, Ordering::Relaxed);
        if response.status() == 201 {
            latest.lock().await.insert(key, value);
        } else {
            tally.failed_writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn killing_redis_under_load_loses_nothing(engine: Engine) {
    let mut options = Options::new(engine);
    options.redis = Some(Persistence::AppendOnlyAlways);
    let mut app = spawn_app(options).await;

    let latest = Arc::new(Mutex::new(HashMap::new()));
    for i in 0..KEYS {
        app.put(&key(i), "initial", None).await;
        latest.lock().await.insert(key(i), "initial".to_owned());
    }
    let mut redis_handle = app.redis.take().expect("redis-server");
    let app = Arc::new(app);

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for seed in 0..3 {
        load.push(tokio::spawn(read_loop(
            app.clone(),
            tally.clone(),
            stop.clone(),
            seed,
        )));
    }
    load.push(tokio::spawn(write_loop(
        app.clone(),
        tally.clone(),
        stop.clone(),
        latest.clone(),
    )));

    tokio::time::sleep(Duration::from_millis(300)).await;
    redis_handle.kill();
    app.wait_for_redis(false).await;
    let writes_before_outage = tally.writes.load(Ordering::Relaxed);
    // Keep writing for a while with Redis gone.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let writes_during_outage = tally.writes.load(Ordering::Relaxed) - writes_before_outage;
    redis_handle.restart();
    app.wait_for_redis(true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let reads = tally.reads.load(Ordering::Relaxed);
    let writes = tally.writes.load(Ordering::Relaxed);
    println!(
        "{reads} reads, {writes} writes ({writes_during_outage} during the outage), slowest request {} ms",
        tally.slowest_ms.load(Ordering::Relaxed)
    );
    assert!(
        writes_during_outage > 0,
        "the outage saw no writes; the test proved nothing"
    );
    assert_eq!(
        tally.failed_reads.load(Ordering::Relaxed),
        0,
        "failed reads"
    );
    assert_eq!(
        tally.failed_writes.load(Ordering::Relaxed),
        0,
        "failed writes"
    );
    // A hang detector, not a benchmark: Redis waits are bounded by the 200 ms
    // command timeout, so no request should come anywhere near 3 s.
    assert!(tally.slowest_ms.load(Ordering::Relaxed) < 3000);

    // Every key reads back as last written, twice: once filling Redis, once
    // from it.
    let latest = latest.lock().await.clone();
    for (key, value) in &latest {
        for _ in 0..2 {
            let (status, body) = app.get(key).await;
            assert_eq!(status, 200, "{key}");
            assert_eq!(
                body["value"].as_str(),
                Some(value.as_str()),
                "{key} is stale"
            );
        }
    }
    // The reads above filled Redis after they were answered.
    testkit::eventually("Redis is in use again", || async {
        app.get(&key(1)).await.1["cached"] == true
    })
    .await;
}

async fn the_api_starts_and_serves_while_redis_is_down(engine: Engine) {
    let mut app = spawn_app(Options::new(engine)).await;
    app.redis_mut().kill();
    app.wait_for_redis(false).await;

    app.put("while-down", "stored anyway", None).await;
    let (status, body) = app.get("while-down").await;
    assert_eq!(status, 200);
    assert_eq!(body["cached"], false);
    let (status, ready) = app.get_json("/ready").await;
    assert_eq!(status, 200, "Redis down must not make the API unready");
    assert_eq!(ready["checks"]["redis"], "unavailable");
    let (_, test) = app.get_json("/api/v1/cache/test").await;
    assert_eq!(test["redis_connected"], false);

    app.redis_mut().restart();
    app.wait_for_redis(true).await;
    assert_eq!(app.get("while-down").await.1["cached"], false);
    app.wait_for_fill("while-down").await;
    assert_eq!(app.get("while-down").await.1["cached"], true);
}

testkit::on_both_engines!(
    killing_redis_under_load_loses_nothing,
    the_api_starts_and_serves_while_redis_is_down,
);
