//! Verification of inclusion and consistency proofs, RFC 9162 §2.1.3.2 and
//! §2.1.4.2. Pure functions of their arguments; this is what clients and
//! auditors run, and it shares no code with proof generation.

use crate::hash::{leaf_hash, node_hash, Hash};

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Inclusion: the index is not inside the tree.
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Leaf index claimed.
        index: u64,
        /// Tree size claimed.
        size: u64,
    },
    /// Consistency: the second tree is smaller than the first.
    #[error("tree size {new} is smaller than {old}: a log never shrinks")]
    SizesReversed {
        /// First (older) size.
        old: u64,
        /// Second (newer) size.
        new: u64,
    },
    /// The proof has more or fewer hashes than its sizes call for.
    #[error("proof has the wrong number of hashes ({got})")]
    WrongLength {
        /// Hashes received.
        got: usize,
    },
    /// The proof is well-formed but leads to a different root.
    #[error("proof leads to root {computed}, not the expected {expected}")]
    RootMismatch {
        /// Root the proof reconstructs.
        computed: Hash,
        /// Root it was checked against.
        expected: Hash,
    },
}

/// Checks that `entry` is leaf `index` of the tree of `size` leaves with `root`.
pub fn verify_inclusion(entry: &[u8], index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    verify_inclusion_hash(&leaf_hash(entry), index, size, proof, root)
}

/// As [`verify_inclusion`], for a leaf already hashed.
pub fn verify_inclusion_hash(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion(leaf, index, size, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// The root implied by an inclusion proof, RFC 9162 §2.1.3.2 steps 1-5.
pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let wrong_length = ProofError::WrongLength { got: proof.len() };
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length);
    }
    Ok(r)
}

/// Checks that the tree `(new, new_root)` extends the tree `(old, old_root)`.
///
/// Equal sizes need an empty proof and equal roots; an old size of 0 needs an
/// empty proof and the empty tree's root.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if new < old {
        return Err(ProofError::SizesReversed { old, new });
    }
    let wrong_length = ProofError::WrongLength { got: proof.len() };
    if old == new || old == 0 {
        if !proof.is_empty() {
            return Err(wrong_length);
        }
        let (computed, expected) = if old == new {
            (*new_root, *old_root)
        } else {
            (Hash::empty_tree(), *old_root)
        };
        if computed != expected {
            return Err(ProofError::RootMismatch { computed, expected });
        }
        return Ok(());
    }
    // RFC 9162 §2.1.4.2.
    if proof.is_empty() {
        return Err(wrong_length);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::RootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}
