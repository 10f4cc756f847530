//! The right edge of a tiled tree: for each tile level, the hashes of the one
//! partial tile. With it the tree root is computable without any stored data,
//! and appends know which tiles they complete.
//!
//! The edge is small (at most 255 hashes per level) and derivable from the
//! entries and full tiles, so it is never stored: the store rebuilds it at open.

use crate::hash::Hash;
use crate::tile::{row_hash, TILE_HEIGHT, TILE_WIDTH};
use crate::tree::{tree_root, HashReader};

/// The partial tiles of a tree of `size` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    size: u64,
    /// `rows[L]` holds `(size >> 8L) % 256` hashes of tree level `8L`.
    rows: Vec<Vec<Hash>>,
}

/// A tile that an append completed: level, index, and its 256 hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullTile {
    /// Tile level `L`.
    pub level: u8,
    /// Tile index `N`.
    pub index: u64,
    /// The 256 hashes of tree level `8L`.
    pub hashes: Vec<Hash>,
}

impl Edge {
    /// The edge of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// An edge from its rows, checking they have the widths `size` implies.
    pub fn from_rows(size: u64, mut rows: Vec<Vec<Hash>>) -> Option<Self> {
        while rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        let ok = (0..rows.len().max(levels(size))).all(|l| {
            rows.get(l).map_or(0, Vec::len) as u64 == width_at(size, l as u8)
        });
        ok.then_some(Self { size, rows })
    }

    /// Number of entries in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The partial tile's hashes at tile level `level` (possibly empty).
    pub fn row(&self, level: u8) -> &[Hash] {
        self.rows.get(level as usize).map_or(&[], Vec::as_slice)
    }

    /// Appends a leaf hash; returns the tiles this completes, lowest first.
    pub fn push(&mut self, leaf: Hash) -> Vec<FullTile> {
        let position = self.size;
        self.size += 1;
        let mut done = Vec::new();
        let mut h = leaf;
        let mut level = 0usize;
        loop {
            if self.rows.len() == level {
                self.rows.push(Vec::with_capacity(TILE_WIDTH as usize));
            }
            self.rows[level].push(h);
            if self.rows[level].len() as u64 != TILE_WIDTH {
                break;
            }
            let hashes = std::mem::take(&mut self.rows[level]);
            h = row_hash(&hashes, 0, TILE_WIDTH as usize);
            let shift = u32::from(TILE_HEIGHT) * (level as u32 + 1);
            done.push(FullTile { level: level as u8, index: position >> shift, hashes });
            level += 1;
        }
        done
    }

    /// The root of the tree of [`Self::size`] entries.
    pub fn root(&self) -> Hash {
        let Ok(root) = tree_root(self, self.size);
        root
    }
}

/// Tile levels a tree of `size` entries has (0 for the empty tree).
pub fn levels(size: u64) -> usize {
    let mut n = 0;
    while size.checked_shr(u32::from(TILE_HEIGHT) * n as u32).unwrap_or(0) > 0 {
        n += 1;
    }
    n
}

/// Width of the partial tile at tile level `level` for a tree of `size`.
pub fn width_at(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(TILE_HEIGHT) * u32::from(level)).unwrap_or(0) % TILE_WIDTH
}

/// The edge answers for exactly the complete subtrees of the root's
/// decomposition: every maximal complete subtree of `[0, size)` lies inside
/// the partial tile of its tile level.
impl HashReader for Edge {
    type Error = std::convert::Infallible;
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let tile_level = level / TILE_HEIGHT;
        let k = level % TILE_HEIGHT;
        let first = (index << k) % TILE_WIDTH;
        let row = self.row(tile_level);
        Ok(row_hash(row, first as usize, (first + (1 << k)) as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::MemoryTree;

    #[test]
    fn edge_root_matches_memory_tree_across_tile_boundaries() {
        let mut edge = Edge::new();
        let mut tree = MemoryTree::new();
        let mut tiles = 0;
        for i in 0..70_000u32 {
            let e = i.to_be_bytes();
            tiles += edge.push(leaf_hash(&e)).len();
            tree.push(&e);
            let n = u64::from(i) + 1;
            if n < 600 || n % 4093 == 0 || n == 65_536 || n == 65_537 {
                assert_eq!(edge.root(), tree.root_at(n), "size {n}");
                assert!(Edge::from_rows(n, edge.rows.clone()).is_some());
            }
        }
        assert_eq!(tiles, 70_000 / 256 + 1);
    }
}
