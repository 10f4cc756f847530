//! A static c2sp.org/tlog-tiles mirror in a directory: `checkpoint` and
//! `tile/...` files at exactly the paths the tlog-tiles HTTP API serves, so
//! the same tree can be published by any static web server, copied anywhere,
//! and checked with nothing but the ledger's verification half.

use std::path::{Path, PathBuf};
use vouch_ledger::fsck::TileSource;
use vouch_ledger::store::Ledger;
use vouch_ledger::tile::{TileAddr, TileKind, TILE_HEIGHT, TILE_WIDTH};

/// Reads tiles from a mirror directory.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// The mirror at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

/// A mirror file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct MirrorError {
    path: PathBuf,
    source: std::io::Error,
}

impl TileSource for DirSource {
    type Error = MirrorError;
    fn read_tile(&self, addr: TileAddr) -> Result<Vec<u8>, MirrorError> {
        let path = self.root.join(addr.to_string());
        std::fs::read(&path).map_err(|source| MirrorError { path, source })
    }
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// Files written.
    pub written: u64,
    /// Full tiles already present (they never change) and skipped.
    pub skipped: u64,
}

/// Writes every tile and entry bundle of the ledger's current tree, then the
/// checkpoint, into `dir`. Full tiles already there are kept (a full tile is
/// immutable); partial tiles have their own names. The checkpoint is written
/// last, so a mirror never names a tree its tiles do not hold yet.
pub fn export(
    ledger: &Ledger,
    dir: &Path,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportReport, Box<dyn std::error::Error>> {
    let note = ledger.checkpoint();
    let checkpoint = vouch_ledger::Checkpoint::open(note.as_bytes(), ledger.verifier())?;
    let size = checkpoint.size;
    let mut report = ExportReport::default();
    let mut kinds = vec![TileKind::Entries];
    kinds.extend((0..vouch_ledger::edge::levels(size) as u8).map(|level| TileKind::Hashes { level }));
    let total: u64 = kinds.iter().map(|k| tiles_at(*k, size)).sum();
    let mut done = 0;
    for kind in kinds {
        for index in 0..tiles_at(kind, size) {
            let addr = TileAddr::for_tree(kind, index, size).expect("tile inside the tree");
            let path = dir.join(addr.to_string());
            if addr.is_full() && path.exists() {
                report.skipped += 1;
            } else {
                let bytes = ledger
                    .tile(addr)?
                    .ok_or_else(|| format!("{addr} vanished during export"))?;
                write_atomically(&path, &bytes)?;
                report.written += 1;
            }
            done += 1;
            progress(done, total);
        }
    }
    write_atomically(&dir.join("checkpoint"), note.as_bytes())?;
    report.written += 1;
    Ok(report)
}

/// Tiles (or bundles) of `kind` in a tree of `size` entries.
fn tiles_at(kind: TileKind, size: u64) -> u64 {
    let level = match kind {
        TileKind::Hashes { level } => level,
        TileKind::Entries => 0,
    };
    (size >> (u32::from(TILE_HEIGHT) * u32::from(level))).div_ceil(TILE_WIDTH)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
