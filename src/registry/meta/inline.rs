//! Small blobs vouch writes itself (countersignature payloads and configs,
//! admission bundles), kept in RocksDB instead of files:
//!
//! ```text
//! reg_inline      <digest>                  -> u64 BE written at (Unix seconds) || the blob's bytes
//! ```
//!
//! An inline blob is put in the same [`Batch`] as the manifest that names
//! it, so one synced WAL write makes both durable at once: no file to
//! create, fsync and rename, and no window in which the manifest exists
//! without its blob. Readers see it like a blob file
//! (`AppState::blob_size`, `AppState::read_blob`); garbage collection
//! removes it like one once nothing references it.

use super::{Batch, Meta, CF_INLINE};
use crate::registry::error::RegistryError;
use vouch_ledger::entry::Digest;

/// Largest blob kept inline; larger ones are files.
pub const MAX_INLINE: usize = 256 << 10;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Meta {
    /// An inline blob's bytes, if there is one.
    pub fn inline_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        let Some(bytes) = self.kv.get(CF_INLINE, digest.as_str().as_bytes(), |v| {
            v.get(8..).map(<[u8]>::to_vec)
        })?
        else {
            return Ok(None);
        };
        bytes
            .map(Some)
            .ok_or_else(|| RegistryError::Internal(format!("the inline blob {digest} is corrupt")))
    }

    /// Every inline blob: digest, size, and time since it was written.
    pub fn inline_blobs(&self) -> Result<Vec<(Digest, u64, std::time::Duration)>, RegistryError> {
        let mut out = Vec::new();
        let now = now();
        self.scan_all(CF_INLINE, |k, v| {
            let digest = std::str::from_utf8(k)
                .ok()
                .and_then(Digest::parse)
                .ok_or_else(|| RegistryError::Internal("an inline blob's key is corrupt".into()))?;
            let written = v
                .get(..8)
                .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            let age = std::time::Duration::from_secs(now.saturating_sub(written));
            out.push((digest, v.len().saturating_sub(8) as u64, age));
            Ok(())
        })?;
        Ok(out)
    }
}

impl Batch<'_> {
    /// Stores `bytes` inline (at most [`MAX_INLINE`]) and links the blob
    /// into `repo`; returns its digest.
    pub fn put_inline_blob(&mut self, repo: &crate::registry::names::RepoName, bytes: &[u8]) -> Digest {
        debug_assert!(bytes.len() <= MAX_INLINE, "inline blobs are small");
        let digest = crate::registry::digest::sha256_of(bytes);
        let value = [&now().to_be_bytes()[..], bytes].concat();
        self.put(CF_INLINE, digest.as_str(), value);
        self.link_blob(repo, &digest, bytes.len() as u64);
        digest
    }

    /// Removes an inline blob (garbage collection).
    pub fn delete_inline_blob(&mut self, digest: &Digest) {
        self.delete(CF_INLINE, digest.as_str());
    }
}
