//! `vouch keygen` and `vouch sign`: cosign-compatible signatures in the tag
//! scheme (`src/signature.rs` describes the format), or as an OCI 1.1
//! referrer where the tag cannot exist (sha512 digests), so the quickstart
//! needs no other tool.

use crate::client::{parse_reference, Registry, RegistryArgs, Result};
use clap::Args;
use std::path::PathBuf;
use vouch::registry::digest::sha256_of;
use vouch::signature::{payload, signature_layer, signature_tag, PublicKey, SignatureManifest, OCI_MANIFEST};

/// The longest tag the distribution spec allows.
const MAX_TAG: usize = 128;

/// Options of `vouch keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Writes <PREFIX>.key (PKCS#8 PEM, mode 0600) and <PREFIX>.pub (PEM
    /// public key, what a policy or `cosign verify --key` trusts).
    #[arg(long, value_name = "PREFIX", default_value = "vouch-signing")]
    out: PathBuf,
}

/// Options of `vouch sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image: <registry>/<repository>:<tag> or @<digest>, e.g.
    /// 127.0.0.1:5000/team/app:v1.
    reference: String,
    /// The private key (PKCS#8 PEM from `vouch keygen`), ECDSA P-256.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    let (key_path, pub_path) = (args.out.with_extension("key"), args.out.with_extension("pub"));
    let key = vouch::signature::create_key_pair(&key_path, &pub_path)?;
    let fingerprint = PublicKey::EcdsaP256(*key.verifying_key()).fingerprint();
    println!(
        "wrote {} (private, 0600) and {} ({fingerprint})",
        key_path.display(),
        pub_path.display()
    );
    Ok(())
}

pub fn sign(args: SignArgs) -> Result<()> {
    use p256::ecdsa::signature::Signer as _;
    let key = vouch::signature::read_private_key(&args.key)?;
    let image = parse_reference(&args.reference)?;
    let reg = Registry::connect(&image, &args.registry)?;
    let repo = &image.repo;
    let digest = reg.resolve(&image)?;
    let body = payload(&format!("{}/{repo}", image.registry), &digest);
    let signature: p256::ecdsa::Signature = key.sign(&body);
    let payload_digest = reg.push_blob(repo, &body)?;

    // A digest whose tag form cannot exist (sha512: 135 characters, over
    // the 128 a tag may have) is signed with an OCI 1.1 referrer instead:
    // the signature manifest names the image as its `subject`.
    let tag = signature_tag(&digest);
    if tag.len() > MAX_TAG {
        let (media_type, size) = reg.describe(repo, &digest)?;
        let layers = [signature_layer(&body, &payload_digest, signature.to_der().as_bytes())];
        let subject = serde_json::json!({ "mediaType": media_type, "digest": digest.as_str(), "size": size });
        let sig = SignatureManifest::new(&layers, Some(subject));
        reg.push_blob(repo, &sig.config)?;
        let sig_digest = sha256_of(&sig.manifest);
        reg.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{sig_digest}"),
            OCI_MANIFEST,
            &sig.manifest,
        )?;
        let fingerprint = PublicKey::EcdsaP256(*key.verifying_key()).fingerprint();
        println!(
            "signed {}/{repo}@{digest} as the referrer {sig_digest} (its {} tag would be too long); key {fingerprint}",
            image.registry,
            digest.algorithm()
        );
        return Ok(());
    }
    // Append to the existing .sig manifest, if any (the signer reads it first).
    let mut layers: Vec<serde_json::Value> =
        match reg.get_if_exists(&format!("/v2/{repo}/manifests/{tag}"), OCI_MANIFEST)? {
            Some(bytes) => {
                let existing: serde_json::Value = serde_json::from_slice(&bytes)?;
                existing["layers"].as_array().cloned().unwrap_or_default()
            }
            None => Vec::new(),
        };
    layers.push(signature_layer(&body, &payload_digest, signature.to_der().as_bytes()));
    let sig = SignatureManifest::new(&layers, None);
    reg.push_blob(repo, &sig.config)?;
    reg.send(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        OCI_MANIFEST,
        &sig.manifest,
    )?;
    let fingerprint = PublicKey::EcdsaP256(*key.verifying_key()).fingerprint();
    println!(
        "signed {}/{repo}@{digest} as {tag} ({} signature(s)); key {fingerprint}",
        image.registry,
        layers.len()
    );
    Ok(())
}
