//! One suite over both stores of the ledger's rows: RocksDB (the data
//! directory's, as `vouch serve` keeps it by default) and a real
//! PostgreSQL (rows of `vouch_kv`, as `vouch serve --database` keeps a new
//! directory's). The same appends give the same tree in both: roots equal
//! to RFC 6962's MTH computed here from its definition, entries and tiles
//! at their tlog-tiles widths, proofs, a reopen that carries on, and a key
//! for another origin refused. Two writers sharing one store are covered
//! by `tests/replicas.rs` (PostgreSQL) and `ledger/tests/shared_rows.rs`.

mod common;

use common::postgres::PostgresServer;
use std::sync::Arc;
use vouch::registry::meta::{Postgres, PostgresRows};
use vouch_ledger::store::{Ledger, OpenError};
use vouch_ledger::tile::{decode_bundle, tile_hashes, TileAddr, TileKind};
use vouch_ledger::{Checkpoint, Hash, NoteSigner};

fn signer(origin: &str) -> NoteSigner {
    NoteSigner::new(origin, ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap()
}

/// RFC 6962 §2.1's Merkle Tree Hash, from its definition.
fn mth(entries: &[Vec<u8>]) -> Hash {
    use sha2::{Digest as _, Sha256};
    let node = |l: Hash, r: Hash| {
        Sha256::new()
            .chain_update([1])
            .chain_update(l.0)
            .chain_update(r.0)
            .finalize()
    };
    let h = match entries.len() {
        0 => Sha256::digest(b""),
        1 => Sha256::new().chain_update([0]).chain_update(&entries[0]).finalize(),
        n => {
            // The largest power of two smaller than n.
            let k = 1 << (usize::BITS - (n - 1).leading_zeros() - 1);
            node(mth(&entries[..k]), mth(&entries[k..]))
        }
    };
    Hash(h.into())
}

/// Where a suite's ledger lives: a RocksDB directory, or a database.
enum Store {
    Rocks(tempfile::TempDir),
    Postgres(String),
}

impl Store {
    fn open(&self, origin: &str) -> Result<Ledger, OpenError> {
        match self {
            Store::Rocks(dir) => Ledger::open(dir.path(), signer(origin)),
            Store::Postgres(url) => {
                let pg = Arc::new(Postgres::open(url).unwrap());
                Ledger::open_rows(Arc::new(PostgresRows::new(pg)), signer(origin))
            }
        }
    }
}

/// One PostgreSQL for this test process.
fn server() -> Option<&'static PostgresServer> {
    static SERVER: std::sync::OnceLock<Option<PostgresServer>> = std::sync::OnceLock::new();
    SERVER.get_or_init(PostgresServer::start).as_ref()
}

fn on_both(suite: impl Fn(&Store)) {
    suite(&Store::Rocks(tempfile::tempdir().unwrap()));
    let Some(server) = server() else { return };
    suite(&Store::Postgres(server.fresh_database()));
}

const ORIGIN: &str = "stores.test/log";

#[test]
fn the_same_appends_give_the_same_tree_in_either_store() {
    on_both(|store| {
        let ledger = store.open(ORIGIN).unwrap();
        assert_eq!((ledger.size(), ledger.root()), (0, mth(&[])));
        // 700 entries from four threads; each lands where its index says.
        let acked: Vec<(u64, Vec<u8>)> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let ledger = &ledger;
                    s.spawn(move || {
                        (0..175)
                            .map(|i| {
                                let e = format!("entry {i} of thread {t}").into_bytes();
                                (ledger.append_blocking(e.clone()).unwrap(), e)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        let mut entries = vec![Vec::new(); 700];
        for (i, e) in acked {
            entries[i as usize] = e;
        }
        assert_eq!((ledger.size(), ledger.root()), (700, mth(&entries)));
        let checkpoint = Checkpoint::open(ledger.checkpoint().as_bytes(), ledger.verifier()).unwrap();
        assert_eq!((checkpoint.size, checkpoint.root), (700, mth(&entries)));
        for i in (0..700).step_by(37) {
            assert_eq!(ledger.entry(i).unwrap().as_deref(), Some(&entries[i as usize][..]));
        }
        assert_eq!(ledger.entry(700).unwrap(), None);

        // Entry bundles and hash tiles at their widths: a full one, and the
        // partial one at the right edge (700 = 2 × 256 + 188).
        for (index, range) in [(0u64, 0..256), (2, 512..700)] {
            let addr = TileAddr::for_tree(TileKind::Entries, index, 700).unwrap();
            let bytes = ledger.tile(addr).unwrap().unwrap();
            let bundle: Vec<&[u8]> = decode_bundle(&bytes).unwrap();
            assert!(bundle
                .iter()
                .copied()
                .eq(entries[range.clone()].iter().map(Vec::as_slice)));
            let addr = TileAddr::for_tree(TileKind::Hashes { level: 0 }, index, 700).unwrap();
            let hashes = tile_hashes(&ledger.tile(addr).unwrap().unwrap()).unwrap();
            let leaves: Vec<Hash> = entries[range].iter().map(|e| mth(std::slice::from_ref(e))).collect();
            assert_eq!(hashes, leaves);
        }

        // Proofs against the roots computed here.
        for i in [0u64, 255, 256, 511, 699] {
            let proof = ledger.inclusion_proof(i, 700).unwrap();
            vouch_ledger::verify_inclusion(&entries[i as usize], i, 700, &proof, &mth(&entries)).unwrap();
        }
        assert_eq!(ledger.root_at(300).unwrap(), mth(&entries[..300]));
        let proof = ledger.consistency_proof(300, 700).unwrap();
        vouch_ledger::verify_consistency(300, 700, &proof, &mth(&entries[..300]), &mth(&entries)).unwrap();

        // Reopened: the same checkpoint, and appends carry on from it.
        let note = ledger.checkpoint();
        drop(ledger);
        let ledger = store.open(ORIGIN).unwrap();
        assert_eq!(ledger.checkpoint(), note);
        entries.push(b"after the reopen".to_vec());
        assert_eq!(ledger.append_blocking(entries[700].clone()).unwrap(), 700);
        assert_eq!(ledger.root(), mth(&entries));
        drop(ledger);

        // A key named for another log does not open this one.
        let e = store.open("other.test/log").unwrap_err();
        assert!(matches!(e, OpenError::OriginMismatch { .. }), "{e}");
    });
}
