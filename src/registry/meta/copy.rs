//! Moving metadata between stores (`vouch migrate`): every row of every
//! family, byte for byte, so the record formats and key encodings stay one
//! specification (spec/storage-layout.md) whichever store holds them.

use super::kv::{Range, Write};
use super::{Meta, FAMILIES};
use crate::registry::error::RegistryError;
use std::ops::ControlFlow;

/// Rows written per transaction while copying.
const COPY_BATCH: usize = 1000;

impl Meta {
    /// Copies every row of every family into `target` (puts: a copy run
    /// again over a partial one completes it), each [`COPY_BATCH`] rows one
    /// durable write, so what returned is durable. `progress` is called
    /// with each family and the rows copied of it so far.
    pub fn copy_into(&self, target: &Meta, mut progress: impl FnMut(&str, u64)) -> Result<u64, RegistryError> {
        let mut total = 0;
        for family in FAMILIES {
            let mut writes = Vec::with_capacity(COPY_BATCH);
            let mut n = 0;
            let range = Range {
                family,
                start: b"",
                prefix: b"",
            };
            self.kv.scan(range, &mut |k, v| {
                writes.push(Write {
                    family,
                    key: k.to_vec(),
                    value: Some(v.to_vec()),
                });
                n += 1;
                if writes.len() == COPY_BATCH {
                    target.kv.write(std::mem::take(&mut writes), true)?;
                    progress(family, n);
                }
                Ok(ControlFlow::Continue(()))
            })?;
            target.kv.write(writes, true)?;
            progress(family, n);
            total += n;
        }
        Ok(total)
    }

    /// The number of rows of each family.
    pub fn row_counts(&self) -> Result<Vec<(&'static str, u64)>, RegistryError> {
        let mut out = Vec::new();
        for family in FAMILIES {
            let mut n = 0;
            let range = Range {
                family,
                start: b"",
                prefix: b"",
            };
            self.kv.scan(range, &mut |_, _| {
                n += 1;
                Ok(ControlFlow::Continue(()))
            })?;
            out.push((family, n));
        }
        Ok(out)
    }

    /// Deletes every row of every family, durably (the source of a move,
    /// once the target is bound).
    pub fn clear(&self) -> Result<(), RegistryError> {
        for family in FAMILIES {
            let mut keys = Vec::new();
            let range = Range {
                family,
                start: b"",
                prefix: b"",
            };
            self.kv.scan(range, &mut |k, _| {
                keys.push(Write {
                    family,
                    key: k.to_vec(),
                    value: None,
                });
                Ok(ControlFlow::Continue(()))
            })?;
            for chunk in keys.chunks(COPY_BATCH) {
                self.kv.write(chunk.to_vec(), true)?;
            }
        }
        Ok(())
    }
}
