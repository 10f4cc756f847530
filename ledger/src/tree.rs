//! Merkle tree math over any source of complete-subtree hashes: tree roots and
//! the generation of inclusion and consistency proofs, RFC 9162 §2.1.
//!
//! Pure functions: no I/O happens here except through [`HashReader`], which a
//! store or an in-memory tree implements. A *complete subtree* `(level, index)`
//! is the perfect subtree of height `level` covering leaves
//! `[index << level, (index + 1) << level)`; its hash never changes once the
//! tree has grown past it, which is what makes it storable.

use crate::hash::{leaf_hash, node_hash, Hash};

/// Reads the hash of a complete subtree `(level, index)`.
///
/// Contract: only called for subtrees that are complete in the tree the caller
/// is working on, so a correct reader never has to guess.
pub trait HashReader {
    /// The reader's failure (I/O, corruption, missing data).
    type Error;
    /// The hash of the complete subtree at `level` (0 = leaves) and `index`.
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// The complete subtrees that make up leaves `[lo, hi)`, left to right, each as
/// `(level, index)`. `lo` must be aligned so that the range is the left part of
/// a subtree (as it always is in RFC 9162 §2.1 recursion), e.g. `lo = 0`.
pub fn decompose(mut lo: u64, hi: u64) -> Vec<(u8, u64)> {
    let mut parts = Vec::new();
    while lo < hi {
        let align = if lo == 0 { 63 } else { lo.trailing_zeros() };
        let fit = 63 - (hi - lo).leading_zeros();
        let level = align.min(fit);
        parts.push((level as u8, lo >> level));
        lo += 1 << level;
    }
    parts
}

/// `MTH(D[lo:hi])`, RFC 9162 §2.1.1, with `[lo, hi)` non-empty and aligned as
/// for [`decompose`]. Folding the complete subtrees right to left is exactly
/// the RFC's split at the largest power of two smaller than `n`.
pub fn range_hash<R: HashReader>(reader: &R, lo: u64, hi: u64) -> Result<Hash, R::Error> {
    debug_assert!(lo < hi);
    let parts = decompose(lo, hi);
    let mut acc: Option<Hash> = None;
    for &(level, index) in parts.iter().rev() {
        let h = reader.subtree_hash(level, index)?;
        acc = Some(match acc {
            None => h,
            Some(right) => node_hash(&h, &right),
        });
    }
    Ok(acc.expect("non-empty range"))
}

/// The root of the tree of `size` leaves; the empty tree's root for 0.
pub fn tree_root<R: HashReader>(reader: &R, size: u64) -> Result<Hash, R::Error> {
    if size == 0 {
        return Ok(Hash::empty_tree());
    }
    range_hash(reader, 0, size)
}

/// Largest power of two strictly smaller than `n` (`n >= 2`), RFC 9162 §2.1.1.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The inclusion proof `PATH(index, D[0:size])`, RFC 9162 §2.1.3.1, leaf first.
///
/// Panics if `index >= size`; callers check their arguments at the edge.
pub fn inclusion_proof<R: HashReader>(reader: &R, index: u64, size: u64) -> Result<Vec<Hash>, R::Error> {
    assert!(index < size, "inclusion_proof: index {index} >= size {size}");
    let mut out = Vec::with_capacity(64);
    path(reader, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<R: HashReader>(reader: &R, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), R::Error> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < lo + k {
        path(reader, m, lo, lo + k, out)?;
        out.push(range_hash(reader, lo + k, hi)?);
    } else {
        path(reader, m, lo + k, hi, out)?;
        out.push(range_hash(reader, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof `PROOF(old, D[0:new])`, RFC 9162 §2.1.4.1. Empty when
/// `old == 0` or `old == new`.
///
/// Panics if `old > new`; callers check their arguments at the edge.
pub fn consistency_proof<R: HashReader>(reader: &R, old: u64, new: u64) -> Result<Vec<Hash>, R::Error> {
    assert!(old <= new, "consistency_proof: old {old} > new {new}");
    let mut out = Vec::with_capacity(64);
    if old > 0 && old < new {
        subproof(reader, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof<R: HashReader>(
    reader: &R,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), R::Error> {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(range_hash(reader, lo, hi)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(reader, m, lo, lo + k, whole, out)?;
        out.push(range_hash(reader, lo + k, hi)?);
    } else {
        subproof(reader, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(reader, lo, lo + k)?);
    }
    Ok(())
}

/// A whole tree in memory, level by level. For tests, test-vector generation
/// and small tools; the store never holds a tree this way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l][i]` is the complete subtree `(l, i)`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one entry and updates every complete subtree it completes.
    pub fn push(&mut self, entry: &[u8]) {
        self.push_leaf_hash(leaf_hash(entry));
    }

    /// Appends an already hashed leaf.
    pub fn push_leaf_hash(&mut self, mut h: Hash) {
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(h);
            let row = &self.levels[level];
            if row.len() % 2 == 1 {
                break;
            }
            h = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The complete subtree hashes at `level` (level 0: the leaf hashes).
    pub fn level(&self, level: u8) -> &[Hash] {
        self.levels.get(level as usize).map_or(&[], Vec::as_slice)
    }

    /// Root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Hash {
        tree_root(self, size).expect("size within tree")
    }
}

/// Asked for a subtree a [`MemoryTree`] does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no complete subtree at level {level}, index {index}")]
pub struct MissingSubtree {
    /// Level asked for.
    pub level: u8,
    /// Index asked for.
    pub index: u64,
}

impl HashReader for MemoryTree {
    type Error = MissingSubtree;
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Hash, MissingSubtree> {
        self.levels
            .get(level as usize)
            .and_then(|row| row.get(index as usize))
            .copied()
            .ok_or(MissingSubtree { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompose_covers_exactly() {
        for hi in 0..300u64 {
            let parts = decompose(0, hi);
            let mut next = 0;
            for (level, index) in parts.iter().copied() {
                assert_eq!(index << level, next);
                next += 1 << level;
            }
            assert_eq!(next, hi);
            assert_eq!(parts.len() as u32, hi.count_ones());
        }
    }

    #[test]
    fn split_point_is_largest_smaller_power_of_two() {
        for n in 2..2000u64 {
            let k = split_point(n);
            assert!(k.is_power_of_two() && k < n && 2 * k >= n, "n={n} k={k}");
        }
    }
}
