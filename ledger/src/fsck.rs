//! The log's own auditor: recompute every tile and the root from the entries
//! alone, and compare them with what a source serves and with a checkpoint.
//!
//! It reads through [`TileSource`], the c2sp.org/tlog-tiles read API, so the
//! same check runs against the local store or against any mirror.

use crate::checkpoint::Checkpoint;
use crate::edge::Edge;
use crate::hash::{leaf_hash, Hash};
use crate::tile::{decode_bundle, tile_hashes, TileAddr, TileKind, TILE_WIDTH};

/// Serves tiles and entry bundles by address (c2sp.org/tlog-tiles).
pub trait TileSource {
    /// The source's failure.
    type Error: std::error::Error + 'static;
    /// The bytes of a hash tile or entry bundle. A missing one is an error.
    fn read_tile(&self, addr: TileAddr) -> Result<Vec<u8>, Self::Error>;
}

/// What the fsck found wrong. The first problem ends the check.
#[derive(Debug, thiserror::Error)]
pub enum FsckError<E: std::error::Error + 'static> {
    /// The source failed to serve something.
    #[error("reading {addr}: {source}")]
    Read {
        /// What was being read.
        addr: TileAddr,
        /// The source's error.
        source: E,
    },
    /// An entry bundle does not decode, or has the wrong number of entries.
    #[error("entry bundle {addr} is malformed: {problem}")]
    BadBundle {
        /// The bundle.
        addr: TileAddr,
        /// What is wrong.
        problem: String,
    },
    /// A served tile differs from the one recomputed from the entries.
    #[error("tile {addr} differs from the entries at hash {position}")]
    TileMismatch {
        /// The tile.
        addr: TileAddr,
        /// First differing hash position (or the length, if lengths differ).
        position: usize,
    },
    /// The root recomputed from the entries is not the checkpoint's.
    #[error("entries give root {computed} for size {size}, checkpoint says {expected}")]
    RootMismatch {
        /// Tree size.
        size: u64,
        /// Root from the entries.
        computed: Hash,
        /// Root in the checkpoint.
        expected: Hash,
    },
}

/// What a passing fsck covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckReport {
    /// Entries hashed.
    pub entries: u64,
    /// Hash tiles compared.
    pub tiles: u64,
    /// The root that matched the checkpoint.
    pub root: Hash,
}

/// Recomputes the tree of `checkpoint.size` entries from the source's entry
/// bundles; every hash tile the source serves for that size must match, and so
/// must the root. `progress` is called with the number of entries done after
/// each bundle.
pub fn fsck<S: TileSource>(
    source: &S,
    checkpoint: &Checkpoint,
    mut progress: impl FnMut(u64),
) -> Result<FsckReport, FsckError<S::Error>> {
    let size = checkpoint.size;
    let mut edge = Edge::new();
    let mut tiles = 0u64;
    let read = |addr: TileAddr| {
        source
            .read_tile(addr)
            .map_err(|source| FsckError::Read { addr, source })
    };
    for n in 0..size.div_ceil(TILE_WIDTH) {
        let addr = TileAddr::for_tree(TileKind::Entries, n, size).expect("bundle inside the tree");
        let bytes = read(addr)?;
        let entries = decode_bundle(&bytes).map_err(|e| FsckError::BadBundle {
            addr,
            problem: e.to_string(),
        })?;
        if entries.len() != usize::from(addr.width) {
            let problem = format!("{} entries, expected {}", entries.len(), addr.width);
            return Err(FsckError::BadBundle { addr, problem });
        }
        for e in entries {
            for full in edge.push(leaf_hash(e)) {
                let kind = TileKind::Hashes { level: full.level };
                let addr = TileAddr {
                    kind,
                    index: full.index,
                    width: TILE_WIDTH as u16,
                };
                compare(addr, &read(addr)?, &full.hashes)?;
                tiles += 1;
            }
        }
        progress(edge.size());
    }
    // The partial tiles at the right edge, which the source serves as `.p/W`.
    for level in 0..crate::edge::levels(size) as u8 {
        let row = edge.row(level);
        if !row.is_empty() {
            let kind = TileKind::Hashes { level };
            let addr = TileAddr::for_tree(kind, size >> (8 * u32::from(level)) >> 8, size).expect("partial tile");
            compare(addr, &read(addr)?, row)?;
            tiles += 1;
        }
    }
    let computed = edge.root();
    if computed != checkpoint.root {
        return Err(FsckError::RootMismatch {
            size,
            computed,
            expected: checkpoint.root,
        });
    }
    Ok(FsckReport {
        entries: size,
        tiles,
        root: computed,
    })
}

fn compare<E: std::error::Error>(addr: TileAddr, served: &[u8], expected: &[Hash]) -> Result<(), FsckError<E>> {
    let served = tile_hashes(served).unwrap_or_default();
    if let Some(position) = (0..expected.len()).find(|&i| served.get(i) != Some(&expected[i])) {
        return Err(FsckError::TileMismatch { addr, position });
    }
    if served.len() != expected.len() {
        return Err(FsckError::TileMismatch {
            addr,
            position: served.len().min(expected.len()),
        });
    }
    Ok(())
}
