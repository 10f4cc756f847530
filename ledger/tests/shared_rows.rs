//! Two ledgers over one store of rows, as two replicas over one database:
//! both append at once, every acknowledged entry is in the log exactly once
//! at the index it was given, every checkpoint ever stored is one tree's
//! (none of two sizes contradicts the other), and each follows the other's
//! appends. The rows here are an in-memory map behind the same conditional
//! commit the PostgreSQL rows make (`tests/ledger_postgres.rs` runs the real
//! database); the roots are checked against an independent RFC 6962
//! implementation (rs_merkle).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use vouch_ledger::store::{CommitError, Family, Ledger, Rows, Value};
use vouch_ledger::{Checkpoint, NoteSigner};

/// Values by family and key.
type Map = HashMap<(Family, Vec<u8>), Arc<[u8]>>;

/// Rows in a map, with every checkpoint ever committed kept aside.
#[derive(Default)]
struct MapRows {
    rows: Mutex<Map>,
    /// The next commit's answer is lost: after it took effect (true), or
    /// before (false).
    lose_answer: Mutex<Option<bool>>,
    checkpoints: Mutex<Vec<Vec<u8>>>,
}

impl Rows for MapRows {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Value<'_>>, String> {
        let rows = self.rows.lock().unwrap();
        Ok(rows.get(&(family, key.to_vec())).cloned().map(Value::Shared))
    }

    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, String> {
        let rows = self.rows.lock().unwrap();
        Ok((start..start + count as u64)
            .map_while(|i| rows.get(&(Family::Entries, i.to_be_bytes().to_vec())))
            .map(|v| v.to_vec())
            .collect())
    }

    fn commit(&self, puts: Vec<(Family, Vec<u8>, Vec<u8>)>, expect: Option<&[u8]>) -> Result<(), CommitError> {
        let lose = self.lose_answer.lock().unwrap().take();
        if lose == Some(false) {
            return Err(CommitError::Failed("connection lost before COMMIT".into()));
        }
        let mut rows = self.rows.lock().unwrap();
        let now = rows.get(&(Family::Meta, b"checkpoint".to_vec()));
        if now.map(|v| &v[..]) != expect {
            return Err(CommitError::Conflict);
        }
        for (f, k, v) in puts {
            if f == Family::Meta && k == b"checkpoint" {
                self.checkpoints.lock().unwrap().push(v.clone());
            } else if f != Family::Meta {
                assert!(
                    !rows.contains_key(&(f, k.clone())),
                    "a committed {f:?} row is never rewritten"
                );
            }
            rows.insert((f, k), v.into());
        }
        match lose {
            Some(true) => Err(CommitError::Failed("connection lost during COMMIT".into())),
            _ => Ok(()),
        }
    }

    fn shared(&self) -> bool {
        true
    }
}

fn signer() -> NoteSigner {
    NoteSigner::new("shared.test/log", ed25519_dalek::SigningKey::from_bytes(&[7; 32])).unwrap()
}

#[test]
fn two_writers_share_one_log_without_contradicting_checkpoints() {
    let rows = Arc::new(MapRows::default());
    let a = Ledger::open_rows(rows.clone(), signer()).unwrap();
    let b = Ledger::open_rows(rows.clone(), signer()).unwrap();
    let per_writer = 700u64;
    let written: Vec<(u64, Vec<u8>)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (name, ledger) in [("a", &a), ("b", &b)] {
            for t in 0..3 {
                handles.push(s.spawn(move || {
                    (0..per_writer / 3 + 1)
                        .map(|i| {
                            let e = format!("{name}{t}-{i}").into_bytes();
                            (ledger.append_blocking(e.clone()).unwrap(), e)
                        })
                        .collect::<Vec<_>>()
                }));
            }
        }
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let total = written.len() as u64;
    // Each acknowledged entry is where its index says, and no index twice.
    let mut by_index = BTreeMap::new();
    for (i, e) in &written {
        assert!(by_index.insert(*i, e.clone()).is_none(), "index {i} given twice");
    }
    assert_eq!(
        by_index.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    // Both follow to the whole tree, whose root an independent
    // implementation computes from the acknowledged entries.
    assert_eq!(a.refresh().unwrap(), total);
    assert_eq!(b.refresh().unwrap(), total);
    let entries: Vec<Vec<u8>> = by_index.into_values().collect();
    assert_eq!(a.root(), common::rs_root(&entries));
    assert_eq!(a.checkpoint(), b.checkpoint());
    for (i, e) in entries.iter().enumerate().step_by(97) {
        assert_eq!(b.entry(i as u64).unwrap().as_deref(), Some(&e[..]));
    }
    // Every checkpoint ever stored is a root of this one tree, sizes only grew.
    let stored = rows.checkpoints.lock().unwrap().clone();
    let mut last = 0;
    for note in &stored {
        let c = Checkpoint::open(note, a.verifier()).unwrap();
        assert!(c.size > last || c.size == 0, "stored sizes only grow");
        last = c.size;
        assert_eq!(c.root, common::rs_root(&entries[..c.size as usize]));
    }
    assert!(stored.len() > 2);
    // Proofs from either writer verify against the other's checkpoint.
    let proof = b.inclusion_proof(5, total).unwrap();
    assert!(common::ct_verify_inclusion(&entries[5], 5, total, &proof, &a.root()));
}

#[test]
fn a_writer_refuses_a_log_that_forked_under_it() {
    let rows = Arc::new(MapRows::default());
    let a = Ledger::open_rows(rows.clone(), signer()).unwrap();
    a.append_blocking(b"one".to_vec()).unwrap();
    // Someone with the key rewrites the stored log: entry 0 differs, and a
    // checkpoint of size 2 is signed over the forged tree.
    {
        let mut r = rows.rows.lock().unwrap();
        r.insert(
            (Family::Entries, 0u64.to_be_bytes().to_vec()),
            b"forged".to_vec().into(),
        );
        r.insert((Family::Entries, 1u64.to_be_bytes().to_vec()), b"two".to_vec().into());
        let root = common::rs_root(&[b"forged".to_vec(), b"two".to_vec()]);
        let cp = Checkpoint {
            origin: "shared.test/log".into(),
            size: 2,
            root,
            extensions: vec![],
        };
        r.insert(
            (Family::Meta, b"checkpoint".to_vec()),
            signer().sign(&cp.to_text()).into_bytes().into(),
        );
    }
    let err = a.refresh().unwrap_err().to_string();
    assert!(err.contains("forked"), "{err}");
    assert_eq!(a.size(), 1, "the forged tree is not published");
    let err = a.append_blocking(b"three".to_vec()).unwrap_err().to_string();
    assert!(err.contains("forked"), "appends stop too: {err}");
}

#[test]
fn a_commit_whose_answer_is_lost_is_acknowledged_if_it_took_effect() {
    let rows = Arc::new(MapRows::default());
    let a = Ledger::open_rows(rows.clone(), signer()).unwrap();
    a.append_blocking(b"zero".to_vec()).unwrap();
    // Lost before it took effect: not acknowledged, nothing stored, and
    // the log goes on from where it was.
    *rows.lose_answer.lock().unwrap() = Some(false);
    let err = a.append_blocking(b"lost".to_vec()).unwrap_err().to_string();
    assert!(err.contains("unavailable"), "{err}");
    assert_eq!(a.size(), 1);
    // Lost after it took effect: the checkpoint row holds this commit's
    // note, so the append is acknowledged at its index.
    *rows.lose_answer.lock().unwrap() = Some(true);
    assert_eq!(a.append_blocking(b"one".to_vec()).unwrap(), 1);
    assert_eq!(a.append_blocking(b"two".to_vec()).unwrap(), 2);
    let entries: Vec<Vec<u8>> = [&b"zero"[..], b"one", b"two"].iter().map(|e| e.to_vec()).collect();
    assert_eq!(a.root(), common::rs_root(&entries));
    assert_eq!(a.refresh().unwrap(), 3);
}
