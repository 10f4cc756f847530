//! Blobs and upload sessions in an S3-compatible object store.
//!
//! ```text
//! <prefix>/blobs/<algorithm>/<first two hex digits>/<hex>   complete, verified blobs
//! <prefix>/uploads/<session id>/open                         the session exists (empty)
//! <prefix>/uploads/<session id>/<offset, 20 digits>          each acknowledged chunk
//! ```
//!
//! Objects are immutable once written, so a session is a sequence of chunk
//! objects, each named by the offset it starts at and written only if that
//! name is new (`If-None-Match: *`). A chunk is one PUT, or a multipart
//! upload for a large one; either becomes visible whole when the store
//! acknowledges it, and a chunk that fails (too large, short, a client gone)
//! is never completed, so the session is as it was. The session's size is
//! the sum of its chunks, which must be contiguous.
//!
//! Finishing streams the chunks, in order, through the digest and into a
//! multipart upload at the blob's address, and completes that upload only
//! when the digest matched: a blob appears at its address complete and
//! verified, or not at all. Durability is the store's: vouch answers only
//! after the store acknowledged the write (SeaweedFS must be configured to
//! fsync, `spec/storage-layout.md`).

use super::storage_url::parse_url;
use super::{intake, mismatch, BlobBody};
use crate::registry::digest::DigestHasher;
use crate::registry::error::RegistryError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use vouch_ledger::entry::Digest;

/// An object written in one PUT up to this size, as a multipart upload of
/// parts this size beyond it (S3's smallest part is 5 MiB).
const PART: usize = 8 << 20;

/// The suffix of the object beside a session's first chunk that holds its
/// SHA-256 (`uploads/<id>/<offset>.sha256`).
const SHA256_SUFFIX: &str = ".sha256";

/// The largest object one S3 CopyObject takes (5 GiB).
const MAX_COPY: u64 = 5 << 30;

/// Multipart parts in flight per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// A bucket (and a prefix in it) holding blobs and upload sessions.
#[derive(Debug, Clone)]
pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    /// The key prefix, without a trailing slash; may be empty.
    prefix: String,
    /// `s3://bucket/prefix`.
    identity: String,
    /// `s3://bucket/prefix` with the options' names (not their values).
    shown: String,
}

impl ObjectBlobs {
    /// Opens `s3://bucket[/prefix][?option=value&...]`: options are the
    /// object_store crate's S3 settings (`endpoint`, `region`,
    /// `allow_http`, `skip_signature`, ...); credentials and anything unset
    /// come from the environment as the AWS SDKs read it (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...). An `http://` endpoint
    /// allows plain HTTP. Checks the bucket answers before returning.
    pub async fn open(url: &str) -> Result<ObjectBlobs, String> {
        let parsed = parse_url(url)?;
        // The HTTP client's TLS uses ring (spec/design.md); the process
        // may have installed it already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&parsed.bucket);
        let mut region_set =
            std::env::var_os("AWS_REGION").is_some() || std::env::var_os("AWS_DEFAULT_REGION").is_some();
        for (key, value) in &parsed.options {
            let k: AmazonS3ConfigKey = key.parse().map_err(|_| {
                format!("--storage: unknown option {key:?}; options are object_store's S3 settings, such as endpoint, region, allow_http, skip_signature")
            })?;
            region_set |= matches!(k, AmazonS3ConfigKey::Region);
            builder = builder.with_config(k, value);
        }
        if !region_set {
            builder = builder.with_region("us-east-1");
        }
        let http = parsed
            .options
            .iter()
            .any(|(k, v)| k.contains("endpoint") && v.starts_with("http://"));
        if http && !parsed.options.iter().any(|(k, _)| k.contains("allow_http")) {
            builder = builder.with_allow_http(true);
        }
        let store = builder
            .build()
            .map_err(|e| format!("--storage {}: {e}", parsed.shown))?;
        let blobs = ObjectBlobs {
            store: Arc::new(store),
            prefix: parsed.prefix,
            identity: parsed.identity,
            shown: parsed.shown,
        };
        // Reachable, and the bucket exists: fail at start, not at a push.
        let probe = blobs.key("uploads");
        blobs
            .store
            .list_with_delimiter(Some(&probe))
            .await
            .map_err(|e| format!("--storage {}: the bucket does not answer: {e}", blobs.shown))?;
        Ok(blobs)
    }

    /// The bucket and prefix, for logs.
    pub fn describe(&self) -> &str {
        &self.shown
    }

    /// `s3://bucket/prefix`: which blobs these are, wherever the endpoint.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The store (for the ledger's publication, `ledger_tiles.rs`).
    pub(super) fn store(&self) -> &dyn ObjectStore {
        &*self.store
    }

    pub(super) fn key(&self, rest: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(rest)
        } else {
            Key::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn blob_key(&self, digest: &Digest) -> Key {
        let hex = digest.encoded();
        self.key(&format!("blobs/{}/{}/{hex}", digest.algorithm(), &hex[..2]))
    }

    fn session_key(&self, id: &str) -> Key {
        self.key(&format!("uploads/{id}"))
    }

    fn chunk_key(&self, id: &str, offset: u64) -> Key {
        self.key(&format!("uploads/{id}/{offset:020}"))
    }

    /// The size of a stored blob, if it exists.
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        match self.store.head(&self.blob_key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A stored blob's bytes, read whole, if it exists.
    pub async fn read_all(&self, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        match self.store.get(&self.blob_key(digest)).await {
            Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `len` bytes of a stored blob from `start`, streamed as the store
    /// sends them (a ranged GET).
    pub async fn read_range(&self, digest: &Digest, start: u64, len: u64) -> Result<BlobBody, RegistryError> {
        let options = GetOptions {
            range: Some((start..start + len).into()),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&self.blob_key(digest), options).await?;
        Ok(Box::pin(got.into_stream().map_err(std::io::Error::other)))
    }

    /// A session's chunks in order and its size, if it exists.
    async fn session(&self, id: &str) -> Result<Option<Session>, RegistryError> {
        let objects: Vec<_> = self.store.list(Some(&self.session_key(id))).try_collect().await?;
        if objects.is_empty() {
            return Ok(None);
        }
        let mut session = Session {
            chunks: Vec::new(),
            size: 0,
            last_write: SystemTime::UNIX_EPOCH,
            first_sha256: None,
        };
        let mut chunks: Vec<(u64, u64, Key)> = Vec::new();
        for o in objects {
            session.last_write = session.last_write.max(o.last_modified.into());
            let name = o.location.filename().unwrap_or("");
            if let Ok(offset) = name.parse::<u64>() {
                chunks.push((offset, o.size, o.location));
            } else if name == format!("{:020}{SHA256_SUFFIX}", 0) {
                session.first_sha256 = Some(o.location);
            }
        }
        chunks.sort_by_key(|c| c.0);
        for (offset, size, key) in chunks {
            if offset != session.size {
                return Err(RegistryError::Internal(format!(
                    "upload {id}: a chunk starts at {offset}, not at {} where the session ends",
                    session.size
                )));
            }
            session.size += size;
            session.chunks.push(key);
        }
        Ok(Some(session))
    }

    /// The bytes an upload session holds, if it exists.
    pub async fn upload_size(&self, id: &str) -> Result<Option<u64>, RegistryError> {
        Ok(self.session(id).await?.map(|s| s.size))
    }

    /// Starts an empty session: its `open` object.
    pub async fn create_upload(&self, id: &str) -> Result<(), RegistryError> {
        let key = self.key(&format!("uploads/{id}/open"));
        self.store
            .put_opts(&key, PutPayload::new(), PutMode::Create.into())
            .await?;
        Ok(())
    }

    /// Appends a request body as the session's next chunk.
    pub async fn append<S, E>(
        &self,
        id: &str,
        body: S,
        (room, exact): (u64, Option<u64>),
        charge: &mut (dyn FnMut(u64) -> Result<(), RegistryError> + Send),
    ) -> Result<u64, RegistryError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let before = self
            .session(id)
            .await?
            .ok_or_else(|| RegistryError::BlobUploadUnknown(id.into()))?
            .size;
        let limit = before.saturating_add(exact.map_or(room, |n| n.min(room)));
        let mut size = before;
        // The first chunk's SHA-256, computed as it streams by: a session
        // of one chunk then finishes without reading it back (commit).
        let mut sha256 = (before == 0).then(DigestHasher::sha256);
        let chunks: Chunks<'_> = Box::pin(body.map(|c| {
            let chunk = intake(c, &mut size, limit, &mut *charge)?;
            if let Some(h) = sha256.as_mut() {
                h.update(&chunk);
            }
            Ok(chunk)
        }));
        let complete = |written: u64| match exact {
            Some(n) if written != n => Err(RegistryError::RangeNotSatisfiable {
                got: format!("{n} bytes announced, {written} sent"),
                size: before,
            }),
            _ => Ok(()),
        };
        // COMMIT POINT for a chunk: the store acknowledges the PUT (or the
        // multipart completion) of a name that did not exist. Before that
        // nothing of it is visible; after, it is durable. A second writer
        // of the same offset (another request raced this one) fails here.
        let written = self.write_new(&self.chunk_key(id, before), chunks, complete).await?;
        if let (Some(h), true) = (sha256, written > 0) {
            // After the chunk, which is stored and will be acknowledged
            // whatever happens here: a crash or a failure in between only
            // loses the shortcut.
            let key = self.key(&format!("uploads/{id}/{:020}{SHA256_SUFFIX}", 0));
            let digest = h.finish().to_string();
            if let Err(e) = self.store.put_opts(&key, digest.into(), PutMode::Create.into()).await {
                tracing::warn!(upload = id, error = %e, "could not record the first chunk's digest; finishing will read it back");
            }
        }
        Ok(before + written)
    }

    /// Finishes an upload: streams its chunks through the digest into a
    /// multipart upload at the blob's address, completed only on a match.
    pub async fn commit(&self, id: &str, expected: &Digest) -> Result<u64, RegistryError> {
        let session = self
            .session(id)
            .await?
            .ok_or_else(|| RegistryError::BlobUploadUnknown(id.into()))?;
        if let Some(size) = self.commit_one_chunk(id, &session, expected).await? {
            return Ok(size);
        }
        let hasher = Mutex::new(DigestHasher::for_digest(expected));
        let store = self.store.clone();
        let bytes: Chunks<'_> = Box::pin(
            futures_util::stream::iter(session.chunks)
                .then(move |key| {
                    let store = store.clone();
                    async move { store.get(&key).await.map(|got| got.into_stream()) }
                })
                .try_flatten()
                .map(|chunk| {
                    let chunk = chunk?;
                    hasher.lock().expect("hasher lock").update(&chunk);
                    Ok(chunk)
                }),
        );
        let verified = |_| {
            let actual = std::mem::replace(&mut *hasher.lock().expect("hasher lock"), DigestHasher::sha256()).finish();
            if &actual == expected {
                Ok(())
            } else {
                Err(mismatch(&actual, expected))
            }
        };
        let target = self.blob_key(expected);
        // COMMIT POINT for a blob: the multipart completion (or the single
        // PUT) after the digest matched makes verified bytes visible at
        // their address. The session keeps its chunks until its end is
        // recorded, so a crash before that leaves a session a retried PUT
        // finishes by hashing the same bytes again. If the blob exists
        // already it has the same content (same digest); writing it again
        // is harmless.
        match self.write(&target, bytes, verified, PutMode::Overwrite).await {
            Ok(size) => Ok(size),
            Err(e @ RegistryError::DigestInvalid(_)) => {
                self.remove_upload(id).await?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Finishes a session of one chunk whose SHA-256 vouch computed while
    /// writing it (kept beside it): the digest is compared with that, and a
    /// match is copied to the blob's key by the store itself, so the bytes
    /// do not cross vouch again. `None` when the shortcut does not apply
    /// (several chunks, another algorithm, no recorded digest, or a chunk
    /// past what one copy takes).
    async fn commit_one_chunk(
        &self,
        id: &str,
        session: &Session,
        expected: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let ([chunk], Some(recorded)) = (session.chunks.as_slice(), &session.first_sha256) else {
            return Ok(None);
        };
        if expected.algorithm() != "sha256" || session.size > MAX_COPY {
            return Ok(None);
        }
        let text = self.store.get(recorded).await?.bytes().await?;
        let Some(actual) = std::str::from_utf8(&text).ok().and_then(Digest::parse) else {
            return Ok(None);
        };
        if &actual != expected {
            self.remove_upload(id).await?;
            return Err(mismatch(&actual, expected));
        }
        // COMMIT POINT (as in the streamed path): the copy makes the
        // verified bytes visible at their address. The chunk is immutable
        // (written once, under a new name), so it holds what was hashed.
        self.store.copy(chunk, &self.blob_key(expected)).await?;
        Ok(Some(session.size))
    }

    /// Stores bytes the registry writes itself as a blob (one PUT).
    pub async fn put_bytes(&self, bytes: Vec<u8>) -> Result<Digest, RegistryError> {
        let digest = crate::registry::digest::sha256_of(&bytes);
        if self.blob_size(&digest).await?.is_none() {
            self.store.put(&self.blob_key(&digest), bytes.into()).await?;
        }
        Ok(digest)
    }

    /// The time since a session was last written, if it exists.
    pub async fn upload_idle(&self, id: &str) -> Result<Option<Duration>, RegistryError> {
        Ok(self
            .session(id)
            .await?
            .map(|s| s.last_write.elapsed().unwrap_or_default()))
    }

    /// Every session and the time since it was last written.
    pub async fn upload_files(&self) -> Result<Vec<(String, Duration)>, RegistryError> {
        let mut last: std::collections::BTreeMap<String, SystemTime> = Default::default();
        let mut listing = self.store.list(Some(&self.key("uploads")));
        let depth = self.key("uploads").parts().count();
        while let Some(o) = listing.try_next().await? {
            if let Some(id) = o.location.parts().nth(depth) {
                let at = last.entry(id.as_ref().to_owned()).or_insert(SystemTime::UNIX_EPOCH);
                *at = (*at).max(o.last_modified.into());
            }
        }
        Ok(last
            .into_iter()
            .map(|(id, at)| (id, at.elapsed().unwrap_or_default()))
            .collect())
    }

    /// Every stored blob: digest, size, and time since it was written.
    pub async fn all_blobs(&self) -> Result<Vec<(Digest, u64, Duration)>, RegistryError> {
        let mut out = Vec::new();
        let root = self.key("blobs");
        let depth = root.parts().count();
        let mut listing = self.store.list(Some(&root));
        while let Some(o) = listing.try_next().await? {
            let parts: Vec<_> = o.location.parts().skip(depth).collect();
            // blobs/<algorithm>/<shard>/<hex>; anything else is not ours.
            let [alg, _, hex] = parts.as_slice() else { continue };
            let Some(digest) = Digest::parse(&format!("{}:{}", alg.as_ref(), hex.as_ref())) else {
                continue;
            };
            let age = SystemTime::from(o.last_modified).elapsed().unwrap_or_default();
            out.push((digest, o.size, age));
        }
        Ok(out)
    }

    /// Deletes a stored blob; absent is fine.
    pub async fn remove_blob(&self, digest: &Digest) -> Result<(), RegistryError> {
        match self.store.delete(&self.blob_key(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a session's objects.
    pub async fn remove_upload(&self, id: &str) -> Result<(), RegistryError> {
        let keys: Vec<_> = self
            .store
            .list(Some(&self.session_key(id)))
            .map_ok(|o| o.location)
            .try_collect()
            .await?;
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes a chunk under a name that must be new.
    async fn write_new(
        &self,
        key: &Key,
        chunks: Chunks<'_>,
        complete: impl FnOnce(u64) -> Result<(), RegistryError>,
    ) -> Result<u64, RegistryError> {
        self.write(key, chunks, complete, PutMode::Create).await
    }

    /// Writes `chunks` as one object at `key`, which appears whole and only
    /// if `complete` accepts the number of bytes written: up to [`PART`]
    /// bytes in one PUT (with `mode`), more as a multipart upload, completed
    /// after `complete` passes and aborted otherwise. Nothing is written
    /// for an empty stream. Returns the bytes written.
    ///
    /// A multipart completion cannot be made conditional through
    /// object_store, so a large chunk relies on the session's lock in this
    /// process for `PutMode::Create`; blobs are content-addressed, so a
    /// concurrent write of one is the same bytes.
    async fn write(
        &self,
        key: &Key,
        mut chunks: Chunks<'_>,
        complete: impl FnOnce(u64) -> Result<(), RegistryError>,
        mode: PutMode,
    ) -> Result<u64, RegistryError> {
        let mut held: Vec<Bytes> = Vec::new();
        let mut written = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            held.push(chunk);
            if written as usize > PART {
                let upload = self.store.put_multipart(key).await?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
                for b in held.drain(..) {
                    parts.put(b);
                }
                let rest = async {
                    while let Some(chunk) = chunks.next().await {
                        let chunk = chunk?;
                        written += chunk.len() as u64;
                        parts.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                        parts.put(chunk);
                    }
                    complete(written)
                }
                .await;
                return match rest {
                    Ok(()) => {
                        parts.finish().await?;
                        Ok(written)
                    }
                    Err(e) => {
                        // Parts in flight end first, so the abort leaves
                        // no part behind it.
                        let _ = parts.wait_for_capacity(0).await;
                        let _ = parts.abort().await;
                        Err(e)
                    }
                };
            }
        }
        complete(written)?;
        if written == 0 {
            return Ok(0);
        }
        let payload: PutPayload = held.into_iter().collect();
        match self.store.put_opts(key, payload, PutOptions::from(mode)).await {
            Ok(_) => Ok(written),
            Err(object_store::Error::AlreadyExists { .. }) => Err(RegistryError::BlobUploadInvalid(
                "another request wrote this part of the upload at the same time; check the session's Range and continue".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Bytes on their way into an object.
type Chunks<'a> = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send + 'a>>;

/// An upload session as its objects show it.
struct Session {
    /// Chunk objects in order of offset.
    chunks: Vec<Key>,
    /// Bytes the chunks hold.
    size: u64,
    /// When the newest of its objects was written.
    last_write: SystemTime,
    /// The object holding the first chunk's SHA-256, if recorded.
    first_sha256: Option<Key>,
}
