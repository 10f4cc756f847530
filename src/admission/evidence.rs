//! Evidence, recognised by its structure (spec/threat-model.md, rule (b)):
//! never by the tag it was pushed under, nor by an `artifactType` alone.
//!
//! A manifest is evidence about the manifest `D` when, and only when:
//!
//! - **cosign signature**: an image manifest of 1 to [`MAX_EVIDENCE_LAYERS`]
//!   layers, each of media type `application/vnd.dev.cosign.simplesigning.v1+json`
//!   with a signature annotation, at most [`MAX_SIGNATURE_PAYLOAD`] bytes, and
//!   a simple signing payload naming `D` (all the same `D`); its config is
//!   `{}` or an image config whose `rootfs.diff_ids` are exactly the layers'
//!   digests, as cosign and containers/image write it;
//! - **cosign attestation**: the same shape with DSSE envelope layers
//!   (`application/vnd.dsse.envelope.v1+json`, at most [`MAX_ENVELOPE`]),
//!   each an in-toto Statement naming `D` among its subjects;
//! - **Sigstore bundle**: an artifact with `subject` `D`, an `artifactType`
//!   and one layer of a Sigstore bundle media type (at most [`MAX_BUNDLE`]),
//!   the OCI empty config, and a bundle whose DSSE Statement names `D`, or
//!   whose message signature's `messageDigest` is `D`'s SHA-256;
//! - **admission bundle**: an artifact with `subject` `D`, vouch's bundle
//!   artifact type, the empty config, and one layer that is an admission
//!   bundle (`spec/bundle.md`) about `D` in this repository;
//! - **Notation signature**: an image manifest with `subject` `D`, config
//!   media type `application/vnd.cncf.notary.signature` and config `{}`,
//!   and one `application/jose+json` or `application/cose` layer (at most
//!   [`crate::notation::MAX_ENVELOPE`]) that is a JWS or COSE envelope whose
//!   payload's `targetArtifact` is `D` (Notary Project signature
//!   specification, "Storage"; notation sets no top-level `artifactType`).
//!
//! Together an evidence manifest's blobs are at most [`MAX_EVIDENCE_BYTES`].
//! Anything else is not evidence, whatever it claims: it is decided by the
//! policy like any image (and a runnable image never as an attachment).

use crate::registry::manifest::References;
use crate::registry::meta::EvidenceKind;
use crate::signature::{SIGNATURE_ANNOTATION, SIMPLESIGNING};
use vouch_ledger::entry::Digest;

/// Most layers an evidence manifest may have.
pub const MAX_EVIDENCE_LAYERS: usize = 64;
/// Largest simple signing payload (one is ~250 bytes; cosign's with
/// annotations a few KiB).
pub const MAX_SIGNATURE_PAYLOAD: u64 = 64 << 10;
/// Largest DSSE envelope layer (an SBOM attestation can be megabytes).
pub const MAX_ENVELOPE: u64 = 8 << 20;
/// Largest Sigstore or admission bundle (one with a certificate chain is ~5 KiB).
pub const MAX_BUNDLE: u64 = 1 << 20;
/// Largest evidence config blob.
pub const MAX_EVIDENCE_CONFIG: u64 = 64 << 10;
/// Most bytes of blobs one evidence manifest may name, all together.
pub const MAX_EVIDENCE_BYTES: u64 = 16 << 20;

/// The OCI empty descriptor's media type, and its content.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The content of the OCI empty blob.
pub const EMPTY_JSON: &[u8] = b"{}";
/// Media type of a DSSE envelope layer.
pub const DSSE: &str = crate::attestation::DSSE_ENVELOPE;
/// The artifact type (and layer media type) of vouch's admission bundle.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.vouch.admission-bundle.v1+json";

/// What a manifest's shape says it could be, and the blobs to read to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The kind it would be.
    pub kind: EvidenceKind,
    /// Its config blob and size.
    pub config: (Digest, u64),
    /// Its layers' blobs and sizes.
    pub layers: Vec<(Digest, u64)>,
    /// Its `subject` field, if any.
    pub subject: Option<Digest>,
}

impl Candidate {
    /// Every blob to read, with the most bytes to read of it.
    pub fn blobs(&self) -> Vec<(Digest, u64)> {
        std::iter::once(self.config.clone())
            .chain(self.layers.clone())
            .collect()
    }
}

/// The candidate a manifest's JSON could be, from its shape alone (media
/// types, counts, declared sizes, which the registry checked against the
/// stored blobs); `None` if it cannot be evidence.
pub fn candidate(media_type: &str, doc: &serde_json::Value, refs: &References) -> Option<Candidate> {
    use crate::registry::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return None;
    }
    let layers = doc["layers"].as_array()?;
    if !refs.foreign.is_empty()
        || layers.is_empty()
        || layers.len() > MAX_EVIDENCE_LAYERS
        || refs.blobs.len() != layers.len() + 1
    {
        return None;
    }
    let config = (refs.blobs[0].clone(), refs.blob_sizes[0]);
    let blobs: Vec<(Digest, u64)> = refs.blobs[1..]
        .iter()
        .cloned()
        .zip(refs.blob_sizes[1..].iter().copied())
        .collect();
    let types: Vec<&str> = layers.iter().map(|l| l["mediaType"].as_str().unwrap_or("")).collect();
    let artifact_type = doc["artifactType"].as_str().unwrap_or("");
    let config_type = doc["config"]["mediaType"].as_str().unwrap_or("");
    let all = |t: &str| types.iter().all(|x| *x == t);
    let (kind, max) = if all(SIMPLESIGNING) {
        let annotated = layers
            .iter()
            .all(|l| l["annotations"][SIGNATURE_ANNOTATION].is_string());
        if !annotated {
            return None;
        }
        (EvidenceKind::CosignSignature, MAX_SIGNATURE_PAYLOAD)
    } else if all(DSSE) {
        (EvidenceKind::CosignAttestation, MAX_ENVELOPE)
    } else if layers.len() == 1
        && config_type == EMPTY_MEDIA_TYPE
        && artifact_type.starts_with(crate::sigstore_bundle::ARTIFACT_TYPE_PREFIX)
        && types[0].starts_with(crate::sigstore_bundle::ARTIFACT_TYPE_PREFIX)
        && refs.subject.is_some()
    {
        (EvidenceKind::SigstoreBundle, MAX_BUNDLE)
    } else if layers.len() == 1
        && config_type == EMPTY_MEDIA_TYPE
        && artifact_type == BUNDLE_ARTIFACT_TYPE
        && types[0] == BUNDLE_ARTIFACT_TYPE
        && refs.subject.is_some()
    {
        (EvidenceKind::AdmissionBundle, MAX_BUNDLE)
    } else if layers.len() == 1
        && config_type == crate::notation::SIGNATURE_CONFIG
        && (types[0] == crate::notation::JWS || types[0] == crate::notation::COSE)
        && refs.subject.is_some()
    {
        (EvidenceKind::NotationSignature, crate::notation::MAX_ENVELOPE)
    } else {
        return None;
    };
    let total = refs.declared_total()?;
    let within = config.1 <= MAX_EVIDENCE_CONFIG && blobs.iter().all(|(_, n)| *n <= max) && total <= MAX_EVIDENCE_BYTES;
    within.then(|| Candidate {
        kind,
        config,
        layers: blobs,
        subject: refs.subject.clone(),
    })
}

/// Whether `config` is an acceptable config for signature and attestation
/// manifests: `{}`, or an image config listing exactly `layers` as its
/// `rootfs.diff_ids` (what cosign and containers/image write).
fn evidence_config(config: &[u8], layers: &[(Digest, u64)]) -> bool {
    if config == EMPTY_JSON {
        return true;
    }
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(config) else {
        return false;
    };
    let listed: Option<Vec<&str>> = doc["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|d| d.as_str()).collect());
    let expected: Vec<&str> = layers.iter().map(|(d, _)| d.as_str()).collect();
    listed.is_some_and(|l| l == expected)
}

/// The image a simple signing payload signs.
pub fn payload_image(payload: &[u8]) -> Option<Digest> {
    let doc: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let critical = &doc["critical"];
    if critical["type"].as_str() != Some(crate::signature::PAYLOAD_TYPE) {
        return None;
    }
    Digest::parse(critical["image"]["docker-manifest-digest"].as_str()?)
}

/// The one digest every set in `sets` names, preferring `subject` (the
/// manifest's own field) and then `hint` (what its tag names) when several
/// do; `None` if none or too many without a way to choose.
fn common(sets: &[Vec<Digest>], subject: Option<&Digest>, hint: Option<&Digest>) -> Option<Digest> {
    let (first, rest) = sets.split_first()?;
    let shared: Vec<&Digest> = first.iter().filter(|d| rest.iter().all(|s| s.contains(d))).collect();
    match (subject, hint) {
        (Some(s), _) => shared.contains(&s).then(|| s.clone()),
        (None, Some(h)) if shared.contains(&h) => Some(h.clone()),
        _ if shared.len() == 1 => Some(shared[0].clone()),
        _ => None,
    }
}

/// Decides, from the bytes of the candidate's blobs (`blob`: `None` if
/// missing or over its bound), whether it is evidence, and about which
/// manifest. `repo` is the repository it was pushed to; `hint` the digest
/// its tag names, if its tag is a cosign `<alg>-<hex>.sig`/`.att` tag (used
/// only to choose among subjects the content itself names).
pub fn recognise<'a>(
    c: &Candidate,
    repo: &str,
    hint: Option<&Digest>,
    blob: impl Fn(&Digest) -> Option<&'a [u8]>,
) -> Option<Digest> {
    recognise_with(c, repo, hint, blob, |_| None)
}

/// [`recognise`], given the subjects of `.att` layers already opened
/// (`opened`: [`crate::attestation::Opened::subjects`] by layer digest), so
/// that a Statement of megabytes is not read once to recognise it and again
/// to verify it. A layer `opened` does not settle is read from its bytes.
pub fn recognise_with<'a>(
    c: &Candidate,
    repo: &str,
    hint: Option<&Digest>,
    blob: impl Fn(&Digest) -> Option<&'a [u8]>,
    opened: impl Fn(&Digest) -> Option<Vec<Digest>>,
) -> Option<Digest> {
    let config = blob(&c.config.0)?;
    match c.kind {
        EvidenceKind::CosignSignature | EvidenceKind::CosignAttestation => {
            if !evidence_config(config, &c.layers) {
                return None;
            }
        }
        EvidenceKind::SigstoreBundle | EvidenceKind::AdmissionBundle | EvidenceKind::NotationSignature => {
            if config != EMPTY_JSON {
                return None;
            }
        }
    }
    let mut named: Vec<Vec<Digest>> = Vec::new();
    for (d, _) in &c.layers {
        let bytes = blob(d)?;
        let subjects = match c.kind {
            EvidenceKind::CosignSignature => vec![payload_image(bytes)?],
            EvidenceKind::CosignAttestation => match opened(d) {
                Some(subjects) => subjects,
                None => crate::attestation::statement_subjects(&crate::attestation::envelope_statement(bytes)?)?,
            },
            EvidenceKind::SigstoreBundle => {
                let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
                let is_bundle = doc["mediaType"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(crate::sigstore_bundle::ARTIFACT_TYPE_PREFIX));
                if !is_bundle || !doc["verificationMaterial"].is_object() {
                    return None;
                }
                let message = &doc["messageSignature"]["messageDigest"];
                if message["algorithm"].as_str() == Some("SHA2_256") {
                    // A message signature over the manifest names it by digest.
                    let digest =
                        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, message["digest"].as_str()?)
                            .ok()?;
                    vec![Digest::parse(&format!("sha256:{}", hex::encode(digest)))?]
                } else {
                    let envelope = serde_json::to_vec(&doc["dsseEnvelope"]).ok()?;
                    crate::attestation::statement_subjects(&crate::attestation::envelope_statement(&envelope)?)?
                }
            }
            EvidenceKind::AdmissionBundle => {
                let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
                let ok = doc["version"].as_u64() == Some(1)
                    && doc["repository"].as_str() == Some(repo)
                    && doc["decision"]["entry"].is_string()
                    && doc["policy"]["entry"].is_string();
                if !ok {
                    return None;
                }
                vec![Digest::parse(doc["digest"].as_str()?)?]
            }
            EvidenceKind::NotationSignature => {
                let target = crate::notation::parse(bytes).ok()?.target().ok()?;
                vec![Digest::parse(&target.digest)?]
            }
        };
        named.push(subjects);
    }
    common(&named, c.subject.as_ref(), hint)
}

/// The digest a cosign tag names: `sha256-<hex>.sig` or `.att` → `sha256:<hex>`.
pub fn tag_hint(tag: &str) -> Option<Digest> {
    let (alg, rest) = tag.split_once('-')?;
    let hex = rest.strip_suffix(".sig").or_else(|| rest.strip_suffix(".att"))?;
    Digest::parse(&format!("{alg}:{hex}"))
}

/// Whether a manifest is a runnable image: an image config and at least
/// one layer. A runnable image is never admitted as an attachment.
pub fn runnable(refs: &References) -> bool {
    const IMAGE_CONFIGS: [&str; 2] = [
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    ];
    refs.config_media_type
        .as_deref()
        .is_some_and(|t| IMAGE_CONFIGS.contains(&t))
        && refs.blobs.len() + refs.foreign.len() > 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::manifest::validate;
    use crate::registry::manifest::OCI_MANIFEST;

    fn sha(b: &[u8]) -> Digest {
        crate::registry::digest::sha256_of(b)
    }

    fn manifest(config_type: &str, config: &[u8], layers: &[(&str, &[u8])], extra: &str) -> (Vec<u8>, References) {
        let layers_json: Vec<String> = layers
            .iter()
            .map(|(t, b)| {
                format!(
                    r#"{{"mediaType":"{t}","digest":"{}","size":{},"annotations":{{"{SIGNATURE_ANNOTATION}":"c2ln"}}}}"#,
                    sha(b),
                    b.len()
                )
            })
            .collect();
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{config_type}","digest":"{}","size":{}}},"layers":[{}]{extra}}}"#,
            sha(config),
            config.len(),
            layers_json.join(",")
        );
        let refs = validate(OCI_MANIFEST, m.as_bytes()).unwrap();
        (m.into_bytes(), refs)
    }

    fn classify(m: &[u8], refs: &References, blobs: &[&[u8]]) -> Option<Digest> {
        let doc: serde_json::Value = serde_json::from_slice(m).unwrap();
        let c = candidate(OCI_MANIFEST, &doc, refs)?;
        let map: std::collections::HashMap<Digest, &[u8]> = blobs.iter().map(|b| (sha(b), *b)).collect();
        recognise(&c, "team/app", None, |d| map.get(d).copied())
    }

    #[test]
    fn signatures_are_recognised_by_structure_and_disguises_are_not() {
        let image = sha(b"the image");
        let payload = crate::signature::payload("r/team/app", &image);
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#, sha(&payload));
        let (m, refs) = manifest(
            "application/vnd.oci.image.config.v1+json",
            config.as_bytes(),
            &[(SIMPLESIGNING, &payload)],
            "",
        );
        assert_eq!(classify(&m, &refs, &[config.as_bytes(), &payload]), Some(image.clone()));
        // A real layer relabelled as a signature: its bytes are no payload.
        let tar = b"\x1f\x8b gzip'd tar of a quarantined image";
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#, sha(tar));
        let (m, refs) = manifest(
            "application/vnd.oci.image.config.v1+json",
            config.as_bytes(),
            &[(SIMPLESIGNING, tar)],
            "",
        );
        assert_eq!(classify(&m, &refs, &[config.as_bytes(), tar]), None);
        // An image's config as a signature's config: its diff_ids do not
        // list the signature's layers.
        let image_config = br#"{"architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#;
        let (m, refs) = manifest(
            "application/vnd.oci.image.config.v1+json",
            image_config,
            &[(SIMPLESIGNING, &payload)],
            "",
        );
        assert_eq!(classify(&m, &refs, &[image_config, &payload]), None);
        // A runnable image claiming a Sigstore artifactType and a subject.
        let (m, refs) = manifest(
            "application/vnd.oci.image.config.v1+json",
            b"{}",
            &[("application/vnd.oci.image.layer.v1.tar+gzip", tar)],
            &format!(
                r#","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{image}","size":1}}"#
            ),
        );
        assert_eq!(classify(&m, &refs, &[b"{}", tar]), None);
        assert!(runnable(&refs));
    }

    #[test]
    fn bundles_need_the_empty_config_and_a_statement_about_their_subject() {
        let image = sha(b"the image");
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicateType":"p","predicate":{{}}}}"#,
            image.encoded()
        );
        let bundle = format!(
            r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{}},"dsseEnvelope":{{"payloadType":"application/vnd.in-toto+json","payload":"{}","signatures":[{{"sig":"AA=="}}]}}}}"#,
            b64(statement.as_bytes())
        );
        let bt = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let subject = |d: &Digest| {
            format!(r#","artifactType":"{bt}","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1}}"#)
        };
        let (m, refs) = manifest(EMPTY_MEDIA_TYPE, b"{}", &[(bt, bundle.as_bytes())], &subject(&image));
        assert_eq!(classify(&m, &refs, &[b"{}", bundle.as_bytes()]), Some(image.clone()));
        let other = sha(b"another image");
        let (m, refs) = manifest(EMPTY_MEDIA_TYPE, b"{}", &[(bt, bundle.as_bytes())], &subject(&other));
        assert_eq!(
            classify(&m, &refs, &[b"{}", bundle.as_bytes()]),
            None,
            "names another image"
        );
        let layer = b"quarantined layer bytes";
        let (m, refs) = manifest(EMPTY_MEDIA_TYPE, b"{}", &[(bt, layer)], &subject(&image));
        assert_eq!(classify(&m, &refs, &[b"{}", layer]), None, "not a bundle");
    }

    #[test]
    fn cosign_tags_name_digests() {
        let d = sha(b"x");
        assert_eq!(tag_hint(&format!("sha256-{}.sig", d.encoded())), Some(d.clone()));
        assert_eq!(tag_hint(&format!("sha256-{}.att", d.encoded())), Some(d));
        assert_eq!(tag_hint("v1"), None);
    }
}
