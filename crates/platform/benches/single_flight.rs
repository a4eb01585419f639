//! Micro-benchmark of a coalesced load as a Redis miss makes one with L1
//! on: a lone caller, nobody to share with, a key no other load holds.
//! Through [`SingleFlight`], which the API's L1 uses, and through moka's
//! `try_get_with` (what the L1 used before; its init always "fails", so
//! that moka never inserts the result, as the L1 needed).
//!
//! `cargo bench -p platform --bench single_flight`; `scripts/bench api`
//! measures the whole service.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use platform::single_flight::SingleFlight;

/// Keys the loads cycle through, as misses of different keys do.
const KEYS: usize = 1024;

fn lone_load(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("miss:{i}")).collect();
    let mut group = c.benchmark_group("coalesced_load");

    let single_flight = Arc::new(SingleFlight::<Arc<u64>>::default());
    let mut next = 0;
    group.bench_function("single_flight", |b| {
        b.iter(|| {
            next = (next + 1) % KEYS;
            let key = keys[next].as_str();
            block_on(single_flight.run(key, || async { (Arc::new(black_box(7)), None) }))
        });
    });

    let moka = moka::future::Cache::<String, Arc<u64>>::builder()
        .max_capacity(16 * 1024 * 1024)
        .time_to_live(std::time::Duration::from_secs(1))
        .build();
    let mut next = 0;
    group.bench_function("moka_try_get_with", |b| {
        b.iter(|| {
            next = (next + 1) % KEYS;
            let key = keys[next].as_str();
            block_on(moka.try_get_with(key.to_owned(), async {
                Err::<Arc<u64>, _>(Arc::new(black_box(7_u64)))
            }))
        });
    });
    group.finish();
}

criterion_group!(benches, lone_load);
criterion_main!(benches);
