//! The witness's durable record: for each log origin, the size and root of
//! the latest checkpoint it cosigned (`size` as 8 big-endian bytes, then the
//! 32-byte root), in a RocksDB database written with synced writes.

use std::path::Path;
use std::sync::Mutex;
use vouch_ledger::witness::{Refusal, Witnessed};
use vouch_ledger::Hash;

/// The per-log records, updated only through [`WitnessState::update`].
#[derive(Debug)]
pub struct WitnessState {
    db: rocksdb::DB,
    /// Serialises check-and-update: two requests never both pass the check
    /// against the same record (c2sp.org/tlog-witness, the rollback race).
    lock: Mutex<()>,
}

/// The record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB failed.
    #[error("witness database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored record is not 40 bytes.
    #[error("witness database: the record of {0:?} is corrupt")]
    Corrupt(String),
}

impl WitnessState {
    /// Opens (creating) the database at `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        Ok(Self {
            db: rocksdb::DB::open(&opts, dir)?,
            lock: Mutex::new(()),
        })
    }

    /// The record of `origin`, if any.
    pub fn get(&self, origin: &str) -> Result<Option<Witnessed>, StateError> {
        let Some(v) = self.db.get(origin.as_bytes())? else {
            return Ok(None);
        };
        let corrupt = || StateError::Corrupt(origin.to_owned());
        if v.len() != 40 {
            return Err(corrupt());
        }
        Ok(Some(Witnessed {
            size: u64::from_be_bytes(v[..8].try_into().expect("8 bytes")),
            root: Hash::from_slice(&v[8..]).ok_or_else(corrupt)?,
        }))
    }

    /// Checks and updates the record of `origin` atomically: `decide` sees
    /// the current record; if it accepts, its new record is written and
    /// synced before this returns. A refusal writes nothing.
    pub fn update<T>(
        &self,
        origin: &str,
        decide: impl FnOnce(Option<Witnessed>) -> Result<(Witnessed, T), Refusal>,
    ) -> Result<Result<T, Refusal>, StateError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let (record, out) = match decide(self.get(origin)?) {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut value = record.size.to_be_bytes().to_vec();
        value.extend_from_slice(&record.root.0);
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.put_opt(origin.as_bytes(), value, &opts)?;
        Ok(Ok(out))
    }
}
