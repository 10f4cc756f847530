//! Sigstore bundles (v0.1 to v0.3) attached to images as OCI 1.1 referrers,
//! as cosign v3 writes them by default (cosign's BUNDLE_SPEC: an artifact
//! with `artifactType application/vnd.dev.sigstore.bundle.v0.3+json`, the
//! bundle JSON as its one layer, the image as its `subject`). See
//! spec/signatures.md, "Sigstore bundles".
//!
//! vouch reads bundles whose content is a DSSE envelope of an in-toto
//! Statement naming the image: with predicate type
//! [`COSIGN_SIGN_PREDICATE`] it is a signature of the image, with any other
//! an attestation of that type. The signer is a trusted key (verification
//! material `publicKey`) or a keyless identity (`certificate` or
//! `x509CertificateChain`, with a transparency log entry whose signed entry
//! timestamp, `inclusionPromise`, is checked offline against the trusted
//! root). Message-signature bundles name only a digest of the signed bytes,
//! which for an image is not the image's digest; they are not read.

use crate::attestation::{pae, read_statement_with_predicate, IN_TOTO};
use crate::keyless::{
    entry_matches, verify_inclusion_proof, verify_leaf, verify_set, Identity, KeylessProblem, LogEntry, TrustedRoot,
};
use crate::signature::PublicKey;
use base64::Engine as _;
use vouch_ledger::entry::Digest;

/// The artifact type (and layer media type) of a Sigstore bundle referrer.
pub const ARTIFACT_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The predicate type of cosign v3's image signature statements.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Who signed a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A trusted key, by fingerprint.
    Key(String),
    /// A keyless identity.
    Identity(Identity),
}

/// A verified bundle about the image.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its Statement's predicate type.
    pub predicate_type: String,
    /// Its signer.
    pub signer: Signer,
    /// The predicate's JSON, as signed.
    pub predicate: Box<serde_json::value::RawValue>,
}

/// Why a bundle does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleProblem {
    /// Not a bundle vouch reads.
    #[error("unsupported or malformed Sigstore bundle: {0}")]
    Unsupported(String),
    /// Its Statement is about other subjects.
    #[error("the bundle's statement does not name this image")]
    OtherSubject,
    /// No trusted key verifies it.
    #[error("not signed by a trusted key")]
    Untrusted,
    /// Its keyless material does not verify.
    #[error(transparent)]
    Keyless(#[from] KeylessProblem),
}

/// Verifies a bundle about `image`: by one of `keys`, or keyless against `root`.
pub fn verify(
    bundle: &[u8],
    image: &Digest,
    keys: &[PublicKey],
    root: Option<&TrustedRoot>,
) -> Result<Verified, BundleProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let unsupported = |what: &str| BundleProblem::Unsupported(what.to_owned());
    let doc: serde_json::Value = serde_json::from_slice(bundle).map_err(|_| unsupported("not JSON"))?;
    if !doc["mediaType"]
        .as_str()
        .is_some_and(|m| m.starts_with(ARTIFACT_TYPE_PREFIX))
    {
        return Err(unsupported("mediaType is not a Sigstore bundle's"));
    }
    let env = &doc["dsseEnvelope"];
    if env.is_null() {
        return Err(unsupported("only DSSE envelope bundles are read"));
    }
    if env["payloadType"].as_str() != Some(IN_TOTO) {
        return Err(unsupported("the envelope is not an in-toto statement"));
    }
    let payload = env["payload"]
        .as_str()
        .and_then(|p| b64.decode(p).ok())
        .ok_or_else(|| unsupported("payload is not base64"))?;
    let signature = env["signatures"][0]["sig"]
        .as_str()
        .and_then(|s| b64.decode(s).ok())
        .ok_or_else(|| unsupported("no base64 signature"))?;
    let (predicate_type, names_image, predicate) = read_statement_with_predicate(&payload, image)
        .ok_or_else(|| unsupported("the payload is not an in-toto statement"))?;
    if !names_image {
        return Err(BundleProblem::OtherSubject);
    }
    let message = pae(IN_TOTO, &payload);

    let material = &doc["verificationMaterial"];
    let leaf = material["certificate"]["rawBytes"]
        .as_str()
        .or_else(|| material["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str());
    let signer = match leaf {
        None => {
            let key = keys
                .iter()
                .find(|k| k.verifies(&message, &signature))
                .ok_or(BundleProblem::Untrusted)?;
            Signer::Key(key.fingerprint())
        }
        Some(leaf) => {
            let root = root.ok_or_else(|| unsupported("keyless bundle, but the policy has no trusted_root"))?;
            let leaf = b64.decode(leaf).map_err(|_| unsupported("certificate is not base64"))?;
            let tlog = &material["tlogEntries"][0];
            let times = if crate::rekor_v2::is_v2(tlog) {
                // Rekor v2: an inclusion proof and RFC 3161 timestamps.
                let stamps = &material["timestampVerificationData"];
                crate::rekor_v2::verify_entry(root, tlog, &payload, &signature, &leaf, stamps)?
            } else {
                vec![rekor_v1(root, tlog, &payload, &signature, &leaf)?]
            };
            // The certificate must have been valid at every verified time.
            let (key, identity) = verify_leaf(root, &leaf, times[0])?;
            for t in &times[1..] {
                verify_leaf(root, &leaf, *t)?;
            }
            if !PublicKey::EcdsaP256(key).verifies(&message, &signature) {
                return Err(KeylessProblem::BadSignature.into());
            }
            Signer::Identity(identity)
        }
    };
    Ok(Verified {
        predicate_type,
        signer,
        predicate,
    })
}

/// A Rekor v1 entry: its signed entry timestamp (required: it vouches for
/// the integrated time the short-lived certificate is checked at), its
/// inclusion proof if present, and that it records this payload and
/// signature. Returns the integrated time.
fn rekor_v1(
    root: &TrustedRoot,
    tlog: &serde_json::Value,
    payload: &[u8],
    signature: &[u8],
    leaf: &[u8],
) -> Result<i64, BundleProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let unsupported = |what: &str| BundleProblem::Unsupported(what.to_owned());
    let entry = LogEntry {
        body: tlog["canonicalizedBody"]
            .as_str()
            .ok_or_else(|| unsupported("no transparency log entry"))?,
        integrated_time: number(&tlog["integratedTime"]).ok_or_else(|| unsupported("no integratedTime"))?,
        log_id: tlog["logId"]["keyId"]
            .as_str()
            .and_then(|k| b64.decode(k).ok())
            .map(hex::encode)
            .ok_or_else(|| unsupported("no logId"))?,
        log_index: number(&tlog["logIndex"]).ok_or_else(|| unsupported("no logIndex"))?,
    };
    let set = tlog["inclusionPromise"]["signedEntryTimestamp"]
        .as_str()
        .ok_or(KeylessProblem::NotLogged)?;
    let set = b64.decode(set).map_err(|_| KeylessProblem::BadTimestamp)?;
    verify_set(root, &entry, &set)?;
    let proof = &tlog["inclusionProof"];
    if !proof.is_null() {
        verify_inclusion_proof(root, entry.body, proof)?;
    }
    entry_matches(entry.body, payload, signature, leaf)?;
    Ok(entry.integrated_time)
}

/// Bundles write 64-bit integers as JSON strings (protobuf JSON); accept
/// both forms.
fn number(v: &serde_json::Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Arbitrary bytes and arbitrary bundle-shaped documents give an
        /// answer, never a panic.
        #[test]
        fn never_panics(bytes: Vec<u8>, payload: Vec<u8>, sig: String, cert: String, body: String) {
            let image = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
            let _ = verify(&bytes, &image, &[], None);
            let b64 = base64::engine::general_purpose::STANDARD;
            let doc = serde_json::json!({
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {
                    "certificate": { "rawBytes": b64.encode(cert.as_bytes()) },
                    "tlogEntries": [{ "canonicalizedBody": body, "integratedTime": "1", "logIndex": "2",
                                      "logId": { "keyId": "AA==" }, "inclusionPromise": { "signedEntryTimestamp": sig } }],
                },
                "dsseEnvelope": { "payloadType": IN_TOTO, "payload": b64.encode(&payload), "signatures": [{ "sig": sig }] },
            });
            proptest::prop_assert!(verify(&serde_json::to_vec(&doc).unwrap(), &image, &[], None).is_err());
        }
    }
}
