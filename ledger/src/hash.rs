//! The RFC 6962 / RFC 9162 §2.1.1 Merkle hash functions, over SHA-256.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Length in bytes of every hash in the tree.
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash that is a node of the Merkle tree (leaf, interior or root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

impl Hash {
    /// The hash of the empty tree: `MTH({}) = SHA-256()`, RFC 9162 §2.1.1.
    pub fn empty_tree() -> Hash {
        Hash(Sha256::digest(b"").into())
    }

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; HASH_LEN]>::try_from(bytes).ok().map(Hash)
    }

    /// Standard base64 with padding, as checkpoints and vectors carry it.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Parses standard padded base64 of exactly 32 bytes; rejects any other form.
    pub fn from_base64(text: &str) -> Option<Hash> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
        let hash = Hash::from_slice(&bytes)?;
        // Canonical: the text must be exactly what we would print.
        (hash.to_base64() == text).then_some(hash)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", hex::encode(self.0))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// `MTH({d(0)}) = SHA-256(0x00 || d(0))`, RFC 9162 §2.1.1.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`, RFC 9162 §2.1.1.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tree_is_sha256_of_nothing() {
        // Well-known constant, independent of this crate.
        assert_eq!(
            Hash::empty_tree().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn base64_is_canonical() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()), Some(h));
        let unpadded = h.to_base64().trim_end_matches('=').to_string();
        assert_eq!(Hash::from_base64(&unpadded), None);
        assert_eq!(Hash::from_base64("AAAA"), None);
    }
}
