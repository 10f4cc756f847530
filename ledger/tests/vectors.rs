//! The committed test vectors in spec/vectors: every case must verify exactly
//! when it says `valid`, under our verifier, and the valid ones (and the
//! signature mutations) must be judged the same by independent code.

mod common;

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use serde::Deserialize;
use std::path::PathBuf;
use vouch_ledger::proof::{verify_consistency, verify_inclusion};
use vouch_ledger::{Checkpoint, Hash, VerifierKey};

#[derive(Deserialize)]
struct Inclusion {
    desc: String,
    entry: String,
    index: u64,
    size: u64,
    root: String,
    proof: Vec<String>,
    valid: bool,
}

#[derive(Deserialize)]
struct Consistency {
    desc: String,
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Vec<String>,
    valid: bool,
}

#[derive(Deserialize)]
struct SignedCheckpoint {
    desc: String,
    vkey: String,
    note: String,
    valid: bool,
}

fn files(kind: &str) -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../spec/vectors")
        .join(kind);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| {
            let p = f.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.iter().any(|(n, _)| n == "valid.json"), "{kind}: no valid.json");
    assert!(out.len() >= 5, "{kind}: too few vector files");
    out
}

fn hash(b64: &str) -> Hash {
    Hash::from_slice(&B64.decode(b64).unwrap()).expect("32-byte hash")
}

#[test]
fn inclusion_vectors() {
    let mut count = 0;
    for (file, json) in files("inclusion") {
        let cases: Vec<Inclusion> = serde_json::from_str(&json).unwrap();
        assert!(cases.len() >= 20, "{file}");
        for c in cases {
            let entry = B64.decode(&c.entry).unwrap();
            let proof: Vec<Hash> = c.proof.iter().map(|h| hash(h)).collect();
            let ours = verify_inclusion(&entry, c.index, c.size, &proof, &hash(&c.root)).is_ok();
            assert_eq!(ours, c.valid, "{file}: {}", c.desc);
            if c.valid {
                assert!(
                    common::ct_verify_inclusion(&entry, c.index, c.size, &proof, &hash(&c.root)),
                    "ct-merkle rejects {file}: {}",
                    c.desc
                );
            }
            count += 1;
        }
    }
    assert!(count >= 100);
}

#[test]
fn consistency_vectors() {
    for (file, json) in files("consistency") {
        let cases: Vec<Consistency> = serde_json::from_str(&json).unwrap();
        assert!(cases.len() >= 20, "{file}");
        for c in cases {
            let proof: Vec<Hash> = c.proof.iter().map(|h| hash(h)).collect();
            let (r1, r2) = (hash(&c.root1), hash(&c.root2));
            let ours = verify_consistency(c.size1, c.size2, &proof, &r1, &r2).is_ok();
            assert_eq!(ours, c.valid, "{file}: {}", c.desc);
            let ct = common::ct_verify_consistency(c.size1, c.size2, &proof, &r1, &r2);
            assert_eq!(ct, c.valid, "ct-merkle disagrees on {file}: {}", c.desc);
        }
    }
}

#[test]
fn checkpoint_vectors() {
    use signed_note::{Note, StandardVerifier, VerifierList};
    for (file, json) in files("checkpoint") {
        let cases: Vec<SignedCheckpoint> = serde_json::from_str(&json).unwrap();
        assert!(cases.len() >= 20, "{file}");
        for c in cases {
            let ours = VerifierKey::parse(&c.vkey)
                .ok()
                .map(|k| Checkpoint::open(c.note.as_bytes(), &k));
            assert_eq!(matches!(ours, Some(Ok(_))), c.valid, "{file}: {} ({ours:?})", c.desc);
            // Cloudflare's signed_note (a port of Go's note package) judges the
            // signatures; origin and body syntax are tlog-checkpoint's business.
            let theirs = Note::from_bytes(c.note.as_bytes()).and_then(|n| {
                let v = StandardVerifier::new(&c.vkey).expect("their vkey parser");
                n.verify(&VerifierList::new(vec![Box::new(v)]))
            });
            let signature_case = c.valid
                || [
                    "flipped-signature.json",
                    "altered-text.json",
                    "wrong-key.json",
                    "unsigned.json",
                ]
                .contains(&file.as_str());
            if signature_case {
                assert_eq!(theirs.is_ok(), c.valid, "signed_note disagrees on {file}: {}", c.desc);
            }
        }
    }
}
