//! cosign-compatible image signatures in the tag scheme.
//!
//! A signature for image `sha256:<hex>` lives in the same repository under
//! the tag `sha256-<hex>.sig`: an OCI image manifest whose layers are each one
//! signature. A layer's blob is the *simple signing payload* (JSON):
//!
//! ```json
//! {"critical": {"identity": {"docker-reference": "<registry>/<repo>"},
//!               "image": {"docker-manifest-digest": "sha256:<hex>"},
//!               "type": "cosign container image signature"},
//!  "optional": null}
//! ```
//!
//! with media type `application/vnd.dev.cosign.simplesigning.v1+json`, and
//! its annotation `dev.cosignproject.cosign/signature` is the base64 of the
//! signature over the payload's exact bytes: ASN.1 DER ECDSA P-256 with
//! SHA-256, a raw 64-byte Ed25519 signature, or RSA PKCS#1 v1.5 with
//! SHA-256. A new signature is appended
//! as a further layer of the existing `.sig` manifest. containers/image
//! (skopeo, podman) writes and reads this same layout.

use crate::registry::names::parse_digest;
use base64::Engine as _;
use vouch_ledger::entry::Digest;

/// Media type of a simple signing payload layer.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The payload's `critical.type`.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The signature tag of an image: `sha256-<hex>.sig`.
pub fn signature_tag(image: &Digest) -> String {
    format!("{}-{}.sig", image.algorithm(), image.encoded())
}

/// The simple signing payload for `image`, as `reference` (registry/repo).
pub fn payload(reference: &str, image: &Digest) -> Vec<u8> {
    payload_with(reference, image, serde_json::Value::Null)
}

/// The simple signing payload with `optional` fields (cosign's
/// annotations: a map of strings, or null).
pub fn payload_with(reference: &str, image: &Digest, optional: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": reference },
            "image": { "docker-manifest-digest": image.as_str() },
            "type": PAYLOAD_TYPE,
        },
        "optional": optional,
    }))
    .expect("serialize a JSON value")
}

/// Media type of the `.sig` manifest (OCI image manifest).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The artifact type of a signature manifest pushed as an OCI 1.1 referrer
/// (cosign's, for images whose tag form cannot exist).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The descriptor of one signature layer: the payload blob, with the
/// base64 signature as its annotation.
pub fn signature_layer(payload: &[u8], payload_digest: &Digest, signature: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    serde_json::json!({
        "mediaType": SIMPLESIGNING,
        "size": payload.len(),
        "digest": payload_digest.as_str(),
        "annotations": { SIGNATURE_ANNOTATION: base64::engine::general_purpose::STANDARD.encode(signature) },
    })
}

/// A `.sig` manifest holding `layers`, and the config blob it names (as
/// cosign writes it: the layers' digests as `rootfs.diff_ids`).
#[derive(Debug, Clone)]
pub struct SignatureManifest {
    /// The config blob's bytes (push it first).
    pub config: Vec<u8>,
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
}

impl SignatureManifest {
    /// Builds the manifest over `layers`; with `subject` (a descriptor of
    /// the image), as an OCI 1.1 referrer of it.
    pub fn new(layers: &[serde_json::Value], subject: Option<serde_json::Value>) -> SignatureManifest {
        let diff_ids: Vec<&str> = layers.iter().filter_map(|l| l["digest"].as_str()).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .expect("serialize a JSON value");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": config.len(),
                "digest": crate::registry::digest::sha256_of(&config).as_str(),
            },
            "layers": layers,
        }))
        .expect("serialize a JSON value");
        let manifest = match subject {
            None => manifest,
            Some(subject) => {
                let mut doc: serde_json::Value = serde_json::from_slice(&manifest).expect("just written");
                doc["artifactType"] = SIGNATURE_ARTIFACT_TYPE.into();
                doc["subject"] = subject;
                serde_json::to_vec(&doc).expect("serialize a JSON value")
            }
        };
        SignatureManifest { config, manifest }
    }
}

/// Refuses a private key file that group or others may read (as the
/// ledger's key file is refused).
pub fn check_private_mode(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: the private key is readable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// Creates a new ECDSA P-256 key pair: the PKCS#8 PEM private key at
/// `key_path` (created, never overwritten, mode 0600, fsync'd) and the PEM
/// public key at `pub_path`.
pub fn create_key_pair(
    key_path: &std::path::Path,
    pub_path: &std::path::Path,
) -> Result<p256::ecdsa::SigningKey, String> {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_path)
        .map_err(|e| format!("{}: {e} (refusing to overwrite a key)", key_path.display()))?;
    f.write_all(private.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    std::fs::write(pub_path, &public).map_err(|e| format!("{}: {e}", pub_path.display()))?;
    Ok(key)
}

/// Reads a PKCS#8 PEM ECDSA P-256 private key.
pub fn read_private_key(path: &std::path::Path) -> Result<p256::ecdsa::SigningKey, String> {
    use p256::pkcs8::DecodePrivateKey as _;
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    p256::ecdsa::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| format!("{}: not a PKCS#8 P-256 key: {e}", path.display()))
}

/// A public key that may sign images.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// ECDSA P-256 with SHA-256 (cosign's default).
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// RSA (at least 2048 bits), PKCS#1 v1.5 with SHA-256, as cosign
    /// verifies RSA keys.
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<sha2::Sha256>>),
}

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo): ECDSA P-256,
    /// Ed25519 or RSA; or a PEM `RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(pem: &str) -> Result<PublicKey, String> {
        use p256::pkcs8::DecodePublicKey as _;
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::EcdsaP256(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k));
        }
        let rsa = rsa::RsaPublicKey::from_public_key_pem(pem).or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem));
        if let Ok(k) = rsa {
            let bits = k.n().bits();
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA key of {bits} bits is too small (at least {MIN_RSA_BITS})"));
            }
            return Ok(PublicKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(k))));
        }
        Err("not a PEM ECDSA P-256, Ed25519 or RSA public key (PUBLIC KEY)".into())
    }

    /// A short identity for logs and ledger entries: the key type and the
    /// SHA-256 of its SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        let (kind, der) = match self {
            PublicKey::EcdsaP256(k) => ("ecdsa-p256", k.to_public_key_der().map(|d| d.into_vec())),
            PublicKey::Ed25519(k) => ("ed25519", k.to_public_key_der().map(|d| d.into_vec())),
            PublicKey::Rsa(k) => ("rsa", k.as_ref().as_ref().to_public_key_der().map(|d| d.into_vec())),
        };
        let der = der.expect("encoding a valid key");
        format!("{kind}:{}", crate::registry::digest::sha256_of(&der))
    }

    /// Whether `signature` over `message` verifies with this key.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::EcdsaP256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify(payload, &s).is_ok())
            }
            PublicKey::Ed25519(k) => <[u8; 64]>::try_from(signature).is_ok_and(|s| {
                k.verify_strict(payload, &ed25519_dalek::Signature::from_bytes(&s))
                    .is_ok()
            }),
            PublicKey::Rsa(k) => {
                use rsa::signature::Verifier as _;
                rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|s| k.verify(payload, &s).is_ok())
            }
        }
    }

    /// Whether `signature` is this key's over a message whose SHA-256 is
    /// `digest` (a Sigstore message signature names only the digest).
    /// Ed25519 signs messages, not digests: never.
    pub fn verifies_digest(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        match self {
            PublicKey::EcdsaP256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
                p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify_prehash(digest, &s).is_ok())
            }
            PublicKey::Ed25519(_) => false,
            PublicKey::Rsa(k) => {
                use rsa::signature::hazmat::PrehashVerifier as _;
                rsa::pkcs1v15::Signature::try_from(signature).is_ok_and(|s| k.verify_prehash(digest, &s).is_ok())
            }
        }
    }
}

/// One layer of a `.sig` manifest: its annotation and its payload blob.
#[derive(Debug, Clone)]
pub struct SignatureLayer {
    /// The base64 signature annotation (`None` if the layer has none).
    pub signature: Option<String>,
    /// The payload blob's bytes.
    pub payload: Vec<u8>,
}

/// Why a signature layer does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    /// No signature annotation, or not base64.
    #[error("layer {0} has no base64 signature annotation")]
    NoSignature(usize),
    /// The payload is not a simple signing payload.
    #[error("layer {0}: payload is not a cosign simple signing payload")]
    BadPayload(usize),
    /// The payload names another image.
    #[error("layer {layer}: payload signs {signed}, not this image")]
    OtherImage {
        /// Layer position.
        layer: usize,
        /// Digest the payload names.
        signed: String,
    },
    /// No trusted key verifies it.
    #[error("layer {0}: not signed by any trusted key")]
    Untrusted(usize),
}

/// Checks each layer of a `.sig` manifest for `image`; returns the
/// fingerprints of the trusted keys that signed it, and why each other layer
/// did not count.
pub fn verify_layers(
    image: &Digest,
    layers: &[SignatureLayer],
    keys: &[PublicKey],
) -> (Vec<String>, Vec<SignatureProblem>) {
    let (mut signers, mut problems) = (Vec::new(), Vec::new());
    for (i, layer) in layers.iter().enumerate() {
        match verify_layer(i, image, layer, keys) {
            Ok(fingerprint) => {
                if !signers.contains(&fingerprint) {
                    signers.push(fingerprint);
                }
            }
            Err(p) => problems.push(p),
        }
    }
    (signers, problems)
}

fn verify_layer(
    i: usize,
    image: &Digest,
    layer: &SignatureLayer,
    keys: &[PublicKey],
) -> Result<String, SignatureProblem> {
    let sig = layer
        .signature
        .as_deref()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or(SignatureProblem::NoSignature(i))?;
    let doc: serde_json::Value = serde_json::from_slice(&layer.payload).map_err(|_| SignatureProblem::BadPayload(i))?;
    let critical = &doc["critical"];
    if critical["type"].as_str() != Some(PAYLOAD_TYPE) {
        return Err(SignatureProblem::BadPayload(i));
    }
    let signed = critical["image"]["docker-manifest-digest"]
        .as_str()
        .ok_or(SignatureProblem::BadPayload(i))?;
    if parse_digest(signed).ok().as_ref() != Some(image) {
        return Err(SignatureProblem::OtherImage {
            layer: i,
            signed: signed.chars().take(100).collect(),
        });
    }
    keys.iter()
        .find(|k| k.verifies(&layer.payload, &sig))
        .map(PublicKey::fingerprint)
        .ok_or(SignatureProblem::Untrusted(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;

    fn image() -> Digest {
        parse_digest(&format!("sha256:{}", "ab".repeat(32))).unwrap()
    }

    #[test]
    fn ecdsa_and_ed25519_signatures_verify_and_tampering_does_not() {
        let ec = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let ed = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let keys = [
            PublicKey::EcdsaP256(*ec.verifying_key()),
            PublicKey::Ed25519(ed.verifying_key()),
        ];
        let p = payload("127.0.0.1:5000/team/app", &image());
        let ec_sig: p256::ecdsa::Signature = ec.sign(&p);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let layers = vec![
            SignatureLayer {
                signature: Some(b64(ec_sig.to_der().as_bytes())),
                payload: p.clone(),
            },
            SignatureLayer {
                signature: Some(b64(&ed25519_dalek::Signer::sign(&ed, &p).to_bytes())),
                payload: p.clone(),
            },
        ];
        let (signers, problems) = verify_layers(&image(), &layers, &keys);
        assert_eq!((signers.len(), problems.len()), (2, 0));
        // Another image, a changed payload, an untrusted key: none count.
        let other = parse_digest(&format!("sha256:{}", "cd".repeat(32))).unwrap();
        assert!(matches!(
            verify_layers(&other, &layers, &keys).1[0],
            SignatureProblem::OtherImage { .. }
        ));
        let mut changed = layers[0].clone();
        changed.payload = payload("127.0.0.1:5000/team/other", &image());
        assert_eq!(
            verify_layers(&image(), &[changed], &keys).1,
            vec![SignatureProblem::Untrusted(0)]
        );
        assert_eq!(verify_layers(&image(), &layers, &keys[1..]).0.len(), 1);
        assert_eq!(signature_tag(&image()), format!("sha256-{}.sig", "ab".repeat(32)));
    }
}
