//! Moving rows between stores (`vouch migrate`): every row of every family
//! of the registry's metadata, or of the ledger, byte for byte, so the
//! record formats and key encodings stay one specification
//! (spec/storage-layout.md) whichever store holds them.

use super::kv::Write;
use super::{Meta, FAMILIES};
use crate::registry::error::RegistryError;

/// The families of the registry's metadata.
pub const METADATA: &[&str] = &FAMILIES;

/// The families of the ledger (`vouch_ledger::store`), which a `Meta` over
/// the data directory's RocksDB reads too: it is opened with them.
pub const LEDGER: &[&str] = &[
    vouch_ledger::store::CF_META,
    vouch_ledger::store::CF_ENTRIES,
    vouch_ledger::store::CF_TILES,
];

/// Rows written per transaction while copying.
const COPY_BATCH: usize = 1000;

impl Meta {
    /// Copies every row of `families` into `target` (puts: a copy run
    /// again over a partial one completes it), each [`COPY_BATCH`] rows one
    /// durable write, so what returned is durable. `progress` is called
    /// with each family and the rows copied of it so far.
    pub fn copy_into(
        &self,
        families: &[&'static str],
        target: &Meta,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<u64, RegistryError> {
        let mut total = 0;
        for &family in families {
            let mut writes = Vec::with_capacity(COPY_BATCH);
            let mut n = 0;
            self.scan_all(family, |k, v| {
                writes.push(put(family, k, Some(v)));
                n += 1;
                if writes.len() == COPY_BATCH {
                    target.kv.write(std::mem::take(&mut writes), true)?;
                    progress(family, n);
                }
                Ok(())
            })?;
            target.kv.write(writes, true)?;
            progress(family, n);
            total += n;
        }
        Ok(total)
    }

    /// The number of rows of each of `families`.
    pub fn row_counts(&self, families: &[&'static str]) -> Result<Vec<(&'static str, u64)>, RegistryError> {
        let mut out = Vec::new();
        for &family in families {
            let mut n = 0;
            self.scan_all(family, |_, _| {
                n += 1;
                Ok(())
            })?;
            out.push((family, n));
        }
        Ok(out)
    }

    /// Deletes every row of `families`, durably (the source of a move,
    /// once the target is bound).
    pub fn clear(&self, families: &[&'static str]) -> Result<(), RegistryError> {
        for &family in families {
            let mut deletes = Vec::new();
            self.scan_all(family, |k, _| {
                deletes.push(put(family, k, None));
                Ok(())
            })?;
            for chunk in deletes.chunks(COPY_BATCH) {
                self.kv.write(chunk.to_vec(), true)?;
            }
        }
        Ok(())
    }
}

/// A write of `value` (a delete without one) at `key` in `family`.
fn put(family: &'static str, key: &[u8], value: Option<&[u8]>) -> Write {
    Write {
        family,
        key: key.to_vec(),
        value: value.map(<[u8]>::to_vec),
    }
}
