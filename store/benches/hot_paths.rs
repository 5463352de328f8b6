//! Micro-benchmarks of the store's hot paths (criterion). Run with
//! `cargo bench --profile dev --workspace --bench hot_paths` (the dev profile is the one the
//! RocksDB build is cached for; it is optimised). `cargo test --workspace --benches` runs each
//! once as a smoke test.
//!
//! These time the store alone; `mainstay bench` compares whole clusters with etcd.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use mainstay_store::watch::{WatchHub, WatchHubConfig, WatchSpec};
use mainstay_store::{Command, PutRequest, RangeRequest, Store, StoreConfig};
use tokio::sync::mpsc;

const KEYS: u64 = 100_000;
const VALUE: [u8; 256] = [7; 256];

fn key(i: u64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

fn put(i: u64) -> Command {
    Command::Put(PutRequest {
        key: key(i),
        value: VALUE.to_vec(),
        ..Default::default()
    })
}

/// A store as a member runs it: no fsync per batch (the Raft log is the durable record).
fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = StoreConfig {
        sync_writes: false,
        ..StoreConfig::default()
    };
    let store = Store::open(dir.path(), config).expect("opening the store");
    (dir, store)
}

/// A store holding `KEYS` keys, each written twice (so there is history to read at an old
/// revision); returns the store and a revision from the first pass.
fn loaded() -> (tempfile::TempDir, Store, i64) {
    let (dir, store) = open();
    let mut index = 0;
    let mut old = 0;
    for pass in 0..2 {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
            index += 1;
            let commands: Vec<Command> = chunk.iter().map(|&i| put(i)).collect();
            let applied = store.apply(index, &commands);
            if pass == 0 {
                old = applied.revision;
            }
        }
    }
    (dir, store, old)
}

fn apply_put_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply put batch");
    for batch in [1u64, 64, 512] {
        let (_dir, store) = open();
        let mut index = 0u64;
        let mut next = 0u64;
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_batched(
                || {
                    let commands: Vec<Command> =
                        (0..batch).map(|i| put((next + i) % KEYS)).collect();
                    next += batch;
                    commands
                },
                |commands| {
                    index += 1;
                    store.apply(index, &commands)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn ranges(c: &mut Criterion) {
    let (_dir, store, old) = loaded();
    let mut group = c.benchmark_group("range");
    let mut i = 0u64;
    let mut next_key = || {
        i = (i + 7919) % KEYS;
        key(i)
    };
    group.bench_function("one key at head", |b| {
        b.iter(|| {
            store
                .range(&RangeRequest {
                    key: next_key(),
                    ..Default::default()
                })
                .expect("range")
        })
    });
    group.bench_function("one key at an old revision", |b| {
        b.iter(|| {
            store
                .range(&RangeRequest {
                    key: next_key(),
                    revision: old,
                    ..Default::default()
                })
                .expect("range")
        })
    });
    group.bench_function("1000 keys at head", |b| {
        b.iter(|| {
            let start = next_key();
            let first = u64::from_be_bytes(start.clone().try_into().expect("8 bytes"));
            store
                .range(&RangeRequest {
                    key: start,
                    range_end: key(first + 1000),
                    ..Default::default()
                })
                .expect("range")
        })
    });
    // count_only is answered from the in-memory key index alone: no value is read.
    group.bench_function("key-index lookup (count_only)", |b| {
        b.iter(|| {
            store
                .range(&RangeRequest {
                    key: next_key(),
                    count_only: true,
                    ..Default::default()
                })
                .expect("range")
        })
    });
    group.finish();
}

fn watch_fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("watch fan-out of one event");
    for watchers in [1usize, 1_000, 10_000] {
        let (_dir, store) = open();
        let store = Arc::new(store);
        let hub = WatchHub::new(store.clone(), WatchHubConfig::default());
        let mut receivers = Vec::new();
        // 100 watchers per stream, as the harness opens them.
        for w in 0..watchers {
            if w % 100 == 0 {
                let (tx, rx) = mpsc::channel(1 << 16);
                receivers.push((hub.new_stream(), tx, rx));
            }
            let (stream, tx, _) = receivers.last().expect("a stream");
            hub.watch(
                *stream,
                w as i64,
                WatchSpec {
                    key: key(1),
                    range_end: Vec::new(),
                    start_revision: 1,
                    filter_put: false,
                    filter_delete: false,
                },
                tx.clone(),
            )
            .expect("watch");
        }
        let mut index = 0;
        group.throughput(Throughput::Elements(watchers as u64));
        group.bench_with_input(BenchmarkId::from_parameter(watchers), &watchers, |b, _| {
            b.iter_batched(
                || {
                    index += 1;
                    let applied = store.apply(index, &[put(1)]);
                    // Drain what the previous iteration delivered, outside the timing.
                    for (_, _, rx) in &mut receivers {
                        while rx.try_recv().is_ok() {}
                    }
                    applied
                },
                |applied| hub.notify(applied.revision, &applied.events),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, apply_put_batch, ranges, watch_fan_out);
criterion_main!(benches);
