//! vouch's countersignature (spec/signatures.md, "Countersignature"): when
//! vouch admits an image it signs it with its own admission key, as one more
//! cosign-compatible layer of the image's `<alg>-<hex>.sig` manifest. Its
//! payload's `optional` fields name the ledger entry of the decision, the
//! size of a checkpoint that covers it, and the policy. Downstream clusters
//! can then require "admitted by this vouch" with tools they already run,
//! given only `admission.pub`.
//!
//! The countersignature is staged in the decision's own batch, so it exists
//! exactly when the admitted state does. When an image is taken back, it is
//! withdrawn in the same batch as the denial: the `.sig` tag moves to a
//! manifest without vouch's layer, and every manifest vouch wrote for the
//! image is deleted (their blobs become collectable). A manifest someone
//! else pushes carrying vouch's layer is served only while the image is
//! admitted (`visibility.rs`).

use super::Admission;
use crate::registry::digest::sha256_of;
use crate::registry::error::RegistryError;
use crate::registry::manifest::validate;
use crate::registry::meta::{AdmissionState, Batch, Evidence, EvidenceKind, ManifestRecord};
use crate::registry::names::{RepoName, Tag};
use crate::registry::AppState;
use crate::signature::{
    payload_with, signature_layer, signature_tag, verify_layers, PublicKey, SignatureLayer, SignatureManifest,
    OCI_MANIFEST, SIGNATURE_ANNOTATION,
};
use std::path::Path;
use std::sync::OnceLock;
use vouch_ledger::entry::Digest;

/// The admission key's file names in the data directory.
pub const KEY_FILE: &str = "admission.key";
/// Its public key, for downstream verifiers.
pub const PUB_FILE: &str = "admission.pub";

/// Largest layer payload read back when replacing an earlier countersignature.
const MAX_PAYLOAD: u64 = super::evidence::MAX_SIGNATURE_PAYLOAD;

/// Signs admitted images with the admission key.
#[derive(Debug)]
pub struct Countersigner {
    /// The key, for ring's P-256 signer: about five times faster than the
    /// p256 crate's, and signing is on every admitted push.
    key: ring::signature::EcdsaKeyPair,
    public: PublicKey,
    registry: OnceLock<String>,
}

/// What a countersignature attests, carried in its payload's `optional`.
#[derive(Debug, Clone)]
pub struct Attested<'a> {
    /// Ledger index of the admit decision.
    pub ledger_index: u64,
    /// Size of a signed checkpoint that includes it.
    pub checkpoint_size: u64,
    /// Digest of the policy it was admitted under.
    pub policy: &'a Digest,
    /// Ledger index of that policy.
    pub policy_index: u64,
}

/// A `.sig` manifest a push in progress is tagging as the image's
/// signatures (not yet committed), to build on instead of the stored one.
pub type Incoming<'a> = Option<(&'a Digest, &'a ManifestRecord)>;

/// What a layer of a `.sig` manifest is, for the countersignature.
enum LayerKind {
    /// vouch's own countersignature of the image.
    Own,
    /// Someone else's signature payload naming the image.
    Signature,
    /// Anything else: never carried over.
    Other,
}

/// A `.sig` manifest's layers, split into vouch's own and the others.
struct Split {
    /// The manifest the `.sig` tag points to, if any.
    tagged: Option<Digest>,
    /// Its layers that are not vouch's.
    others: Vec<serde_json::Value>,
    /// Whether it has a layer of vouch's.
    has_own: bool,
}

impl Countersigner {
    /// The signer with this key.
    pub fn new(key: p256::ecdsa::SigningKey) -> Countersigner {
        let public = PublicKey::EcdsaP256(*key.verifying_key());
        let point = key.verifying_key().to_encoded_point(false);
        let key = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &key.to_bytes(),
            point.as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("a valid P-256 key pair is accepted by ring");
        Countersigner {
            key,
            public,
            registry: OnceLock::new(),
        }
    }

    /// Loads `<data>/admission.key` (refused if group or others may read
    /// it, as the ledger key is), or creates it (with `admission.pub`) on
    /// first start; returns the signer and whether the key is new.
    pub fn load_or_create(data: &Path) -> Result<(Countersigner, bool), String> {
        let (key_path, pub_path) = (data.join(KEY_FILE), data.join(PUB_FILE));
        if key_path.exists() {
            crate::signature::check_private_mode(&key_path)?;
            let key = crate::signature::read_private_key(&key_path)?;
            return Ok((Countersigner::new(key), false));
        }
        let key = crate::signature::create_key_pair(&key_path, &pub_path)?;
        Ok((Countersigner::new(key), true))
    }

    /// The admission public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Sets the registry name signatures identify images by
    /// (`<registry>/<repo>`, the payload's docker-reference). The first
    /// call wins.
    pub fn set_registry(&self, name: &str) {
        let _ = self.registry.set(name.to_owned());
    }

    /// Reads the `.sig` manifest the image's tag points to (or `incoming`,
    /// the one a push in progress is moving it to), and which of its layers
    /// are vouch's.
    async fn split(
        &self,
        admission: &Admission,
        app: &AppState,
        repo: &RepoName,
        image: &Digest,
        incoming: Incoming<'_>,
    ) -> Result<Split, RegistryError> {
        let mut split = Split {
            tagged: None,
            others: Vec::new(),
            has_own: false,
        };
        let Ok(tag) = Tag::parse(&signature_tag(image)) else {
            return Ok(split);
        };
        let existing = match incoming {
            Some((d, record)) => {
                split.tagged = Some(d.clone());
                Some(record.clone())
            }
            None => {
                split.tagged = app.meta.tag(repo, &tag)?;
                split
                    .tagged
                    .as_ref()
                    .map(|d| app.meta.manifest(repo, d))
                    .transpose()?
                    .flatten()
            }
        };
        // Only signatures of this image are carried over: whatever a tag
        // points to is a claim, so a manifest that is not recognised as
        // signatures of this image contributes nothing, and of one that is,
        // only layers whose payload names the image.
        let signatures_of_image = existing.as_ref().is_some_and(|r| {
            r.evidence
                .as_ref()
                .is_some_and(|e| e.kind == EvidenceKind::CosignSignature && &e.subject == image)
        });
        let Some(existing) = existing.filter(|_| signatures_of_image) else {
            return Ok(split);
        };
        let doc: serde_json::Value = serde_json::from_slice(&existing.bytes).unwrap_or_default();
        for layer in doc["layers"].as_array().into_iter().flatten() {
            match self.layer_kind(admission, app, repo, image, layer).await? {
                LayerKind::Own => split.has_own = true,
                LayerKind::Signature => split.others.push(layer.clone()),
                LayerKind::Other => {}
            }
        }
        Ok(split)
    }

    /// Countersigns the admitted `image` of `repo`: stages in `batch` the
    /// payload and config blobs (inline) and a `.sig` manifest
    /// holding every layer of the tagged one (the publishers' signatures,
    /// unchanged) except vouch's own earlier countersignatures, plus the
    /// new one; deletes the manifests vouch wrote before for the image.
    /// Returns the new manifest's digest.
    pub async fn countersign(
        &self,
        admission: &Admission,
        app: &AppState,
        (repo, image): (&RepoName, &Digest),
        attested: &Attested<'_>,
        incoming: Incoming<'_>,
        batch: &mut Batch<'_>,
    ) -> Result<Digest, RegistryError> {
        let registry = self.registry.get().map_or("localhost", String::as_str);
        let optional = serde_json::json!({
            "dev.vouch.ledger-index": attested.ledger_index.to_string(),
            "dev.vouch.checkpoint-size": attested.checkpoint_size.to_string(),
            "dev.vouch.policy": attested.policy.as_str(),
            "dev.vouch.policy-index": attested.policy_index.to_string(),
        });
        let payload = payload_with(&format!("{registry}/{repo}"), image, optional);
        let signature = self
            .key
            .sign(&ring::rand::SystemRandom::new(), &payload)
            .map_err(|_| RegistryError::Internal("the admission key could not sign".into()))?;
        let payload_digest = sha256_of(&payload);
        let mut layers = self.split(admission, app, repo, image, incoming).await?.others;
        // ASN.1 DER, as cosign writes ECDSA signatures.
        layers.push(signature_layer(&payload, &payload_digest, signature.as_ref()));
        let len = layers.len();
        let digest = self
            .stage_manifest(app, (repo, image), layers, Some(payload), batch)
            .await?;
        tracing::debug!(%repo, %image, %digest, layers = len, "countersigned");
        Ok(digest)
    }

    /// Withdraws vouch's countersignature of `image`, in `batch`: the `.sig`
    /// tag moves to a manifest of the other layers (or is removed if there
    /// are none), and every manifest vouch wrote for the image is deleted.
    /// Returns the digest of the manifest that carried it, if any did.
    pub async fn withdraw(
        &self,
        admission: &Admission,
        app: &AppState,
        repo: &RepoName,
        image: &Digest,
        incoming: Incoming<'_>,
        batch: &mut Batch<'_>,
    ) -> Result<Option<Digest>, RegistryError> {
        let split = self.split(admission, app, repo, image, incoming).await?;
        let own = own_manifests(app, repo, image)?;
        if !split.has_own && own.is_empty() {
            return Ok(None);
        }
        let withdrawn = split
            .tagged
            .clone()
            .filter(|_| split.has_own)
            .or_else(|| own.first().cloned());
        if split.others.is_empty() {
            for d in &own {
                delete_manifest(app, repo, d, batch)?;
            }
            if let (true, Ok(tag)) = (split.has_own, Tag::parse(&signature_tag(image))) {
                batch.delete_tag(repo, &tag);
            }
        } else if split.has_own {
            self.stage_manifest(app, (repo, image), split.others, None, batch)
                .await?;
        } else {
            for d in &own {
                delete_manifest(app, repo, d, batch)?;
            }
        }
        Ok(withdrawn)
    }

    /// Writes the config of a `.sig` manifest over `layers` and stages the
    /// manifest (vouch's own), its tag, and the deletion of the manifests
    /// vouch wrote for the image before. Images whose tag form cannot exist
    /// (sha512: the tag would exceed 128 characters) get the manifest as an
    /// OCI 1.1 referrer of the image instead.
    async fn stage_manifest(
        &self,
        app: &AppState,
        (repo, image): (&RepoName, &Digest),
        layers: Vec<serde_json::Value>,
        payload: Option<Vec<u8>>,
        batch: &mut Batch<'_>,
    ) -> Result<Digest, RegistryError> {
        // The new countersignature's payload and the config are small
        // blobs vouch wrote: inline, in this same batch, so that they are
        // durable exactly when the manifest naming them is (one synced
        // write for the decision, its state and its countersignature).
        let countersigned = payload.is_some();
        let tag = Tag::parse(&signature_tag(image)).ok();
        // Only a referrer names its subject (read only then).
        let subject = match &tag {
            Some(_) => None,
            None => app.meta.manifest(repo, image)?.map(|r| {
                serde_json::json!({
                    "mediaType": r.media_type, "digest": image.as_str(), "size": r.bytes.len(),
                })
            }),
        };
        let sig = SignatureManifest::new(&layers, subject);
        batch.put_inline_blob(repo, &sig.config);
        if let Some(p) = payload {
            batch.put_inline_blob(repo, &p);
        }
        let digest = sha256_of(&sig.manifest);
        // Deletions first: a batch applies in order, and the manifests
        // replaced may hold the tag this one takes.
        for old in own_manifests(app, repo, image)?.iter().filter(|d| **d != digest) {
            delete_manifest(app, repo, old, batch)?;
        }
        let record = ManifestRecord::new(
            AdmissionState::Evidence,
            OCI_MANIFEST,
            &sig.manifest,
            Some(Evidence {
                kind: EvidenceKind::CosignSignature,
                subject: image.clone(),
                countersigned,
                own: true,
            }),
        );
        let refs = validate(OCI_MANIFEST, &sig.manifest)?;
        batch.put_record(repo, &digest, &record)?;
        batch.index_refs(repo, &digest, &refs.all());
        batch.index_evidence(repo, image, &digest, EvidenceKind::CosignSignature);
        match &tag {
            Some(tag) => batch.set_tag(repo, tag, &digest),
            None => {
                let descriptor = serde_json::json!({
                    "mediaType": OCI_MANIFEST, "digest": digest.as_str(), "size": sig.manifest.len(),
                    "artifactType": crate::signature::SIGNATURE_ARTIFACT_TYPE,
                });
                batch.index_referrer(repo, image, &digest, &descriptor);
            }
        }
        Ok(digest)
    }

    /// What a `.sig` layer is: vouch's countersignature of `image`, another
    /// signature payload naming it, or anything else.
    async fn layer_kind(
        &self,
        admission: &Admission,
        app: &AppState,
        repo: &RepoName,
        image: &Digest,
        layer: &serde_json::Value,
    ) -> Result<LayerKind, RegistryError> {
        let Some(d) = layer["digest"].as_str().and_then(Digest::parse) else {
            return Ok(LayerKind::Other);
        };
        if layer["mediaType"].as_str() != Some(crate::signature::SIMPLESIGNING)
            || !app.meta.blob_linked(repo, &d)?
            || app.blob_size(&d).await?.is_none_or(|s| s > MAX_PAYLOAD)
        {
            return Ok(LayerKind::Other);
        }
        let payload = app.read_blob(&d).await?;
        if super::evidence::payload_image(&payload).as_ref() != Some(image) {
            return Ok(LayerKind::Other);
        }
        let signature = layer["annotations"][SIGNATURE_ANNOTATION].as_str();
        Ok(if admission.is_own_layer(image, signature, &payload) {
            LayerKind::Own
        } else {
            LayerKind::Signature
        })
    }

    /// Whether `payload` with `signature` is a valid signature of `image` by this key.
    pub fn signed(&self, image: &Digest, signature: Option<&str>, payload: &[u8]) -> bool {
        let one = [SignatureLayer {
            signature: signature.map(str::to_owned),
            payload: payload.to_vec(),
        }];
        !verify_layers(image, &one, std::slice::from_ref(&self.public))
            .0
            .is_empty()
    }
}

/// The evidence manifests vouch wrote for `image`: its `.sig` manifests.
fn own_manifests(app: &AppState, repo: &RepoName, image: &Digest) -> Result<Vec<Digest>, RegistryError> {
    let mut out = Vec::new();
    for d in app
        .meta
        .evidence_for(repo, image, super::gather::MAX_EVIDENCE_MANIFESTS)?
    {
        let own = app
            .meta
            .manifest(repo, &d)?
            .and_then(|r| r.evidence)
            .is_some_and(|e| e.own && e.kind == EvidenceKind::CosignSignature);
        if own {
            out.push(d);
        }
    }
    Ok(out)
}

/// Stages the deletion of a stored manifest with everything indexed about it.
pub(super) fn delete_manifest(
    app: &AppState,
    repo: &RepoName,
    digest: &Digest,
    batch: &mut Batch<'_>,
) -> Result<(), RegistryError> {
    if let Some(record) = app.meta.manifest(repo, digest)? {
        let refs = validate(&record.media_type, &record.bytes).unwrap_or_default();
        batch.delete_manifest(repo, digest, &record, &refs.all(), refs.subject.as_ref())?;
    }
    Ok(())
}
