//! Evidence about an image, gathered in one pass over storage and verified
//! as it is read: every manifest recognised as evidence about it
//! (`evidence.rs`; its tag plays no part), each blob read once, within the
//! bounds of one evaluation ([`MAX_EVIDENCE_BYTES`] read in all, at most
//! [`MAX_EVIDENCE_MANIFESTS`] manifests) and of the registry's evidence
//! memory, shared by concurrent evaluations. What did not count is noted,
//! in a stable order, for a denial's reasons.

use super::evidence::{payload_image, MAX_EVIDENCE_BYTES, MAX_SIGNATURE_PAYLOAD};
use super::Admission;
use crate::policy::attested::{Body, Predicate};
use crate::policy::identities_matching;
use crate::policy::SignedIdentity;
use crate::registry::error::RegistryError;
use crate::registry::meta::{EvidenceKind, ManifestRecord};
use crate::registry::names::RepoName;
use crate::registry::AppState;
use crate::signature::{SignatureLayer, SignatureProblem, SIGNATURE_ANNOTATION};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use vouch_ledger::entry::Digest;

/// Most evidence manifests read for one image.
pub const MAX_EVIDENCE_MANIFESTS: usize = 256;

/// What the evidence about an image proves.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Fingerprints of the keys and identities whose signatures verified.
    pub signers: BTreeSet<String>,
    /// Verified attestations: (predicate type, signer fingerprint).
    pub attested: BTreeSet<(String, String)>,
    /// Why each other piece of evidence did not count, by a sort key.
    pub notes: BTreeMap<(u8, usize, String), String>,
    /// The evidence manifests that counted.
    pub evidence: BTreeSet<Digest>,
    /// Not all the evidence was read (a bound was reached): a denial on
    /// these findings would rest on evidence not looked at.
    pub incomplete: bool,
    /// The predicates of verified attestations, kept only when
    /// `keep_predicates` (a rule reads them).
    pub predicates: Vec<Predicate>,
    /// Whether to keep them.
    pub keep_predicates: bool,
}

impl Findings {
    pub(super) fn note(&mut self, order: u8, position: usize, text: String) {
        self.notes.insert((order, position, text.clone()), text);
    }

    /// Keeps the predicate of a verified Statement, once per signer, if
    /// predicates are kept.
    fn keep(
        &mut self,
        predicate_type: &str,
        signers: &[String],
        predicate: Box<serde_json::value::RawValue>,
        signed_at: Option<i64>,
    ) {
        if self.keep_predicates {
            self.predicates.extend(Predicate::for_signers(
                predicate_type,
                signers,
                &Body::new(predicate),
                signed_at,
            ));
        }
    }
}

/// The digest of a one-layer evidence manifest's layer (a bundle's, a
/// Notation envelope's).
pub(super) fn first_layer(layers: &[serde_json::Value]) -> Option<Digest> {
    layers.first()?["digest"].as_str().and_then(Digest::parse)
}

/// Where a signature must have been made for, per the rule's `signed_identity`.
#[derive(Debug, Clone)]
pub struct IdentityCheck<'a> {
    /// The rule's setting.
    pub mode: SignedIdentity,
    /// The names vouch is known by (`--registry-name`).
    pub registries: &'a [String],
    /// The repository.
    pub repo: &'a RepoName,
}

impl IdentityCheck<'_> {
    /// `None` if the payload's `critical.identity.docker-reference` is
    /// acceptable, else what it names.
    fn mismatch(&self, payload: &[u8]) -> Option<String> {
        if self.mode == SignedIdentity::Any {
            return None;
        }
        let doc: serde_json::Value = serde_json::from_slice(payload).ok()?;
        let named = doc["critical"]["identity"]["docker-reference"].as_str().unwrap_or("");
        let reference = strip_tag(named);
        let ok = match self.mode {
            SignedIdentity::ThisRegistry => self
                .registries
                .iter()
                .any(|r| reference == format!("{r}/{}", self.repo)),
            SignedIdentity::AnyRegistry => reference.split_once('/').is_some_and(|(host, path)| {
                (host.contains(['.', ':']) || host == "localhost") && path == self.repo.as_str()
            }),
            SignedIdentity::Any => true,
        };
        (!ok).then(|| named.chars().take(300).collect())
    }

    fn expected(&self) -> String {
        match self.mode {
            SignedIdentity::AnyRegistry => format!("<registry>/{}", self.repo),
            _ => self
                .registries
                .iter()
                .map(|r| format!("{r}/{}", self.repo))
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }
}

/// A docker reference without its `:tag` or `@digest`.
fn strip_tag(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or("");
    match no_digest.rsplit_once(':') {
        Some((head, tag)) if !tag.contains('/') => head,
        _ => no_digest,
    }
}

/// Reads blobs for one evaluation: each at most once, within the
/// evaluation's budget and the registry's evidence memory.
pub(super) struct Reader<'a> {
    pub(super) app: &'a AppState,
    admission: &'a Admission,
    repo: &'a RepoName,
    read: u64,
    pub(super) seen: HashSet<(Digest, String)>,
}

/// A blob [`Reader::read_all`] found.
pub(super) enum Found {
    /// Its bytes.
    Bytes(Vec<u8>),
    /// Linked, within the bounds, and its content at hand elsewhere.
    AtHand,
}

impl<'a> Reader<'a> {
    /// A reader for one evaluation (or one look ahead) in `repo`.
    pub(super) fn new(app: &'a AppState, admission: &'a Admission, repo: &'a RepoName) -> Reader<'a> {
        Reader {
            app,
            admission,
            repo,
            read: 0,
            seen: HashSet::new(),
        }
    }

    /// The blob's bytes (at most `max`), with the permit that holds its
    /// room in memory; `Ok(None)` if missing, too large, or over budget
    /// (noted).
    pub(super) async fn read(
        &mut self,
        digest: &Digest,
        max: u64,
        f: &mut Findings,
    ) -> Result<Option<(Vec<u8>, tokio::sync::SemaphorePermit<'a>)>, RegistryError> {
        if !self.app.meta.blob_linked(self.repo, digest)? {
            return Ok(None);
        }
        let Some(size) = self.app.blob_size(digest).await?.filter(|s| *s <= max) else {
            return Ok(None);
        };
        if self.read + size > MAX_EVIDENCE_BYTES {
            f.note(9, 0, format!("evidence beyond {MAX_EVIDENCE_BYTES} bytes was not read"));
            f.incomplete = true;
            return Ok(None);
        }
        self.read += size;
        let permit = self
            .admission
            .evidence_memory
            .acquire_many(u32::try_from(size.max(1)).unwrap_or(u32::MAX))
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let bytes = self.app.read_blob(digest).await?;
        Ok(Some((bytes, permit)))
    }

    /// [`Self::read`] for several blobs at once, with one permit for all
    /// (taken in one step: an evaluation never holds room while it waits
    /// for more, so concurrent evaluations cannot starve each other). Each
    /// is `None` if missing, too large or over budget (noted). A blob
    /// `at_hand` (its content known already) is checked and counted
    /// against the bounds all the same, but not read.
    pub(super) async fn read_all(
        &mut self,
        wanted: &[(Digest, u64)],
        f: &mut Findings,
        at_hand: impl Fn(&Digest) -> bool,
    ) -> Result<(Vec<Option<Found>>, Option<tokio::sync::SemaphorePermit<'a>>), RegistryError> {
        let mut sizes = Vec::with_capacity(wanted.len());
        for (digest, max) in wanted {
            let size = match self.app.meta.blob_linked(self.repo, digest)? {
                true => self.app.blob_size(digest).await?.filter(|s| s <= max),
                false => None,
            };
            let size = size.filter(|s| {
                let within = self.read + s <= MAX_EVIDENCE_BYTES;
                if within {
                    self.read += s;
                } else {
                    f.note(9, 0, format!("evidence beyond {MAX_EVIDENCE_BYTES} bytes was not read"));
                    f.incomplete = true;
                }
                within
            });
            sizes.push(size);
        }
        let total: u64 = wanted
            .iter()
            .zip(&sizes)
            .filter(|((d, _), _)| !at_hand(d))
            .filter_map(|(_, s)| *s)
            .map(|s| s.max(1))
            .sum();
        let permit = match total {
            0 => None,
            n => Some(
                self.admission
                    .evidence_memory
                    .acquire_many(u32::try_from(n).unwrap_or(u32::MAX))
                    .await
                    .map_err(|e| RegistryError::Internal(e.to_string()))?,
            ),
        };
        let mut out = Vec::with_capacity(wanted.len());
        for ((digest, _), size) in wanted.iter().zip(&sizes) {
            out.push(match size {
                Some(_) if at_hand(digest) => Some(Found::AtHand),
                Some(_) => Some(Found::Bytes(self.app.read_blob(digest).await?)),
                None => None,
            });
        }
        Ok((out, permit))
    }
}

impl Admission {
    /// Gathers and verifies the evidence about `image` in `repo`: the
    /// evidence manifests stored there, and `extra` (one arriving now, not
    /// yet stored). Storage errors are the only failures.
    pub(super) async fn findings(
        &self,
        app: &AppState,
        repo: &RepoName,
        image: &Digest,
        identity: &IdentityCheck<'_>,
        extra: Option<(&Digest, &ManifestRecord)>,
        keep_predicates: bool,
    ) -> Result<Findings, RegistryError> {
        let mut f = Findings {
            keep_predicates,
            ..Findings::default()
        };
        let mut manifests = app.meta.evidence_for(repo, image, MAX_EVIDENCE_MANIFESTS + 1)?;
        if manifests.len() > MAX_EVIDENCE_MANIFESTS {
            manifests.truncate(MAX_EVIDENCE_MANIFESTS);
            f.note(
                9,
                1,
                format!("only {MAX_EVIDENCE_MANIFESTS} evidence manifests were read"),
            );
            f.incomplete = true;
        }
        if let Some((d, _)) = extra {
            manifests.retain(|m| m != d);
        }
        let mut reader = Reader::new(app, self, repo);
        let mut records = Vec::new();
        if let Some((d, r)) = extra {
            records.push((d.clone(), r.clone()));
        }
        for d in manifests {
            if let Some(r) = app.meta.manifest(repo, &d)? {
                records.push((d, r));
            }
        }
        // Signatures first (small, and what most rules need), then bundles,
        // then attestations (which can be megabytes): a flood of large
        // evidence cannot keep the signatures from being read.
        let order = |k: EvidenceKind| match k {
            EvidenceKind::CosignSignature => 0,
            EvidenceKind::SigstoreBundle | EvidenceKind::NotationSignature => 1,
            EvidenceKind::CosignAttestation => 2,
            EvidenceKind::AdmissionBundle => 3,
        };
        records.retain(|(_, r)| r.evidence.is_some());
        records.sort_by_key(|(d, r)| (r.evidence.as_ref().map_or(9, |e| order(e.kind)), d.clone()));
        for (digest, record) in records {
            let Some(kind) = record.evidence.as_ref().map(|e| e.kind) else {
                continue;
            };
            let doc: serde_json::Value = serde_json::from_slice(&record.bytes).unwrap_or_default();
            let layers = doc["layers"].as_array().cloned().unwrap_or_default();
            match kind {
                EvidenceKind::CosignSignature => {
                    self.signatures(&mut reader, image, identity, &digest, &layers, &mut f)
                        .await?
                }
                EvidenceKind::CosignAttestation => {
                    self.attestations(&mut reader, image, &digest, &layers, &mut f).await?
                }
                EvidenceKind::SigstoreBundle => self.bundle(&mut reader, image, &digest, &layers, &mut f).await?,
                EvidenceKind::NotationSignature => {
                    self.notation(&mut reader, (repo, image), &digest, &layers, &mut f)
                        .await?
                }
                EvidenceKind::AdmissionBundle => {}
            }
        }
        Ok(f)
    }

    async fn signatures(
        &self,
        reader: &mut Reader<'_>,
        image: &Digest,
        identity: &IdentityCheck<'_>,
        manifest: &Digest,
        layers: &[serde_json::Value],
        f: &mut Findings,
    ) -> Result<(), RegistryError> {
        for (i, layer) in layers.iter().enumerate() {
            let Some(d) = layer["digest"].as_str().and_then(Digest::parse) else {
                continue;
            };
            let annotations = &layer["annotations"];
            let signature = annotations[SIGNATURE_ANNOTATION].as_str().map(str::to_owned);
            // The same payload with the same annotations (signature and any
            // certificate material) is verified once; a copy that differs
            // in them is verified in its own right.
            if !reader.seen.insert((d.clone(), annotations.to_string())) {
                continue;
            }
            let Some((payload, _room)) = reader.read(&d, MAX_SIGNATURE_PAYLOAD, f).await? else {
                continue;
            };
            // vouch's own countersignature is not a publisher's signature,
            // and not a problem with the publisher's evidence either.
            if self.is_own_layer(image, signature.as_deref(), &payload) {
                continue;
            }
            let keyless = annotations.get(crate::keyless::CERTIFICATE_ANNOTATION).is_some();
            let verified: Vec<String> = if keyless {
                let Some(root) = &self.policy.trusted_root else {
                    f.note(
                        0,
                        i,
                        format!("layer {i}: keyless signature, but the policy has no trusted_root"),
                    );
                    continue;
                };
                match crate::keyless::verify(root, image, annotations, &payload) {
                    Ok(id) => {
                        let matched = identities_matching(&self.identities, &id);
                        if matched.is_empty() {
                            f.note(
                                0,
                                i,
                                format!(
                                    "layer {i}: keyless signature by {} from {} is not a trusted identity",
                                    id.subject, id.issuer
                                ),
                            );
                        }
                        matched
                    }
                    Err(e) => {
                        f.note(0, i, format!("layer {i}: {e}"));
                        continue;
                    }
                }
            } else {
                let one = [SignatureLayer {
                    signature,
                    payload: payload.clone(),
                }];
                let (signers, problems) = crate::signature::verify_layers(image, &one, &self.keys);
                for p in problems {
                    let text = match p {
                        SignatureProblem::NoSignature(_) => format!("layer {i} has no base64 signature annotation"),
                        SignatureProblem::BadPayload(_) => {
                            format!("layer {i}: payload is not a cosign simple signing payload")
                        }
                        SignatureProblem::OtherImage { signed, .. } => {
                            format!("layer {i}: payload signs {signed}, not this image")
                        }
                        SignatureProblem::Untrusted(_) => format!("layer {i}: not signed by any trusted key"),
                    };
                    f.note(0, i, text);
                }
                signers
            };
            if verified.is_empty() {
                continue;
            }
            if let Some(named) = identity.mismatch(&payload) {
                f.note(
                    0,
                    i,
                    format!(
                        "layer {i}: signed for {named}, not for {} (the rule's signed_identity)",
                        identity.expected()
                    ),
                );
                continue;
            }
            f.signers.extend(verified);
            f.evidence.insert(manifest.clone());
        }
        Ok(())
    }

    async fn bundle(
        &self,
        reader: &mut Reader<'_>,
        image: &Digest,
        manifest: &Digest,
        layers: &[serde_json::Value],
        f: &mut Findings,
    ) -> Result<(), RegistryError> {
        let Some(d) = first_layer(layers) else {
            return Ok(());
        };
        if !reader.seen.insert((d.clone(), String::new())) {
            return Ok(());
        }
        let Some((bytes, _room)) = reader.read(&d, super::evidence::MAX_BUNDLE, f).await? else {
            return Ok(());
        };
        let verified =
            match crate::sigstore_bundle::verify(&bytes, image, &self.keys, self.policy.trusted_root.as_ref()) {
                Ok(v) => v,
                Err(e) => {
                    f.note(2, 0, format!("Sigstore bundle {manifest}: {e}"));
                    return Ok(());
                }
            };
        let fingerprints: Vec<String> = match &verified.signer {
            crate::sigstore_bundle::Signer::Key(fp) => vec![fp.clone()],
            crate::sigstore_bundle::Signer::Identity(id) => identities_matching(&self.identities, id),
        };
        if fingerprints.is_empty() {
            f.note(
                2,
                0,
                format!("Sigstore bundle {manifest}: not signed by a trusted identity"),
            );
            return Ok(());
        }
        f.evidence.insert(manifest.clone());
        if verified.predicate_type == crate::sigstore_bundle::COSIGN_SIGN_PREDICATE {
            f.signers.extend(fingerprints);
        } else {
            let signed_at = match &verified.signer {
                crate::sigstore_bundle::Signer::Identity(id) => Some(id.logged_at),
                crate::sigstore_bundle::Signer::Key(_) => None,
            };
            f.keep(&verified.predicate_type, &fingerprints, verified.predicate, signed_at);
            f.attested
                .extend(fingerprints.into_iter().map(|fp| (verified.predicate_type.clone(), fp)));
        }
        Ok(())
    }

    /// Whether a signature layer is vouch's own countersignature of `image`.
    pub(super) fn is_own_layer(&self, image: &Digest, signature: Option<&str>, payload: &[u8]) -> bool {
        let Some(c) = &self.countersigner else { return false };
        payload_image(payload).as_ref() == Some(image) && c.signed(image, signature, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_lose_their_tag_and_digest_but_not_their_port() {
        assert_eq!(strip_tag("127.0.0.1:5000/team/app"), "127.0.0.1:5000/team/app");
        assert_eq!(strip_tag("127.0.0.1:5000/team/app:v1"), "127.0.0.1:5000/team/app");
        assert_eq!(strip_tag("reg.io/team/app@sha256:ab"), "reg.io/team/app");
        assert_eq!(strip_tag("reg.io/team/app:v1@sha256:ab"), "reg.io/team/app");
    }

    #[test]
    fn docker_references_are_matched_per_the_rules_setting() {
        let repo = RepoName::parse("team/app").unwrap();
        let names = ["127.0.0.1:5000".to_owned(), "registry.example".to_owned()];
        let payload = |r: &str| crate::signature::payload(r, &crate::registry::digest::sha256_of(b"x"));
        let check = |mode| IdentityCheck {
            mode,
            registries: &names,
            repo: &repo,
        };
        let this = check(SignedIdentity::ThisRegistry);
        assert_eq!(this.mismatch(&payload("127.0.0.1:5000/team/app")), None);
        assert_eq!(this.mismatch(&payload("registry.example/team/app:v1")), None);
        assert!(this.mismatch(&payload("127.0.0.1:5000/dev/app")).is_some());
        assert!(this.mismatch(&payload("elsewhere.io/team/app")).is_some());
        let any_registry = check(SignedIdentity::AnyRegistry);
        assert_eq!(any_registry.mismatch(&payload("elsewhere.io/team/app")), None);
        assert!(any_registry.mismatch(&payload("elsewhere.io/dev/app")).is_some());
        assert_eq!(check(SignedIdentity::Any).mismatch(&payload("x/y")), None);
    }
}
