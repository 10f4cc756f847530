use super::*;
use crate::note::NoteSigner;
use crate::tree::{consistency_proof, MemoryTree};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn log(seed: u8) -> NoteSigner {
    NoteSigner::new("log.example/a", SigningKey::from_bytes(&[seed; 32])).unwrap()
}

fn tree(entries: u64, fork_at: Option<u64>) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..entries {
        let forked = fork_at.is_some_and(|f| i >= f);
        t.push(format!("entry {i}{}", if forked { " forked" } else { "" }).as_bytes());
    }
    t
}

fn checkpoint_note(signer: &NoteSigner, t: &MemoryTree, size: u64) -> Vec<u8> {
    let c = Checkpoint {
        origin: signer.verifier().name().to_owned(),
        size,
        root: t.root_at(size),
        extensions: vec![],
    };
    signer.sign(&c.to_text()).into_bytes()
}

fn request(signer: &NoteSigner, t: &MemoryTree, old: u64, size: u64) -> AddCheckpoint {
    let proof = if old == 0 || old >= size {
        vec![]
    } else {
        consistency_proof(t, old, size).unwrap()
    };
    AddCheckpoint {
        old,
        proof,
        checkpoint: checkpoint_note(signer, t, size),
    }
}

#[test]
fn request_round_trips_and_rejects_non_canonical_bodies() {
    let t = tree(9, None);
    let req = request(&log(1), &t, 5, 9);
    let bytes = req.to_bytes();
    assert_eq!(AddCheckpoint::parse(&bytes).unwrap(), req);
    let text = String::from_utf8(bytes).unwrap();
    for bad in [
        text.replacen("old 5", "old 05", 1),
        text.replacen("old 5", "old  5", 1),
        text.replacen("old 5\n", "", 1),
        text.replacen("=\n", "\n", 1),
        text.replacen("\n\n", "\n", 1),
    ] {
        assert!(
            matches!(AddCheckpoint::parse(bad.as_bytes()), Err(Refusal::Malformed(_))),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn each_refusal_has_the_spec_status() {
    let (a, t) = (log(1), tree(9, None));
    let keys = [a.verifier().clone()];
    let at5 = Some(Witnessed {
        size: 5,
        root: t.root_at(5),
    });
    let ok = decide(&request(&a, &t, 5, 9), &keys, at5).unwrap();
    assert_eq!(
        ok.1,
        Witnessed {
            size: 9,
            root: t.root_at(9)
        }
    );
    let status = |req: &AddCheckpoint, latest| decide(req, &keys, latest).unwrap_err().status();
    // Unknown origin; signed by someone else under the same origin.
    let other = NoteSigner::new("log.example/b", SigningKey::from_bytes(&[1; 32])).unwrap();
    assert_eq!(status(&request(&other, &t, 5, 9), at5), 404);
    assert_eq!(status(&request(&log(2), &t, 5, 9), at5), 403);
    // Rollback: old past the checkpoint; stale old; a fork at the same size.
    assert_eq!(status(&request(&a, &t, 9, 5), at5), 400);
    assert_eq!(
        decide(&request(&a, &t, 4, 9), &keys, at5).unwrap_err(),
        Refusal::SizeMismatch { old: 4, latest: 5 }
    );
    let forked = tree(9, Some(3));
    assert_eq!(status(&request(&a, &forked, 5, 5), at5), 409);
    // A proof that does not connect the two roots.
    assert_eq!(status(&request(&a, &forked, 5, 9), at5), 422);
    let mut req = request(&a, &t, 5, 9);
    req.proof.pop();
    assert_eq!(status(&req, at5), 422);
    // A proof from 0 must be empty.
    let mut first = request(&a, &t, 0, 9);
    first.proof = vec![t.root_at(1)];
    assert_eq!(status(&first, None), 422);
}

#[test]
fn a_bad_signature_by_a_trusted_key_refuses_even_beside_a_good_one() {
    let (a, t) = (log(1), tree(4, None));
    let note = String::from_utf8(checkpoint_note(&a, &t, 4)).unwrap();
    let forged_line = {
        let mut n = Note::parse(note.as_bytes()).unwrap();
        let mut s = n.signatures()[0].clone();
        s.signature[0] ^= 1;
        n.put_signature(s).unwrap();
        n.signatures()[0].to_line()
    };
    let both = format!("{note}{forged_line}\n");
    let req = AddCheckpoint {
        old: 0,
        proof: vec![],
        checkpoint: both.into_bytes(),
    };
    assert_eq!(decide(&req, &[a.verifier().clone()], None).unwrap_err().status(), 403);
}

/// What an attacker holding the log key may send: checkpoints of an honest
/// tree or of a fork of it, at any sizes, with honest or stale old sizes.
#[derive(Debug, Clone)]
struct Offer {
    forked: bool,
    old: u64,
    size: u64,
}

fn offers() -> impl Strategy<Value = Vec<Offer>> {
    prop::collection::vec(
        (any::<bool>(), 0u64..24, 0u64..24).prop_map(|(forked, old, size)| Offer { forked, old, size }),
        1..40,
    )
}

proptest! {
    /// The witness invariant (c2sp.org/tlog-cosignature, "the consistent tree
    /// head with the largest size the cosigner has observed"): whatever the
    /// log offers, every pair of checkpoints the witness accepts is
    /// consistent, sizes never go down, and one size never gets two roots.
    #[test]
    fn a_witness_never_accepts_two_inconsistent_checkpoints(offers in offers(), fork_at in 0u64..24) {
        let a = log(1);
        let keys = [a.verifier().clone()];
        let (honest, forked) = (tree(24, None), tree(24, Some(fork_at)));
        let mut state: Option<Witnessed> = None;
        let mut accepted: Vec<(bool, Witnessed)> = Vec::new();
        for o in offers {
            let t = if o.forked { &forked } else { &honest };
            // The attacker computes its proof from the tree it claims; when
            // the witness's record is of the other tree it cannot connect.
            let old = if o.old > o.size { o.old } else { state.map_or(o.old, |w| if o.old % 3 == 0 { w.size } else { o.old }) };
            let old = old.min(24);
            let req = if old <= o.size { request(&a, t, old, o.size) } else {
                AddCheckpoint { old, proof: vec![], checkpoint: checkpoint_note(&a, t, o.size) }
            };
            if let Ok((_, record)) = decide(&req, &keys, state) {
                prop_assert!(state.is_none_or(|w| record.size >= w.size));
                state = Some(record);
                accepted.push((o.forked, record));
            }
        }
        // Every accepted pair is consistent: the smaller is a prefix of the
        // larger, checked against the trees themselves.
        for (i, (_, x)) in accepted.iter().enumerate() {
            for (_, y) in &accepted[i..] {
                let (small, big) = if x.size <= y.size { (x, y) } else { (y, x) };
                let prefix_of_honest = honest.root_at(big.size) == big.root && honest.root_at(small.size) == small.root;
                let prefix_of_fork = forked.root_at(big.size) == big.root && forked.root_at(small.size) == small.root;
                prop_assert!(prefix_of_honest || prefix_of_fork, "accepted {small:?} and {big:?}");
            }
        }
    }
}
