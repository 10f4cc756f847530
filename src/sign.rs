//! `vouch keygen` and `vouch sign`: cosign-compatible signatures in the tag
//! scheme (`src/signature.rs` describes the format), so the quickstart needs
//! no other tool.

use base64::Engine as _;
use clap::Args;
use std::path::PathBuf;
use vouch::registry::digest::sha256_of;
use vouch::registry::names::{parse_digest, RepoName};
use vouch::signature::{payload, signature_layer, signature_tag, PublicKey, SignatureManifest, OCI_MANIFEST};
use vouch_ledger::entry::Digest;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

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
    /// Use plain HTTP (the default for loopback registries).
    #[arg(long)]
    plain_http: bool,
    /// Credentials for a registry with a users file.
    #[arg(long, value_name = "USER:PASSWORD", env = "VOUCH_CREDS")]
    creds: Option<String>,
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

pub(crate) struct ImageRef {
    pub(crate) registry: String,
    pub(crate) repo: RepoName,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<Digest>,
}

pub(crate) fn parse_reference(text: &str) -> Result<ImageRef> {
    let (registry, rest) = text
        .split_once('/')
        .ok_or("expected <registry>/<repository>[:tag|@digest]")?;
    let (path, digest) = match rest.split_once('@') {
        Some((p, d)) => (p, Some(parse_digest(d)?)),
        None => (rest, None),
    };
    let (repo, tag) = match path.rsplit_once(':') {
        Some((r, t)) if digest.is_none() => (r, Some(t.to_owned())),
        _ => (path, None),
    };
    Ok(ImageRef {
        registry: registry.to_owned(),
        repo: RepoName::parse(repo)?,
        tag,
        digest,
    })
}

pub(crate) struct Registry {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

impl Registry {
    /// A client for the image's registry: plain HTTP for loopback hosts or
    /// when asked, HTTPS otherwise; Basic credentials if given.
    pub(crate) fn connect(image: &ImageRef, plain_http: bool, creds: Option<String>) -> Registry {
        let host = image.registry.split(':').next().unwrap_or("");
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        let scheme = if plain_http || loopback { "http" } else { "https" };
        let config = ureq::Agent::config_builder().http_status_as_error(true).build();
        Registry {
            base: format!("{scheme}://{}", image.registry),
            auth: creds.map(|c| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c))),
            agent: config.into(),
        }
    }

    /// The image's digest: given, or its tag resolved with HEAD.
    pub(crate) fn resolve(&self, image: &ImageRef) -> Result<Digest> {
        match (&image.digest, &image.tag) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(tag)) => {
                // vouch answers a HEAD of a manifest the caller may not read
                // (quarantined) with 403 DENIED and its digest: enough to
                // sign it, nothing of its content.
                let path = format!("/v2/{}/manifests/{tag}", image.repo);
                let resp = self
                    .request("HEAD", &path)
                    .header("Accept", ACCEPT)
                    .config()
                    .http_status_as_error(false)
                    .build()
                    .call()?;
                let status = resp.status().as_u16();
                let d = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .filter(|_| status == 200 || status == 403)
                    .ok_or_else(|| {
                        format!(
                            "HEAD {}{path}: http status {status}, no Docker-Content-Digest",
                            self.base
                        )
                    })?;
                Ok(parse_digest(d)?)
            }
            (None, None) => Err(format!("{}: give a tag (:v1) or a digest (@sha256:...)", image.repo).into()),
        }
    }

    /// GET a path; the body.
    pub(crate) fn get(&self, path: &str) -> Result<Vec<u8>> {
        let mut resp = self
            .request("GET", path)
            .call()
            .map_err(|e| format!("GET {}{path}: {e}", self.base))?;
        Ok(resp.body_mut().with_config().limit(16 << 20).read_to_vec()?)
    }

    fn request(&self, method: &str, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "HEAD" => self.agent.head(&url),
            _ => self.agent.get(&url),
        };
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        r
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        };
        r = r.header("Content-Type", content_type);
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        Ok(r.send(body).map_err(|e| format!("{method} {url}: {e}"))?)
    }

    fn push_blob(&self, repo: &RepoName, bytes: &[u8]) -> Result<Digest> {
        let d = sha256_of(bytes);
        self.send(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            "application/octet-stream",
            bytes,
        )?;
        Ok(d)
    }
}

pub fn sign(args: SignArgs) -> Result<()> {
    use p256::ecdsa::signature::Signer as _;
    let key = vouch::signature::read_private_key(&args.key)?;
    let image = parse_reference(&args.reference)?;
    let reg = Registry::connect(&image, args.plain_http, args.creds);
    let repo = &image.repo;
    let digest = reg.resolve(&image)?;
    let body = payload(&format!("{}/{repo}", image.registry), &digest);
    let signature: p256::ecdsa::Signature = key.sign(&body);
    let payload_digest = reg.push_blob(repo, &body)?;

    // Append to the existing .sig manifest, if any (the signer reads it first).
    let tag = signature_tag(&digest);
    let mut layers: Vec<serde_json::Value> = match reg
        .request("GET", &format!("/v2/{repo}/manifests/{tag}"))
        .header("Accept", OCI_MANIFEST)
        .call()
    {
        Ok(mut resp) => {
            let existing: serde_json::Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?)?;
            existing["layers"].as_array().cloned().unwrap_or_default()
        }
        Err(ureq::Error::StatusCode(404)) => Vec::new(),
        Err(e) => return Err(format!("reading {tag}: {e}").into()),
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
