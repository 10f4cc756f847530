//! What the benches share: the bench data directory (on the real disk, not
//! a tmpfs) and a big log built once and reused across runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use vouch_ledger::store::Ledger;
use vouch_ledger::NoteSigner;

/// The benches' log key.
pub fn signer() -> NoteSigner {
    NoteSigner::new("bench.local/vouch", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap()
}

/// A runtime with one worker per core of this machine (two).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `target/bench-data`, created if missing.
pub fn bench_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A log of `size` 64-byte entries, built once and reused across runs, in a
/// RocksDB instance that also has the registry's column families (so a
/// registry can serve it). Returns the ledger and its database.
pub fn big_log(size: u64) -> (Ledger, Arc<rocksdb::DB>) {
    let dir = bench_dir().join(format!("ledger-{size}"));
    let mut families = vouch_ledger::store::column_families();
    families.extend(vouch::registry::meta::column_families());
    let db = Arc::new(rocksdb::DB::open_cf_descriptors(&vouch_ledger::store::db_options(), &dir, families).unwrap());
    let ledger = Ledger::open_in(db.clone(), signer()).unwrap();
    if ledger.size() < size {
        eprintln!("building a {size}-entry log in {} (once)...", dir.display());
        let rt = runtime();
        let start = Instant::now();
        rt.block_on(async {
            let tasks = 512u64;
            let from = ledger.size();
            let hs: Vec<_> = (0..tasks)
                .map(|t| {
                    let l = ledger.clone();
                    tokio::spawn(async move {
                        let mut i = from + t;
                        while i < size {
                            let mut e = format!("{i} ").into_bytes();
                            e.resize(64, b'.');
                            l.append(e).await.unwrap();
                            i += tasks;
                        }
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        eprintln!("built in {:.1?}", start.elapsed());
    }
    (ledger, db)
}
