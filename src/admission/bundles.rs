//! Admission bundles attached to images as OCI 1.1 referrers
//! (spec/bundle.md, "Attached as an OCI referrer"), off the request path:
//! each decision queues its bundle durably in the decision's batch; a
//! background task attaches queued bundles, and each attachment replaces
//! the bundle vouch attached before for that image (whose blobs then
//! become collectable), so referrer listings hold one bundle per image.

use super::evidence::{BUNDLE_ARTIFACT_TYPE, EMPTY_JSON, EMPTY_MEDIA_TYPE};
use super::Admission;
use crate::registry::digest::sha256_of;
use crate::registry::error::RegistryError;
use crate::registry::manifest::OCI_MANIFEST;
use crate::registry::meta::{AdmissionState, Evidence, EvidenceKind, ManifestRecord};
use crate::registry::names::RepoName;
use crate::registry::AppState;
use vouch_ledger::entry::Digest;

impl Admission {
    /// Attaches the bundles of decisions queued since (`spec/bundle.md`),
    /// oldest image keys first, each durable before it leaves the queue, so
    /// a crash only delays them. Returns how many were attached.
    pub async fn attach_pending(&self, app: &AppState) -> Result<usize, RegistryError> {
        let pending = app.meta.pending_bundles(256)?;
        if pending.is_empty() {
            return Ok(0);
        }
        let _gc = app.gc_lock.read().await;
        let mut n = 0;
        for (repo, digest, index, admit) in pending {
            let guard = self.lock(&repo, &digest).await;
            let mut batch = app.meta.batch();
            // Only the latest decision's bundle is attached; earlier queued
            // ones are superseded.
            let latest = app
                .meta
                .decision(&repo, &digest)?
                .and_then(|d| d["ledger_index"].as_u64())
                .is_some_and(|i| i == index);
            if let (true, Some(record)) = (latest, app.meta.manifest(&repo, &digest)?) {
                stage_bundle(app, &repo, &digest, &record, index, admit, &mut batch).await?;
                n += 1;
            }
            batch.forget_bundle(&repo, &digest, index);
            // Through the committer (`meta/committer.rs`): its fsync is
            // shared with the pushes committing meanwhile, rather than one
            // more fsync of the WAL for each bundle of the round.
            batch.commit_durable().await?;
            drop(guard);
        }
        Ok(n)
    }
}

/// Stages the blobs of the admission bundle of the decision at ledger
/// `index` (inline), and its referrer artifact (artifactType
/// [`BUNDLE_ARTIFACT_TYPE`], the bundle as its one layer) in `batch`,
/// replacing the one attached before.
async fn stage_bundle(
    app: &AppState,
    repo: &RepoName,
    image: &Digest,
    record: &ManifestRecord,
    index: u64,
    admit: bool,
    batch: &mut crate::registry::meta::Batch<'_>,
) -> Result<Digest, RegistryError> {
    let bundle = crate::registry::ledger_api::bundle(app, repo, image, index)?;
    let bundle_len = bundle.len() as u64;
    // Small blobs vouch wrote: inline, durable with the referrer that names
    // them (a bundle too large for that, which no log makes, is a file).
    let bundle_digest = if bundle.len() <= crate::registry::meta::MAX_INLINE {
        batch.put_inline_blob(repo, &bundle)
    } else {
        let d = app.blobs.put_bytes(bundle).await?;
        batch.link_blob(repo, &d, bundle_len);
        d
    };
    let empty = batch.put_inline_blob(repo, EMPTY_JSON);
    let annotations = serde_json::json!({
        "dev.vouch.verdict": if admit { "admit" } else { "deny" },
        "dev.vouch.ledger-index": index.to_string(),
    });
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_ARTIFACT_TYPE,
        "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": empty.as_str(), "size": EMPTY_JSON.len() },
        "layers": [{ "mediaType": BUNDLE_ARTIFACT_TYPE, "digest": bundle_digest.as_str(), "size": bundle_len }],
        "subject": { "mediaType": record.media_type, "digest": image.as_str(), "size": record.bytes.len() },
        "annotations": annotations,
    }))
    .expect("serialize a JSON value");
    let digest = sha256_of(&manifest);
    // The bundle vouch attached before is superseded (deletions first).
    for old in app
        .meta
        .evidence_for(repo, image, super::gather::MAX_EVIDENCE_MANIFESTS)?
    {
        let own_bundle = app
            .meta
            .manifest(repo, &old)?
            .and_then(|r| r.evidence)
            .is_some_and(|e| e.own && e.kind == EvidenceKind::AdmissionBundle);
        if own_bundle && old != digest {
            super::countersign::delete_manifest(app, repo, &old, batch)?;
        }
    }
    let descriptor = serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest.as_str(),
        "size": manifest.len(),
        "artifactType": BUNDLE_ARTIFACT_TYPE,
        "annotations": annotations,
    });
    let stored = ManifestRecord::new(
        AdmissionState::Evidence,
        OCI_MANIFEST,
        &manifest,
        Some(Evidence {
            kind: EvidenceKind::AdmissionBundle,
            subject: image.clone(),
            countersigned: false,
            own: true,
        }),
    );
    batch.put_record(repo, &digest, &stored)?;
    batch.index_refs(repo, &digest, &[empty, bundle_digest]);
    batch.index_referrer(repo, image, &digest, &descriptor);
    batch.index_evidence(repo, image, &digest, EvidenceKind::AdmissionBundle);
    Ok(digest)
}
