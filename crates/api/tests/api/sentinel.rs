//! Two replicas on a Redis group under Sentinel: the primary killed under
//! load, every request still answered, the cache back on the new primary,
//! and no replica left reading an old value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use store::clock::Clock;
use testkit::SentinelGroup;

use crate::common::{Engine, Options, TestApp, spawn_app_on_sentinels};

const PASSWORD: &str = "group-secret";
const KEYS: usize = 20;

/// Writes and reads `KEYS` keys through both replicas until `stop`,
/// counting the requests not answered with success.
async fn load(replicas: Arc<[TestApp; 2]>, stop: Arc<AtomicBool>, failed: Arc<AtomicU64>) {
    let mut round = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        for key in 0..KEYS {
            let app = &replicas[key % 2];
            let body = json!({"key": format!("k{key}"), "value": format!("v{round}")});
            let written = app.post_json(&body).await.status().as_u16();
            let (read, _) = replicas[(key + 1) % 2].get(&format!("k{key}")).await;
            if written != 201 || read != 200 {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        round += 1;
    }
}

/// Whether the primary on `port` holds the cache entry of `key`.
fn cached_on(port: u16, key: &str) -> bool {
    let client = redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{port}/")).unwrap();
    let Ok(mut connection) = client.get_connection() else {
        return false;
    };
    redis::cmd("EXISTS")
        .arg(format!("{}{key}", store::cache::KEY_PREFIX))
        .query::<bool>(&mut connection)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_under_load_fails_no_request_and_leaves_no_stale_read() {
    let mut group = tokio::task::spawn_blocking(|| SentinelGroup::start(Some(PASSWORD), None))
        .await
        .unwrap();
    let mut options = Options::new(Engine::Sqlite);
    options.pod_name = "replica-a";
    let a = spawn_app_on_sentinels(&options, &group, PASSWORD, None).await;
    options.pod_name = "replica-b";
    let b = spawn_app_on_sentinels(&options, &group, PASSWORD, Some(&a.database_url)).await;
    let replicas = Arc::new([a, b]);
    let (stop, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = tokio::spawn(load(replicas.clone(), stop.clone(), failed.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed = Instant::now();
    let (_, new) = tokio::task::block_in_place(|| group.fail_over());
    // A write through each replica reaches the new primary's cache.
    for (at, app) in replicas.iter().enumerate() {
        let key = format!("probe-{at}");
        testkit::eventually("a write through the API reaches the new primary", || {
            let key = key.clone();
            async move {
                app.put(&key, "after the failover", None).await;
                cached_on(new, &key)
            }
        })
        .await;
    }
    let back = killed.elapsed();
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");

    // Both replicas' invalidations flow from the new primary; every key
    // reads as the store holds it, through either.
    for app in replicas.iter() {
        app.wait_for_l1_armed().await;
    }
    for key in 0..KEYS {
        let key = store::domain::Key::parse(format!("k{key}")).unwrap();
        let now_ms = replicas[0].clock.now_ms();
        let stored = replicas[0].store.get(&key, now_ms).await.unwrap();
        let stored = stored.map(|record| record.value);
        for app in replicas.iter() {
            let (status, body) = app.get(key.as_str()).await;
            assert_eq!(status, 200, "{key}");
            assert_eq!(body["value"].as_str(), stored.as_deref(), "{key}");
        }
    }
    eprintln!("the API wrote to Redis again {back:?} after the primary was killed");
}
