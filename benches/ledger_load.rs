//! Ledger load benchmark: durable append throughput with concurrent
//! submitters, submit-to-signed-checkpoint latency percentiles, and bytes on
//! disk per entry after compaction.
//!
//!     cargo bench --bench ledger_load
//!
//! Environment: LOAD_SECS (default 10), LOAD_TASKS (default 512),
//! LOAD_ENTRY_BYTES (default 256), LOAD_DIR (default: target/bench-data, a
//! real disk: /tmp may be a tmpfs where fsync costs nothing).
//!
//! Every append is acknowledged only after its batch (entries, tiles and a
//! newly signed checkpoint) is written with the WAL fsync'd, so the ack time
//! is also the time the entry is covered by a signed checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vouch_ledger::store::{column_families, db_options, Ledger, CF_ENTRIES, CF_TILES};
use vouch_ledger::NoteSigner;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An incompressible entry (xorshift bytes), so bytes-on-disk is honest.
fn entry(task: u64, n: u64, len: usize) -> Vec<u8> {
    let mut x = (task << 32 | n) ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` compatibility
    }
    let secs = env("LOAD_SECS", 10);
    let tasks = env("LOAD_TASKS", 512) as usize;
    let entry_bytes = env("LOAD_ENTRY_BYTES", 256) as usize;
    let base = std::env::var("LOAD_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    let db = Arc::new(rocksdb::DB::open_cf_descriptors(&db_options(), dir.path(), column_families()).unwrap());
    let signer = NoteSigner::new("bench.local/vouch", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
    let ledger = Ledger::open_in(db.clone(), signer).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    println!("ledger_load: {tasks} submitters, {entry_bytes}-byte entries, {secs} s, WAL synced on every batch");
    let started = Instant::now();
    let latencies: Vec<Duration> = rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (ledger, stop) = (ledger.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let e = entry(t as u64, n, entry_bytes);
                        let t0 = Instant::now();
                        ledger.append(e).await.expect("append");
                        lat.push(t0.elapsed());
                        n += 1;
                    }
                    lat
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let mut lat = latencies;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let n = lat.len() as u64;
    println!(
        "appended {n} entries in {elapsed:.2?}: {:.0} entries/s",
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "submit -> durable + covered by a signed checkpoint: p50 {:.2?}  p99 {:.2?}  p99.9 {:.2?}  max {:.2?}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        lat[lat.len() - 1]
    );
    assert_eq!(ledger.size(), n, "every acknowledged append is in the tree");

    // Bytes on disk per entry, after flushing and compacting everything.
    for cf in [CF_ENTRIES, CF_TILES] {
        let h = db.cf_handle(cf).unwrap();
        db.flush_cf(h).unwrap();
        db.compact_range_cf(h, None::<&[u8]>, None::<&[u8]>);
    }
    let sst = |cf: &str| {
        db.property_int_value_cf(db.cf_handle(cf).unwrap(), "rocksdb.total-sst-files-size")
            .unwrap()
            .unwrap_or(0)
    };
    let (entries, tiles) = (sst(CF_ENTRIES), sst(CF_TILES));
    println!(
        "on disk after compaction: hashes (tiles) {:.2} B/entry; entries {:.2} B/entry for {entry_bytes}-byte random entries",
        tiles as f64 / n as f64,
        entries as f64 / n as f64
    );
}
