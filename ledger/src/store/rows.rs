//! Where a ledger's rows live: the one small interface under the store,
//! with two implementations. [`RocksRows`] is the embedded default (three
//! column families of a RocksDB that one process holds); the server crate
//! implements the same rows in a PostgreSQL table that several replicas
//! share (`src/registry/meta/ledger_rows.rs`). Both hold the same keys and
//! values byte for byte (`spec/storage-layout.md`), so a ledger moves
//! between them by copying rows.
//!
//! Every write is one [`Rows::commit`], conditional on the checkpoint row
//! still holding what the committer last read. That condition is what keeps
//! a log whose rows several processes append to from ever publishing two
//! different checkpoints of one size: of two committers that both extended
//! the tree from one checkpoint, exactly one's commit takes effect, and the
//! other reads the winner's entries and tries again on top of them.

use super::{CF_ENTRIES, CF_META, CF_TILES, META_CHECKPOINT};
use rocksdb::DB;
use std::sync::Arc;

/// The three kinds of row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `format`, `origin` and `checkpoint`.
    Meta,
    /// Entry bytes under their u64 BE index.
    Entries,
    /// Full tiles under level || u64 BE index.
    Tiles,
}

impl Family {
    /// Its name: the RocksDB column family, and the `family` column of the
    /// shared table.
    pub fn name(self) -> &'static str {
        match self {
            Family::Meta => CF_META,
            Family::Entries => CF_ENTRIES,
            Family::Tiles => CF_TILES,
        }
    }
}

/// A row's value: pinned in RocksDB's block cache, or owned.
pub enum Value<'a> {
    /// Read from RocksDB without a copy.
    Pinned(rocksdb::DBPinnableSlice<'a>),
    /// Read from elsewhere, or cached.
    Shared(Arc<[u8]>),
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({} bytes)", self.len())
    }
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Value::Pinned(v) => v,
            Value::Shared(v) => v,
        }
    }
}

/// Why a commit did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The checkpoint row no longer held what was expected: another process
    /// appended first. Nothing was written.
    #[error("another writer extended the log first")]
    Conflict,
    /// The store failed; whether the commit took effect is unknown.
    #[error("{0}")]
    Failed(String),
}

/// A store of ledger rows.
pub trait Rows: Send + Sync + 'static {
    /// A row's value.
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Value<'_>>, String>;

    /// The entries at indexes `start..start + count` that exist, in order
    /// (fewer than `count` when some are missing).
    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, String>;

    /// Writes `puts` atomically and durably (fsync'd before it returns Ok),
    /// provided the checkpoint row still holds `expect` (`None`: it does not
    /// exist yet); otherwise writes nothing and answers
    /// [`CommitError::Conflict`].
    fn commit(&self, puts: Vec<(Family, Vec<u8>, Vec<u8>)>, expect: Option<&[u8]>) -> Result<(), CommitError>;

    /// Whether other processes may append to these rows too: then the
    /// ledger re-reads the checkpoint row now and then, and before saying
    /// that something is beyond its tree.
    fn shared(&self) -> bool;
}

/// The ledger's rows in three column families of a RocksDB instance,
/// which only one process can open (its `LOCK` file).
#[derive(Debug)]
pub struct RocksRows(pub Arc<DB>);

impl RocksRows {
    fn cf(&self, family: Family) -> &rocksdb::ColumnFamily {
        let name = family.name();
        self.0
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} was opened with the database"))
    }
}

impl Rows for RocksRows {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Value<'_>>, String> {
        let v = self.0.get_pinned_cf(self.cf(family), key).map_err(|e| e.to_string())?;
        Ok(v.map(Value::Pinned))
    }

    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::with_capacity(count);
        let mode = rocksdb::IteratorMode::From(&start.to_be_bytes()[..], rocksdb::Direction::Forward);
        for item in self.0.iterator_cf(self.cf(Family::Entries), mode).take(count) {
            let (k, v) = item.map_err(|e| e.to_string())?;
            if k[..] != (start + out.len() as u64).to_be_bytes() {
                break;
            }
            out.push(v.into_vec());
        }
        Ok(out)
    }

    fn commit(&self, puts: Vec<(Family, Vec<u8>, Vec<u8>)>, expect: Option<&[u8]>) -> Result<(), CommitError> {
        // The condition holds by construction here: the database is this
        // process's alone, and its sequencer is the only writer. Checked
        // anyway (a memtable read), so that a bug shows as a refusal.
        let now = self.get(Family::Meta, META_CHECKPOINT).map_err(CommitError::Failed)?;
        if now.as_deref() != expect {
            return Err(CommitError::Conflict);
        }
        drop(now);
        let mut batch = rocksdb::WriteBatch::default();
        for (family, k, v) in puts {
            batch.put_cf(self.cf(family), k, v);
        }
        // COMMIT POINT (RocksDB). One WriteBatch with the WAL fsync'd: after
        // a crash either all of it is on disk or none of it is.
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.0
            .write_opt(batch, &opts)
            .map_err(|e| CommitError::Failed(e.to_string()))
    }

    fn shared(&self) -> bool {
        false
    }
}
