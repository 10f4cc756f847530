//! Notation signatures among the evidence about an image: each envelope
//! verified against every Notation trust policy the rules name
//! (`crate::notation`). A policy that accepts it counts as a signer of the
//! image, as a key or keyless identity does. The docker reference a cosign
//! signature binds (`signed_identity`) has no counterpart: a Notation
//! payload names the digest, and the rule's `repositories` plays the part
//! of Notation's `registryScopes`.

use super::gather::{first_layer, Findings, Reader};
use super::Admission;
use crate::registry::error::RegistryError;
use crate::registry::names::RepoName;
use vouch_ledger::entry::Digest;

impl Admission {
    pub(super) async fn notation(
        &self,
        reader: &mut Reader<'_>,
        (repo, image): (&RepoName, &Digest),
        manifest: &Digest,
        layers: &[serde_json::Value],
        f: &mut Findings,
    ) -> Result<(), RegistryError> {
        let Some(d) = first_layer(layers) else {
            return Ok(());
        };
        if self.notation.is_empty() || !reader.seen.insert((d.clone(), String::new())) {
            return Ok(());
        }
        // What the payload must name: the image as stored, not the
        // signature manifest's claims about it.
        let Some(subject) = reader.app.meta.manifest(repo, image)? else {
            return Ok(());
        };
        let target = crate::notation::Target {
            media_type: subject.media_type.clone(),
            digest: image.as_str().to_owned(),
            size: subject.bytes.len() as u64,
        };
        let Some((envelope, _room)) = reader.read(&d, crate::notation::MAX_ENVELOPE, f).await? else {
            return Ok(());
        };
        let parsed = crate::notation::parse(&envelope);
        // The layer's media type must name the envelope's format.
        let declared = layers[0]["mediaType"].as_str().unwrap_or("");
        if let Ok(env) = &parsed {
            if env.format.media_type() != declared {
                f.note(
                    3,
                    0,
                    format!(
                        "Notation signature {manifest}: its layer says {declared}, but the envelope is {}",
                        env.format.media_type()
                    ),
                );
                return Ok(());
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs() as i64);
        let verdicts = match parsed {
            // Revocation may fetch (2 s per OCSP responder, 5 s per CRL at
            // most): off the async threads.
            Ok(env) if env.names_revocation_sources() => {
                let (trusts, revocation) = (self.notation.clone(), self.revocation.clone());
                tokio::task::spawn_blocking(move || verify_each(&env, &target, &trusts, &*revocation, now))
                    .await
                    .map_err(|e| RegistryError::Internal(format!("Notation verification stopped: {e}")))?
            }
            Ok(env) => verify_each(&env, &target, &self.notation, &*self.revocation, now),
            Err(e) => self.notation.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut counted = false;
        for (position, ((fingerprint, trust), verified)) in self.notation.iter().zip(verdicts).enumerate() {
            match verified {
                Ok(v) => {
                    f.signers.insert(fingerprint.clone());
                    counted = true;
                    for logged in v.logged {
                        f.note(
                            3,
                            position,
                            format!(
                                "Notation signature {manifest} counts for {} ({}), though {logged}",
                                trust.name, v.subject
                            ),
                        );
                    }
                }
                Err(e) => f.note(
                    3,
                    position,
                    format!("Notation signature {manifest} under {}: {e}", trust.name),
                ),
            }
        }
        if counted {
            f.evidence.insert(manifest.clone());
        }
        Ok(())
    }
}

/// The envelope verified under each trust policy, in order.
fn verify_each(
    env: &crate::notation::Envelope,
    target: &crate::notation::Target,
    trusts: &[(String, std::sync::Arc<crate::notation::TrustPolicy>)],
    revocation: &dyn crate::notation::Revocation,
    now: i64,
) -> Vec<Result<crate::notation::Verified, crate::notation::NotationProblem>> {
    trusts
        .iter()
        .map(|(_, trust)| crate::notation::verify_parsed(env, target, trust, now, revocation))
        .collect()
}
