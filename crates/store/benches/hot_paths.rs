//! Micro-benchmarks of the code every cached GET runs: key validation at the
//! edge and the cache entry encoding (written on fills and writes, decoded on
//! every Redis hit).
//!
//! `cargo bench -p store --bench hot_paths`; `scripts/bench` measures the
//! whole service.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use store::cache::entry::{decode, encode_live};
use store::domain::{Key, Record};

fn key_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("key_parse");
    for (name, raw) in [
        ("ascii_8", "user:123".to_owned()),
        ("ascii_256", "k".repeat(256)),
        ("utf8_30", "ключ:日本語:".repeat(3)),
    ] {
        group.throughput(Throughput::Bytes(raw.len() as u64));
        group.bench_function(name, |b| {
            // The edge owns a fresh String per request, so clone outside the
            // timed part.
            b.iter_batched(
                || raw.clone(),
                |raw| Key::parse(black_box(raw)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn record(value_len: usize) -> Record {
    Record {
        value: "v".repeat(value_len),
        version: 1_764_000_000_000_123,
        updated_at_ms: 1_764_000_000_000,
        expires_at_ms: Some(1_764_000_360_000),
    }
}

fn entry_encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_entry");
    for value_len in [16, 1024, 64 * 1024] {
        let record = record(value_len);
        let encoded = encode_live(&record);
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_function(format!("encode_{value_len}"), |b| {
            b.iter(|| encode_live(black_box(&record)));
        });
        group.bench_function(format!("decode_{value_len}"), |b| {
            b.iter(|| decode(black_box(&encoded)));
        });
    }
    group.finish();
}

criterion_group!(benches, key_validation, entry_encoding);
criterion_main!(benches);
