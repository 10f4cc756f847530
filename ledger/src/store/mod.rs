//! The durable ledger: entries and tiles in RocksDB, appended by a
//! group-committing sequencer, each batch covered by a newly signed checkpoint.
//!
//! Key layout (`spec/storage-layout.md` draws the same):
//!
//! ```text
//! ledger_meta      "format"      -> u32 BE storage format version (1)
//!                  "origin"      -> the log's origin line (its key name)
//!                  "checkpoint"  -> the latest signed checkpoint note
//! ledger_entries   u64 BE index  -> entry bytes (<= 65535)
//! ledger_tiles     u8 level || u64 BE index
//!                                -> 256 hashes of tree level 8L (8192 B)
//!                                   || 16 hashes of tree level 8L+4 (512 B)
//! ```
//!
//! Only *full* tiles are stored, each written once and never rewritten. The
//! partial tiles at the right edge are derivable (level 0 from the entries,
//! level L from the full tiles of level L-1) and are rebuilt at open.

mod keyfile;
mod reads;
mod sequencer;

pub use keyfile::{load_or_create_signer, load_signer, KeyFileError};

use crate::checkpoint::Checkpoint;
use crate::edge::{levels, width_at, Edge};
use crate::fsck::{fsck, FsckError, FsckReport, TileSource};
use crate::hash::{leaf_hash, Hash, HASH_LEN};
use crate::note::{Note, NoteSigner, VerifierKey};
use crate::tile::{encode_bundle, row_hash, TileAddr, TileKind, MAX_ENTRY_BYTES, TILE_HEIGHT, TILE_WIDTH};
use crate::tree::HashReader;
use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The storage format this code reads and writes (the `format` meta row).
pub const FORMAT_VERSION: u32 = 1;
/// Column family of the meta rows.
pub const CF_META: &str = "ledger_meta";
/// Column family of the entries.
pub const CF_ENTRIES: &str = "ledger_entries";
/// Column family of the full tiles.
pub const CF_TILES: &str = "ledger_tiles";

const META_FORMAT: &[u8] = b"format";
const META_ORIGIN: &[u8] = b"origin";
const META_CHECKPOINT: &[u8] = b"checkpoint";
/// Hashes of the in-tile level 4 stored after each full tile's 256 hashes, so
/// that no in-tile subtree hash costs more than 7 hash computations.
const MID_LEVEL: u8 = 4;
const MID_WIDTH: usize = 1 << (TILE_HEIGHT - MID_LEVEL);
const TILE_BYTES: usize = TILE_WIDTH as usize * HASH_LEN;
const TILE_VALUE_BYTES: usize = TILE_BYTES + MID_WIDTH * HASH_LEN;
/// Block cache for the tiles column family: 256 MiB holds every tile of a
/// log of ~7.5 million entries; larger logs keep their upper levels cached.
const TILE_CACHE_BYTES: usize = 256 << 20;

/// Column families the ledger needs, for a caller that opens one RocksDB
/// instance shared with other data (the registry) and hands it to
/// [`Ledger::open_in`].
pub fn column_families() -> Vec<ColumnFamilyDescriptor> {
    let mut entries = Options::default();
    entries.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let mut tiles = Options::default();
    // Hashes do not compress. Proofs read tiles at random: give them a block
    // cache of their own, and keep index and filter blocks in it too.
    tiles.set_compression_type(rocksdb::DBCompressionType::None);
    let mut table = rocksdb::BlockBasedOptions::default();
    let cache = rocksdb::Cache::new_lru_cache(TILE_CACHE_BYTES).expect("allocate the tiles block cache");
    table.set_block_cache(&cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_bloom_filter(10.0, false);
    tiles.set_block_based_table_factory(&table);
    vec![
        ColumnFamilyDescriptor::new(CF_META, Options::default()),
        ColumnFamilyDescriptor::new(CF_ENTRIES, entries),
        ColumnFamilyDescriptor::new(CF_TILES, tiles),
    ]
}

/// Options to open a RocksDB instance that holds the ledger.
pub fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o
}

/// Why the ledger could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// RocksDB failed.
    #[error("ledger database: {0}")]
    Db(#[from] rocksdb::Error),
    /// The store was written by a format this build does not know.
    #[error("ledger storage format version {found} is not supported (this build reads version {FORMAT_VERSION}); refusing to open")]
    UnsupportedFormat {
        /// Version found on disk.
        found: u32,
    },
    /// The store belongs to a log with another origin.
    #[error("ledger origin is {found:?} but the signing key is for {expected:?}")]
    OriginMismatch {
        /// Origin on disk.
        found: String,
        /// Origin of the key.
        expected: String,
    },
    /// The stored data contradicts itself.
    #[error("ledger store is corrupt: {0}")]
    Corrupt(String),
}

/// Why an append did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Larger than the tlog-tiles bundle format can carry.
    #[error("entry is {len} bytes, over the {MAX_ENTRY_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// A previous commit failed; the ledger takes no more appends until it is
    /// reopened, because whether that batch reached the disk is unknown.
    #[error("ledger stopped after a failed commit ({0}); restart to recover")]
    Poisoned(String),
    /// The ledger is shutting down.
    #[error("ledger is closed")]
    Closed,
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// RocksDB failed.
    #[error("ledger database: {0}")]
    Db(String),
    /// Stored data is missing or malformed.
    #[error("ledger store is corrupt: {0}")]
    Corrupt(String),
    /// The request reaches beyond the tree, or its arguments are inverted.
    #[error("{what} is out of range for tree size {size}")]
    OutOfRange {
        /// What was asked.
        what: String,
        /// Current tree size.
        size: u64,
    },
}

impl From<rocksdb::Error> for ReadError {
    fn from(e: rocksdb::Error) -> Self {
        ReadError::Db(e.to_string())
    }
}

/// What readers see: one committed tree state, replaced whole after each commit.
#[derive(Debug)]
struct State {
    edge: Edge,
    root: Hash,
    /// The signed checkpoint note for `edge.size()`.
    checkpoint: Arc<str>,
}

struct Shared {
    db: Arc<DB>,
    state: RwLock<Arc<State>>,
    verifier: VerifierKey,
    /// Full tiles of level 1 and up, with every in-tile subtree computed.
    /// There are few of them (one per 65,536 entries) and nearly every proof
    /// passes through one; full tiles never change, so entries never go stale.
    upper_tiles: RwLock<std::collections::HashMap<(u8, u64), Arc<crate::tree::MemoryTree>>>,
    /// The size of each newly published state, for [`Ledger::subscribe`].
    published: tokio::sync::watch::Sender<u64>,
}

/// Most expanded upper tiles kept (16 KiB each): 64 MiB, enough for logs of
/// 268 million entries; past that the cache starts over when full.
const UPPER_TILE_CACHE: usize = 4096;

/// A handle to the ledger. Cheap to clone; all clones share one sequencer.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
    sequencer: sequencer::Handle,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("verifier", &self.shared.verifier)
            .field("size", &self.size())
            .finish()
    }
}

impl Ledger {
    /// Opens (creating if needed) a ledger in its own RocksDB at `dir`.
    pub fn open(dir: &Path, signer: NoteSigner) -> Result<Ledger, OpenError> {
        let db = DB::open_cf_descriptors(&db_options(), dir, column_families())?;
        Self::open_in(Arc::new(db), signer)
    }

    /// Opens the ledger inside `db`, which must have [`column_families`].
    /// The signer's key name is the log's origin.
    pub fn open_in(db: Arc<DB>, signer: NoteSigner) -> Result<Ledger, OpenError> {
        let origin = signer.verifier().name().to_owned();
        let meta = cf(&db, CF_META);
        match db.get_cf(meta, META_FORMAT)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| OpenError::Corrupt("format row is not 4 bytes".into()))?;
                if found != FORMAT_VERSION {
                    return Err(OpenError::UnsupportedFormat { found });
                }
            }
            None => create(&db, &signer)?,
        }
        let found = db.get_cf(meta, META_ORIGIN)?.unwrap_or_default();
        if found != origin.as_bytes() {
            return Err(OpenError::OriginMismatch {
                found: String::from_utf8_lossy(&found).into(),
                expected: origin,
            });
        }
        let note = db
            .get_cf(meta, META_CHECKPOINT)?
            .ok_or_else(|| OpenError::Corrupt("no checkpoint row".into()))?;
        let checkpoint = Checkpoint::open(&note, signer.verifier())
            .map_err(|e| OpenError::Corrupt(format!("stored checkpoint does not verify with the log key: {e}")))?;
        let edge = rebuild_edge(&db, checkpoint.size)?;
        if edge.root() != checkpoint.root {
            return Err(OpenError::Corrupt(format!(
                "entries give root {} at size {}, checkpoint says {}",
                edge.root(),
                checkpoint.size,
                checkpoint.root
            )));
        }
        if db
            .get_pinned_cf(cf(&db, CF_ENTRIES), checkpoint.size.to_be_bytes())?
            .is_some()
        {
            return Err(OpenError::Corrupt(format!(
                "an entry exists beyond tree size {}",
                checkpoint.size
            )));
        }
        let note = String::from_utf8(note).expect("checkpoint parsed as UTF-8");
        let state = State {
            root: checkpoint.root,
            edge,
            checkpoint: note.into(),
        };
        let shared = Arc::new(Shared {
            db,
            state: RwLock::new(Arc::new(state)),
            verifier: signer.verifier().clone(),
            upper_tiles: Default::default(),
            published: tokio::sync::watch::Sender::new(checkpoint.size),
        });
        let sequencer = sequencer::start(shared.clone(), signer);
        Ok(Ledger { shared, sequencer })
    }

    /// Appends one entry. Resolves to its index once the entry, its tiles and a
    /// checkpoint covering it are durably committed (WAL synced).
    pub async fn append(&self, entry: Vec<u8>) -> Result<u64, AppendError> {
        self.sequencer.append(entry).await
    }

    /// Appends several entries in this order (others' may come between),
    /// sharing group commits: one wait for the fsync instead of one per
    /// entry. Resolves to their indexes once all are durable; on an error
    /// some of the first may be durable.
    pub async fn append_all(&self, entries: Vec<Vec<u8>>) -> Result<Vec<u64>, AppendError> {
        self.sequencer.append_all(entries).await
    }

    /// [`Self::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, entry: Vec<u8>) -> Result<u64, AppendError> {
        self.sequencer.append_blocking(entry)
    }

    /// The log's public key, for checkpoint verification.
    pub fn verifier(&self) -> &VerifierKey {
        &self.shared.verifier
    }

    fn state(&self) -> Arc<State> {
        self.shared.state.read().expect("state lock").clone()
    }

    /// Number of committed entries.
    pub fn size(&self) -> u64 {
        self.state().edge.size()
    }

    /// The latest signed checkpoint note.
    pub fn checkpoint(&self) -> Arc<str> {
        self.state().checkpoint.clone()
    }

    /// Notified with the tree size each time a new checkpoint is published
    /// (the witness client waits on it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.published.subscribe()
    }

    /// The root hash at the current size.
    pub fn root(&self) -> Hash {
        self.state().root
    }

    /// Recomputes every tile and the root from the stored entries and compares
    /// them with the stored tiles and the latest checkpoint; also checks the
    /// stored mid-tile hashes. `progress` gets the count of entries checked.
    pub fn fsck(&self, progress: impl FnMut(u64)) -> Result<FsckReport, FsckError<ReadError>> {
        let reader = self.reader();
        let note = Note::parse(reader.state.checkpoint.as_bytes()).map_err(|e| corrupt_fsck(e.to_string()))?;
        let text = self
            .shared
            .verifier
            .open(&note)
            .map_err(|e| corrupt_fsck(e.to_string()))?;
        let checkpoint = Checkpoint::parse(text).map_err(|e| corrupt_fsck(e.to_string()))?;
        let report = fsck(&reader, &checkpoint, progress)?;
        for level in 0..levels(checkpoint.size) as u8 {
            let full = (checkpoint.size >> (u32::from(TILE_HEIGHT) * u32::from(level))) / TILE_WIDTH;
            for index in 0..full {
                let value = reader.full_tile(level, index).map_err(corrupt_fsck)?;
                let row = crate::tile::tile_hashes(&value[..TILE_BYTES]).expect("whole hashes");
                if value[TILE_BYTES..] != mid_row(&row)[..] {
                    return Err(corrupt_fsck(format!(
                        "mid-tile hashes of tile {level}/{index} are wrong"
                    )));
                }
            }
        }
        Ok(report)
    }

    fn reader(&self) -> StoreReader<'_> {
        StoreReader::new(&self.shared, self.state())
    }
}

fn corrupt_fsck(e: impl std::fmt::Display) -> FsckError<ReadError> {
    let addr = TileAddr {
        kind: TileKind::Hashes { level: 0 },
        index: 0,
        width: 256,
    };
    FsckError::Read {
        addr,
        source: ReadError::Corrupt(e.to_string()),
    }
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} was opened with the database"))
}

fn tile_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The 16 hashes of in-tile level 4 of a full tile's 256 hashes.
fn mid_row(row: &[Hash]) -> Vec<u8> {
    (0..MID_WIDTH)
        .flat_map(|j| row_hash(row, j * 16, j * 16 + 16).0)
        .collect()
}

/// The stored value of a full tile: its hashes, then its mid row.
fn tile_value(tile: &crate::edge::FullTile) -> Vec<u8> {
    debug_assert_eq!(tile.mid.len(), MID_WIDTH);
    let mut v = Vec::with_capacity(TILE_VALUE_BYTES);
    v.extend(tile.hashes.iter().chain(&tile.mid).flat_map(|h| h.0));
    v
}

/// First open: the format row, the origin and the signed empty checkpoint,
/// in one synced batch, so a crash leaves either nothing or a complete log.
fn create(db: &DB, signer: &NoteSigner) -> Result<(), OpenError> {
    let meta = cf(db, CF_META);
    if db.get_cf(meta, META_CHECKPOINT)?.is_some() {
        return Err(OpenError::Corrupt("checkpoint row without a format row".into()));
    }
    let origin = signer.verifier().name();
    let empty = Checkpoint {
        origin: origin.to_owned(),
        size: 0,
        root: Hash::empty_tree(),
        extensions: vec![],
    };
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(meta, META_FORMAT, FORMAT_VERSION.to_be_bytes());
    batch.put_cf(meta, META_ORIGIN, origin.as_bytes());
    batch.put_cf(meta, META_CHECKPOINT, signer.sign(&empty.to_text()).as_bytes());
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    Ok(())
}

/// Rebuilds the partial tiles of a tree of `size` entries from the stored
/// entries (level 0) and full tiles (levels above).
fn rebuild_edge(db: &DB, size: u64) -> Result<Edge, OpenError> {
    let mut rows = Vec::new();
    for level in 0..levels(size) as u8 {
        let width = width_at(size, level);
        let count = size >> (u32::from(TILE_HEIGHT) * u32::from(level));
        let first = count - width;
        let mut row = Vec::with_capacity(width as usize);
        for i in first..count {
            let h = if level == 0 {
                let e = db
                    .get_pinned_cf(cf(db, CF_ENTRIES), i.to_be_bytes())?
                    .ok_or_else(|| OpenError::Corrupt(format!("entry {i} is missing")))?;
                leaf_hash(&e)
            } else {
                let v = db
                    .get_pinned_cf(cf(db, CF_TILES), tile_key(level - 1, i))?
                    .filter(|v| v.len() == TILE_VALUE_BYTES)
                    .ok_or_else(|| OpenError::Corrupt(format!("tile {}/{i} is missing or short", level - 1)))?;
                let mid = crate::tile::tile_hashes(&v[TILE_BYTES..]).expect("whole hashes");
                row_hash(&mid, 0, MID_WIDTH)
            };
            row.push(h);
        }
        rows.push(row);
    }
    Edge::from_rows(size, rows).ok_or_else(|| OpenError::Corrupt("right edge has wrong widths".into()))
}

/// Reads complete subtree hashes of one committed tree state: full tiles from
/// RocksDB, partial ones from the state's edge. Remembers the tiles it has
/// read, since one proof takes most of its hashes from two or three tiles.
struct StoreReader<'a> {
    db: &'a DB,
    shared: &'a Shared,
    state: Arc<State>,
    tiles: std::cell::RefCell<Vec<((u8, u64), rocksdb::DBPinnableSlice<'a>)>>,
}

impl<'a> StoreReader<'a> {
    fn new(shared: &'a Shared, state: Arc<State>) -> Self {
        Self {
            db: &shared.db,
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

    fn full_tile(&self, level: u8, index: u64) -> Result<rocksdb::DBPinnableSlice<'a>, ReadError> {
        let v = self.db.get_pinned_cf(cf(self.db, CF_TILES), tile_key(level, index))?;
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
    fn read_prefix(&self, addr: TileAddr) -> Result<Vec<u8>, ReadError> {
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
        let mut out = Vec::with_capacity(count);
        let mode = rocksdb::IteratorMode::From(&start.to_be_bytes()[..], rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(cf(self.db, CF_ENTRIES), mode).take(count) {
            let (k, v) = item?;
            if k[..] != (start + out.len() as u64).to_be_bytes() {
                return Err(ReadError::Corrupt(format!(
                    "entry {} is missing",
                    start + out.len() as u64
                )));
            }
            out.push(v.into_vec());
        }
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
