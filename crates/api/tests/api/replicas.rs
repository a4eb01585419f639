//! Two replicas, one Redis, one store: the L1 caches stay coherent, cold
//! keys are loaded once, and everything converges after Redis restarts.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use crate::common::{Engine, Options, TestApp, spawn_app, spawn_replica};
use store::domain::Key;

/// L1 entries live this long (the default).
const L1_TTL: Duration = Duration::from_millis(1000);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Kills the L1 invalidation connection of replica `pod` in Redis.
async fn kill_tracking_connection(app: &TestApp, pod: &str) {
    let mut redis = app.redis_connection().await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut redis)
        .await
        .unwrap();
    let name = format!("name={}{pod}", api::TRACKING_CONNECTION_NAME_PREFIX);
    let id = clients
        .lines()
        .find(|line| line.split(' ').any(|field| field == name))
        .and_then(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("no {name} in CLIENT LIST:\n{clients}"))
        .to_owned();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(killed, 1);
}

async fn a_write_on_one_replica_is_seen_on_the_other_within_milliseconds(engine: Engine) {
    let mut options = Options::new(engine);
    options.pod_name = "replica-a";
    let a = spawn_app(options).await;
    let b = spawn_replica(&a, "replica-b").await;
    let key = "coherent";
    a.put(key, "0", None).await;

    let mut delays = Vec::with_capacity(1000);
    for i in 1..=1000 {
        if i == 500 {
            // Invalidations stop until B reconnects; B must not serve stale
            // values longer than its L1 TTL meanwhile.
            kill_tracking_connection(&a, "replica-b").await;
        }
        // B has the previous value, in its L1 from the last round.
        let value = i.to_string();
        a.put(key, &value, None).await;
        let written = Instant::now();
        loop {
            let (status, body) = b.get(key).await;
            assert_eq!(status, 200);
            if body["value"] == value.as_str() {
                break;
            }
            assert!(
                written.elapsed() < L1_TTL + Duration::from_secs(2),
                "B still serves {} for write {i}",
                body["value"]
            );
        }
        delays.push(written.elapsed());
    }
    delays.sort();
    let (p50, p99, max) = (
        percentile(&delays, 0.50),
        percentile(&delays, 0.99),
        delays[delays.len() - 1],
    );
    println!("time until B serves A's write, 1000 writes: p50 {p50:?}, p99 {p99:?}, max {max:?}");
    assert!(p99 <= Duration::from_millis(50), "p99 {p99:?}");
    assert!(max <= L1_TTL + Duration::from_millis(100), "max {max:?}");
    // B re-arms its tracking a reconnect interval after the kill, however
    // fast the writes after it went.
    b.wait_for_l1_armed().await;
}

async fn a_thousand_concurrent_reads_of_a_cold_key_read_the_store_once(engine: Engine) {
    let mut options = Options::new(engine);
    // A thousand requests at once on a debug build can hold a Redis reply
    // back past the production timeout; that would send a load to the store
    // for a reason this test is not about.
    options.redis_timeout_ms = 5000;
    // All thousand in flight at once, none shed.
    options.max_requests_in_flight = 2000;
    let app = spawn_app(options).await;
    // Written behind the caches' back: cold in L1 and Redis.
    let key = Key::parse("cold").unwrap();
    app.store
        .put(&key, "from the store", None, 1_800_000_000_000)
        .await
        .unwrap();
    let calls_before = app.redis_command_calls().await;
    let store_reads = "store_queries_total{operation=\"get\"}";
    let reads_before = app.metric(store_reads).await.unwrap();

    let url = app.url("/api/v1/data/cold");
    let requests = (0..1000).map(|_| {
        let http = app.http.clone();
        let url = url.clone();
        tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    });
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.unwrap()["value"], "from the store");
    }

    assert_eq!(
        app.metric(store_reads).await.unwrap() - reads_before,
        1.0,
        "store reads"
    );
    let calls = app.redis_command_calls().await;
    let made = |command: &str| calls.since(&calls_before, command);
    // Redis tells this replica about its own fill too: the load that
    // filled does not cache, the next one reads Redis and does.
    let redis_reads = made("get");
    println!("1000 concurrent cold reads: 1 store read, 1 Redis fill, {redis_reads} Redis reads");
    // The read found the key empty, so its fill is a `SET NX`
    // (docs/decisions.md, record 32).
    assert_eq!(made("set"), 1, "Redis fills");
    assert_eq!(made("evalsha") + made("eval"), 0, "Redis fills by script");
}

/// xorshift64*: reproducible randomness without a dependency.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

async fn replicas_converge_on_the_store_after_random_writes_and_redis_restarts(engine: Engine) {
    let mut options = Options::new(engine);
    options.pod_name = "replica-a";
    options.redis = Some(testkit::Persistence::AppendOnlyAlways);
    let mut a = spawn_app(options).await;
    let b = spawn_replica(&a, "replica-b").await;
    let keys: Vec<String> = (0..16).map(|i| format!("random:{i}")).collect();

    for round in 0..3_u64 {
        let mut tasks = Vec::new();
        for worker in 0..6_u64 {
            let replica = if worker % 2 == 0 {
                a.base_url.clone()
            } else {
                b.base_url.clone()
            };
            let http = a.http.clone();
            let keys = keys.clone();
            tasks.push(tokio::spawn(async move {
                let mut random = Random(0x9E37_79B9_7F4A_7C15 ^ (round * 31 + worker + 1));
                for step in 0..150 {
                    let key = &keys[random.below(keys.len() as u64) as usize];
                    match random.below(10) {
                        0 => {
                            http.delete(format!("{replica}/api/v1/data/{key}")).send().await.unwrap();
                        }
                        1..=4 => {
                            let body = serde_json::json!({"key": key, "value": format!("{round}-{worker}-{step}")});
                            let response = http.post(format!("{replica}/api/v1/data")).json(&body).send().await.unwrap();
                            assert_eq!(response.status(), 201);
                        }
                        _ => {
                            let status = http.get(format!("{replica}/api/v1/data/{key}")).send().await.unwrap().status();
                            assert!(status == 200 || status == 404, "{status}");
                        }
                    }
                }
            }));
        }
        if round < 2 {
            // Redis dies and comes back (with its data) while they work.
            tokio::time::sleep(Duration::from_millis(150)).await;
            a.redis_mut().kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.redis_mut().restart();
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    a.wait_for_redis(true).await;
    b.wait_for_redis(true).await;
    tokio::time::sleep(L1_TTL + Duration::from_millis(200)).await;

    for key in &keys {
        let stored = a
            .store
            .get(
                &Key::parse(key.as_str()).unwrap(),
                store::clock::Clock::now_ms(&store::clock::SystemClock),
            )
            .await
            .unwrap();
        for replica in [&a, &b] {
            let (status, body) = replica.get(key).await;
            match &stored {
                Some(record) => {
                    assert_eq!(status, 200, "{key} on {}", replica.base_url);
                    assert_eq!(
                        body["value"].as_str(),
                        Some(record.value.as_str()),
                        "{key} on {}: {body}, store version {}",
                        replica.base_url,
                        record.version
                    );
                }
                None => assert_eq!(status, 404, "{key} on {}: {body}", replica.base_url),
            }
        }
    }
}

/// Replica A's clock runs a minute ahead of B's. A writes and deletes a
/// key; B writes it again. B's write must get a version above A's delete,
/// or the delete's tombstone in Redis refuses to cache it for a minute.
async fn a_key_recreated_through_a_replica_whose_clock_is_behind_is_cached(engine: Engine) {
    let ahead = spawn_app(Options::new(engine)).await;
    let behind = spawn_replica(&ahead, "behind").await;
    ahead.clock.advance(Duration::from_secs(60));

    ahead.put("skewed", "first", None).await;
    assert_eq!(ahead.delete("skewed").await, 204);
    let written = behind.put("skewed", "again", None).await;
    let (_, first_read) = behind.get("skewed").await;
    let (_, second_read) = behind.get("skewed").await;
    assert_eq!(second_read["value"], "again");
    assert_eq!(
        second_read["cached"], true,
        "written {written}, then read {first_read} and {second_read}"
    );
    let mut redis = ahead.redis_connection().await;
    let cached: Option<String> = redis::cmd("GET")
        .arg("cache:skewed")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        cached
            .as_deref()
            .is_some_and(|entry| entry.ends_with(" again")),
        "{cached:?}"
    );
}

testkit::on_both_engines!(
    a_key_recreated_through_a_replica_whose_clock_is_behind_is_cached,
    a_write_on_one_replica_is_seen_on_the_other_within_milliseconds,
    a_thousand_concurrent_reads_of_a_cold_key_read_the_store_once,
    replicas_converge_on_the_store_after_random_writes_and_redis_restarts,
);
