//! vouch's countersignature (spec/signatures.md, "Countersignature"): when
//! vouch admits an image it signs it with its own admission key, as one more
//! cosign-compatible layer of the image's `<alg>-<hex>.sig` manifest. Its
//! payload's `optional` fields name the ledger entry of the decision, the
//! size of a checkpoint that covers it, and the policy. Downstream clusters
//! can then require "admitted by this vouch" with tools they already run,
//! given only `admission.pub`.

use crate::registry::digest::sha256_of;
use crate::registry::error::RegistryError;
use crate::registry::meta::AdmissionState;
use crate::registry::names::{parse_digest, RepoName, Tag};
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
const MAX_PAYLOAD: u64 = 64 * 1024;

/// Signs admitted images with the admission key.
#[derive(Debug)]
pub struct Countersigner {
    key: p256::ecdsa::SigningKey,
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

impl Countersigner {
    /// The signer with this key.
    pub fn new(key: p256::ecdsa::SigningKey) -> Countersigner {
        let public = PublicKey::EcdsaP256(*key.verifying_key());
        Countersigner {
            key,
            public,
            registry: OnceLock::new(),
        }
    }

    /// Loads `<data>/admission.key`, or creates it (with `admission.pub`)
    /// on first start; returns the signer and whether the key is new.
    pub fn load_or_create(data: &Path) -> Result<(Countersigner, bool), String> {
        let (key_path, pub_path) = (data.join(KEY_FILE), data.join(PUB_FILE));
        if key_path.exists() {
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

    /// Countersigns the admitted `image` of `repo`: writes the payload blob,
    /// then moves the `.sig` tag to a manifest holding every earlier layer
    /// (the publishers' signatures, unchanged) except vouch's own earlier
    /// countersignatures, plus the new one. Durable on return. Callers hold
    /// the garbage collection lock, shared.
    pub async fn countersign(
        &self,
        app: &AppState,
        repo: &RepoName,
        image: &Digest,
        attested: &Attested<'_>,
    ) -> Result<Digest, RegistryError> {
        use p256::ecdsa::signature::Signer as _;
        let registry = self.registry.get().map_or("localhost", String::as_str);
        let optional = serde_json::json!({
            "dev.vouch.ledger-index": attested.ledger_index.to_string(),
            "dev.vouch.checkpoint-size": attested.checkpoint_size.to_string(),
            "dev.vouch.policy": attested.policy.as_str(),
            "dev.vouch.policy-index": attested.policy_index.to_string(),
        });
        let payload = payload_with(&format!("{registry}/{repo}"), image, optional);
        let signature: p256::ecdsa::Signature = self.key.sign(&payload);
        let payload_digest = sha256_of(&payload);

        let tag = Tag::parse(&signature_tag(image))?;
        let mut layers = Vec::new();
        let existing = match app.meta.tag(repo, &tag)? {
            Some(d) => app.meta.manifest(repo, &d)?,
            None => None,
        };
        if let Some(existing) = existing {
            let doc: serde_json::Value = serde_json::from_slice(&existing.bytes).unwrap_or_default();
            for layer in doc["layers"].as_array().into_iter().flatten() {
                if !self.is_own(app, repo, image, layer).await? {
                    layers.push(layer.clone());
                }
            }
        }
        layers.push(signature_layer(
            &payload,
            &payload_digest,
            signature.to_der().as_bytes(),
        ));
        let sig = SignatureManifest::new(&layers);
        // The two new blobs are written side by side, each durable before
        // the manifest that names them; their links are made durable by the
        // manifest's own synced write.
        let (payload_len, config_len) = (payload.len() as u64, sig.config.len() as u64);
        let (stored_payload, config_digest) =
            tokio::try_join!(app.blobs.put_bytes(payload), app.blobs.put_bytes(sig.config))?;
        debug_assert_eq!(stored_payload, payload_digest);
        app.meta.link_blobs_unsynced(
            repo,
            &[(payload_digest, payload_len), (config_digest.clone(), config_len)],
        )?;
        let mut refs = vec![config_digest];
        refs.extend(layers.iter().filter_map(|l| parse_digest(l["digest"].as_str()?).ok()));
        let digest = sha256_of(&sig.manifest);
        let new = (app.meta.manifest(repo, &digest)?.is_none()).then_some((
            OCI_MANIFEST,
            &sig.manifest[..],
            AdmissionState::Evidence,
        ));
        app.meta.put_manifest(repo, &digest, new, &refs, Some(&tag), None)?;
        Ok(digest)
    }

    /// Whether a `.sig` layer is an earlier countersignature of `image`.
    async fn is_own(
        &self,
        app: &AppState,
        repo: &RepoName,
        image: &Digest,
        layer: &serde_json::Value,
    ) -> Result<bool, RegistryError> {
        let Some(d) = layer["digest"].as_str().and_then(|d| parse_digest(d).ok()) else {
            return Ok(false);
        };
        if !app.meta.blob_linked(repo, &d)? || app.blobs.blob_size(&d).await?.is_none_or(|s| s > MAX_PAYLOAD) {
            return Ok(false);
        }
        let payload = tokio::fs::read(app.blobs.blob_path(&d)).await?;
        let signature = layer["annotations"][SIGNATURE_ANNOTATION].as_str().map(str::to_owned);
        let (signers, _) = verify_layers(
            image,
            &[SignatureLayer { signature, payload }],
            std::slice::from_ref(&self.public),
        );
        Ok(!signers.is_empty())
    }
}
