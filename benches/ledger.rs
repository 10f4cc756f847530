//! Criterion benchmarks of the ledger's hot paths.
//!
//!     cargo bench --bench ledger
//!
//! - `append`: durable appends of 256-byte entries from many concurrent tasks
//!   (each batch fsync'd with a new signed checkpoint), reported per entry.
//! - `proof`: inclusion and consistency proof generation at random indexes
//!   in a log of BENCH_LOG_SIZE entries (default 10,000,000), built once and
//!   kept under target/bench-data/ for later runs.
//! - `verify`: inclusion and consistency proof verification.

mod common;

use common::{bench_dir, big_log, runtime};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng as _, SeedableRng as _};
use std::time::{Duration, Instant};
use vouch_ledger::store::Ledger;
use vouch_ledger::{verify_consistency, verify_inclusion};

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    let ledger = Ledger::open(dir.path(), common::signer()).unwrap();
    let rt = runtime();
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for tasks in [64usize, 512] {
        g.bench_function(format!("256B/{tasks}-submitters"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                rt.block_on(async {
                    let per = iters.div_ceil(tasks as u64);
                    let hs: Vec<_> = (0..tasks)
                        .map(|t| {
                            let l = ledger.clone();
                            tokio::spawn(async move {
                                for n in 0..per {
                                    let mut e = format!("{t} {n} ").into_bytes();
                                    e.resize(256, b'.');
                                    l.append(e).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for h in hs {
                        h.await.unwrap();
                    }
                });
                // Scale to the requested iteration count.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (iters.div_ceil(tasks as u64) * tasks as u64) as f64)
            })
        });
    }
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let size: u64 = std::env::var("BENCH_LOG_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let (ledger, _db) = big_log(size);
    let size = ledger.size();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut g = c.benchmark_group(format!("proof/{size}"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("inclusion", |b| {
        b.iter_batched(
            || rng.gen_range(0..size),
            |i| ledger.inclusion_proof(i, size).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("consistency", |b| {
        b.iter_batched(
            || rng.gen_range(1..size),
            |m| ledger.consistency_proof(m, size).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // The machine has two cores: proofs per second of the whole process.
    g.bench_function("inclusion/2-threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let ledger = &ledger;
                    s.spawn(move || {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                        for _ in 0..iters.div_ceil(2) {
                            ledger.inclusion_proof(rng.gen_range(0..size), size).unwrap();
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();

    let root = ledger.root();
    let i = size / 3;
    let entry = ledger.entry(i).unwrap().unwrap();
    let inc = ledger.inclusion_proof(i, size).unwrap();
    let m = size / 2 + 12345;
    let (old_root, con) = (ledger.root_at(m).unwrap(), ledger.consistency_proof(m, size).unwrap());
    let mut g = c.benchmark_group(format!("verify/{size}"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("inclusion", |b| {
        b.iter(|| verify_inclusion(&entry, i, size, &inc, &root).unwrap())
    });
    g.bench_function("consistency", |b| {
        b.iter(|| verify_consistency(m, size, &con, &old_root, &root).unwrap())
    });
    g.finish();
}

criterion_group!(benches, append, proofs);
criterion_main!(benches);
