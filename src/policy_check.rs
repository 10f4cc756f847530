//! `vouch policy check --policy FILE IMAGE`: evaluates an image in any
//! registry against a policy without admitting it. Reads, over the OCI
//! API, what admission reads: the manifest, the image configuration(s),
//! cosign tag-scheme signatures (`.sig`) and attestations (`.att`),
//! Sigstore bundle referrers and Notation signatures; verifies them with the policy's keys and
//! trusted root (the same verification functions admission uses); and
//! prints the rule that applies, the verdict and every reason.

use crate::client::{parse_reference, Registry, RegistryArgs};
use std::collections::BTreeSet;
use std::path::PathBuf;
use vouch::policy::attested::Predicate;
use vouch::policy::image::{
    is_build_attestation, parse_config, platform_name, Configs, ImageConfig, MAX_CONFIG_BYTES, MAX_PLATFORMS,
    REFERENCE_TYPE,
};
use vouch::policy::{identities_matching, IdentityMatcher, Policy, SignedIdentity, Subject};
use vouch::signature::{signature_tag, PublicKey, SignatureLayer, SIGNATURE_ANNOTATION};
use vouch_ledger::entry::Digest;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
const INDEXES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// `vouch policy check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The image: `<registry>/<repository>:<tag>` or `@<digest>`.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// `text` (default) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// What the evidence proved, and why the rest did not count.
#[derive(Default)]
struct Found {
    signers: BTreeSet<String>,
    predicates: Vec<Predicate>,
    notes: Vec<String>,
    /// Not all evidence was read (more than 64 of a kind).
    incomplete: bool,
}

/// Most layers of one evidence manifest, and bundle referrers, read.
const MAX_READ: usize = 64;

/// Notes that `what` had more than [`MAX_READ`] items.
fn truncated(found: &mut Found, what: &str, n: usize) {
    if n > MAX_READ {
        found.incomplete = true;
        found
            .notes
            .push(format!("{what}: {n} items, only the first {MAX_READ} read"));
    }
}

/// Runs it: exit 0 if the policy admits the image, 1 if it denies it.
pub fn run(args: &CheckArgs) -> Result<std::process::ExitCode> {
    let policy = Policy::load(&args.policy)?;
    let image = parse_reference(&args.image)?;
    let reg = Registry::connect(&image, &args.registry)?;
    let digest = reg.resolve(&image)?;
    let repo = image.repo.as_str();
    let bytes = reg
        .get_if_exists(&format!("/v2/{repo}/manifests/{digest}"), ACCEPT)?
        .ok_or_else(|| format!("{repo}@{digest}: no such manifest"))?;
    check_digest(digest.as_str(), &bytes).map_err(|e| format!("{repo}@{digest}: {e}"))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes)?;
    let (media_type, _) = reg.describe(&image.repo, &digest)?;
    let sizes = |key: &str| -> u64 {
        doc[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["size"].as_u64())
            .sum()
    };
    let size = bytes.len() as u64 + doc["config"]["size"].as_u64().unwrap_or(0) + sizes("layers") + sizes("manifests");
    let foreign = doc["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            l["mediaType"]
                .as_str()
                .is_some_and(|t| t.contains("nondistributable") || t.contains("foreign"))
                && l["urls"].is_array()
        })
        .count();
    let runnable = doc["config"]["mediaType"]
        .as_str()
        .is_some_and(|t| IMAGE_CONFIGS.contains(&t))
        && doc["layers"].as_array().is_some_and(|l| !l.is_empty());
    let index = INDEXES.contains(&media_type.as_str());
    let attachment = (doc["subject"].is_object() && !runnable && !index).then(|| {
        doc["artifactType"]
            .as_str()
            .or_else(|| doc["config"]["mediaType"].as_str())
            .unwrap_or("")
            .to_owned()
    });
    let configs = match (index, runnable) {
        (true, _) => index_configs(&reg, repo, &doc),
        (false, true) => image_config(&reg, repo, &doc, None).map(|c| vec![c]),
        (false, false) => Err(String::new()),
    };
    let configs = match configs {
        Ok(v) => Configs::Read(v),
        Err(e) if e.is_empty() => Configs::NotAnImage(attachment.clone().unwrap_or_else(|| media_type.clone())),
        Err(e) => Configs::Unreadable(e),
    };
    let mut subject = Subject {
        repo: repo.to_owned(),
        media_type: media_type.clone(),
        size,
        digest: digest.to_string(),
        manifest: doc.clone(),
        attachment,
        foreign_layers: foreign,
        configs,
        evaluated_at: now(),
        predicates: Vec::new(),
        evidence_incomplete: false,
    };
    let identity = policy
        .rule_for(&subject)
        .map(|(_, r)| r.signed_identity)
        .unwrap_or_default();
    let (keys, identities) = policy.authorities();
    let mut found = Found::default();
    let expected = format!("{}/{repo}", image.registry);
    signatures(
        &reg,
        &policy,
        (&keys, &identities),
        (repo, &digest),
        (identity, &expected),
        &mut found,
    )?;
    attestations(&reg, &policy, (&keys, &identities), (repo, &digest), &mut found)?;
    bundles(&reg, &policy, (&keys, &identities), (repo, &digest), &mut found)?;
    let target = vouch::notation::Target {
        media_type: media_type.clone(),
        digest: digest.to_string(),
        size: bytes.len() as u64,
    };
    notation(&reg, &policy, repo, &target, &mut found)?;
    let attested: BTreeSet<(String, String)> = found
        .predicates
        .iter()
        .map(|p| (p.predicate_type.clone(), p.signer.clone()))
        .collect();
    subject.predicates = found.predicates;
    subject.evidence_incomplete = found.incomplete;
    let decision = policy.evaluate_with(&subject, &found.signers, &attested);
    if args.output == "json" {
        println!(
            "{}",
            serde_json::json!({
                "image": format!("{}/{repo}@{digest}", image.registry),
                "policy": policy.name, "policy_digest": policy.digest().as_str(),
                "admit": decision.admit, "rule": decision.rule.map(|r| r + 1),
                "repositories": decision.rule.map(|r| policy.rules[r].repositories.clone()),
                "reasons": decision.reasons, "signers": found.signers, "evidence_notes": found.notes,
            })
        );
    } else {
        println!("image:   {}/{repo}@{digest}", image.registry);
        println!("policy:  {:?} ({})", policy.name, policy.digest());
        match decision.rule {
            Some(r) => println!("rule:    {} (repositories = {:?})", r + 1, policy.rules[r].repositories),
            None => println!("rule:    none matches"),
        }
        println!("verdict: {}", if decision.admit { "ADMIT" } else { "DENY" });
        for s in &found.signers {
            println!("signed:  {s}");
        }
        for r in &decision.reasons {
            println!("reason:  {r}");
        }
        for n in found.notes.iter().take(10) {
            println!("note:    {n}");
        }
    }
    Ok(if decision.admit {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

type Authorities<'a> = (&'a [PublicKey], &'a [(String, IdentityMatcher)]);

fn image_config(
    reg: &Registry,
    repo: &str,
    doc: &serde_json::Value,
    platform: Option<String>,
) -> std::result::Result<ImageConfig, String> {
    let d = doc["config"]["digest"].as_str().ok_or("the manifest has no config")?;
    let declared = doc["config"]["size"].as_u64().unwrap_or(0);
    if declared > MAX_CONFIG_BYTES {
        return Err(format!(
            "the configuration {d} is {declared} bytes, over the bound of {MAX_CONFIG_BYTES}"
        ));
    }
    let bytes = reg.get(&format!("/v2/{repo}/blobs/{d}")).map_err(|e| e.to_string())?;
    check_digest(d, &bytes)?;
    let sizes: Vec<u64> = doc["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["size"].as_u64())
        .collect();
    parse_config(&bytes, platform, sizes).map(|c| c.with_annotations(doc.get("annotations")))
}

fn index_configs(reg: &Registry, repo: &str, doc: &serde_json::Value) -> std::result::Result<Vec<ImageConfig>, String> {
    let entries: Vec<&serde_json::Value> = doc["manifests"].as_array().into_iter().flatten().collect();
    if entries.len() > 2 * MAX_PLATFORMS {
        return Err(format!(
            "the index lists {} entries; at most {} are read ({MAX_PLATFORMS} platforms and their build attestations)",
            entries.len(),
            2 * MAX_PLATFORMS
        ));
    }
    let mut out = Vec::new();
    for e in entries {
        let d = e["digest"].as_str().unwrap_or("");
        let bytes = reg
            .get_if_exists(&format!("/v2/{repo}/manifests/{d}"), ACCEPT)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("index entry {d}: not in this repository"))?;
        check_digest(d, &bytes).map_err(|e| format!("index entry {d}: {e}"))?;
        let claimed = e["platform"]["os"]
            .as_str()
            .map(|os| (os, e["platform"]["architecture"].as_str().unwrap_or("")));
        if is_build_attestation(e["annotations"][REFERENCE_TYPE].as_str(), claimed, &bytes) {
            continue;
        }
        let child: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("index entry {d}: {e}"))?;
        if INDEXES.iter().any(|t| child["mediaType"].as_str() == Some(t)) || child["manifests"].is_array() {
            return Err(format!(
                "index entry {d}: an index inside an index; nested indexes are not read"
            ));
        }
        let runnable = child["config"]["mediaType"]
            .as_str()
            .is_some_and(|t| IMAGE_CONFIGS.contains(&t))
            && child["layers"].as_array().is_some_and(|l| !l.is_empty());
        if !runnable {
            return Err(format!("index entry {d}: not an image"));
        }
        let platform = e["platform"]["os"].as_str().map(|os| {
            platform_name(
                os,
                e["platform"]["architecture"].as_str().unwrap_or(""),
                e["platform"]["variant"].as_str(),
            )
        });
        out.push(image_config(reg, repo, &child, platform).map_err(|x| format!("index entry {d}: {x}"))?);
        if out.len() > MAX_PLATFORMS {
            return Err(format!(
                "the index lists more than {MAX_PLATFORMS} platforms; at most {MAX_PLATFORMS} are read"
            ));
        }
    }
    Ok(out)
}

/// Checks that `bytes` are what `digest` names: a registry (or anything
/// between it and us) cannot make a configuration say something else.
fn check_digest(digest: &str, bytes: &[u8]) -> std::result::Result<(), String> {
    let d = Digest::parse(digest).ok_or_else(|| format!("{digest:?} is not a digest"))?;
    let mut h = vouch::registry::digest::DigestHasher::for_digest(&d);
    h.update(bytes);
    if h.finish() != d {
        return Err(format!("the registry sent bytes that are not {digest}"));
    }
    Ok(())
}

/// The layers of the evidence manifest `tag` names (at most [`MAX_READ`],
/// noting more), each with its annotations and its blob.
fn tagged_layers(
    reg: &Registry,
    repo: &str,
    tag: &str,
    what: &str,
    found: &mut Found,
) -> Result<Vec<(serde_json::Value, Vec<u8>)>> {
    let Some(doc) = manifest(reg, repo, tag)? else {
        return Ok(Vec::new());
    };
    let layers = doc["layers"].as_array().map(Vec::as_slice).unwrap_or_default();
    truncated(found, what, layers.len());
    let mut out = Vec::new();
    for layer in layers.iter().take(MAX_READ) {
        let Some(d) = layer["digest"].as_str() else { continue };
        out.push((layer["annotations"].clone(), reg.get(&format!("/v2/{repo}/blobs/{d}"))?));
    }
    Ok(out)
}

/// Cosign tag-scheme signatures: key-based and keyless, the payload's
/// docker-reference checked as the rule's `signed_identity` says.
fn signatures(
    reg: &Registry,
    policy: &Policy,
    (keys, identities): Authorities<'_>,
    (repo, digest): (&str, &Digest),
    (mode, expected): (SignedIdentity, &str),
    found: &mut Found,
) -> Result<()> {
    let layers = tagged_layers(reg, repo, &signature_tag(digest), "signatures", found)?;
    for (i, (annotations, payload)) in layers.iter().enumerate() {
        let fingerprints: Vec<String> = if annotations.get(vouch::keyless::CERTIFICATE_ANNOTATION).is_some() {
            let Some(root) = &policy.trusted_root else {
                found
                    .notes
                    .push(format!("signature {i}: keyless, but the policy has no trusted_root"));
                continue;
            };
            match vouch::keyless::verify(root, digest, annotations, payload) {
                Ok(id) => identities_matching(identities, &id),
                Err(e) => {
                    found.notes.push(format!("signature {i}: {e}"));
                    continue;
                }
            }
        } else {
            let layer = SignatureLayer {
                signature: annotations[SIGNATURE_ANNOTATION].as_str().map(str::to_owned),
                payload: payload.clone(),
            };
            let (signers, problems) = vouch::signature::verify_layers(digest, std::slice::from_ref(&layer), keys);
            found
                .notes
                .extend(problems.iter().map(|p| format!("signature {i}: {p}")));
            signers
        };
        if fingerprints.is_empty() {
            continue;
        }
        let named: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        let reference = named["critical"]["identity"]["docker-reference"].as_str().unwrap_or("");
        let reference = reference.split('@').next().unwrap_or("");
        let reference = match reference.rsplit_once(':') {
            Some((head, tag)) if !tag.contains('/') => head,
            _ => reference,
        };
        let path = expected.split_once('/').map_or(expected, |(_, p)| p);
        let ok = match mode {
            SignedIdentity::Any => true,
            SignedIdentity::ThisRegistry => reference == expected,
            SignedIdentity::AnyRegistry => reference.split_once('/').is_some_and(|(_, p)| p == path),
        };
        if !ok {
            found.notes.push(format!(
                "signature {i}: signed for {reference}, not for {expected} (the rule's signed_identity)"
            ));
            continue;
        }
        found.signers.extend(fingerprints);
    }
    Ok(())
}

/// Cosign tag-scheme attestations (`.att`): DSSE envelopes, key-based or
/// keyless.
fn attestations(
    reg: &Registry,
    policy: &Policy,
    (keys, identities): Authorities<'_>,
    (repo, digest): (&str, &Digest),
    found: &mut Found,
) -> Result<()> {
    let tag = signature_tag(digest).replace(".sig", ".att");
    for (i, (annotations, envelope)) in tagged_layers(reg, repo, &tag, "attestations", found)?
        .iter()
        .enumerate()
    {
        let (predicate_type, signers, predicate, signed_at) =
            if annotations.get(vouch::keyless::CERTIFICATE_ANNOTATION).is_some() {
                let Some(root) = &policy.trusted_root else {
                    found
                        .notes
                        .push(format!("attestation {i}: keyless, but the policy has no trusted_root"));
                    continue;
                };
                match vouch::attestation::verify_keyless_envelope(root, digest, annotations, envelope) {
                    Ok((t, id, predicate)) => (t, identities_matching(identities, &id), predicate, Some(id.logged_at)),
                    Err(e) => {
                        found.notes.push(format!("attestation {i}: {e}"));
                        continue;
                    }
                }
            } else {
                match vouch::attestation::verify_envelope(digest, envelope, keys) {
                    Ok(a) => (a.predicate_type, a.signers, a.predicate, None),
                    Err(e) => {
                        found.notes.push(format!("attestation {i}: {e}"));
                        continue;
                    }
                }
            };
        found
            .predicates
            .extend(Predicate::for_signers(&predicate_type, &signers, &predicate, signed_at));
    }
    Ok(())
}

/// Sigstore bundle referrers (cosign v3).
fn bundles(
    reg: &Registry,
    policy: &Policy,
    (keys, identities): Authorities<'_>,
    (repo, digest): (&str, &Digest),
    found: &mut Found,
) -> Result<()> {
    let Some(listing) = reg.get_if_exists(
        &format!("/v2/{repo}/referrers/{digest}"),
        "application/vnd.oci.image.index.v1+json",
    )?
    else {
        return Ok(());
    };
    let listing: serde_json::Value = serde_json::from_slice(&listing).unwrap_or_default();
    let bundles = listing["manifests"].as_array().into_iter().flatten().filter(|m| {
        m["artifactType"]
            .as_str()
            .is_some_and(|t| t.starts_with(vouch::sigstore_bundle::ARTIFACT_TYPE_PREFIX))
    });
    let bundles: Vec<&serde_json::Value> = bundles.collect();
    truncated(found, "Sigstore bundle referrers", bundles.len());
    for m in bundles.into_iter().take(MAX_READ) {
        let Some(d) = m["digest"].as_str() else { continue };
        let Some(doc) = manifest(reg, repo, d)? else { continue };
        let Some(layer) = doc["layers"][0]["digest"].as_str() else {
            continue;
        };
        let bytes = reg.get(&format!("/v2/{repo}/blobs/{layer}"))?;
        match vouch::sigstore_bundle::verify(&bytes, digest, keys, policy.trusted_root.as_ref()) {
            Ok(v) => {
                let signers: Vec<String> = match &v.signer {
                    vouch::sigstore_bundle::Signer::Key(fp) => vec![fp.clone()],
                    vouch::sigstore_bundle::Signer::Identity(id) => identities_matching(identities, id),
                };
                let signed_at = match &v.signer {
                    vouch::sigstore_bundle::Signer::Identity(id) => Some(id.logged_at),
                    vouch::sigstore_bundle::Signer::Key(_) => None,
                };
                if v.predicate_type == vouch::sigstore_bundle::COSIGN_SIGN_PREDICATE {
                    found.signers.extend(signers);
                } else {
                    found.predicates.extend(Predicate::for_signers(
                        &v.predicate_type,
                        &signers,
                        &vouch::policy::attested::Body::new(v.predicate.clone()),
                        signed_at,
                    ));
                }
            }
            Err(e) => found.notes.push(format!("Sigstore bundle {d}: {e}")),
        }
    }
    Ok(())
}

/// Notation signatures: referrers of the image whose artifact type is the
/// Notary Project's, through the referrers API or, on a registry without
/// it, the referrers tag schema index at `<alg>-<hex>`; each verified
/// against the policy's Notation trust policies.
fn notation(
    reg: &Registry,
    policy: &Policy,
    repo: &str,
    target: &vouch::notation::Target,
    found: &mut Found,
) -> Result<()> {
    let trust = policy.notation_trust();
    if trust.is_empty() {
        return Ok(());
    }
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let digest = &target.digest;
    let listing = match reg.get_if_exists(&format!("/v2/{repo}/referrers/{digest}"), INDEX)? {
        Some(l) => Some(l),
        None => {
            let (alg, hex) = digest.split_once(':').unwrap_or_default();
            let tag = format!("{alg}-{}", &hex[..hex.len().min(64)]);
            reg.get_if_exists(&format!("/v2/{repo}/manifests/{tag}"), INDEX)?
        }
    };
    let listing: serde_json::Value = listing
        .and_then(|l| serde_json::from_slice(&l).ok())
        .unwrap_or_default();
    let signatures: Vec<&serde_json::Value> = listing["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["artifactType"].as_str() == Some(vouch::notation::SIGNATURE_CONFIG))
        .collect();
    truncated(found, "Notation signatures", signatures.len());
    let now = now();
    // OCSP responders and CRLs the signing chains name, fetched as the
    // server would (vouch::revocation).
    let revocation = vouch::revocation::Checker::new();
    for m in signatures.into_iter().take(MAX_READ) {
        let Some(d) = m["digest"].as_str() else { continue };
        let Some(doc) = manifest(reg, repo, d)? else { continue };
        let layer = &doc["layers"][0];
        let (Some(blob), Some(vouch::notation::JWS | vouch::notation::COSE)) =
            (layer["digest"].as_str(), layer["mediaType"].as_str())
        else {
            found
                .notes
                .push(format!("Notation signature {d}: not a JWS or COSE envelope"));
            continue;
        };
        if doc["subject"]["digest"].as_str() != Some(digest.as_str()) {
            continue;
        }
        let bytes = reg.get(&format!("/v2/{repo}/blobs/{blob}"))?;
        check_digest(blob, &bytes).map_err(|e| format!("{repo}@{blob}: {e}"))?;
        let parsed = vouch::notation::parse(&bytes);
        for (fingerprint, t) in &trust {
            let verified = match &parsed {
                Ok(env) => vouch::notation::verify_parsed(env, target, t, now, &revocation),
                Err(e) => Err(e.clone()),
            };
            match verified {
                Ok(v) => {
                    found.signers.insert(fingerprint.clone());
                    for logged in v.logged {
                        found
                            .notes
                            .push(format!("Notation signature {d} counts for {}, though {logged}", t.name));
                    }
                }
                Err(e) => found
                    .notes
                    .push(format!("Notation signature {d} under {}: {e}", t.name)),
            }
        }
    }
    Ok(())
}

fn manifest(reg: &Registry, repo: &str, reference: &str) -> Result<Option<serde_json::Value>> {
    Ok(reg
        .get_if_exists(&format!("/v2/{repo}/manifests/{reference}"), ACCEPT)?
        .map(|b| serde_json::from_slice(&b))
        .transpose()?)
}

/// Now, in seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
