//! The ledger's reads: entries, tiles, proofs (inclusion, consistency,
//! offline tlog-proofs) and past roots, each from one committed state.

use super::rows::Family;
use super::{Ledger, ReadError};
use crate::hash::Hash;
use crate::tile::TileAddr;
use crate::tree::{consistency_proof, inclusion_proof};

impl Ledger {
    /// Entry `index`, if committed.
    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, ReadError> {
        if index >= self.size() {
            return Ok(None);
        }
        let v = self.shared.rows.get(Family::Entries, &index.to_be_bytes());
        Ok(v.map_err(ReadError::Db)?.map(|v| v.to_vec()))
    }

    /// The bytes of a tile or entry bundle (c2sp.org/tlog-tiles), or `None` if
    /// the current tree does not have it at that width. A partial tile may be
    /// asked for at any width up to the current one.
    pub fn tile(&self, addr: TileAddr) -> Result<Option<Vec<u8>>, ReadError> {
        let reader = self.reader();
        let size = reader.state.edge.size();
        match TileAddr::for_tree(addr.kind, addr.index, size) {
            Some(have) if addr.width <= have.width => reader.read_prefix(addr).map(Some),
            _ => Ok(None),
        }
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ReadError> {
        let reader = self.reader();
        if index >= size || size > reader.state.edge.size() {
            let what = format!("inclusion proof of index {index} in size {size}");
            return Err(ReadError::OutOfRange {
                what,
                size: reader.state.edge.size(),
            });
        }
        inclusion_proof(&reader, index, size)
    }

    /// An offline proof (c2sp.org/tlog-proof@v1) of entry `index` against the
    /// latest signed checkpoint, taken from one committed state.
    pub fn tlog_proof(&self, index: u64) -> Result<crate::tlog_proof::TlogProof, ReadError> {
        let reader = self.reader();
        let size = reader.state.edge.size();
        if index >= size {
            return Err(ReadError::OutOfRange {
                what: format!("entry {index}"),
                size,
            });
        }
        let proof = inclusion_proof(&reader, index, size)?;
        let checkpoint = reader.state.checkpoint.as_bytes().to_vec();
        Ok(crate::tlog_proof::TlogProof {
            extra: None,
            index,
            proof,
            checkpoint,
        })
    }

    /// An offline proof of entry `index` against `checkpoint`, an earlier
    /// signed checkpoint of this log at `size` (the caller vouches for it:
    /// the proof verifies only if it is).
    pub fn tlog_proof_at(
        &self,
        index: u64,
        size: u64,
        checkpoint: Vec<u8>,
    ) -> Result<crate::tlog_proof::TlogProof, ReadError> {
        let proof = self.inclusion_proof(index, size)?;
        Ok(crate::tlog_proof::TlogProof {
            extra: None,
            index,
            proof,
            checkpoint,
        })
    }

    /// Consistency proof from the tree of `old` entries to that of `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ReadError> {
        let reader = self.reader();
        if old > new || new > reader.state.edge.size() {
            let what = format!("consistency proof from size {old} to {new}");
            return Err(ReadError::OutOfRange {
                what,
                size: reader.state.edge.size(),
            });
        }
        consistency_proof(&reader, old, new)
    }

    /// The root hash of the tree of `size <= current` entries.
    pub fn root_at(&self, size: u64) -> Result<Hash, ReadError> {
        let reader = self.reader();
        if size > reader.state.edge.size() {
            return Err(ReadError::OutOfRange {
                what: format!("root at size {size}"),
                size: reader.state.edge.size(),
            });
        }
        crate::tree::tree_root(&reader, size)
    }
}
