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
mod open;
mod reader;
mod reads;
mod rows;
mod sequencer;

pub use keyfile::{load_or_create_signer, load_signer, KeyFileError};
pub use rows::{CommitError, Family, RocksRows, Rows, Value};

use crate::checkpoint::Checkpoint;
use crate::edge::{levels, Edge};
use crate::fsck::{fsck, FsckError, FsckReport};
use crate::hash::{Hash, HASH_LEN};
use crate::note::{Note, NoteSigner, VerifierKey};
use crate::tile::{row_hash, TileAddr, TileKind, MAX_ENTRY_BYTES, TILE_HEIGHT, TILE_WIDTH};
use reader::StoreReader;
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

/// Key of the `ledger_meta` row holding the storage format version.
pub const META_FORMAT: &[u8] = b"format";
const META_ORIGIN: &[u8] = b"origin";
/// Key of the `ledger_meta` row holding the latest signed checkpoint: the
/// row every commit is conditional on ([`Rows::commit`]).
pub const META_CHECKPOINT: &[u8] = b"checkpoint";
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
    /// The rows' store failed.
    #[error("ledger store: {0}")]
    Store(String),
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
    /// The store of rows shared with other processes did not answer, or
    /// answered that an append's outcome is unknown. Nothing is
    /// acknowledged; the next commit finds out what was stored.
    #[error("ledger store unavailable: {0}")]
    Unavailable(String),
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
    rows: Arc<dyn Rows>,
    state: RwLock<Arc<State>>,
    verifier: VerifierKey,
    /// Full tiles of level 1 and up, with every in-tile subtree computed.
    /// There are few of them (one per 65,536 entries) and nearly every proof
    /// passes through one; full tiles never change, so entries never go stale.
    upper_tiles: RwLock<std::collections::HashMap<(u8, u64), Arc<crate::tree::MemoryTree>>>,
    /// The size of each newly published state, for [`Ledger::subscribe`].
    published: tokio::sync::watch::Sender<u64>,
    /// Why appends stopped, if they did (see [`AppendError::Poisoned`]).
    poisoned: std::sync::Mutex<Option<String>>,
    /// Commits another writer of shared rows beat.
    lost: std::sync::atomic::AtomicU64,
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
        Self::open_rows(Arc::new(RocksRows(db)), signer)
    }

    /// Opens (creating if needed) the ledger whose rows are in `rows`.
    pub fn open_rows(rows: Arc<dyn Rows>, signer: NoteSigner) -> Result<Ledger, OpenError> {
        let origin = signer.verifier().name().to_owned();
        let store = |e: String| OpenError::Store(e);
        match rows.get(Family::Meta, META_FORMAT).map_err(store)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(&v[..])
                    .map(u32::from_be_bytes)
                    .map_err(|_| OpenError::Corrupt("format row is not 4 bytes".into()))?;
                if found != FORMAT_VERSION {
                    return Err(OpenError::UnsupportedFormat { found });
                }
            }
            None => open::create(&*rows, &signer)?,
        }
        let found = rows.get(Family::Meta, META_ORIGIN).map_err(store)?.map(|v| v.to_vec());
        if found.as_deref() != Some(origin.as_bytes()) {
            return Err(OpenError::OriginMismatch {
                found: String::from_utf8_lossy(&found.unwrap_or_default()).into(),
                expected: origin,
            });
        }
        let (note, checkpoint) = open::read_checkpoint(&*rows, signer.verifier()).map_err(OpenError::Corrupt)?;
        let edge = open::rebuild_edge(&*rows, checkpoint.size)?;
        if edge.root() != checkpoint.root {
            return Err(OpenError::Corrupt(format!(
                "entries give root {} at size {}, checkpoint says {}",
                edge.root(),
                checkpoint.size,
                checkpoint.root
            )));
        }
        // Of a shared log, another writer may have appended meanwhile.
        if !rows.shared() && !rows.entries(checkpoint.size, 1).map_err(store)?.is_empty() {
            return Err(OpenError::Corrupt(format!(
                "an entry exists beyond tree size {}",
                checkpoint.size
            )));
        }
        let state = State {
            root: checkpoint.root,
            edge,
            checkpoint: note.into(),
        };
        let shared = Arc::new(Shared {
            rows,
            state: RwLock::new(Arc::new(state)),
            verifier: signer.verifier().clone(),
            upper_tiles: Default::default(),
            published: tokio::sync::watch::Sender::new(checkpoint.size),
            poisoned: Default::default(),
            lost: Default::default(),
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

    /// Catches up with a log that other processes append to as well: reads
    /// the checkpoint they last committed and publishes it, once its
    /// entries are read and give its root. Resolves to the tree size. Of a
    /// log this process alone writes, only the size.
    pub fn refresh(&self) -> Result<u64, AppendError> {
        if !self.shared.rows.shared() {
            return Ok(self.size());
        }
        self.shared.follow()
    }

    /// [`Self::refresh`] if the tree this process has seen is smaller than
    /// `size`: before a reader is told that something is beyond the tree.
    pub fn refresh_to(&self, size: u64) -> Result<u64, AppendError> {
        match self.size() {
            seen if seen >= size => Ok(seen),
            _ => self.refresh(),
        }
    }

    /// How many of this process's commits another writer beat (each then
    /// made again on top of the other's entries).
    pub fn commits_lost(&self) -> u64 {
        self.shared.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether other processes append to this log too.
    pub fn is_shared(&self) -> bool {
        self.shared.rows.shared()
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
