//! The right edge of a tiled tree: for each tile level, the hashes of the one
//! partial tile. With it the tree root is computable without any stored data,
//! and appends know which tiles they complete.
//!
//! The edge is small (at most 255 hashes per level) and derivable from the
//! entries and full tiles, so it is never stored: the store rebuilds it at open.

use crate::hash::Hash;
use crate::tile::{TILE_HEIGHT, TILE_WIDTH};
use crate::tree::{tree_root, HashReader, MemoryTree};

/// The partial tiles of a tree of `size` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    size: u64,
    /// `rows[L]` holds `(size >> 8L) % 256` hashes of tree level `8L`, with
    /// every complete subtree above them inside the tile, kept up to date as
    /// hashes arrive (amortized one hash per push), so reading any of them is
    /// a lookup.
    rows: Vec<MemoryTree>,
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
    /// The 16 hashes of tree level `8L + 4` inside the tile.
    pub mid: Vec<Hash>,
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
        let ok = (0..rows.len().max(levels(size)))
            .all(|l| rows.get(l).map_or(0, Vec::len) as u64 == width_at(size, l as u8));
        let rows = rows
            .into_iter()
            .map(|row| {
                let mut t = MemoryTree::new();
                row.into_iter().for_each(|h| t.push_leaf_hash(h));
                t
            })
            .collect();
        ok.then_some(Self { size, rows })
    }

    /// Number of entries in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The partial tile's hashes at tile level `level` (possibly empty).
    pub fn row(&self, level: u8) -> &[Hash] {
        self.rows.get(level as usize).map_or(&[], |t| t.level(0))
    }

    /// The complete subtree at in-tile level `k` (< 8), index `j` within the
    /// partial tile at tile level `level`; `None` if it is not complete.
    pub fn row_subtree(&self, level: u8, k: u8, j: u64) -> Option<Hash> {
        self.rows.get(level as usize)?.subtree_hash(k, j).ok()
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
                self.rows.push(MemoryTree::new());
            }
            let row = &mut self.rows[level];
            row.push_leaf_hash(h);
            if row.size() != TILE_WIDTH {
                break;
            }
            let full = std::mem::take(row);
            h = full.subtree_hash(TILE_HEIGHT, 0).expect("a full tile has a root");
            let shift = u32::from(TILE_HEIGHT) * (level as u32 + 1);
            done.push(FullTile {
                level: level as u8,
                index: position >> shift,
                hashes: full.level(0).to_vec(),
                mid: full.level(4).to_vec(),
            });
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
        let j = ((index << k) % TILE_WIDTH) >> k;
        Ok(self
            .row_subtree(tile_level, k, j)
            .expect("the root's subtrees lie in the edge"))
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
                let rows = (0..edge.rows.len() as u8).map(|l| edge.row(l).to_vec()).collect();
                assert_eq!(Edge::from_rows(n, rows).as_ref(), Some(&edge));
            }
        }
        assert_eq!(tiles, 70_000 / 256 + 1);
    }
}
