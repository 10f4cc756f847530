//! Where blob bytes and upload sessions live: one small interface,
//! [`BlobStore`], over two backends.
//!
//! - [`files::FileBlobs`]: local files under the data directory (the
//!   default; `spec/storage-layout.md`, "Blobs").
//! - [`objects::ObjectBlobs`]: an S3-compatible object store
//!   (`vouch serve --storage s3://...`; `spec/storage-layout.md`, "Blobs in
//!   an object store").
//!
//! Both keep the same promises, which `tests/blob_stores.rs` checks against
//! each with one suite:
//! - a blob is readable at its digest only complete and verified;
//! - an append that fails (too large, a short or long body, a client gone)
//!   leaves the session as it was;
//! - a digest mismatch ends the session and stores nothing;
//! - whatever an append or commit acknowledged is durable.
//!
//! Which repository may read a blob is not decided here: the metadata's
//! links and the gate (`super::gate`) decide that before a byte is read.

pub mod files;
pub mod ledger_tiles;
pub mod objects;
pub mod storage_url;

use super::error::RegistryError;
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::time::Duration;
use vouch_ledger::entry::Digest;

/// A blob's bytes as a response body streams them; an error cuts the
/// response short.
pub type BlobBody = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Blob and upload storage: local files or an object store.
#[derive(Debug, Clone)]
pub enum BlobStore {
    /// Files under the data directory.
    Files(files::FileBlobs),
    /// An S3-compatible bucket.
    Objects(objects::ObjectBlobs),
}

/// Dispatches a call to the backend.
macro_rules! each {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            BlobStore::Files($b) => $call,
            BlobStore::Objects($b) => $call,
        }
    };
}

impl BlobStore {
    /// Local files under the data directory `data` (created if missing).
    pub fn files(data: &std::path::Path) -> std::io::Result<BlobStore> {
        Ok(BlobStore::Files(files::FileBlobs::open(data)?))
    }

    /// The object store a `s3://bucket/prefix?option=value...` URL names
    /// ([`objects::ObjectBlobs::open`]), checked reachable.
    pub async fn object_store(url: &str) -> Result<BlobStore, String> {
        Ok(BlobStore::Objects(objects::ObjectBlobs::open(url).await?))
    }

    /// The bucket and prefix of an object store (`s3://bucket/prefix`);
    /// `None` for local files.
    pub fn identity(&self) -> Option<String> {
        match self {
            BlobStore::Files(_) => None,
            BlobStore::Objects(o) => Some(o.identity().to_owned()),
        }
    }

    /// Where blobs are kept, for logs (no credentials).
    pub fn describe(&self) -> String {
        match self {
            BlobStore::Files(f) => format!("files under {}", f.root().display()),
            BlobStore::Objects(o) => format!("object store {}", o.describe()),
        }
    }

    /// The size of a stored blob, if it exists.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        each!(self, b => b.blob_size(digest).await)
    }

    /// A stored blob's bytes, read whole, if it exists: callers bound its
    /// size first.
    pub async fn read_all(&self, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        each!(self, b => b.read_all(digest).await)
    }

    /// `len` bytes of a stored blob from `start` (within its size), streamed.
    pub async fn read_range(&self, digest: &Digest, start: u64, len: u64) -> Result<BlobBody, RegistryError> {
        each!(self, b => b.read_range(digest, start, len).await)
    }

    /// The bytes an upload session holds, if it exists.
    pub async fn upload_size(&self, id: &str) -> Result<Option<u64>, RegistryError> {
        each!(self, b => b.upload_size(id).await)
    }

    /// Starts an empty upload session.
    pub async fn create_upload(&self, id: &str) -> Result<(), RegistryError> {
        each!(self, b => b.create_upload(id).await)
    }

    /// Appends a request body to an upload, streaming; durable before it
    /// returns the upload's new size. Refuses to take more than `room`
    /// bytes, and, when `exact` is given, any other number of bytes than
    /// that; a refusal, a body that fails, or a request abandoned midway
    /// leaves the upload as it was. `charge` counts each chunk as it
    /// arrives (and may refuse it).
    pub async fn append<S, E>(
        &self,
        id: &str,
        body: S,
        bounds: (u64, Option<u64>),
        charge: &mut (dyn FnMut(u64) -> Result<(), RegistryError> + Send),
    ) -> Result<u64, RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        each!(self, b => b.append(id, body, bounds, charge).await)
    }

    /// Finishes an upload: hashes its bytes with the algorithm of
    /// `expected`; on a match makes them readable at that digest and returns
    /// the size (the caller removes the session once its end is recorded);
    /// on a mismatch removes the session's bytes and fails with
    /// [`RegistryError::DigestInvalid`].
    pub async fn commit(&self, id: &str, expected: &Digest) -> Result<u64, RegistryError> {
        each!(self, b => b.commit(id, expected).await)
    }

    /// Stores bytes the registry writes itself (its countersignatures) as a
    /// blob, durable on return.
    pub async fn put_bytes(&self, bytes: Vec<u8>) -> Result<Digest, RegistryError> {
        each!(self, b => b.put_bytes(bytes).await)
    }

    /// The time since an upload session was last written, if it exists.
    pub async fn upload_idle(&self, id: &str) -> Result<Option<Duration>, RegistryError> {
        each!(self, b => b.upload_idle(id).await)
    }

    /// Every upload session's id and the time since it was last written.
    pub async fn upload_files(&self) -> Result<Vec<(String, Duration)>, RegistryError> {
        each!(self, b => b.upload_files().await)
    }

    /// Removes an upload session's bytes (cancel, expiry, or its end).
    pub async fn remove_upload(&self, id: &str) -> Result<(), RegistryError> {
        each!(self, b => b.remove_upload(id).await)
    }

    /// Every stored blob: digest, size, and time since it was written.
    pub async fn all_blobs(&self) -> Result<Vec<(Digest, u64, Duration)>, RegistryError> {
        each!(self, b => b.all_blobs().await)
    }

    /// Deletes a stored blob (garbage collection); absent is fine.
    pub async fn remove_blob(&self, digest: &Digest) -> Result<(), RegistryError> {
        each!(self, b => b.remove_blob(digest).await)
    }
}

/// Takes one chunk of a request body into an upload that holds `size`
/// bytes and may grow to `limit`: counts it, refuses it past the limit,
/// charges it to the client's and the registry's bounds.
fn intake<E: std::fmt::Display>(
    chunk: Result<Bytes, E>,
    size: &mut u64,
    limit: u64,
    charge: &mut (dyn FnMut(u64) -> Result<(), RegistryError> + Send),
) -> Result<Bytes, RegistryError> {
    let chunk = chunk.map_err(|e| RegistryError::BlobUploadInvalid(format!("reading the request body: {e}")))?;
    *size += chunk.len() as u64;
    if *size > limit {
        return Err(RegistryError::TooLarge { what: "blob", limit });
    }
    charge(chunk.len() as u64)?;
    Ok(chunk)
}

/// The message of a digest mismatch, the same from either backend.
fn mismatch(actual: &Digest, expected: &Digest) -> RegistryError {
    RegistryError::DigestInvalid(format!(
        "uploaded content has digest {actual}, not the {expected} given; the upload was discarded"
    ))
}

/// Blobs as readers see them: in the blob store, or a small blob vouch
/// wrote inline in the metadata store (`meta/inline.rs`).
impl super::AppState {
    /// The size of a stored blob, if it exists.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        if let Some(size) = self.blobs.blob_size(digest).await? {
            return Ok(Some(size));
        }
        Ok(self.meta.inline_blob(digest)?.map(|b| b.len() as u64))
    }

    /// A stored blob's bytes, read whole: callers bound its size first
    /// (with [`Self::blob_size`]).
    pub async fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        match self.blobs.read_all(digest).await? {
            Some(bytes) => Ok(bytes),
            None => self
                .meta
                .inline_blob(digest)?
                .ok_or_else(|| RegistryError::BlobUnknown(digest.clone())),
        }
    }
}
