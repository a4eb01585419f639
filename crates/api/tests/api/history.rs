//! The consistency contract, checked on recorded histories: two replicas
//! over one Redis and one store, many concurrent clients writing unique
//! values, deleting and reading a few keys (so that they collide), every
//! operation's replica, invocation, completion and result recorded, and the
//! history handed to `testkit::history`, which knows the contract and
//! nothing of how the service keeps it.
//!
//! Every setting: L1 on and off; Redis up, Redis SIGKILLed and restarted
//! from its append-only file twice during the run, and no Redis; SQLite and
//! PostgreSQL. `HISTORY_OPERATIONS` sets the operations per setting (20,000
//! by default, as CI runs it); for a long run:
//! `HISTORY_OPERATIONS=1000000 cargo test --release -p api --test api history -- --nocapture`.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Engine, Options, TestApp, spawn_app, spawn_replica_with};
use store::clock::Clock;
use store::domain::Key;
use testkit::Persistence;
use testkit::history::{self, Operation, Outcome, Report};

const KEYS: usize = 8;
pub(crate) const CLIENTS: usize = 16;
pub(crate) const L1_TTL_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RedisMode {
    Up,
    KilledTwice,
    Absent,
}

fn operations_per_setting() -> usize {
    std::env::var("HISTORY_OPERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20_000)
}

/// One client's loop: random operations on random replicas, `pause` apart,
/// until the run has done `total` operations (setting `done` to `total`
/// stops every client after its current operation).
pub(crate) async fn client(
    id: usize,
    replicas: Arc<[TestApp; 2]>,
    started: Instant,
    done: Arc<AtomicUsize>,
    total: usize,
    pause: Duration,
) -> Vec<Operation> {
    let mut rng = fastrand::Rng::with_seed(id as u64);
    let mut history = Vec::new();
    let mut sequence = 0;
    while done.fetch_add(1, Ordering::Relaxed) < total {
        let replica = rng.usize(0..2);
        let app = &replicas[replica];
        let key = format!("h{}", rng.usize(0..KEYS));
        let url = app.url(&format!("/api/v1/data/{key}"));
        let invoked = started.elapsed();
        let (outcome, detail) = match rng.u8(0..100) {
            0..45 => {
                sequence += 1;
                let value = format!("c{id}-{sequence}");
                let body = serde_json::json!({"key": key, "value": value});
                let response = app
                    .http
                    .post(app.url("/api/v1/data"))
                    .json(&body)
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 201 => {
                        let body = response.json::<serde_json::Value>().await.ok();
                        (Outcome::Written(value), body.as_ref().map(describe))
                    }
                    _ => (Outcome::Unknown { write: Some(value) }, None),
                }
            }
            45..90 => match app.http.get(&url).send().await {
                Ok(response) if response.status() == 200 => {
                    match response.json::<serde_json::Value>().await {
                        Ok(body) => (
                            Outcome::Read(body["value"].as_str().unwrap().to_owned()),
                            Some(describe(&body)),
                        ),
                        Err(_) => (Outcome::ReadFailed, None),
                    }
                }
                Ok(response) if response.status() == 404 => (Outcome::NotFound, None),
                _ => (Outcome::ReadFailed, None),
            },
            _ => match app
                .http
                .delete(&url)
                .send()
                .await
                .map(|r| r.status().as_u16())
            {
                Ok(204) => (Outcome::Deleted, None),
                Ok(404) => (Outcome::NotFound, None),
                _ => (Outcome::Unknown { write: None }, None),
            },
        };
        history.push(Operation {
            key,
            replica,
            invoked,
            completed: started.elapsed(),
            outcome,
            detail,
        });
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    history
}

/// A record body's version, and for a read the level that served it.
fn describe(body: &serde_json::Value) -> String {
    match body["source"].as_str() {
        Some(source) => format!("version {}, from {source}", body["version"]),
        None => format!("version {}", body["version"]),
    }
}

/// What the store and each replica hold for every key once the run is over
/// and the cross-replica bound has passed.
async fn final_states(replicas: &[TestApp; 2]) -> Vec<HashMap<String, Option<String>>> {
    let store = &replicas[0].store;
    let now_ms = replicas[0].clock.now_ms();
    let mut states = vec![HashMap::new(); 3];
    for i in 0..KEYS {
        let key = format!("h{i}");
        let stored = store
            .get(&Key::parse(key.as_str()).unwrap(), now_ms)
            .await
            .unwrap();
        states[0].insert(key.clone(), stored.map(|record| record.value));
        for (replica, app) in replicas.iter().enumerate() {
            let (status, body) = app.get(&key).await;
            let value = (status == 200).then(|| body["value"].as_str().unwrap().to_owned());
            states[replica + 1].insert(key.clone(), value);
        }
    }
    states
}

/// Moves both replicas' clocks on, a millisecond at a time, as time does,
/// until the task is aborted.
pub(crate) fn tick(replicas: &[TestApp; 2]) -> tokio::task::JoinHandle<()> {
    let clocks = [replicas[0].clock.clone(), replicas[1].clock.clone()];
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            clocks
                .iter()
                .for_each(|clock| clock.advance(Duration::from_millis(1)));
        }
    })
}

/// Adds to `report` every key whose final state in the store, or as either
/// replica reads it, is not the value of a last completed change.
pub(crate) async fn check_final_states(
    replicas: &[TestApp; 2],
    operations: &[Operation],
    report: &mut Report,
) {
    let states = final_states(replicas).await;
    for (name, state) in ["store", "replica a", "replica b"].iter().zip(&states) {
        for violation in history::check_final(operations, state) {
            report.violations.push(format!("{name}: {violation}"));
        }
    }
}

async fn run_setting(engine: Engine, l1: bool, redis: RedisMode) -> Report {
    let mut options = Options::new(engine);
    options.l1_ttl_ms = if l1 { L1_TTL_MS } else { 0 };
    options.redis = (redis != RedisMode::Absent).then_some(Persistence::AppendOnlyAlways);
    // Every request admitted: shedding is tested elsewhere.
    options.max_requests_in_flight = 10_000;
    let mut first = spawn_app(options.clone()).await;
    options.pod_name = "replica-b";
    let second = spawn_replica_with(&first, &options).await;
    let mut server = first.redis.take();
    let replicas = Arc::new([first, second]);
    let ticking = tick(&replicas);

    let total = operations_per_setting();
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client(
                id,
                replicas.clone(),
                started,
                done.clone(),
                total,
                Duration::ZERO,
            ))
        })
        .collect();
    if redis == RedisMode::KilledTwice {
        let server = server.as_mut().unwrap();
        for third in 1..=2 {
            while done.load(Ordering::Relaxed) < total * third / 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::task::block_in_place(|| {
                server.kill();
                std::thread::sleep(Duration::from_millis(300));
                server.restart();
            });
        }
    }
    let mut operations = Vec::with_capacity(total);
    for client in clients {
        operations.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    if redis != RedisMode::Absent {
        for app in replicas.iter() {
            app.wait_for_redis(true).await;
        }
    }
    let bound = if l1 {
        // An entry another replica cached just before a change lives out
        // its L1 TTL at most when no invalidation reaches it (no Redis, or
        // the tracking connection down), plus the load that filled it.
        Duration::from_millis(L1_TTL_MS + 250)
    } else {
        Duration::ZERO
    };
    tokio::time::sleep(bound + Duration::from_millis(100)).await;
    let mut report = history::check(&operations, bound);
    check_final_states(&replicas, &operations, &mut report).await;
    ticking.abort();
    println!(
        "{engine:?}, L1 {}, Redis {redis:?}: {} operations in {:.1} s, {} reads checked, \
         {} violations; cross-replica window max {:?}, p99 {:?} ({} reads)",
        if l1 { "on" } else { "off" },
        report.operations,
        elapsed.as_secs_f64(),
        report.reads_checked,
        report.violations.len(),
        report.largest_window(),
        report.window_p99(),
        report.cross_replica_windows.len(),
    );
    drop(server);
    report
}

async fn every_setting_keeps_the_contract(engine: Engine) {
    let mut failures = Vec::new();
    for l1 in [true, false] {
        for redis in [RedisMode::Up, RedisMode::KilledTwice, RedisMode::Absent] {
            let report = run_setting(engine, l1, redis).await;
            assert!(report.reads_checked > 0);
            failures.extend(
                report
                    .violations
                    .iter()
                    .take(10)
                    .map(|violation| format!("L1 {l1}, Redis {redis:?}: {violation}")),
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_histories_keep_the_consistency_contract() {
    every_setting_keeps_the_contract(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_histories_keep_the_consistency_contract() {
    every_setting_keeps_the_contract(Engine::Postgres).await;
}
