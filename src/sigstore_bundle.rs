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
//! root, or a Rekor v2 entry with its inclusion proof and RFC 3161
//! timestamps). A message-signature bundle (`messageSignature`, logged as
//! `hashedrekord`) is read when the message is the image manifest itself:
//! its `messageDigest` is the image's SHA-256; it is then a signature of
//! the image. One over other bytes names another artifact.

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

/// What a bundle signs.
enum Content {
    /// A DSSE envelope of an in-toto Statement naming the image.
    Dsse {
        payload: Vec<u8>,
        predicate_type: String,
        predicate: Box<serde_json::value::RawValue>,
    },
    /// A message signature over the image manifest's own bytes: its
    /// `messageDigest` is the image's SHA-256.
    Message([u8; 32]),
}

impl Content {
    /// What the signature is over, for a key to verify.
    fn verified_by(&self, key: &PublicKey, signature: &[u8]) -> bool {
        match self {
            Content::Dsse { payload, .. } => key.verifies(&pae(IN_TOTO, payload), signature),
            Content::Message(digest) => key.verifies_digest(digest, signature),
        }
    }
}

/// Reads the bundle's content and signature: a DSSE envelope, or a
/// message signature (checked here to name `image`).
fn content(doc: &serde_json::Value, image: &Digest) -> Result<(Content, Vec<u8>), BundleProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let unsupported = |what: &str| BundleProblem::Unsupported(what.to_owned());
    let message = &doc["messageSignature"];
    if !message.is_null() {
        let digest = &message["messageDigest"];
        if digest["algorithm"].as_str() != Some("SHA2_256") {
            return Err(unsupported("a message signature's digest is not SHA2_256"));
        }
        let digest: [u8; 32] = digest["digest"]
            .as_str()
            .and_then(|d| b64.decode(d).ok())
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| unsupported("messageDigest.digest is not 32 base64 bytes"))?;
        if image.algorithm() != "sha256" || hex::encode(digest) != image.encoded() {
            return Err(BundleProblem::OtherSubject);
        }
        let signature = message["signature"]
            .as_str()
            .and_then(|s| b64.decode(s).ok())
            .ok_or_else(|| unsupported("no base64 signature"))?;
        return Ok((Content::Message(digest), signature));
    }
    let env = &doc["dsseEnvelope"];
    if env.is_null() {
        return Err(unsupported("neither a DSSE envelope nor a message signature"));
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
    Ok((
        Content::Dsse {
            payload,
            predicate_type,
            predicate,
        },
        signature,
    ))
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
    let (content, signature) = content(&doc, image)?;
    let material = &doc["verificationMaterial"];
    let leaf = material["certificate"]["rawBytes"]
        .as_str()
        .or_else(|| material["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str());
    let signer = match leaf {
        None => {
            let key = keys
                .iter()
                .find(|k| content.verified_by(k, &signature))
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
                let signed = match &content {
                    Content::Dsse { payload, .. } => crate::rekor_v2::Signed::Dsse(payload),
                    Content::Message(digest) => crate::rekor_v2::Signed::Message(digest),
                };
                crate::rekor_v2::verify_entry(root, tlog, signed, &signature, &leaf, stamps)?
            } else {
                vec![rekor_v1(root, tlog, &content, &signature, &leaf)?]
            };
            // The certificate must have been valid at every verified time.
            let (key, identity) = verify_leaf(root, &leaf, times[0])?;
            for t in &times[1..] {
                verify_leaf(root, &leaf, *t)?;
            }
            if !content.verified_by(&PublicKey::EcdsaP256(key), &signature) {
                return Err(KeylessProblem::BadSignature.into());
            }
            Signer::Identity(identity)
        }
    };
    let (predicate_type, predicate) = match content {
        Content::Dsse {
            predicate_type,
            predicate,
            ..
        } => (predicate_type, predicate),
        // A signature over the manifest itself signs the image, as cosign's
        // sign/v1 statement does.
        Content::Message(_) => (
            COSIGN_SIGN_PREDICATE.to_owned(),
            serde_json::value::RawValue::from_string("{}".into()).expect("valid JSON"),
        ),
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
    content: &Content,
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
    match content {
        Content::Dsse { payload, .. } => entry_matches(entry.body, payload, signature, leaf)?,
        Content::Message(digest) => crate::keyless::message_entry_matches(entry.body, digest, signature)?,
    }
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

    /// A key-signed message signature over the manifest's bytes signs the
    /// image; over other bytes, or by an untrusted key, it does not.
    #[test]
    fn message_signatures_over_the_manifest_sign_the_image() {
        use p256::ecdsa::signature::Signer as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let image = crate::registry::digest::sha256_of(manifest);
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let bundle = |signed: &[u8]| {
            let sig: p256::ecdsa::Signature = key.sign(signed);
            let digest = <sha2::Sha256 as sha2::Digest>::digest(signed);
            serde_json::to_vec(&serde_json::json!({
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": { "publicKey": { "hint": "" } },
                "messageSignature": {
                    "messageDigest": { "algorithm": "SHA2_256", "digest": b64.encode(digest) },
                    "signature": b64.encode(sig.to_der().as_bytes()),
                },
            }))
            .unwrap()
        };
        let trusted = [PublicKey::EcdsaP256(*key.verifying_key())];
        let v = verify(&bundle(manifest), &image, &trusted, None).unwrap();
        assert_eq!(v.predicate_type, COSIGN_SIGN_PREDICATE);
        assert_eq!(v.signer, Signer::Key(trusted[0].fingerprint()));
        assert_eq!(
            verify(&bundle(b"other bytes"), &image, &trusted, None).unwrap_err(),
            BundleProblem::OtherSubject
        );
        let stranger = [PublicKey::EcdsaP256(
            *p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap().verifying_key(),
        )];
        assert_eq!(
            verify(&bundle(manifest), &image, &stranger, None).unwrap_err(),
            BundleProblem::Untrusted
        );
    }

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
