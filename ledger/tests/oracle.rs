//! Roots and proofs checked against independent RFC 6962 implementations
//! (ct-merkle, rs_merkle), exhaustively for small trees and by property tests
//! over a real RocksDB store filled by concurrent appends.

mod common;

use common::*;
use proptest::prelude::*;
use vouch_ledger::proof::{verify_consistency, verify_inclusion};
use vouch_ledger::store::Ledger;
use vouch_ledger::tree::{consistency_proof, inclusion_proof, MemoryTree};
use vouch_ledger::{Hash, NoteSigner};

fn entry(i: u64) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

#[test]
fn every_proof_in_small_trees_matches_ct_merkle_byte_for_byte() {
    let mut ours = MemoryTree::new();
    let mut theirs = CtTree::new();
    for n in 1..=80u64 {
        ours.push(&entry(n - 1));
        theirs.push(entry(n - 1));
        let root = ours.root_at(n);
        assert_eq!(root, ct_root(&theirs), "root at {n}");
        for i in 0..n {
            let proof = inclusion_proof(&ours, i, n).unwrap();
            assert_eq!(
                proof,
                ct_hashes(theirs.prove_inclusion(i as usize).as_bytes()),
                "inclusion {i} in {n}"
            );
            verify_inclusion(&entry(i), i, n, &proof, &root).unwrap();
        }
        for m in 1..n {
            let proof = consistency_proof(&ours, m, n).unwrap();
            let ct = theirs.prove_consistency((n - m) as usize);
            assert_eq!(proof, ct_hashes(ct.as_bytes()), "consistency {m} -> {n}");
            verify_consistency(m, n, &proof, &ours.root_at(m), &root).unwrap();
        }
    }
}

#[test]
fn roots_match_rs_merkle() {
    let entries: Vec<Vec<u8>> = (0..1100).map(entry).collect();
    let mut ours = MemoryTree::new();
    for (i, e) in entries.iter().enumerate() {
        ours.push(e);
        let n = i + 1;
        if n < 300 || n % 97 == 0 || n.is_power_of_two() {
            assert_eq!(ours.root_at(n as u64), rs_root(&entries[..n]), "size {n}");
        }
    }
    assert_eq!(ours.root_at(0), rs_root(&[]));
}

fn signer() -> NoteSigner {
    NoteSigner::new("oracle.test/log", ed25519_dalek::SigningKey::from_bytes(&[5; 32])).unwrap()
}

/// Appends `entries` to a fresh store in the given batches; each batch is
/// submitted by concurrent tasks at once, as the registry's handlers would.
fn fill_store(dir: &std::path::Path, entries: &[Vec<u8>], batches: &[usize]) -> Ledger {
    let ledger = Ledger::open(dir, signer()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut next = 0usize;
    for &len in batches {
        let end = (next + len).min(entries.len());
        rt.block_on(async {
            let tasks: Vec<_> = entries[next..end]
                .iter()
                .map(|e| {
                    let (l, e) = (ledger.clone(), e.clone());
                    tokio::spawn(async move { l.append(e).await })
                })
                .collect();
            let mut indexes = Vec::new();
            for t in tasks {
                indexes.push(t.await.unwrap().unwrap());
            }
            indexes.sort_unstable();
            assert_eq!(
                indexes,
                (next as u64..end as u64).collect::<Vec<_>>(),
                "indexes are consecutive"
            );
        });
        next = end;
    }
    assert_eq!(ledger.size(), entries.len() as u64);
    ledger
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    /// A store filled by concurrent appends in random batches answers, at every
    /// tree size, the root and (random) proofs that ct-merkle computes.
    #[test]
    fn store_matches_oracles_at_every_size(
        n in 0usize..5000,
        splits in proptest::collection::vec(1usize..700, 1..40),
        seed in any::<u64>(),
    ) {
        let entries: Vec<Vec<u8>> = (0..n as u64)
            .map(|i| { let mut e = entry(i); e.extend_from_slice(&seed.to_le_bytes()[..(i % 9) as usize]); e })
            .collect();
        // Store the entries in random-sized batches; the last batch takes the rest.
        let mut batches = splits.clone();
        batches.push(n);
        let dir = tempfile::tempdir().unwrap();
        let ledger = fill_store(dir.path(), &entries, &batches);
        // Entries stored in the order of their indexes: the store's own bytes.
        let stored: Vec<Vec<u8>> = (0..n as u64).map(|i| ledger.entry(i).unwrap().unwrap()).collect();
        let mut sorted = stored.clone();
        sorted.sort();
        let mut expected = entries.clone();
        expected.sort();
        prop_assert_eq!(sorted, expected);
        prop_assert_eq!(ledger.root(), rs_root(&stored));

        let mut theirs = CtTree::new();
        let mut rng = seed | 1;
        let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        for s in 1..=n as u64 {
            theirs.push(stored[s as usize - 1].clone());
            let root = ledger.root_at(s).unwrap();
            prop_assert_eq!(root, ct_root(&theirs), "root at size {}", s);
            let i = next() % s;
            let proof = ledger.inclusion_proof(i, s).unwrap();
            prop_assert_eq!(&proof, &ct_hashes(theirs.prove_inclusion(i as usize).as_bytes()));
            prop_assert!(verify_inclusion(&stored[i as usize], i, s, &proof, &root).is_ok());
            let m = next() % (s + 1);
            let proof = ledger.consistency_proof(m, s).unwrap();
            if m > 0 && m < s {
                let ct = theirs.prove_consistency((s - m) as usize);
                prop_assert_eq!(&proof, &ct_hashes(ct.as_bytes()));
            }
            prop_assert!(verify_consistency(m, s, &proof, &ledger.root_at(m).unwrap(), &root).is_ok());
        }
        let report = ledger.fsck(|_| {}).unwrap();
        prop_assert_eq!(report.entries, n as u64);
    }

    /// Any single-bit change to a valid proof or its roots, a changed index,
    /// or a hash added, is rejected. A changed tree size is rejected whenever
    /// proofs for the new size have another shape: a proof alone does not bind
    /// the size (the signed checkpoint does), so same-shaped sizes can agree.
    #[test]
    fn tampered_proofs_are_rejected(n in 2u64..3000, pick in any::<u64>(), bit in 0usize..256, what in 0u8..5) {
        let mut tree = MemoryTree::new();
        for i in 0..n + 8 { tree.push(&entry(i)); }
        let (i, m) = (pick % n, 1 + pick % (n - 1));
        let (root, old_root) = (tree.root_at(n), tree.root_at(m));
        let inc = inclusion_proof(&tree, i, n).unwrap();
        let con = consistency_proof(&tree, m, n).unwrap();
        let flip = |h: &Hash| { let mut h = *h; h.0[bit / 8] ^= 1 << (bit % 8); h };
        let rejects_inclusion = |i2: u64, n2: u64, proof: &[Hash], root: &Hash| verify_inclusion(&entry(i), i2, n2, proof, root).is_err();
        let rejects_consistency = |m2: u64, n2: u64, proof: &[Hash], old: &Hash, new: &Hash| verify_consistency(m2, n2, proof, old, new).is_err();
        match what {
            0 => {
                if !inc.is_empty() {
                    let mut p = inc.clone(); let k = pick as usize % p.len(); p[k] = flip(&p[k]);
                    prop_assert!(rejects_inclusion(i, n, &p, &root));
                }
                let mut p = con.clone(); let k = pick as usize % p.len(); p[k] = flip(&p[k]);
                prop_assert!(rejects_consistency(m, n, &p, &old_root, &root));
            }
            1 => {
                prop_assert!(rejects_inclusion(i, n, &inc, &flip(&root)));
                prop_assert!(rejects_consistency(m, n, &con, &flip(&old_root), &root));
                prop_assert!(rejects_consistency(m, n, &con, &old_root, &flip(&root)));
                prop_assert!(rejects_consistency(m, n, &con, &root, &old_root));
            }
            2 => {
                prop_assert!(rejects_inclusion((i + 1) % n, n, &inc, &root));
                prop_assert!(rejects_inclusion(i ^ 1, n, &inc, &root) || (i ^ 1) == i);
            }
            3 => {
                let n2 = n + 1 + pick % 7;
                if inclusion_proof(&tree, i, n2).unwrap().len() != inc.len() {
                    prop_assert!(rejects_inclusion(i, n2, &inc, &root));
                }
                if consistency_proof(&tree, m, n2).unwrap().len() != con.len() {
                    prop_assert!(rejects_consistency(m, n2, &con, &old_root, &root));
                }
                let m2 = if m + 1 < n { m + 1 } else { m - 1 };
                if m2 > 0 && consistency_proof(&tree, m2, n).unwrap().len() != con.len() {
                    prop_assert!(rejects_consistency(m2, n, &con, &old_root, &root));
                }
            }
            _ => {
                let mut p = inc.clone(); p.push(root);
                prop_assert!(rejects_inclusion(i, n, &p, &root));
                let mut p = con.clone(); p.push(root);
                prop_assert!(rejects_consistency(m, n, &p, &old_root, &root));
                if !con.is_empty() { prop_assert!(rejects_consistency(m, n, &con[1..], &old_root, &root)); }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any change to any single byte of a signed checkpoint makes it fail to
    /// open, and so does a signature by another key under the same name.
    #[test]
    fn tampered_checkpoints_are_rejected(size in 0u64..1_000_000, at in any::<prop::sample::Index>(), b in any::<u8>(), seed in 1u8..255) {
        use vouch_ledger::Checkpoint;
        let s = signer();
        let root = vouch_ledger::leaf_hash(&size.to_be_bytes());
        let text = Checkpoint { origin: s.verifier().name().into(), size, root, extensions: vec![] }.to_text();
        let note = s.sign(&text).into_bytes();
        prop_assert!(Checkpoint::open(&note, s.verifier()).is_ok());
        let mut bad = note.clone();
        let i = at.index(bad.len());
        prop_assume!(bad[i] != b);
        bad[i] = b;
        prop_assert!(Checkpoint::open(&bad, s.verifier()).is_err(), "accepted a change at byte {}", i);
        let other = NoteSigner::new(s.verifier().name(), ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap();
        prop_assume!(other.verifier() != s.verifier());
        prop_assert!(Checkpoint::open(other.sign(&text).as_bytes(), s.verifier()).is_err());
    }
}
