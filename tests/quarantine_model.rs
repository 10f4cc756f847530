//! A model-based test of the quarantine invariant (spec/threat-model.md,
//! "The invariant: what a reader may see"). Random sequences of pushes,
//! copies of the same bytes into other repositories, tags (cosign-looking
//! ones too), cross-repository mounts, signatures (by the trusted key, by
//! an untrusted one, made for another repository; under the `.sig` tag or
//! not), disguises (runnable images with a `subject`, bundle-looking
//! artifacts, fake `.sig`/`.att` manifests made of quarantined blobs),
//! deletions and re-evaluations go through the real router of a registry
//! that countersigns, as `vouch serve` does by default.
//!
//! After every step, every manifest and blob digest the test ever made is
//! fetched anonymously in every repository (and every tag it pushed), and
//! what is served (`GET` 200) must be allowed by the test's own model,
//! which never looks at the server's answers about admission. In R:
//!
//! - an image (a manifest that is not a signature by structure) is
//!   admitted once a signature manifest stored in R, well formed by the
//!   rule of `evidence.rs`, carries the trusted key's signature of a payload
//!   naming it and `registry/R`; it stays allowed while stored in R (vouch
//!   keeps a decision until a re-evaluation, and its countersignature
//!   copies the publisher's signature layer into its own `.sig` manifest);
//! - a signature manifest (any key) is allowed while its subject, an
//!   image, is stored in R;
//! - blobs: the OCI empty blob; an admitted image's config and layers; and,
//!   unless a quarantined (stored, not admitted) image in R references them,
//!   the blobs of allowed signatures and the simple signing payloads naming
//!   an image stored in R (vouch's own `.sig` manifests carry those).
//!
//! Each case ends as an attacker would, deleting every quarantined image,
//! so that nothing quarantined protects a blob any more; then liveness: an
//! image stored in R with a trusted signature for R there, untouched by
//! any deletion, is served with its blobs and signatures.
//! `PROPTEST_CASES` runs more cases than the 48.

mod inproc;

use axum::http::StatusCode;
use base64::Engine as _;
use inproc::*;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::SigningKey;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const REPOS: [&str; 3] = ["team/app", "other/app", "dev/app"];
const PLAIN_TAGS: [&str; 3] = ["latest", "v1", "v2"];
const EMPTY_BLOB: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const ADMISSION_BUNDLE: &str = "application/vnd.dev.vouch.admission-bundle.v1+json";
/// Seeds of the policy's trusted key, of a key it does not trust, and of
/// vouch's own admission key.
const SEEDS: [u8; 3] = [7, 9, 3];

/// A manifest made of an image's blobs, claiming to be something else.
#[derive(Debug, Clone, Copy)]
enum Disguise {
    /// A runnable image with a `subject` (and a Sigstore `artifactType`).
    Runnable { bundle_type: bool },
    /// The empty config and the layer relabelled as a Sigstore bundle.
    Bundle,
    /// The empty config and the layer relabelled as vouch's admission bundle.
    AdmissionBundle,
    /// The layer relabelled as a DSSE envelope, under the `.att` tag.
    Attestation,
    /// The layer relabelled as a simple signing payload, under the `.sig` tag.
    SignatureLayer,
    /// A real trusted signature with the image's config, under the `.sig` tag.
    SignatureConfig,
}

/// Who signs: the trusted key or not, for the repository the signature
/// is pushed to, or for another one (`registry/<that one>`).
#[derive(Debug, Clone, Copy)]
enum Signer {
    Trusted,
    Untrusted,
    TrustedFor(usize),
}

/// Where a signature is pushed: under its image's `.sig` tag, by digest,
/// or under the tag `signature`.
#[derive(Debug, Clone, Copy)]
enum SigAt {
    CosignTag,
    Digest,
    Tag,
}

/// A choice among what the model knows when a step runs (modulo their
/// number, so it shrinks towards the first).
type Pick = usize;

/// One step, as publisher or attacker (in open mode, both are anonymous).
/// The first field is the repository, an index into [`REPOS`].
#[derive(Debug, Clone)]
enum Op {
    /// Pushes image number `.1` (its own config and layer) under a plain tag.
    Push(usize, u8, usize),
    /// Pushes a known manifest with its blobs, by digest: the same bytes again.
    Copy(usize, Pick),
    /// Pushes a known manifest under a plain tag (0 to 2), or the cosign
    /// `.sig` (3), `.att` (4) or bare (5) tag of a known image.
    Tag(usize, Pick, usize, Pick),
    /// `POST /v2/<.0>/blobs/uploads/?mount=<blob>&from=<.1>`.
    Mount(usize, usize, Pick),
    /// Signs an image; pushes the signature manifest and its blobs.
    Sign(usize, Pick, Signer, SigAt),
    /// A disguise of an image's blobs (`.2`, not uploaded: an attacker names
    /// what is there) about an image (`.3`).
    Disguise(usize, Disguise, Pick, Pick),
    DeleteManifest(usize, Pick),
    /// Deletes every manifest the model holds quarantined in R: what an
    /// attacker cleaning up after itself does, in open mode.
    Purge(usize),
    DeleteTag(usize, Pick),
    DeleteBlob(usize, Pick),
    /// `POST /admin/reevaluate?all=true` (in-process calls are loopback).
    Reevaluate,
}

/// What a manifest is by its structure.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Not evidence: decided by the policy (an image, or a disguise).
    Image,
    /// A well-formed cosign signature of `subject`.
    Signature {
        subject: String,
        trusted: bool,
        reference: String,
    },
}

#[derive(Debug, Clone)]
struct Manifest {
    digest: String,
    bytes: Vec<u8>,
    /// Its config, then its one layer.
    blobs: [String; 2],
    kind: Kind,
}

/// What the test made, where the pushes and deletions say it is stored,
/// and what the invariant allows there.
#[derive(Debug, Default)]
struct Model {
    blobs: BTreeMap<String, Vec<u8>>,
    /// Simple signing payloads: the image and the reference each names.
    payloads: BTreeMap<String, (String, String)>,
    manifests: Vec<Manifest>,
    /// (repository, manifest digest).
    stored: BTreeSet<(usize, String)>,
    /// Images admitted in a repository at some step: allowed while stored.
    admitted_once: BTreeSet<(usize, String)>,
    /// (repository, digest) that a deletion may have affected.
    touched: BTreeSet<(usize, String)>,
    tags: BTreeSet<(usize, String)>,
}

impl Model {
    fn blob(&mut self, bytes: Vec<u8>) -> String {
        let d = sha256(&bytes);
        self.blobs.insert(d.clone(), bytes);
        d
    }

    fn size(&self, digest: &str) -> usize {
        self.blobs.get(digest).map_or(0, Vec::len)
    }

    fn manifest(&self, digest: &str) -> Option<&Manifest> {
        self.manifests.iter().find(|m| m.digest == digest)
    }

    fn is_stored(&self, r: usize, digest: &str) -> bool {
        self.stored.contains(&(r, digest.to_owned()))
    }

    fn is_image(&self, r: usize, digest: &str) -> bool {
        self.is_stored(r, digest) && self.manifest(digest).is_some_and(|m| m.kind == Kind::Image)
    }

    /// Whether a signature stored in R by the trusted key, for R, names it.
    fn signed(&self, r: usize, digest: &str) -> bool {
        let for_r = format!("{REGISTRY_NAME}/{}", REPOS[r]);
        self.manifests.iter().any(|s| {
            let names = |subject: &String, reference: &String| subject == digest && *reference == for_r;
            self.is_stored(r, &s.digest)
                && matches!(&s.kind, Kind::Signature { subject, trusted: true, reference } if names(subject, reference))
        })
    }

    fn admitted(&self, r: usize, digest: &str) -> bool {
        self.is_image(r, digest) && (self.signed(r, digest) || self.admitted_once.contains(&(r, digest.to_owned())))
    }

    /// A signature stored in R whose subject is an image stored in R.
    fn evidence(&self, r: usize, m: &Manifest) -> bool {
        matches!(&m.kind, Kind::Signature { subject, .. } if self.is_stored(r, &m.digest) && self.is_image(r, subject))
    }

    fn remember_admissions(&mut self) {
        let now: Vec<(usize, String)> = (self.stored.iter())
            .filter(|(r, d)| self.is_image(*r, d) && self.signed(*r, d))
            .cloned()
            .collect();
        self.admitted_once.extend(now);
    }

    /// The manifests and blobs R may serve anonymously.
    fn allowed(&self, r: usize) -> (BTreeSet<&str>, BTreeSet<&str>) {
        let (mut manifests, mut blobs) = (BTreeSet::new(), BTreeSet::from([EMPTY_BLOB]));
        let (mut evidence, mut quarantined) = (BTreeSet::new(), BTreeSet::new());
        for m in self.manifests.iter().filter(|m| self.is_stored(r, &m.digest)) {
            let content = m.blobs.iter().map(String::as_str);
            if self.admitted(r, &m.digest) {
                manifests.insert(m.digest.as_str());
                blobs.extend(content);
            } else if self.evidence(r, m) {
                manifests.insert(m.digest.as_str());
                evidence.extend(content);
            } else if m.kind == Kind::Image {
                quarantined.extend(content);
            }
        }
        let payloads = self.payloads.iter().filter(|(_, (image, _))| self.is_image(r, image));
        evidence.extend(payloads.map(|(d, _)| d.as_str()));
        blobs.extend(evidence.difference(&quarantined));
        (manifests, blobs)
    }

    /// Manifest digests stored in R first, then every one known.
    fn candidates(&self, r: usize, images_only: bool) -> Vec<String> {
        let stored = self.manifests.iter().filter(|m| self.is_stored(r, &m.digest));
        let fits = |m: &&Manifest| !images_only || m.kind == Kind::Image;
        stored
            .chain(&self.manifests)
            .filter(fits)
            .map(|m| m.digest.clone())
            .collect()
    }

    /// Marks what deleting `digest` (a manifest or a blob) in R may affect:
    /// it, the manifests referencing it, and the images they or it sign.
    fn touch(&mut self, r: usize, digest: &str) {
        let mut hit = vec![digest.to_owned()];
        let referencing = |m: &&Manifest| m.digest == digest || m.blobs.iter().any(|b| b == digest);
        for m in self.manifests.iter().filter(referencing) {
            hit.push(m.digest.clone());
            if let Kind::Signature { subject, .. } = &m.kind {
                hit.push(subject.clone());
            }
        }
        hit.extend(self.payloads.get(digest).map(|(image, _)| image.clone()));
        self.touched.extend(hit.into_iter().map(|d| (r, d)));
    }
}

fn pick(i: &Pick, items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| items[i % items.len()].clone())
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("a P-256 key")
}

/// An image config listing one layer, as cosign writes a signature's.
fn listing(layer: &str) -> Vec<u8> {
    json!({ "rootfs": { "type": "layers", "diff_ids": [layer] } })
        .to_string()
        .into_bytes()
}

/// A layer descriptor, with cosign's signature annotation if any.
fn layer(media_type: &str, digest: &str, size: usize, signature: Option<&str>) -> Value {
    let mut d = json!({ "mediaType": media_type, "digest": digest, "size": size });
    if let Some(s) = signature {
        d["annotations"] = json!({ "dev.cosignproject.cosign/signature": s });
    }
    d
}

/// A registry trusting the first key of [`SEEDS`], countersigning with the
/// last, known by [`REGISTRY_NAME`], in open mode.
async fn countersigning_registry() -> Registry {
    let (policy, _) = key_policy(SEEDS[0], "");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut state = state_in(dir.path());
    let admission = vouch::admission::Admission::load(policy, &state.ledger, &state.meta)
        .await
        .expect("the policy loads")
        .with_countersigner(vouch::countersign::Countersigner::new(key(SEEDS[2])))
        .with_registry_names(&[REGISTRY_NAME.to_owned()]);
    state.gate = Arc::new(admission);
    let state = Arc::new(state);
    let router = vouch::registry::app(state.clone());
    Registry { dir, state, router }
}

/// The registry under test, the model, and a log of the steps as run.
struct World {
    reg: Registry,
    model: Model,
    log: Vec<String>,
}

impl World {
    async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> Resp {
        call(&self.reg.router, method, path, &[], body).await
    }

    /// Sends a bodiless request and logs it; returns the status.
    async fn logged(&mut self, method: &str, path: &str) -> StatusCode {
        let resp = self.call(method, path, vec![]).await;
        if resp.status == StatusCode::ACCEPTED && path.contains("mount=") {
            self.call("DELETE", resp.header("location"), vec![]).await;
        }
        self.log.push(format!("{method} {path} -> {}", resp.status.as_u16()));
        resp.status
    }

    /// Uploads a manifest's blobs into R, but those in `except` (what an
    /// attacker only names); the empty blob always.
    async fn upload(&self, r: usize, m: &Manifest, except: &[String]) {
        for d in m.blobs.iter().filter(|d| *d == EMPTY_BLOB || !except.contains(d)) {
            let path = format!("/v2/{}/blobs/uploads/?digest={d}", REPOS[r]);
            self.call("POST", &path, self.model.blobs[d].clone()).await;
        }
    }

    /// Pushes a known manifest to R under `reference`; the model stores it if created.
    async fn put(&mut self, r: usize, reference: &str, m: &Manifest, what: &str) {
        let resp = put_manifest(&self.reg.router, REPOS[r], reference, OCI, &m.bytes, None).await;
        if resp.status == StatusCode::CREATED {
            self.model.stored.insert((r, m.digest.clone()));
            if !reference.contains(':') {
                self.model.tags.insert((r, reference.to_owned()));
            }
        }
        let (repo, status) = (REPOS[r], resp.status.as_u16());
        self.log.push(format!(
            "{what}: PUT {repo}:{reference} ({}) -> {status}",
            short(&m.digest)
        ));
    }

    async fn delete_manifest(&mut self, r: usize, d: String) {
        if self.logged("DELETE", &format!("/v2/{}/manifests/{d}", REPOS[r])).await == StatusCode::ACCEPTED {
            self.model.stored.remove(&(r, d.clone()));
        }
        self.model.touch(r, &d);
    }

    async fn apply(&mut self, op: &Op) {
        let m = &self.model;
        let known = |r, p, images| pick(p, &m.candidates(r, images)).and_then(|d| m.manifest(&d).cloned());
        let blob = |p| pick(p, &m.blobs.keys().cloned().collect::<Vec<_>>());
        match op {
            Op::Push(r, content, tag) => self.push_image(*r, *content, PLAIN_TAGS[*tag]).await,
            Op::Copy(r, p) => {
                let Some(m) = known(*r, p, false) else { return };
                self.upload(*r, &m, &[]).await;
                self.put(*r, &m.digest, &m, "copy with its blobs").await;
            }
            Op::Tag(r, p, tag, of) => {
                let (Some(m), Some(of)) = (known(*r, p, false), known(*r, of, true)) else {
                    return;
                };
                let hex = &of.digest[7..];
                let name = match tag {
                    0..=2 => PLAIN_TAGS[*tag].to_owned(),
                    3 => format!("sha256-{hex}.sig"),
                    4 => format!("sha256-{hex}.att"),
                    _ => format!("sha256-{hex}"),
                };
                self.put(*r, &name, &m, "tag").await;
            }
            Op::Mount(to, from, p) => {
                let Some(d) = blob(p) else { return };
                let (to, from) = (REPOS[*to], REPOS[*from]);
                self.logged("POST", &format!("/v2/{to}/blobs/uploads/?mount={d}&from={from}"))
                    .await;
            }
            Op::Sign(r, p, signer, at) => {
                let Some(image) = known(*r, p, true) else { return };
                self.sign(*r, &image.digest, *signer, *at).await;
            }
            Op::Disguise(r, kind, base, subject) => {
                // Of one image's blobs, about another.
                let Some(b) = known(*r, base, true) else { return };
                let others: Vec<String> = m.candidates(*r, true).into_iter().filter(|d| *d != b.digest).collect();
                let Some(s) = pick(subject, &others).and_then(|d| m.manifest(&d).cloned()) else {
                    return;
                };
                self.disguise(*r, *kind, &b, &s).await;
            }
            Op::DeleteManifest(r, p) => {
                let Some(m) = known(*r, p, false) else { return };
                self.delete_manifest(*r, m.digest).await;
            }
            Op::Purge(r) => {
                let digests = m.manifests.iter().map(|q| q.digest.clone());
                let doomed: Vec<String> = digests.filter(|d| m.is_image(*r, d) && !m.admitted(*r, d)).collect();
                for d in doomed {
                    self.delete_manifest(*r, d).await;
                }
            }
            Op::DeleteTag(r, p) => {
                let tags: Vec<String> = m.tags.iter().filter(|(t, _)| t == r).map(|(_, t)| t.clone()).collect();
                let Some(t) = pick(p, &tags) else { return };
                self.logged("DELETE", &format!("/v2/{}/manifests/{t}", REPOS[*r])).await;
            }
            Op::DeleteBlob(r, p) => {
                let Some(d) = blob(p) else { return };
                self.logged("DELETE", &format!("/v2/{}/blobs/{d}", REPOS[*r])).await;
                self.model.touch(*r, &d);
            }
            Op::Reevaluate => {
                self.logged("POST", "/admin/reevaluate?all=true").await;
            }
        }
    }

    /// An OCI manifest of a config and one layer, learnt by the model: a
    /// signature if shaped as one (a simple signing layer, a config `{}` or
    /// listing the layer) over a payload, else decided as an image.
    fn compose(&mut self, (config_type, c): (&str, &str), desc: Value, extra: Value, trusted: bool) -> Manifest {
        let l = desc["digest"].as_str().unwrap_or_default().to_owned();
        let signature_shaped = desc["mediaType"] == SIMPLESIGNING && {
            let config: Value = serde_json::from_slice(&self.model.blobs[c]).unwrap_or_default();
            config == json!({}) || config["rootfs"]["diff_ids"] == json!([l])
        };
        let mut doc = json!({
            "schemaVersion": 2,
            "mediaType": OCI,
            "config": { "mediaType": config_type, "digest": c, "size": self.model.size(c) },
            "layers": [desc],
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            doc[k] = v.clone();
        }
        let kind = match self.model.payloads.get(&l).filter(|_| signature_shaped).cloned() {
            Some((subject, reference)) => Kind::Signature {
                subject,
                trusted,
                reference,
            },
            None => Kind::Image,
        };
        let bytes = serde_json::to_vec(&doc).expect("serialize a manifest");
        let (digest, blobs) = (sha256(&bytes), [c.to_owned(), l]);
        let m = Manifest {
            digest,
            bytes,
            blobs,
            kind,
        };
        if self.model.manifest(&m.digest).is_none() {
            self.model.manifests.push(m.clone());
        }
        m
    }

    /// Pushes image number `content` (its own config and layer) to R.
    async fn push_image(&mut self, r: usize, content: u8, tag: &str) {
        let l = self.model.blob(format!("layer {content} of an image").into_bytes());
        let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{content}}}"#);
        let c = self.model.blob(config.into_bytes());
        let desc = layer(TAR, &l, self.model.size(&l), None);
        let m = self.compose((IMAGE_CONFIG, &c), desc, json!({}), false);
        self.upload(r, &m, &[]).await;
        self.put(r, tag, &m, &format!("image {content}")).await;
    }

    /// A simple signing payload naming `image` and `reference`, and its
    /// signing layer's descriptor, by the trusted key or the untrusted one.
    fn payload(&mut self, image: &str, reference: &str, trusted: bool) -> (String, Value) {
        let digest = vouch_ledger::entry::Digest::parse(image).expect("a digest");
        let payload = vouch::signature::payload(reference, &digest);
        let sig: p256::ecdsa::Signature = key(SEEDS[usize::from(!trusted)]).sign(&payload);
        let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
        let p = self.model.blob(payload);
        let names = (image.to_owned(), reference.to_owned());
        self.model.payloads.insert(p.clone(), names);
        let desc = layer(SIMPLESIGNING, &p, self.model.size(&p), Some(&sig));
        (p, desc)
    }

    /// Signs `image` as cosign does, and pushes the signature to R.
    async fn sign(&mut self, r: usize, image: &str, signer: Signer, at: SigAt) {
        let (trusted, for_repo) = match signer {
            Signer::Trusted => (true, r),
            Signer::Untrusted => (false, r),
            Signer::TrustedFor(other) => (true, other),
        };
        let reference = format!("{REGISTRY_NAME}/{}", REPOS[for_repo]);
        let (p, desc) = self.payload(image, &reference, trusted);
        let c = self.model.blob(listing(&p));
        let m = self.compose((IMAGE_CONFIG, &c), desc, json!({}), trusted);
        self.upload(r, &m, &[]).await;
        let at = match at {
            SigAt::CosignTag => format!("sha256-{}.sig", &image[7..]),
            SigAt::Digest => m.digest.clone(),
            SigAt::Tag => "signature".to_owned(),
        };
        let what = format!("{signer:?} signature of {} for {reference}", short(image));
        self.put(r, &at, &m, &what).await;
    }

    /// Pushes a disguise of `base`'s config or layer about `subject`.
    async fn disguise(&mut self, r: usize, kind: Disguise, base: &Manifest, subject: &Manifest) {
        let [bc, bl] = &base.blobs;
        let size = self.model.size(bl);
        let relabelled = |t: &str, sig| layer(t, bl, size, sig);
        let referrer = |t: Option<&str>| {
            let d = json!({ "mediaType": OCI, "digest": subject.digest, "size": subject.bytes.len() });
            t.map_or(json!({ "subject": d }), |t| json!({ "subject": d, "artifactType": t }))
        };
        let cosign = |suffix| Some(format!("sha256-{}.{suffix}", &subject.digest[7..]));
        let (empty, none) = (self.model.blob(b"{}".to_vec()), json!({}));
        let (m, at) = match kind {
            Disguise::Runnable { bundle_type } => {
                let extra = referrer(bundle_type.then_some(SIGSTORE_BUNDLE));
                let desc = relabelled(TAR, None);
                (self.compose((IMAGE_CONFIG, bc), desc, extra, false), None)
            }
            Disguise::Bundle | Disguise::AdmissionBundle => {
                let t = [ADMISSION_BUNDLE, SIGSTORE_BUNDLE][usize::from(matches!(kind, Disguise::Bundle))];
                let (desc, extra) = (relabelled(t, None), referrer(Some(t)));
                (self.compose((EMPTY_CONFIG, &empty), desc, extra, false), None)
            }
            Disguise::Attestation => {
                let desc = relabelled(DSSE, None);
                (self.compose((IMAGE_CONFIG, &empty), desc, none, false), cosign("att"))
            }
            Disguise::SignatureLayer => {
                let (c, desc) = (self.model.blob(listing(bl)), relabelled(SIMPLESIGNING, Some("AAAA")));
                (self.compose((IMAGE_CONFIG, &c), desc, none, false), cosign("sig"))
            }
            Disguise::SignatureConfig => {
                let reference = format!("{REGISTRY_NAME}/{}", REPOS[r]);
                let (_, desc) = self.payload(&subject.digest, &reference, true);
                (self.compose((IMAGE_CONFIG, bc), desc, none, true), cosign("sig"))
            }
        };
        self.upload(r, &m, &base.blobs).await;
        let what = format!("{kind:?} of {} about {}", short(&base.digest), short(&subject.digest));
        self.put(r, at.as_deref().unwrap_or(&m.digest), &m, &what).await;
    }

    async fn served(&self, path: &str) -> bool {
        anonymous_gets(&self.reg.router, path).await
    }

    fn failure(&self, what: String) -> TestCaseError {
        TestCaseError::fail(format!("{what}\nsteps:\n  {}", self.log.join("\n  ")))
    }

    /// Safety: nothing the model forbids is served, by digest or by tag.
    async fn check_served(&self) -> Result<(), TestCaseError> {
        for (r, repo) in REPOS.iter().enumerate() {
            let (manifests, blobs) = self.model.allowed(r);
            for m in &self.model.manifests {
                if !manifests.contains(m.digest.as_str())
                    && self.served(&format!("/v2/{repo}/manifests/{}", m.digest)).await
                {
                    return Err(self.failure(format!("{repo}@{} ({:?}) is served", m.digest, m.kind)));
                }
            }
            for (d, bytes) in self.model.blobs.iter().filter(|(d, _)| !blobs.contains(d.as_str())) {
                if self.served(&format!("/v2/{repo}/blobs/{d}")).await {
                    let text = String::from_utf8_lossy(bytes);
                    return Err(self.failure(format!("blob {repo}@{d} ({text:?}) is served")));
                }
            }
            for (_, tag) in self.model.tags.iter().filter(|(t, _)| *t == r) {
                let resp = self.call("GET", &format!("/v2/{repo}/manifests/{tag}"), vec![]).await;
                let d = sha256(&resp.body);
                let known = self.model.manifest(&d).is_some();
                if resp.status == StatusCode::OK && known && !manifests.contains(d.as_str()) {
                    return Err(self.failure(format!("{repo}:{tag} serves {d}")));
                }
            }
        }
        Ok(())
    }

    /// Liveness: an image signed for R by the trusted key and untouched by
    /// deletions is served, with its blobs and signatures.
    async fn check_live(&self) -> Result<(), TestCaseError> {
        let m = &self.model;
        for (r, d) in m.stored.iter().filter(|(r, d)| m.is_image(*r, d) && m.signed(*r, d)) {
            let Some(image) = m.manifest(d).filter(|_| !m.touched.contains(&(*r, d.clone()))) else {
                continue;
            };
            let about = |s: &&Manifest| matches!(&s.kind, Kind::Signature { subject, .. } if subject == d);
            let sigs = m.manifests.iter().filter(|s| m.evidence(*r, s)).filter(about);
            let paths = std::iter::once(format!("manifests/{d}"))
                .chain(image.blobs.iter().map(|b| format!("blobs/{b}")))
                .chain(sigs.map(|s| format!("manifests/{}", s.digest)));
            for path in paths {
                let path = format!("/v2/{}/{path}", REPOS[*r]);
                if !self.served(&path).await {
                    return Err(self.failure(format!("{path} of an admitted image is not served")));
                }
            }
        }
        Ok(())
    }
}

/// Runs one case: the safety check after every step, liveness at the end.
fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime.block_on(async {
        let reg = countersigning_registry().await;
        let mut world = World {
            reg,
            model: Model::default(),
            log: Vec::new(),
        };
        let cleanup = (0..REPOS.len()).map(Op::Purge);
        for op in ops.iter().cloned().chain(cleanup) {
            world.apply(&op).await;
            world.model.remember_admissions();
            world.check_served().await?;
        }
        world.check_live().await
    })
}

fn repo() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 2 => Just(1), 1 => Just(2)]
}

fn op() -> impl Strategy<Value = Op> {
    let disguise = prop_oneof![
        1 => any::<bool>().prop_map(|bundle_type| Disguise::Runnable { bundle_type }),
        1 => Just(Disguise::Bundle),
        1 => Just(Disguise::AdmissionBundle),
        1 => Just(Disguise::Attestation),
        3 => Just(Disguise::SignatureLayer),
        2 => Just(Disguise::SignatureConfig),
    ];
    let signer = prop_oneof![
        6 => Just(Signer::Trusted),
        3 => Just(Signer::Untrusted),
        1 => (0..REPOS.len()).prop_map(Signer::TrustedFor),
    ];
    let at = prop_oneof![Just(SigAt::CosignTag), Just(SigAt::Digest), Just(SigAt::Tag)];
    let pick = any::<Pick>;
    prop_oneof![
        5 => (repo(), 0u8..3, 0..PLAIN_TAGS.len()).prop_map(|(r, content, tag)| Op::Push(r, content, tag)),
        2 => (repo(), pick()).prop_map(|(r, m)| Op::Copy(r, m)),
        2 => (repo(), pick(), 0usize..6, pick()).prop_map(|(r, m, tag, of)| Op::Tag(r, m, tag, of)),
        1 => (repo(), repo(), pick()).prop_map(|(to, from, b)| Op::Mount(to, from, b)),
        5 => (repo(), pick(), signer, at).prop_map(|(r, image, signer, at)| Op::Sign(r, image, signer, at)),
        4 => (repo(), disguise, pick(), pick()).prop_map(|(r, kind, base, s)| Op::Disguise(r, kind, base, s)),
        2 => (repo(), pick()).prop_map(|(r, m)| Op::DeleteManifest(r, m)),
        2 => repo().prop_map(Op::Purge),
        1 => (repo(), pick()).prop_map(|(r, t)| Op::DeleteTag(r, t)),
        1 => (repo(), pick()).prop_map(|(r, b)| Op::DeleteBlob(r, b)),
        1 => Just(Op::Reevaluate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48),
        failure_persistence: None,
        max_shrink_time: 15_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn anonymous_readers_get_only_what_the_model_allows(ops in prop::collection::vec(op(), 1..=25)) {
        run(&ops)?;
    }
}

/// Found by the model. vouch's countersignature builds on whatever the
/// image's `.sig` tag points to (a quarantined image's manifest, or a
/// disguise naming a quarantined layer) and records what it writes as
/// evidence without looking at its structure: once nothing quarantined
/// references those layers, they are served as blobs of that evidence.
#[test]
fn a_countersignature_does_not_carry_quarantined_layers() {
    let quarantined_manifest = [
        Op::Push(0, 0, 0),                              // A
        Op::Push(0, 1, 1),                              // B, never signed
        Op::Tag(0, 1, 3, 0),                            // B's manifest under A's .sig tag
        Op::Sign(0, 0, Signer::Trusted, SigAt::Digest), // A admitted, and countersigned
        Op::Purge(0),                                   // B deleted
    ];
    // The attacker never had the layer's bytes, only its digest and size.
    let unreferenced_layer = [
        Op::Push(0, 0, 0),                               // Q
        Op::DeleteManifest(0, 0),                        // by its publisher; its blobs stay
        Op::Push(0, 1, 1),                               // I
        Op::Disguise(0, Disguise::SignatureLayer, 1, 0), // Q's layer under I's .sig tag
        Op::Sign(0, 0, Signer::Trusted, SigAt::Digest),  // I admitted, and countersigned
        Op::Purge(0),                                    // the disguise deleted
    ];
    for ops in [&quarantined_manifest[..], &unreferenced_layer] {
        if let Err(e) = run(ops) {
            panic!("{e}");
        }
    }
}
