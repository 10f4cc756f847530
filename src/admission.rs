//! Admission: evaluate an image against the policy, append the decision to
//! the ledger, and record the resulting state, before the push that caused
//! it is answered.
//!
//! An image is evaluated when its manifest is pushed and again whenever a
//! signature for it arrives (a manifest under its `<alg>-<hex>.sig` tag), so
//! either arrival order ends in the same decision. Signature manifests and
//! other artifacts with a `subject` are *evidence*: never evaluated
//! themselves, always served.

use crate::attestation::verify_envelope;
use crate::countersign::{Attested, Countersigner};
use crate::policy::{Policy, Subject};
use crate::registry::digest::sha256_of;
use crate::registry::error::RegistryError;
use crate::registry::manifest::{validate, DOCKER_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::registry::meta::AdmissionState;
use crate::registry::meta::ManifestRecord;
use crate::registry::names::{parse_digest, RepoName};
use crate::registry::AppState;
use crate::signature::{verify_layers, PublicKey, SignatureLayer, SIGNATURE_ANNOTATION};
use std::collections::BTreeSet;
use vouch_ledger::entry::{DecisionEntry, DeleteEntry, Digest, Entry, PolicyEntry, TagEntry, Verdict};
use vouch_ledger::store::Ledger;

/// Largest signature payload read (a simple signing payload is ~250 bytes).
const MAX_PAYLOAD: u64 = 64 * 1024;
/// Evidence problems named in one denial at most.
const MAX_NOTES: usize = 5;
/// Largest Sigstore bundle read (one with a certificate chain is ~5 KiB).
const MAX_BUNDLE: u64 = 1024 * 1024;

/// The policy in force, and where the ledger logged it.
#[derive(Debug)]
pub struct Admission {
    /// The policy.
    pub policy: Policy,
    /// Its digest (of its canonical document).
    pub policy_digest: Digest,
    /// The ledger index of its `policy` entry.
    pub policy_index: u64,
    keys: Vec<PublicKey>,
    identities: Vec<(String, crate::policy::IdentityMatcher)>,
    countersigner: Option<Countersigner>,
}

impl Admission {
    /// Puts the policy in force: logs it to the ledger first, unless this
    /// exact policy (by digest) already was.
    pub async fn load(
        policy: Policy,
        ledger: &Ledger,
        meta: &crate::registry::meta::Meta,
    ) -> Result<Admission, RegistryError> {
        let policy_digest = policy.digest();
        let policy_index = match meta.policy_index(&policy_digest)? {
            Some(i) => i,
            None => {
                let entry = Entry::Policy(PolicyEntry {
                    name: policy.name.clone(),
                    version: meta.policy_count()? + 1,
                    digest: policy_digest.clone(),
                });
                let bytes = entry.encode().map_err(|e| RegistryError::Internal(e.to_string()))?;
                let index = ledger
                    .append(bytes)
                    .await
                    .map_err(|e| RegistryError::Internal(e.to_string()))?;
                meta.record_policy(&policy_digest, index)?;
                index
            }
        };
        let mut keys: Vec<PublicKey> = Vec::new();
        let mut identities = Vec::new();
        // Every authority any rule names, for signatures or attestations.
        for rule in &policy.rules {
            let signers = rule.signatures.iter().flat_map(|(ks, _)| ks);
            let attesters = rule.attestations.iter().flat_map(|(_, ks)| ks);
            for (fingerprint, authority) in signers.chain(attesters) {
                match authority {
                    crate::policy::Authority::Key(key) => {
                        if !keys.iter().any(|k| &k.fingerprint() == fingerprint) {
                            keys.push(key.clone());
                        }
                    }
                    crate::policy::Authority::Identity(m) => {
                        if !identities.iter().any(|(g, _)| g == fingerprint) {
                            identities.push((fingerprint.clone(), m.clone()));
                        }
                    }
                }
            }
        }
        Ok(Admission {
            policy,
            policy_digest,
            policy_index,
            keys,
            identities,
            countersigner: None,
        })
    }

    /// The policy's keyless identities that signed `image`: each `.sig`
    /// layer with a certificate, verified offline against the policy's
    /// trusted root (`keyless.rs`).
    /// Why a verified signature matched none counts in `notes`.
    fn keyless_signers(
        &self,
        image: &Digest,
        layers: &[(serde_json::Value, Vec<u8>)],
        notes: &mut Vec<String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (layer, payload)) in layers.iter().enumerate() {
            let annotations = &layer["annotations"];
            if annotations.get(crate::keyless::CERTIFICATE_ANNOTATION).is_none() {
                continue;
            }
            let Some(root) = &self.policy.trusted_root else {
                notes.push(format!(
                    "layer {i}: keyless signature, but the policy has no trusted_root"
                ));
                continue;
            };
            match crate::keyless::verify(root, image, annotations, payload) {
                Ok(id) => {
                    let matched: Vec<String> = self
                        .identities
                        .iter()
                        .filter(|(_, m)| m.matches(&id))
                        .map(|(f, _)| f.clone())
                        .collect();
                    if matched.is_empty() {
                        notes.push(format!(
                            "layer {i}: keyless signature by {} from {} is not a trusted identity",
                            id.subject, id.issuer
                        ));
                    }
                    out.extend(matched);
                }
                Err(e) => notes.push(format!("layer {i}: {e}")),
            }
        }
        out
    }

    /// The Sigstore bundles attached to `image` as referrers
    /// (`sigstore_bundle.rs`) that verify: each artifact's digest, and what
    /// it proves.
    async fn sigstore_bundles(
        &self,
        app: &AppState,
        repo: &RepoName,
        image: &Digest,
        notes: &mut Vec<String>,
    ) -> Result<Vec<(Digest, crate::sigstore_bundle::Verified)>, RegistryError> {
        let mut out = Vec::new();
        for descriptor in app.meta.referrers(repo, image)? {
            let is_bundle = descriptor["artifactType"]
                .as_str()
                .is_some_and(|t| t.starts_with(crate::sigstore_bundle::ARTIFACT_TYPE_PREFIX));
            let Some(manifest) = descriptor["digest"].as_str().and_then(|d| parse_digest(d).ok()) else {
                continue;
            };
            let Some(record) = is_bundle
                .then(|| app.meta.manifest(repo, &manifest))
                .transpose()?
                .flatten()
            else {
                continue;
            };
            let doc: serde_json::Value = serde_json::from_slice(&record.bytes).unwrap_or_default();
            let Some(layer) = doc["layers"][0]["digest"].as_str().and_then(|d| parse_digest(d).ok()) else {
                continue;
            };
            if !app.meta.blob_linked(repo, &layer)? || app.blobs.blob_size(&layer).await?.is_none_or(|s| s > MAX_BUNDLE)
            {
                continue;
            }
            let bytes = tokio::fs::read(app.blobs.blob_path(&layer)).await?;
            match crate::sigstore_bundle::verify(&bytes, image, &self.keys, self.policy.trusted_root.as_ref()) {
                Ok(v) => out.push((manifest, v)),
                Err(e) => notes.push(format!("Sigstore bundle {manifest}: {e}")),
            }
        }
        Ok(out)
    }

    /// Countersigns every image admitted from now on (`countersign.rs`).
    pub fn with_countersigner(mut self, countersigner: Countersigner) -> Admission {
        self.countersigner = Some(countersigner);
        self
    }

    /// The countersigner, if any.
    pub fn countersigner(&self) -> Option<&Countersigner> {
        self.countersigner.as_ref()
    }

    /// Evaluates the image `digest` in `repo`, logs the decision, records
    /// the state. Returns whether it was admitted.
    /// When this admits it, every tag already pointing to it is logged.
    pub async fn evaluate(&self, app: &AppState, repo: &RepoName, digest: &Digest) -> Result<bool, RegistryError> {
        self.decide(app, repo, digest, &mut Reevaluation::default(), true).await
    }

    /// [`Admission::evaluate`] for a manifest being pushed: the push logs
    /// its own tag (with where it pointed before), so no tag is logged here.
    pub async fn evaluate_pushed(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        self.decide(app, repo, digest, &mut Reevaluation::default(), false)
            .await
    }

    /// [`Admission::evaluate`], counting every decision made (an admitted
    /// index also decides the manifests it lists) in `tally`.
    async fn decide(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        tally: &mut Reevaluation,
        log_tags: bool,
    ) -> Result<bool, RegistryError> {
        let Some(record) = app.meta.manifest(repo, digest)? else {
            return Ok(false);
        };
        if record.state == AdmissionState::Evidence {
            return Ok(true);
        }
        // Why each piece of evidence did not count, for a denial's reasons.
        let mut notes = Vec::new();
        let (layers, sig_manifest) = tagged_layers(app, repo, digest, "sig").await?;
        let keyless = self.keyless_signers(digest, &layers, &mut notes);
        let keyless_layers: Vec<bool> = layers
            .iter()
            .map(|(l, _)| l["annotations"].get(crate::keyless::CERTIFICATE_ANNOTATION).is_some())
            .collect();
        let layers: Vec<SignatureLayer> = layers
            .into_iter()
            .map(|(layer, payload)| SignatureLayer {
                signature: layer["annotations"][SIGNATURE_ANNOTATION].as_str().map(str::to_owned),
                payload,
            })
            .collect();
        let (envelopes, att_manifest) = tagged_layers(app, repo, digest, "att").await?;
        let mut evidence: Vec<Digest> = sig_manifest.into_iter().chain(att_manifest).collect();
        let (signers, problems) = verify_layers(digest, &layers, &self.keys);
        notes.extend(
            problems
                .iter()
                .filter(|p| !matches!(p, crate::signature::SignatureProblem::Untrusted(i) if keyless_layers[*i]))
                .map(ToString::to_string),
        );
        let mut attested = BTreeSet::new();
        for (i, (layer, envelope)) in envelopes.iter().enumerate() {
            let annotations = &layer["annotations"];
            if annotations.get(crate::keyless::CERTIFICATE_ANNOTATION).is_some() {
                let Some(root) = &self.policy.trusted_root else {
                    notes.push(format!("attestation {i}: keyless, but the policy has no trusted_root"));
                    continue;
                };
                match crate::attestation::verify_keyless_envelope(root, digest, annotations, envelope) {
                    Ok((predicate_type, id)) => {
                        let matched: Vec<&String> = self
                            .identities
                            .iter()
                            .filter(|(_, m)| m.matches(&id))
                            .map(|(f, _)| f)
                            .collect();
                        if matched.is_empty() {
                            notes.push(format!(
                                "attestation {i}: keyless {predicate_type} by {} from {} is not a trusted identity",
                                id.subject, id.issuer
                            ));
                        }
                        attested.extend(matched.into_iter().map(|f| (predicate_type.clone(), f.clone())));
                    }
                    Err(e) => notes.push(format!("attestation {i}: {e}")),
                }
                continue;
            }
            match verify_envelope(digest, envelope, &self.keys) {
                Ok(a) => attested.extend(a.signers.into_iter().map(|s| (a.predicate_type.clone(), s))),
                Err(e) => notes.push(format!("attestation {i}: {e}")),
            }
        }
        let size = record.bytes.len() as u64 + descriptor_sizes(&record.bytes);
        let subject = Subject {
            repo: repo.to_string(),
            media_type: record.media_type.clone(),
            size,
            digest: digest.to_string(),
            manifest: serde_json::from_slice(&record.bytes).unwrap_or_default(),
        };
        let mut signers: BTreeSet<String> = signers.into_iter().chain(keyless).collect();
        for (manifest, verified) in self.sigstore_bundles(app, repo, digest, &mut notes).await? {
            let fingerprints: Vec<String> = match &verified.signer {
                crate::sigstore_bundle::Signer::Key(f) => vec![f.clone()],
                crate::sigstore_bundle::Signer::Identity(id) => self
                    .identities
                    .iter()
                    .filter(|(_, m)| m.matches(id))
                    .map(|(f, _)| f.clone())
                    .collect(),
            };
            if fingerprints.is_empty() {
                notes.push(format!("Sigstore bundle {manifest}: not signed by a trusted identity"));
                continue;
            }
            evidence.push(manifest);
            if verified.predicate_type == crate::sigstore_bundle::COSIGN_SIGN_PREDICATE {
                signers.extend(fingerprints);
            } else {
                attested.extend(fingerprints.into_iter().map(|f| (verified.predicate_type.clone(), f)));
            }
        }
        let mut decision = self.policy.evaluate_with(&subject, &signers, &attested);
        // A manifest an admitted index lists (one platform of a multi-arch
        // image) is covered by the index's decision: signers sign the index.
        if !decision.admit {
            if let Some(index) = admitted_index_listing(app, repo, digest)? {
                decision.admit = true;
                decision.reasons.push(format!("covered by the admitted index {index}"));
                evidence.push(index);
            }
        }
        // A denial says what was wrong with the evidence there was (the
        // first few problems), not only what was missing.
        if !decision.admit {
            decision.reasons.extend(notes.into_iter().take(MAX_NOTES));
        }
        let entry = Entry::Decision(DecisionEntry {
            repo: repo.to_string(),
            digest: digest.clone(),
            media_type: record.media_type.clone(),
            verdict: if decision.admit { Verdict::Admit } else { Verdict::Deny },
            reasons: decision
                .reasons
                .iter()
                .map(|r| r.chars().take(4000).collect())
                .collect(),
            evidence,
            signers: decision.signers.clone(),
            policy: self.policy_digest.clone(),
            policy_index: self.policy_index,
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        let bytes = entry.encode().map_err(|e| RegistryError::Internal(e.to_string()))?;
        // The decision is durable in the ledger before the state changes and
        // before the push that caused it is answered.
        let index = app
            .ledger
            .append(bytes)
            .await
            .map_err(|e| RegistryError::Internal(format!("ledger: {e}")))?;
        let state = if decision.admit {
            AdmissionState::Admitted
        } else {
            AdmissionState::Denied
        };
        let mut summary = serde_json::json!({
            "verdict": if decision.admit { "admit" } else { "deny" },
            "reasons": decision.reasons,
            "signers": decision.signers,
            "policy": self.policy_digest.as_str(),
            "ledger_index": index,
        });
        // On admit, vouch's countersignature, durable before the state is
        // recorded (so whoever sees the image admitted finds it).
        if let (true, Some(c)) = (decision.admit, &self.countersigner) {
            let attested = Attested {
                ledger_index: index,
                checkpoint_size: app.ledger.size(),
                policy: &self.policy_digest,
                policy_index: self.policy_index,
            };
            let sig = c.countersign(app, repo, digest, &attested).await?;
            summary["countersignature"] = sig.as_str().into();
        }
        // Commit point: the state is recorded last, with the decision queued
        // for its bundle to be attached as a referrer (`attach_pending`,
        // off the request path). A crash before it leaves the image pending
        // (never served), with the decision (and perhaps a countersignature)
        // already durable; pending images are decided again at the next
        // start, logging a new decision.
        app.meta
            .set_state(repo, digest, state, Some(&summary), Some((index, decision.admit)))?;
        tally.evaluated += 1;
        if decision.admit {
            tally.admitted += 1;
        } else {
            tally.denied += 1;
        }
        // Tags that pointed to it while it was quarantined now point to
        // admitted content: logged like any tag set onto admitted content.
        if decision.admit && record.state != AdmissionState::Admitted && log_tags {
            for t in app.meta.tags(repo)? {
                let tag = crate::registry::names::Tag::parse(&t)?;
                if signed_image(&t).is_none() && app.meta.tag(repo, &tag)?.as_ref() == Some(digest) {
                    self.log_tag(app, repo, &t, digest, None).await?;
                }
            }
        }
        // An admitted index covers the manifests it lists.
        if decision.admit && is_index(&record.media_type) {
            let children = validate(&record.media_type, &record.bytes)
                .map(|r| r.manifests)
                .unwrap_or_default();
            for child in children {
                let state = app.meta.manifest(repo, &child)?.map(|r| r.state);
                if matches!(state, Some(AdmissionState::Pending | AdmissionState::Denied)) {
                    Box::pin(self.decide(app, repo, &child, tally, true)).await?;
                }
            }
        }
        Ok(decision.admit)
    }
}

/// Which stored images a re-evaluation decides again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Pending ones only: left undecided by a crash (every start).
    Pending,
    /// Pending and denied ones (a new policy).
    Quarantined,
    /// Every image, admitted ones too (the operator's explicit re-evaluation).
    All,
}

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
            if let Some(record) = app.meta.manifest(&repo, &digest)? {
                attach_bundle(app, &repo, &digest, &record, index, admit).await?;
                n += 1;
            }
            app.meta.bundle_attached(&repo, &digest, index)?;
        }
        Ok(n)
    }
}

/// What a re-evaluation did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reevaluation {
    /// Images evaluated (each decision is a new ledger entry).
    pub evaluated: u64,
    /// Of those, admitted.
    pub admitted: u64,
    /// Of those, denied.
    pub denied: u64,
}

impl Admission {
    /// Re-evaluates stored images under the policy in force, logging each
    /// new decision, for the images in `scope`. Indexes go
    /// first, since an admitted index covers the manifests it lists; a
    /// manifest already decided during this run is not decided again.
    pub async fn reevaluate(&self, app: &AppState, scope: Scope) -> Result<Reevaluation, RegistryError> {
        // Countersignatures write blobs: no collection may run meanwhile.
        let _gc = app.gc_lock.read().await;
        let start = app.ledger.size();
        let mut todo: Vec<(RepoName, Digest, bool)> = app
            .meta
            .all_manifests()?
            .into_iter()
            .filter(|(_, _, r)| match r.state {
                AdmissionState::Pending => true,
                AdmissionState::Denied => scope != Scope::Pending,
                AdmissionState::Admitted => scope == Scope::All,
                AdmissionState::Evidence => false,
            })
            .map(|(repo, digest, r)| (repo, digest, is_index(&r.media_type)))
            .collect();
        todo.sort_by_key(|(_, _, index)| !index);
        let mut report = Reevaluation::default();
        for (repo, digest, _) in todo {
            let decided_now = app
                .meta
                .decision(&repo, &digest)?
                .and_then(|d| d["ledger_index"].as_u64())
                .is_some_and(|i| i >= start);
            if decided_now {
                continue;
            }
            self.decide(app, &repo, &digest, &mut report, true).await?;
        }
        Ok(report)
    }

    /// Logs that `tag` in `repo` now points to the admitted `digest`
    /// (`previous`: what it pointed to before, if anything).
    pub async fn log_tag(
        &self,
        app: &AppState,
        repo: &RepoName,
        tag: &str,
        digest: &Digest,
        previous: Option<Digest>,
    ) -> Result<(), RegistryError> {
        let entry = Entry::Tag(TagEntry {
            repo: repo.to_string(),
            tag: tag.to_owned(),
            digest: digest.clone(),
            previous,
        });
        append(app, entry).await
    }

    /// Logs the deletion of admitted content: a manifest (`tag` None) or a tag.
    pub async fn log_delete(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        tag: Option<&str>,
    ) -> Result<(), RegistryError> {
        let entry = Entry::Delete(DeleteEntry {
            repo: repo.to_string(),
            digest: digest.clone(),
            tag: tag.map(str::to_owned),
        });
        append(app, entry).await
    }
}

async fn append(app: &AppState, entry: Entry) -> Result<(), RegistryError> {
    let bytes = entry.encode().map_err(|e| RegistryError::Internal(e.to_string()))?;
    app.ledger
        .append(bytes)
        .await
        .map_err(|e| RegistryError::Internal(format!("ledger: {e}")))?;
    Ok(())
}

/// The layers of the image's `<alg>-<hex>.<suffix>` manifest (`sig`:
/// signatures, `att`: attestations) with their blobs (each at most
/// [`MAX_PAYLOAD`]), and that manifest's digest.
async fn tagged_layers(
    app: &AppState,
    repo: &RepoName,
    image: &Digest,
    suffix: &str,
) -> Result<(Vec<(serde_json::Value, Vec<u8>)>, Option<Digest>), RegistryError> {
    let tag = crate::registry::names::Tag::parse(&format!("{}-{}.{suffix}", image.algorithm(), image.encoded()))?;
    let Some(manifest) = app.meta.tag(repo, &tag)? else {
        return Ok((Vec::new(), None));
    };
    let Some(record) = app.meta.manifest(repo, &manifest)? else {
        return Ok((Vec::new(), None));
    };
    let doc: serde_json::Value = serde_json::from_slice(&record.bytes).unwrap_or_default();
    let mut layers = Vec::new();
    for layer in doc["layers"].as_array().into_iter().flatten() {
        let Some(d) = layer["digest"].as_str().and_then(|d| parse_digest(d).ok()) else {
            continue;
        };
        if !app.meta.blob_linked(repo, &d)? || app.blobs.blob_size(&d).await?.is_none_or(|s| s > MAX_PAYLOAD) {
            continue;
        }
        let blob = tokio::fs::read(app.blobs.blob_path(&d)).await?;
        layers.push((layer.clone(), blob));
    }
    Ok((layers, Some(manifest)))
}

/// The artifact type of an attached admission bundle (`spec/bundle.md`).
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.vouch.admission-bundle.v1+json";

/// The OCI empty descriptor's content, the config of the bundle artifact.
const EMPTY_JSON: &[u8] = b"{}";

/// Attaches the admission bundle of the decision at ledger `index` to the
/// image as an OCI 1.1 referrer artifact (artifactType
/// [`BUNDLE_ARTIFACT_TYPE`], the bundle as its one layer), so referrers
/// listings, `oras discover`, and mirrors that copy referrers carry it.
/// Returns the artifact manifest's digest.
async fn attach_bundle(
    app: &AppState,
    repo: &RepoName,
    image: &Digest,
    record: &ManifestRecord,
    index: u64,
    admit: bool,
) -> Result<Digest, RegistryError> {
    let bundle = crate::registry::ledger_api::bundle(app, repo, image, index)?;
    let (bundle_len, bundle_digest) = (bundle.len() as u64, sha256_of(&bundle));
    let (stored, empty) = tokio::try_join!(app.blobs.put_bytes(bundle), app.blobs.put_bytes(EMPTY_JSON.to_vec()))?;
    debug_assert_eq!(stored, bundle_digest);
    app.meta.link_blobs_unsynced(
        repo,
        &[
            (bundle_digest.clone(), bundle_len),
            (empty.clone(), EMPTY_JSON.len() as u64),
        ],
    )?;
    let annotations = serde_json::json!({
        "dev.vouch.verdict": if admit { "admit" } else { "deny" },
        "dev.vouch.ledger-index": index.to_string(),
    });
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_ARTIFACT_TYPE,
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.as_str(), "size": EMPTY_JSON.len() },
        "layers": [{ "mediaType": BUNDLE_ARTIFACT_TYPE, "digest": bundle_digest.as_str(), "size": bundle_len }],
        "subject": { "mediaType": record.media_type, "digest": image.as_str(), "size": record.bytes.len() },
        "annotations": annotations,
    }))
    .expect("serialize a JSON value");
    let digest = sha256_of(&manifest);
    let descriptor = serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest.as_str(),
        "size": manifest.len(),
        "artifactType": BUNDLE_ARTIFACT_TYPE,
        "annotations": annotations,
    });
    let new = (app.meta.manifest(repo, &digest)?.is_none()).then_some((
        OCI_MANIFEST,
        &manifest[..],
        AdmissionState::Evidence,
    ));
    app.meta.put_manifest(
        repo,
        &digest,
        new,
        &[empty, bundle_digest],
        None,
        Some((image, &descriptor)),
    )?;
    Ok(digest)
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// An admitted image index in `repo` that lists the manifest `digest`.
fn admitted_index_listing(app: &AppState, repo: &RepoName, digest: &Digest) -> Result<Option<Digest>, RegistryError> {
    let admitted_index = |r: &ManifestRecord| r.state == AdmissionState::Admitted && is_index(&r.media_type);
    Ok(app.meta.find_referencing(repo, digest, admitted_index)?.1)
}

/// The image a signature or attestation tag names: `sha256-<hex>.sig` or
/// `sha256-<hex>.att` → `sha256:<hex>`.
pub fn signed_image(tag: &str) -> Option<Digest> {
    let (alg, rest) = tag.split_once('-')?;
    let hex = rest.strip_suffix(".sig").or_else(|| rest.strip_suffix(".att"))?;
    parse_digest(&format!("{alg}:{hex}")).ok()
}

/// The sizes of the blobs and manifests a manifest references.
fn descriptor_sizes(bytes: &[u8]) -> u64 {
    let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let sizes = |v: &serde_json::Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["size"].as_u64())
            .sum::<u64>()
    };
    doc["config"]["size"].as_u64().unwrap_or(0) + sizes(&doc["layers"]) + sizes(&doc["manifests"])
}
