//! Online garbage collection of blobs no manifest references.
//!
//! Safety, in order of the ways a blob could be wrongly taken:
//! - **A push in progress.** Manifest pushes, blob links (upload finishes and
//!   mounts) hold [`super::AppState::gc_lock`] for reading; the collector
//!   holds it for writing while it decides and deletes, so it never sees a
//!   manifest half-validated or a link half-made.
//! - **A blob whose manifest has not arrived yet.** Clients push layers
//!   first and the manifest last; blobs written less than `grace` ago are
//!   never collected, so an image being pushed keeps its layers.
//! - **The ledger.** The ledger's entries name digests; collection removes
//!   blob files and repository links only, and never touches the ledger, so
//!   every entry stays intact and verifiable (the entry records what was
//!   decided about a digest, not the blob's bytes).
//!
//! Crash safety: links (and inline blobs, `meta/inline.rs`) are removed in
//! one synced batch before files, so a crash in between leaves unlinked
//! files, which the next run removes.

use super::error::RegistryError;
use super::manifest::validate;
use super::AppState;
use std::collections::HashSet;
use std::time::Duration;
use vouch_ledger::entry::Digest;

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Blobs referenced by some manifest (kept).
    pub referenced: u64,
    /// Unreferenced blobs younger than the grace period (kept).
    pub too_young: u64,
    /// Blob files deleted.
    pub blobs_removed: u64,
    /// Bytes those files held.
    pub bytes_freed: u64,
    /// Repository links to them removed.
    pub links_removed: u64,
}

/// Removes every blob that no stored manifest references and that was
/// written more than `grace` ago, with its repository links.
pub async fn collect(state: &AppState, grace: Duration) -> Result<GcReport, RegistryError> {
    let _exclusive = state.gc_lock.write().await;
    // Mark: every blob a manifest references, in any repository.
    let mut marked = HashSet::new();
    state.meta.for_each_manifest(|_, _, record| {
        if let Ok(refs) = validate(&record.media_type, &record.bytes) {
            marked.extend(refs.blobs);
        }
        Ok(())
    })?;
    // Sweep: blob files, and the small blobs vouch wrote inline
    // (meta/inline.rs), which go in the batch that unlinks them.
    let mut report = GcReport::default();
    let mut freed = 0;
    let mut sweep = |blobs: Vec<(Digest, u64, Duration)>| {
        let mut doomed = Vec::new();
        for (digest, size, age) in blobs {
            if marked.contains(&digest) {
                report.referenced += 1;
            } else if age < grace {
                report.too_young += 1;
            } else {
                freed += size;
                doomed.push(digest);
            }
        }
        doomed
    };
    let files_doomed = sweep(state.blobs.all_blobs().await?);
    let inline_doomed = sweep(state.meta.inline_blobs()?);
    let doomed: HashSet<Digest> = files_doomed.iter().chain(&inline_doomed).cloned().collect();
    let links: Vec<_> = state
        .meta
        .all_blob_links()?
        .into_iter()
        .filter(|(_, d)| doomed.contains(d))
        .collect();
    let mut batch = state.meta.batch();
    for (repo, digest) in &links {
        batch.unlink_blob(repo, digest);
    }
    for digest in &inline_doomed {
        batch.delete_inline_blob(digest);
    }
    batch.commit(true)?;
    for digest in &files_doomed {
        state.blobs.remove_blob(digest).await?;
    }
    report.blobs_removed = doomed.len() as u64;
    report.bytes_freed = freed;
    report.links_removed = links.len() as u64;
    Ok(report)
}
