//! Micro-benchmarks of writing a JSON string: [`platform::json::push_string`]
//! against serde_json, for a short value, the 1 KiB value of the API's POST
//! benchmark, and 64 KiB; all printable ASCII, as most values are.
//!
//! `cargo bench -p platform --bench json`; `scripts/bench` measures the whole
//! service.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn string_writing(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_string");
    for len in [16, 1024, 64 * 1024] {
        let text: String = ('!'..='~')
            .cycle()
            .filter(|&c| c != '"' && c != '\\')
            .take(len)
            .collect();
        let mut out = Vec::with_capacity(len + 2);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("push_string_{len}"), |b| {
            b.iter(|| {
                out.clear();
                platform::json::push_string(&mut out, black_box(&text));
            });
        });
        group.bench_function(format!("serde_json_{len}"), |b| {
            b.iter(|| {
                out.clear();
                serde_json::to_writer(&mut out, black_box(&text))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, string_writing);
criterion_main!(benches);
