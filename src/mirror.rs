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
#[error("{path}: {why}")]
pub struct MirrorError {
    path: String,
    why: String,
}

impl TileSource for DirSource {
    type Error = MirrorError;
    fn read_tile(&self, addr: TileAddr) -> Result<Vec<u8>, MirrorError> {
        self.read(&addr.to_string())
    }
}

impl DirSource {
    /// The file at `path` (`checkpoint`, `tile/...`) in the mirror.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, MirrorError> {
        let path = self.root.join(path);
        std::fs::read(&path).map_err(|e| MirrorError {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    }
}

/// Reads a log published over HTTP at its tlog-tiles paths under a base
/// URL: a static web server, a CDN, a bucket (`vouch serve --storage`
/// publishes one under `<prefix>/ledger/`), or a registry's `/ledger`.
#[derive(Debug)]
pub struct HttpSource {
    base: String,
    agent: ureq::Agent,
}

impl HttpSource {
    /// The log at `base` (`https://host/path`, no trailing slash needed).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::new_with_defaults(),
        }
    }

    /// The file at `path` (`checkpoint`, `tile/...`) under the base URL.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, MirrorError> {
        let url = format!("{}/{path}", self.base);
        let fail = |why: String| MirrorError { path: url.clone(), why };
        let mut resp = self.agent.get(&url).call().map_err(|e| fail(e.to_string()))?;
        resp.body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| fail(e.to_string()))
    }
}

impl TileSource for HttpSource {
    type Error = MirrorError;
    fn read_tile(&self, addr: TileAddr) -> Result<Vec<u8>, MirrorError> {
        self.read(&addr.to_string())
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
    let kinds = kinds(size);
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
pub fn tiles_at(kind: TileKind, size: u64) -> u64 {
    (size >> shift(kind)).div_ceil(TILE_WIDTH)
}

/// The indexes of the tiles of `kind` that a tree of `size` entries has
/// and one of `from <= size` entries lacks at that width: from the tile
/// holding the old right edge on.
pub fn tiles_grown(kind: TileKind, from: u64, size: u64) -> std::ops::Range<u64> {
    let (had, has) = (from >> shift(kind), size >> shift(kind));
    let first = had / TILE_WIDTH;
    match had == has {
        true => first..first,
        false => first..tiles_at(kind, size),
    }
}

/// Every kind of tile a tree of `size` entries has: entry bundles, and
/// hash tiles of each level.
pub fn kinds(size: u64) -> Vec<TileKind> {
    let mut kinds = vec![TileKind::Entries];
    kinds.extend((0..vouch_ledger::edge::levels(size) as u8).map(|level| TileKind::Hashes { level }));
    kinds
}

/// log2 of the entries under one hash of `kind`'s level.
fn shift(kind: TileKind) -> u32 {
    let level = match kind {
        TileKind::Hashes { level } => level,
        TileKind::Entries => 0,
    };
    u32::from(TILE_HEIGHT) * u32::from(level)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiles_grown_are_those_a_wider_tree_names_differently() {
        // Every tile of the larger tree whose path differs from the
        // smaller's (new, or wider) is in the range, and no tile before it.
        for (from, size) in [
            (0, 1),
            (1, 2),
            (255, 256),
            (256, 257),
            (300, 70_000),
            (65_536, 65_537),
            (5, 5),
        ] {
            for kind in kinds(size) {
                let grown = tiles_grown(kind, from, size);
                for index in 0..tiles_at(kind, size) {
                    let now = TileAddr::for_tree(kind, index, size);
                    let before = TileAddr::for_tree(kind, index, from);
                    assert_eq!(now != before, grown.contains(&index), "{kind:?} {index} {from}->{size}");
                }
            }
        }
    }
}
