//! Blobs and upload sessions as local files (the default backend),
//! content-addressed and deduplicated across repositories.
//!
//! ```text
//! <data>/blobs/<algorithm>/<first two hex digits>/<hex>   complete, verified blobs
//! <data>/uploads/<session id>                             upload sessions in progress
//! ```
//!
//! A blob appears at its address only complete and verified: an upload is
//! written to its session file, fsync'd after every acknowledged chunk, hashed
//! in full when finished, and hard-linked into place (then the directory is
//! fsync'd); the session's name is removed only after the metadata that
//! ends the session is durable. A digest mismatch deletes the session file.
//! So a crash leaves a blob either absent or whole, a client never reads a
//! partial blob, and a session whose blob is linked but whose end was not
//! recorded still has its file: finishing it again re-hashes the same bytes.
//! A session file with more than one link is finished content and takes no
//! more data.

use super::{intake, BlobBody};
use crate::registry::digest::DigestHasher;
use crate::registry::error::RegistryError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use vouch_ledger::entry::Digest;

/// The blob and upload directories.
#[derive(Debug, Clone)]
pub struct FileBlobs {
    blobs: PathBuf,
    uploads: PathBuf,
}

impl FileBlobs {
    /// Opens (creating) the directories under the data directory.
    pub fn open(data: &Path) -> std::io::Result<FileBlobs> {
        let store = FileBlobs {
            blobs: data.join("blobs"),
            uploads: data.join("uploads"),
        };
        crate::data_dir::private_dir(&store.blobs)?;
        crate::data_dir::private_dir(&store.uploads)?;
        Ok(store)
    }

    /// The directory blobs are kept under.
    pub fn root(&self) -> &Path {
        &self.blobs
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.encoded();
        self.blobs.join(digest.algorithm()).join(&hex[..2]).join(hex)
    }

    /// Where an upload session's bytes live.
    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.uploads.join(id)
    }

    /// The size of a stored blob, if it exists.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        size_of(&self.blob_path(digest)).await
    }

    /// A stored blob's bytes, read whole, if it exists.
    pub async fn read_all(&self, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        match tokio::fs::read(self.blob_path(digest)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `len` bytes of a stored blob from `start`, streamed.
    pub async fn read_range(&self, digest: &Digest, start: u64, len: u64) -> Result<BlobBody, RegistryError> {
        let file = tokio::fs::File::open(self.blob_path(digest)).await?;
        Ok(file_body(file.into_std().await, start, len))
    }

    /// The bytes an upload session holds, if its file exists.
    pub async fn upload_size(&self, id: &str) -> Result<Option<u64>, RegistryError> {
        size_of(&self.upload_path(id)).await
    }

    /// Creates an empty session file.
    pub async fn create_upload(&self, id: &str) -> Result<(), RegistryError> {
        tokio::fs::File::create(self.upload_path(id)).await?;
        Ok(())
    }

    /// Appends a request body to an upload, streaming, and fsyncs before
    /// returning the upload's new size. Refuses to take more than `room`
    /// bytes, and, when `exact` is given, any other number of bytes than
    /// that; either refusal leaves the upload as it was.
    pub async fn append<S, E>(
        &self,
        id: &str,
        mut body: S,
        (room, exact): (u64, Option<u64>),
        charge: &mut (dyn FnMut(u64) -> Result<(), RegistryError> + Send),
    ) -> Result<u64, RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use std::os::unix::fs::MetadataExt as _;
        let path = self.upload_path(id);
        // Plain std writes (to the page cache, microseconds each): every write
        // is complete before the next await, so nothing can land after a
        // rollback. tokio's File would finish writes on another thread later.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
        let meta = file.metadata()?;
        if meta.nlink() > 1 {
            // Already linked at its address (finished; the end of the session
            // was not recorded before a crash): writing would change a stored
            // blob. Only the finishing PUT's empty body is taken.
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| RegistryError::BlobUploadInvalid(format!("reading the request body: {e}")))?;
                if !chunk.is_empty() {
                    return Err(RegistryError::BlobUploadInvalid(
                        "this upload is already complete; finish it with PUT ?digest= and no body".into(),
                    ));
                }
            }
            return Ok(meta.len());
        }
        let before = meta.len();
        // A request that fails, or is abandoned (the client went away, the
        // server is shutting down), changes nothing: what it appended is cut
        // off again. Only a process crash can leave a partial chunk behind,
        // which the client sees in the session's Range and continues after.
        let rollback = Rollback {
            path: path.clone(),
            before,
            armed: true,
        };
        let limit = before.saturating_add(exact.map_or(room, |n| n.min(room)));
        let size = copy_body(&mut file, &mut body, (before, limit), charge).await?;
        if let Some(n) = exact {
            if size - before != n {
                return Err(RegistryError::RangeNotSatisfiable {
                    got: format!("{n} bytes announced, {} sent", size - before),
                    size: before,
                });
            }
        }
        // Acknowledged bytes are durable: a resumed upload continues from here.
        let synced = tokio::task::spawn_blocking(move || file.sync_data()).await;
        synced.map_err(|e| RegistryError::Internal(format!("fsync task: {e}")))??;
        rollback.disarm();
        Ok(size)
    }

    /// Finishes an upload: hashes the whole session file with the algorithm
    /// of `expected`; on a match links it at the blob's address and returns
    /// its size (the caller removes the session file once the session's end
    /// is recorded); on a mismatch deletes it and fails.
    pub async fn commit(&self, id: &str, expected: &Digest) -> Result<u64, RegistryError> {
        let (upload, target, expected) = (self.upload_path(id), self.blob_path(expected), expected.clone());
        tokio::task::spawn_blocking(move || commit_blocking(&upload, &target, &expected))
            .await
            .map_err(|e| RegistryError::Internal(format!("commit task: {e}")))?
    }

    /// Stores bytes the registry writes itself (its countersignatures) as a
    /// blob, durable on return: written to a file under uploads/, fsync'd,
    /// renamed to its address, the directory fsync'd (the same commit point
    /// as an upload's, without re-reading bytes it hashed in memory).
    pub async fn put_bytes(&self, bytes: Vec<u8>) -> Result<Digest, RegistryError> {
        let digest = crate::registry::digest::sha256_of(&bytes);
        if self.blob_size(&digest).await?.is_some() {
            return Ok(digest);
        }
        let (tmp, target) = (
            self.upload_path(&format!("vouch-{}", uuid::Uuid::new_v4())),
            self.blob_path(&digest),
        );
        let written = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            let dir = target.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&tmp, &target)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .await;
        written.map_err(|e| RegistryError::Internal(format!("write task: {e}")))??;
        Ok(digest)
    }

    /// The time since a session file was last written, if it exists.
    pub async fn upload_idle(&self, id: &str) -> Result<Option<std::time::Duration>, RegistryError> {
        match tokio::fs::metadata(self.upload_path(id)).await {
            Ok(m) => Ok(Some(m.modified()?.elapsed().unwrap_or_default())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Session files and the time since each was last written.
    pub async fn upload_files(&self) -> Result<Vec<(String, std::time::Duration)>, RegistryError> {
        let mut out = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.uploads).await?;
        while let Some(e) = dir.next_entry().await? {
            let idle = e.metadata().await?.modified()?.elapsed().unwrap_or_default();
            out.push((e.file_name().to_string_lossy().into_owned(), idle));
        }
        Ok(out)
    }

    /// Every stored blob: digest, size, and time since it was written.
    pub async fn all_blobs(&self) -> Result<Vec<(Digest, u64, std::time::Duration)>, RegistryError> {
        let mut out = Vec::new();
        for alg in std::fs::read_dir(&self.blobs)? {
            let alg = alg?;
            for shard in std::fs::read_dir(alg.path())? {
                for file in std::fs::read_dir(shard?.path())? {
                    let file = file?;
                    let name = format!(
                        "{}:{}",
                        alg.file_name().to_string_lossy(),
                        file.file_name().to_string_lossy()
                    );
                    // Anything that is not a digest is not ours to judge.
                    let Some(digest) = Digest::parse(&name) else { continue };
                    let meta = file.metadata()?;
                    out.push((digest, meta.len(), meta.modified()?.elapsed().unwrap_or_default()));
                }
            }
        }
        Ok(out)
    }

    /// Deletes a stored blob (garbage collection).
    pub async fn remove_blob(&self, digest: &Digest) -> Result<(), RegistryError> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Removes a session file (cancel, or after expiry).
    pub async fn remove_upload(&self, id: &str) -> Result<(), RegistryError> {
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Truncates an upload file back to its length before a request, unless the
/// request completed.
struct Rollback {
    path: PathBuf,
    before: u64,
    armed: bool,
}

impl Rollback {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
                let _ = f.set_len(self.before);
            }
        }
    }
}

/// Copies `body` to `file`, which holds `size` bytes, up to `limit`;
/// `charge` counts each chunk before it is written (and may refuse it).
async fn copy_body<S, E>(
    file: &mut std::fs::File,
    body: &mut S,
    (mut size, limit): (u64, u64),
    charge: &mut (dyn FnMut(u64) -> Result<(), RegistryError> + Send),
) -> Result<u64, RegistryError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    while let Some(chunk) = body.next().await {
        let chunk = intake(chunk, &mut size, limit, charge)?;
        std::io::Write::write_all(file, &chunk)?;
    }
    Ok(size)
}

async fn size_of(path: &Path) -> Result<Option<u64>, RegistryError> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn commit_blocking(upload: &Path, target: &Path, expected: &Digest) -> Result<u64, RegistryError> {
    let mut file = std::fs::File::open(upload)?;
    let mut hasher = DigestHasher::for_digest(expected);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let actual = hasher.finish();
    if &actual != expected {
        std::fs::remove_file(upload)?;
        return Err(super::mismatch(&actual, expected));
    }
    file.sync_all()?;
    let dir = target.parent().expect("blob paths have a parent");
    std::fs::create_dir_all(dir)?;
    // COMMIT POINT for a blob: the link makes the verified, fsync'd content
    // visible at its address; fsyncing the directory makes it durable. If
    // the blob already exists it has the same content (same digest). The
    // session file keeps its name until the session's end is recorded, so a
    // crash here leaves a session that a retried PUT finishes by hashing
    // the same bytes again, never one whose content is unknown.
    match std::fs::hard_link(upload, target) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e.into()),
        _ => {}
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(size)
}

/// Bytes read per chunk of a blob body.
const CHUNK: usize = 512 << 10;

/// The body of `len` bytes of `file` from `start`, read a chunk at a time
/// on the blocking pool straight into the buffer the socket is written
/// from: one copy out of the page cache (an async file would copy once
/// more through its own buffer). Two reads are in flight, so the disk
/// works while the socket drains; no thread is held between chunks, so
/// slow readers cannot take the blocking pool from uploads' fsyncs. A
/// reader holds at most about three chunks in memory.
fn file_body(file: std::fs::File, start: u64, len: u64) -> BlobBody {
    let file = std::sync::Arc::new(file);
    let chunks = (0..len)
        .step_by(CHUNK)
        .map(move |off| (start + off, (len - off).min(CHUNK as u64)));
    let reads = futures_util::stream::iter(chunks).map(move |(at, want)| {
        let file = file.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt as _;
                let mut buf = vec![0u8; want as usize];
                file.read_exact_at(&mut buf, at)?;
                Ok(Bytes::from(buf))
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        }
    });
    Box::pin(reads.buffered(2))
}
