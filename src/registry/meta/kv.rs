//! The ordered key-value store under the registry's metadata, with two
//! backends: RocksDB column families (the embedded default, in the data
//! directory beside the ledger) and one PostgreSQL table (`postgres.rs`,
//! `vouch serve --database`).
//!
//! The interface is three operations, which is all `Meta` needs: a point
//! read, a scan of keys in byte order, and an atomic batch of writes that is
//! durable on return when asked. Keys compare as unsigned bytes in both
//! backends (RocksDB's bytewise comparator; PostgreSQL's `bytea` ordering),
//! so a scan visits the same keys in the same order in either.

use super::postgres::Postgres;
use crate::registry::error::RegistryError;
use rocksdb::DB;
use std::ops::ControlFlow;
use std::sync::Arc;

/// One write of a batch: a put, or (no value) a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The family (RocksDB column family) written.
    pub family: &'static str,
    /// The key.
    pub key: Vec<u8>,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// What a scan visits: the keys of `family` that are at least `start` and
/// begin with `prefix`.
#[derive(Debug, Clone, Copy)]
pub struct Range<'a> {
    /// The family scanned.
    pub family: &'static str,
    /// The first key visited, if present.
    pub start: &'a [u8],
    /// Every key visited begins with it.
    pub prefix: &'a [u8],
}

/// A scan's visitor: called with each key and value in order until it breaks.
pub type Visit<'f> = &'f mut dyn FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, RegistryError>;

/// The metadata's store.
#[derive(Clone)]
pub enum Kv {
    /// RocksDB column families, opened with the ledger's.
    Rocks(Arc<DB>),
    /// One PostgreSQL table.
    Postgres(Arc<Postgres>),
}

impl Kv {
    /// Reads a key's value through `read` (RocksDB: without copying it).
    pub fn get<T>(
        &self,
        family: &'static str,
        key: &[u8],
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, RegistryError> {
        match self {
            Kv::Rocks(db) => Ok(db.get_pinned_cf(cf(db, family), key)?.map(|v| read(&v))),
            Kv::Postgres(pg) => Ok(pg.get(family, key)?.map(|v| read(&v))),
        }
    }

    /// Visits the keys of `range` in byte order until `visit` breaks.
    pub fn scan(&self, range: Range<'_>, visit: Visit<'_>) -> Result<(), RegistryError> {
        match self {
            Kv::Rocks(db) => {
                // Keys below the prefix are not in the range.
                let start = range.start.max(range.prefix);
                let mode = rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward);
                for item in db.iterator_cf(cf(db, range.family), mode) {
                    let (k, v) = item?;
                    if !k.starts_with(range.prefix) || visit(&k, &v)?.is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Kv::Postgres(pg) => pg.scan(range, visit),
        }
    }

    /// Applies `writes` atomically, in order: all of them or none. With
    /// `sync`, they are durable when this returns (RocksDB: the WAL is
    /// fsync'd; PostgreSQL: the commit is flushed, `synchronous_commit`).
    pub fn write(&self, writes: Vec<Write>, sync: bool) -> Result<(), RegistryError> {
        if writes.is_empty() {
            return Ok(());
        }
        match self {
            Kv::Rocks(db) => {
                let mut batch = rocksdb::WriteBatch::default();
                stage(db, &mut batch, &writes);
                let mut o = rocksdb::WriteOptions::default();
                o.set_sync(sync);
                if !sync {
                    return Ok(db.write_opt(batch, &o)?);
                }
                // The fsync blocks this thread for a disk round trip. On a
                // worker of a multi-threaded runtime, tokio moves its other
                // tasks to another thread meanwhile, so other requests reach
                // their own writes and RocksDB commits them with this one in
                // one group (one WAL fsync for all). Blocking the worker
                // instead held concurrent synced writes to the worker count:
                // one fsync per push.
                Ok(blocking(|| db.write_opt(batch, &o))?)
            }
            Kv::Postgres(pg) => pg.write(writes, sync),
        }
    }
}

/// Runs `f`, which blocks (a disk or database round trip): on a worker of a
/// multi-threaded runtime, through `block_in_place`, so that the worker's
/// other tasks move to another thread instead of waiting behind it; on any
/// other thread (a current-thread runtime, where `block_in_place` panics, or
/// outside a runtime) directly.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A registry column family of `db`, opened with it.
fn cf<'d>(db: &'d DB, name: &str) -> &'d rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} was opened with the database"))
}

/// Adds `writes` to `batch`, in order.
pub(super) fn stage(db: &DB, batch: &mut rocksdb::WriteBatch, writes: &[Write]) {
    for w in writes {
        let family = cf(db, w.family);
        match &w.value {
            Some(v) => batch.put_cf(family, &w.key, v),
            None => batch.delete_cf(family, &w.key),
        }
    }
}
