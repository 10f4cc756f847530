//! The ledger's rows in the metadata database (`vouch serve --database`):
//! the same three families as in RocksDB (`ledger_meta`, `ledger_entries`,
//! `ledger_tiles`), byte for byte, as rows of `vouch_kv`, which every
//! replica sharing the database appends to. Commits are conditional on the
//! checkpoint row ([`Postgres::write_if`]), which is what lets any replica
//! append while no two different checkpoints of one size are ever stored
//! (`ledger/src/store/rows.rs`).
//!
//! Entries and full tiles are written once and never change, so they are
//! cached here once read; the checkpoint row is always read afresh.

use super::kv::Write;
use super::postgres::Postgres;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use vouch_ledger::store::{CommitError, Family, Rows, Value, META_CHECKPOINT, META_FORMAT};

/// Bytes of entries and tiles cached at most (then the cache starts over).
const CACHE_BYTES: usize = 256 << 20;

/// The ledger's rows in PostgreSQL.
pub struct PostgresRows {
    pg: Arc<Postgres>,
    cache: RwLock<Cache>,
}

/// Entries and tiles by key, one map per family, so that a lookup borrows
/// the key instead of copying it.
#[derive(Default)]
struct Cache {
    entries: HashMap<Vec<u8>, Arc<[u8]>>,
    tiles: HashMap<Vec<u8>, Arc<[u8]>>,
    bytes: usize,
}

impl Cache {
    /// The map of `family`; none for the meta rows, which change.
    fn of(&self, family: Family) -> Option<&HashMap<Vec<u8>, Arc<[u8]>>> {
        match family {
            Family::Entries => Some(&self.entries),
            Family::Tiles => Some(&self.tiles),
            Family::Meta => None,
        }
    }

    fn of_mut(&mut self, family: Family) -> Option<&mut HashMap<Vec<u8>, Arc<[u8]>>> {
        match family {
            Family::Entries => Some(&mut self.entries),
            Family::Tiles => Some(&mut self.tiles),
            Family::Meta => None,
        }
    }
}

impl std::fmt::Debug for PostgresRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresRows({})", self.pg.instance())
    }
}

impl PostgresRows {
    /// The ledger rows of `pg`.
    pub fn new(pg: Arc<Postgres>) -> PostgresRows {
        PostgresRows {
            pg,
            cache: Default::default(),
        }
    }

    /// Whether the database holds a ledger (its format row).
    pub fn exists(pg: &Postgres) -> Result<bool, String> {
        let v = pg.get(Family::Meta.name(), META_FORMAT).map_err(|e| e.to_string())?;
        Ok(v.is_some())
    }

    fn remember(&self, family: Family, key: &[u8], value: &Arc<[u8]>) {
        if family == Family::Meta {
            return;
        }
        let mut cache = self.cache.write().expect("cache lock");
        if cache.bytes + value.len() > CACHE_BYTES {
            *cache = Cache::default();
        }
        cache.bytes += value.len() + key.len();
        if let Some(map) = cache.of_mut(family) {
            map.insert(key.to_vec(), value.clone());
        }
    }
}

impl Rows for PostgresRows {
    fn get(&self, family: Family, key: &[u8]) -> Result<Option<Value<'_>>, String> {
        let cached = self
            .cache
            .read()
            .expect("cache lock")
            .of(family)
            .and_then(|m| m.get(key).cloned());
        if let Some(v) = cached {
            return Ok(Some(Value::Shared(v)));
        }
        let Some(v) = self.pg.get(family.name(), key).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let v: Arc<[u8]> = v.into();
        self.remember(family, key, &v);
        Ok(Some(Value::Shared(v)))
    }

    fn entries(&self, start: u64, count: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(count);
        let first = start.to_be_bytes();
        let range = super::kv::Range {
            family: Family::Entries.name(),
            start: &first,
            prefix: &[],
        };
        self.pg
            .scan(range, &mut |k, v| {
                if out.len() == count || k != (start + out.len() as u64).to_be_bytes() {
                    return Ok(std::ops::ControlFlow::Break(()));
                }
                out.push(v.to_vec());
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn commit(&self, puts: Vec<(Family, Vec<u8>, Vec<u8>)>, expect: Option<&[u8]>) -> Result<(), CommitError> {
        let writes = puts
            .into_iter()
            .map(|(family, key, value)| Write {
                family: family.name(),
                key,
                value: Some(value),
            })
            .collect();
        match self.pg.write_if((Family::Meta.name(), META_CHECKPOINT), expect, writes) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CommitError::Conflict),
            Err(e) => Err(CommitError::Failed(e.to_string())),
        }
    }

    fn shared(&self) -> bool {
        true
    }
}
