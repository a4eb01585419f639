//! Record writes on each engine: 64 writes of distinct keys made at once
//! (they queue for the writer and share statements: group commit) against
//! the same 64 made one after another (each its own statement), in one run,
//! so that their ratio does not depend on the machine's speed that day.
//!
//! `cargo bench -p store --bench writes`; PostgreSQL comes from
//! `TEST_POSTGRES_URL` (`scripts/bench micro` starts one and sets it).
//! `scripts/bench api` measures the whole write path under HTTP load.

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use store::domain::Key;
use store::{Store, StoreOptions};
use testkit::{EmptyDatabase, Engine};

const WRITES: usize = 64;

fn keys() -> Vec<Key> {
    (0..WRITES)
        .map(|i| Key::parse(format!("bench:{i}")).expect("a valid key"))
        .collect()
}

fn writes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    for (engine, group_name) in [
        (Engine::Sqlite, "sqlite_writes_1KiB"),
        (Engine::Postgres, "postgres_writes_1KiB"),
    ] {
        let database = runtime.block_on(EmptyDatabase::create(engine));
        let store = runtime
            .block_on(Store::connect(database.url(), StoreOptions::point_reads(8)))
            .expect("the store opens");
        let mut group = c.benchmark_group(group_name);
        if engine == Engine::Postgres {
            // Each one-by-one round waits for 64 commits to reach
            // PostgreSQL's log on disk: criterion's default number of
            // samples would make this group far longer than the others.
            group.sample_size(10);
        }
        write_both_ways(&mut group, &runtime, &store);
        group.finish();
        runtime.block_on(store.close());
    }
}

fn write_both_ways(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    store: &Store,
) {
    let keys = keys();
    let value = "v".repeat(1024);
    group.throughput(Throughput::Elements(WRITES as u64));
    group.bench_function("64_at_once", |b| {
        b.iter_custom(|rounds| {
            runtime.block_on(async {
                let started = Instant::now();
                for round in 0..rounds {
                    let writes = keys.iter().map(|key| {
                        let store = store.clone();
                        let (key, value) = (key.clone(), value.clone());
                        tokio::spawn(async move { store.put(&key, value, None, now(round)).await })
                    });
                    for write in writes.collect::<Vec<_>>() {
                        write
                            .await
                            .expect("the task ends")
                            .expect("the write succeeds");
                    }
                }
                started.elapsed()
            })
        });
    });
    group.bench_function("64_one_by_one", |b| {
        b.iter_custom(|rounds| {
            runtime.block_on(async {
                let started = Instant::now();
                for round in 0..rounds {
                    for key in &keys {
                        store
                            .put(key, value.clone(), None, now(round))
                            .await
                            .expect("the write succeeds");
                    }
                }
                started.elapsed()
            })
        });
    });
}

/// A clock that moves on with every round, as a writer's does.
fn now(round: u64) -> i64 {
    1_800_000_000_000 + i64::try_from(round).unwrap_or(i64::MAX)
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = writes
}
criterion_main!(benches);
