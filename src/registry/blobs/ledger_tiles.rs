//! The ledger published to the bucket (`vouch serve --storage s3://..`):
//! every tile and entry bundle at its c2sp.org/tlog-tiles path under
//! `<prefix>/ledger/`, then the checkpoint at `<prefix>/ledger/checkpoint`,
//! so any static HTTP server or CDN in front of the bucket serves the log
//! and any tlog-tiles client reads it there (`vouch ledger fsck --mirror
//! <url>` checks it from its tiles alone).
//!
//! A tile's path names its width, so what is at a path never changes:
//! replicas publishing at once write the same bytes. The checkpoint is
//! replaced only by a larger tree's, with a conditional write (If-None-Match
//! while there is none, If-Match on the ETag just read otherwise), and only
//! after every tile it covers is written: whichever replica writes last,
//! the bucket's checkpoint never goes back and never names a tile the
//! bucket lacks.

use super::objects::ObjectBlobs;
use crate::mirror::{kinds, tiles_grown};
use object_store::{Attribute, Attributes, ObjectStoreExt as _, PutMode, PutOptions, UpdateVersion};
use std::time::Duration;
use vouch_ledger::store::Ledger;
use vouch_ledger::tile::TileAddr;
use vouch_ledger::Checkpoint;

/// Cache-Control of tiles (immutable at their paths) and of the checkpoint.
const TILE_CACHE: &str = "public, max-age=31536000, immutable";
const CHECKPOINT_CACHE: &str = "no-cache";

/// How long a failed publication waits before it is tried again.
const RETRY: Duration = Duration::from_secs(2);

impl ObjectBlobs {
    /// The size of the checkpoint in the bucket, if there is one that the
    /// ledger's key signed.
    pub async fn published_size(&self, ledger: &Ledger) -> Result<Option<u64>, String> {
        Ok(self.published(ledger).await?.map(|(size, _)| size))
    }

    async fn published(&self, ledger: &Ledger) -> Result<Option<(u64, Option<String>)>, String> {
        let key = self.key("ledger/checkpoint");
        let got = match self.store().get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let e_tag = got.meta.e_tag.clone();
        let bytes = got.bytes().await.map_err(|e| e.to_string())?;
        // Not this log's (or unreadable): replaced, as a tree of size 0.
        let size = Checkpoint::open(&bytes, ledger.verifier()).map_or(0, |c| c.size);
        Ok(Some((size, e_tag)))
    }

    /// Publishes the ledger's current tree: the tiles it has that a tree
    /// of `from` entries lacks, then its checkpoint. Returns its size.
    pub async fn publish_ledger(&self, ledger: &Ledger, from: u64) -> Result<u64, String> {
        let note = ledger.checkpoint();
        let size = Checkpoint::open(note.as_bytes(), ledger.verifier())
            .map_err(|e| e.to_string())?
            .size;
        let tile = PutOptions {
            mode: PutMode::Overwrite,
            attributes: Attributes::from_iter([
                (Attribute::CacheControl, TILE_CACHE),
                (Attribute::ContentType, "application/octet-stream"),
            ]),
            ..Default::default()
        };
        for kind in kinds(size) {
            for index in tiles_grown(kind, from.min(size), size) {
                let addr = TileAddr::for_tree(kind, index, size).expect("a tile of the tree");
                // The tree may have grown since `note`: read this tile at
                // its width in `note`'s tree.
                let bytes = ledger
                    .tile(addr)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{addr} is not in the ledger"))?;
                let key = self.key(&format!("ledger/{addr}"));
                self.store()
                    .put_opts(&key, bytes.into(), tile.clone())
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?;
            }
        }
        self.advance_checkpoint(ledger, note.as_bytes(), size).await?;
        Ok(size)
    }

    /// Replaces the bucket's checkpoint with `note` (of `size`) unless it
    /// is already of a tree at least as large.
    async fn advance_checkpoint(&self, ledger: &Ledger, note: &[u8], size: u64) -> Result<(), String> {
        let key = self.key("ledger/checkpoint");
        loop {
            let mode = match self.published(ledger).await? {
                Some((theirs, _)) if theirs >= size => return Ok(()),
                Some((_, e_tag)) => PutMode::Update(UpdateVersion { e_tag, version: None }),
                None => PutMode::Create,
            };
            let opts = PutOptions {
                mode,
                attributes: Attributes::from_iter([
                    (Attribute::CacheControl, CHECKPOINT_CACHE),
                    (Attribute::ContentType, "text/plain; charset=utf-8"),
                ]),
                ..Default::default()
            };
            match self.store().put_opts(&key, note.to_vec().into(), opts).await {
                Ok(_) => return Ok(()),
                // Another replica wrote it between the read and the write:
                // read it again.
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(format!("ledger/checkpoint: {e}")),
            }
        }
    }
}

/// Keeps the bucket's copy of the ledger up to date, for as long as the
/// ledger lives: publishes what it lacks at start, then after each new
/// checkpoint (a burst of them is one publication). A failure is logged
/// and tried again; the registry serves on meanwhile.
pub async fn keep_published(objects: ObjectBlobs, ledger: Ledger) {
    let mut changes = ledger.subscribe();
    let mut published = None;
    loop {
        let from = match published {
            Some(size) => Ok(size),
            None => objects.published_size(&ledger).await.map(|s| s.unwrap_or(0)),
        };
        let result = match from {
            Ok(from) if from >= ledger.size() => Ok(from),
            Ok(from) => objects.publish_ledger(&ledger, from).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(size) => published = Some(size),
            Err(e) => {
                tracing::warn!(error = %e, "publishing the ledger to the bucket failed; trying again");
                published = None;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        }
        if published.is_some_and(|p| p >= ledger.size()) && changes.changed().await.is_err() {
            return;
        }
    }
}
