//! Reads of one committed tree state: complete subtree hashes, tiles and
//! entry bundles, from the full tiles in the rows and the state's edge.

use super::rows::{Family, Value};
use super::{tile_key, ReadError, Shared, State, MID_LEVEL, TILE_BYTES, TILE_VALUE_BYTES, UPPER_TILE_CACHE};
use crate::fsck::TileSource;
use crate::hash::{Hash, HASH_LEN};
use crate::tile::{encode_bundle, row_hash, TileAddr, TileKind, TILE_HEIGHT, TILE_WIDTH};
use crate::tree::HashReader;
use std::sync::Arc;

/// Reads complete subtree hashes of one committed tree state: full tiles from
/// RocksDB, partial ones from the state's edge. Remembers the tiles it has
/// read, since one proof takes most of its hashes from two or three tiles.
pub(super) struct StoreReader<'a> {
    shared: &'a Shared,
    pub(super) state: Arc<State>,
    tiles: std::cell::RefCell<Vec<((u8, u64), Value<'a>)>>,
}

impl<'a> StoreReader<'a> {
    pub(super) fn new(shared: &'a Shared, state: Arc<State>) -> Self {
        Self {
            shared,
            state,
            tiles: Default::default(),
        }
    }

    /// A full tile of level >= 1 with all its subtrees, from the cache.
    fn upper_tile(&self, level: u8, index: u64) -> Result<Arc<crate::tree::MemoryTree>, ReadError> {
        if let Some(t) = self.shared.upper_tiles.read().expect("cache lock").get(&(level, index)) {
            return Ok(t.clone());
        }
        let value = self.full_tile(level, index)?;
        let mut tree = crate::tree::MemoryTree::new();
        for h in value[..TILE_BYTES].chunks_exact(HASH_LEN) {
            tree.push_leaf_hash(Hash::from_slice(h).expect("32"));
        }
        let tree = Arc::new(tree);
        let mut cache = self.shared.upper_tiles.write().expect("cache lock");
        if cache.len() >= UPPER_TILE_CACHE {
            cache.clear();
        }
        cache.insert((level, index), tree.clone());
        Ok(tree)
    }

    pub(super) fn full_tile(&self, level: u8, index: u64) -> Result<Value<'a>, ReadError> {
        let v = self
            .shared
            .rows
            .get(Family::Tiles, &tile_key(level, index))
            .map_err(ReadError::Db)?;
        v.filter(|v| v.len() == TILE_VALUE_BYTES)
            .ok_or_else(|| ReadError::Corrupt(format!("tile {level}/{index} is missing or short")))
    }

    /// The hash of the subtree spanning `n <= 8` hashes from hash position
    /// `from` of a full tile's stored value (positions 256.. are the mid row).
    /// Each tile is read once per reader.
    fn tile_subtree(&self, level: u8, index: u64, from: usize, n: usize) -> Result<Hash, ReadError> {
        let mut tiles = self.tiles.borrow_mut();
        let at = match tiles.iter().position(|(k, _)| *k == (level, index)) {
            Some(at) => at,
            None => {
                tiles.push(((level, index), self.full_tile(level, index)?));
                tiles.len() - 1
            }
        };
        let value = &tiles[at].1;
        let mut row = [Hash::default(); 8];
        for (i, h) in row[..n].iter_mut().enumerate() {
            *h = Hash::from_slice(&value[(from + i) * HASH_LEN..(from + i + 1) * HASH_LEN]).expect("32");
        }
        Ok(row_hash(&row[..n], 0, n))
    }

    /// The first `addr.width` hashes or entries of a tile that exists in this
    /// state at that width or wider.
    pub(super) fn read_prefix(&self, addr: TileAddr) -> Result<Vec<u8>, ReadError> {
        let width = usize::from(addr.width);
        let full = TileAddr::for_tree(addr.kind, addr.index, self.state.edge.size()).is_some_and(|a| a.is_full());
        match addr.kind {
            TileKind::Entries => {
                let entries = self.entries(addr.index * TILE_WIDTH, width)?;
                Ok(encode_bundle(entries.iter().map(Vec::as_slice)).expect("stored entries fit"))
            }
            TileKind::Hashes { level } if full => Ok(self.full_tile(level, addr.index)?[..width * HASH_LEN].to_vec()),
            TileKind::Hashes { level } => Ok(self.state.edge.row(level)[..width].iter().flat_map(|h| h.0).collect()),
        }
    }

    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, ReadError> {
        let out = self.shared.rows.entries(start, count).map_err(ReadError::Db)?;
        if out.len() != count {
            return Err(ReadError::Corrupt(format!(
                "entry {} is missing",
                start + out.len() as u64
            )));
        }
        Ok(out)
    }
}

impl HashReader for StoreReader<'_> {
    type Error = ReadError;

    fn subtree_hash(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        let tile_level = level / TILE_HEIGHT;
        let k = level % TILE_HEIGHT;
        let first = index << k; // position among tree-level-8L hashes
        let (tile, offset) = (first / TILE_WIDTH, (first % TILE_WIDTH) as usize);
        let count = self.state.edge.size() >> (u32::from(TILE_HEIGHT) * u32::from(tile_level));
        if tile == count / TILE_WIDTH {
            return self
                .state
                .edge
                .row_subtree(tile_level, k, (offset >> k) as u64)
                .ok_or_else(|| ReadError::Corrupt(format!("subtree {level}/{index} is not complete")));
        }
        if tile_level >= 1 {
            let tree = self.upper_tile(tile_level, tile)?;
            return tree
                .subtree_hash(k, (offset >> k) as u64)
                .map_err(|e| ReadError::Corrupt(e.to_string()));
        }
        if k >= MID_LEVEL {
            // Start from the stored in-tile level-4 hashes.
            self.tile_subtree(
                tile_level,
                tile,
                TILE_WIDTH as usize + offset / 16,
                1 << (k - MID_LEVEL),
            )
        } else {
            self.tile_subtree(tile_level, tile, offset, 1 << k)
        }
    }
}

impl TileSource for StoreReader<'_> {
    type Error = ReadError;

    fn read_tile(&self, addr: TileAddr) -> Result<Vec<u8>, ReadError> {
        let size = self.state.edge.size();
        if TileAddr::for_tree(addr.kind, addr.index, size) != Some(addr) {
            return Err(ReadError::OutOfRange {
                what: addr.to_string(),
                size,
            });
        }
        self.read_prefix(addr)
    }
}
