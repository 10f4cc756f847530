//! Independent oracles: other people's RFC 6962 code, adapted to our types.
#![allow(dead_code)]

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use sha2_011::{Digest as _, Sha256};
use vouch_ledger::Hash;

pub type CtTree = MemoryBackedTree<Sha256, Vec<u8>>;

/// SHA-256 from a different sha2 release than the ledger uses.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

pub fn ct_hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks(32).map(|c| Hash::from_slice(c).unwrap()).collect()
}

pub fn ct_root(tree: &CtTree) -> Hash {
    Hash::from_slice(tree.root().as_bytes().as_slice()).unwrap()
}

/// rs_merkle with the RFC 6962 interior-node rule; a lone right-most node is
/// promoted unchanged, which yields the RFC's tree shape.
#[derive(Clone)]
pub struct Rfc6962;

impl rs_merkle::Hasher for Rfc6962 {
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        sha256(&[data])
    }
    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => sha256(&[&[1u8], left, r]),
            None => *left,
        }
    }
}

pub fn rs_root(entries: &[Vec<u8>]) -> Hash {
    if entries.is_empty() {
        return Hash(sha256(&[]));
    }
    let leaves: Vec<[u8; 32]> = entries.iter().map(|e| sha256(&[&[0u8], e])).collect();
    Hash(rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&leaves).root().unwrap())
}

pub fn ct_verify_inclusion(entry: &[u8], index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    let root = ct_merkle::RootHash::<Sha256>::new(root.0.into(), size);
    let bytes: Vec<u8> = proof.iter().flat_map(|h| h.0).collect();
    let Ok(proof) = ct_merkle::InclusionProof::<Sha256>::try_from_bytes(bytes) else {
        return false;
    };
    root.verify_inclusion(&entry.to_vec(), index, &proof).is_ok()
}

pub fn ct_verify_consistency(size1: u64, size2: u64, proof: &[Hash], root1: &Hash, root2: &Hash) -> bool {
    let old = ct_merkle::RootHash::<Sha256>::new(root1.0.into(), size1);
    let new = ct_merkle::RootHash::<Sha256>::new(root2.0.into(), size2);
    let bytes: Vec<u8> = proof.iter().flat_map(|h| h.0).collect();
    let Ok(proof) = ct_merkle::ConsistencyProof::<Sha256>::try_from_bytes(bytes) else {
        return false;
    };
    new.verify_consistency(&old, &proof).is_ok()
}
