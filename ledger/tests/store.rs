//! The RocksDB store through its public API: persistence across reopen, the
//! format-version and origin checks, limits, tiles as tlog-tiles serves them,
//! fsck catching corruption, and checkpoints that independent code verifies.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use vouch_ledger::store::{load_or_create_signer, AppendError, Ledger, OpenError, CF_META, CF_TILES};
use vouch_ledger::tile::{decode_bundle, TileAddr};
use vouch_ledger::{Checkpoint, NoteSigner};

fn signer(name: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(name, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap()
}

fn fill(ledger: &Ledger, from: u64, to: u64) {
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                for i in (from..to).filter(|i| i % 4 == t) {
                    ledger.append_blocking(format!("e{i}").into_bytes()).unwrap();
                }
            });
        }
    });
}

fn raw_db(dir: &Path) -> rocksdb::DB {
    rocksdb::DB::open_cf_descriptors(
        &vouch_ledger::store::db_options(),
        dir,
        vouch_ledger::store::column_families(),
    )
    .unwrap()
}

#[test]
fn reopen_preserves_entries_root_and_checkpoint_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (root, note, entries) = {
        let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
        fill(&l, 0, 1000);
        let entries: Vec<_> = (0..1000).map(|i| l.entry(i).unwrap().unwrap()).collect();
        (l.root(), l.checkpoint(), entries)
    };
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    assert_eq!(l.size(), 1000);
    assert_eq!(l.root(), root);
    assert_eq!(l.checkpoint(), note);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(l.entry(i as u64).unwrap().as_ref(), Some(e));
    }
    assert_eq!(l.entry(1000).unwrap(), None);
    assert_eq!(l.append_blocking(b"next".to_vec()).unwrap(), 1000);
    let proof = l.consistency_proof(1000, 1001).unwrap();
    vouch_ledger::verify_consistency(1000, 1001, &proof, &root, &l.root()).unwrap();
    l.fsck(|_| {}).unwrap();
}

#[test]
fn an_unknown_format_version_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap());
    {
        let db = raw_db(dir.path());
        db.put_cf(db.cf_handle(CF_META).unwrap(), b"format", 2u32.to_be_bytes())
            .unwrap();
    }
    let err = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap_err();
    assert!(matches!(err, OpenError::UnsupportedFormat { found: 2 }), "{err}");
    assert!(err.to_string().contains("format version 2 is not supported"), "{err}");
}

#[test]
fn another_origin_or_key_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    fill(&l, 0, 10);
    drop(l);
    let err = Ledger::open(dir.path(), signer("other.test/log", 1)).unwrap_err();
    assert!(matches!(err, OpenError::OriginMismatch { .. }), "{err}");
    let err = Ledger::open(dir.path(), signer("store.test/log", 2)).unwrap_err();
    assert!(err.to_string().contains("does not verify with the log key"), "{err}");
}

#[test]
fn entries_over_the_bundle_limit_are_refused_and_the_limit_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    assert_eq!(
        l.append_blocking(vec![7; 65536]),
        Err(AppendError::TooLarge { len: 65536 })
    );
    assert_eq!(l.size(), 0);
    assert_eq!(l.append_blocking(vec![7; 65535]), Ok(0));
    assert_eq!(l.append_blocking(Vec::new()), Ok(1));
    let bundle = l
        .tile(TileAddr::parse("tile/entries/000.p/2").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(decode_bundle(&bundle).unwrap(), vec![&[7u8; 65535][..], &[][..]]);
}

#[test]
fn tiles_are_served_full_partial_and_as_narrower_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    fill(&l, 0, 700); // 2 full level-0 tiles and one of width 188; level 1 width 2
    let get = |p: &str| l.tile(TileAddr::parse(p).unwrap()).unwrap();
    let full = get("tile/0/000").unwrap();
    assert_eq!(full.len(), 8192);
    assert_eq!(get("tile/0/002.p/188").unwrap().len(), 188 * 32);
    assert_eq!(
        get("tile/0/002.p/100").unwrap(),
        get("tile/0/002.p/188").unwrap()[..100 * 32]
    );
    assert_eq!(get("tile/0/000.p/5").unwrap(), full[..5 * 32]);
    assert_eq!(get("tile/0/002.p/189"), None);
    assert_eq!(get("tile/0/002"), None);
    assert_eq!(get("tile/0/003.p/1"), None);
    assert_eq!(get("tile/1/000.p/2").unwrap().len(), 64);
    assert_eq!(get("tile/2/000.p/1"), None);
    // Each leaf hash in the tile is the hash of the entry at that index.
    for i in 0..256u64 {
        let e = l.entry(i).unwrap().unwrap();
        assert_eq!(full[i as usize * 32..][..32], vouch_ledger::leaf_hash(&e).0);
    }
    let bundle = get("tile/entries/002.p/188").unwrap();
    let entries = decode_bundle(&bundle).unwrap();
    assert_eq!(entries.len(), 188);
    assert_eq!(entries[0], &l.entry(512).unwrap().unwrap()[..]);
    // The level-1 hashes are the roots of the full level-0 tiles.
    let level1 = get("tile/1/000.p/2").unwrap();
    assert_eq!(level1[..32], l.root_at(256).unwrap().0);
}

#[test]
fn fsck_and_open_catch_a_corrupted_tile() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    fill(&l, 0, 600);
    let report = l.fsck(|_| {}).unwrap();
    assert_eq!((report.entries, report.root), (600, l.root()));
    drop(l);
    let flip = |at: usize| {
        let db = raw_db(dir.path());
        let key = [&[0u8][..], &1u64.to_be_bytes()].concat();
        let cf = db.cf_handle(CF_TILES).unwrap();
        let mut v = db.get_cf(cf, &key).unwrap().unwrap();
        v[at] ^= 1;
        db.put_cf(cf, &key, v).unwrap();
    };
    // A leaf hash inside full tile 0/001: the store still opens (the right
    // edge does not depend on it), and fsck finds the tile that differs.
    flip(40);
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    let err = l.fsck(|_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("tile/0/001 differs from the entries at hash 1"),
        "{err}"
    );
    drop(l);
    flip(40);
    // A stored mid-tile hash, from which open rebuilds the level-1 edge: the
    // root no longer matches the signed checkpoint and open refuses.
    flip(8192 + 5);
    let err = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap_err();
    assert!(err.to_string().contains("corrupt: entries give root"), "{err}");
}

#[test]
fn checkpoints_verify_with_cloudflares_signed_note_and_grow_consistently() {
    use signed_note::{Note, StandardVerifier, VerifierList};
    let dir = tempfile::tempdir().unwrap();
    let s = signer("store.test/log", 1);
    let vkey = s.verifier().to_string();
    let l = Ledger::open(dir.path(), s).unwrap();
    let mut previous: Option<Checkpoint> = None;
    for round in 0..5 {
        fill(&l, round * 300, round * 300 + 300);
        let note = l.checkpoint();
        let verifiers = VerifierList::new(vec![Box::new(StandardVerifier::new(&vkey).unwrap())]);
        Note::from_bytes(note.as_bytes())
            .unwrap()
            .verify(&verifiers)
            .expect("signed_note verifies our checkpoint");
        let cp = Checkpoint::open(note.as_bytes(), l.verifier()).unwrap();
        assert_eq!((cp.size, cp.root), ((round + 1) * 300, l.root()));
        if let Some(old) = previous {
            let proof = l.consistency_proof(old.size, cp.size).unwrap();
            vouch_ledger::verify_consistency(old.size, cp.size, &proof, &old.root, &cp.root).unwrap();
        }
        previous = Some(cp);
    }
}

#[test]
fn proofs_out_of_range_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    fill(&l, 0, 10);
    assert!(l.inclusion_proof(10, 10).is_err());
    assert!(l.inclusion_proof(0, 11).is_err());
    assert!(l.consistency_proof(5, 4).is_err());
    assert!(l.consistency_proof(5, 11).is_err());
    assert!(l.root_at(11).is_err());
}

#[test]
fn the_key_file_is_created_private_reloaded_and_refused_when_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/ledger.key");
    let (a, created) = load_or_create_signer(&path, "key.test/log").unwrap();
    assert!(created);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let (b, created) = load_or_create_signer(&path, "key.test/log").unwrap();
    assert!(!created);
    assert_eq!(a.verifier(), b.verifier());
    // The file is in the standard note key format: signed_note reads it.
    let text = std::fs::read_to_string(&path).unwrap();
    signed_note::StandardSigner::new(text.trim_end()).expect("signed_note parses our private key");
    // An existing key keeps its name; the name only applies to a new key.
    let (c, _) = load_or_create_signer(&path, "other.test/log").unwrap();
    assert_eq!(c.verifier().name(), "key.test/log");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_or_create_signer(&path, "key.test/log").unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

/// `append_all` keeps each caller's entries in its order, whatever other
/// callers append at the same time, and each lands where it says.
#[test]
fn append_all_keeps_each_callers_order_among_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path(), signer("store.test/log", 1)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let l = l.clone();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    for round in 0..20 {
                        let entries: Vec<Vec<u8>> =
                            (0..3).map(|i| format!("t{t} r{round} e{i}").into_bytes()).collect();
                        let indexes = l.append_all(entries.clone()).await.unwrap();
                        out.push((entries, indexes));
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert_eq!(l.size(), 8 * 20 * 3);
    for (entries, indexes) in results {
        assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
        for (e, i) in entries.iter().zip(&indexes) {
            assert_eq!(l.entry(*i).unwrap().as_ref(), Some(e));
        }
    }
}
