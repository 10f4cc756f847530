//! The registry client of the commands that talk to a registry (`vouch
//! sign`, `vouch verify`): image references, how to reach the registry
//! (plain HTTP or HTTPS, a private CA, credentials), and errors that say
//! what to do about them.

use base64::Engine as _;
use clap::Args;
use std::path::PathBuf;
use vouch::registry::digest::sha256_of;
use vouch::registry::names::{parse_digest, RepoName};
use vouch_ledger::entry::Digest;

pub(crate) type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// How to reach the registry.
#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Use plain HTTP (the default for a loopback registry, unless
    /// --ca-cert is given); HTTPS otherwise.
    #[arg(long)]
    plain_http: bool,
    /// Credentials for a registry with a users file.
    #[arg(long, value_name = "USER:PASSWORD", env = "VOUCH_CREDS")]
    creds: Option<String>,
    /// The CA certificate(s), PEM, that the registry's TLS certificate
    /// chains to (a private CA). Implies HTTPS, loopback included.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

/// `<registry>/<repository>[:tag|@digest]`, parsed.
pub(crate) struct ImageRef {
    pub(crate) registry: String,
    pub(crate) repo: RepoName,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<Digest>,
}

pub(crate) fn parse_reference(text: &str) -> Result<ImageRef> {
    let (registry, rest) = text
        .split_once('/')
        .ok_or("expected <registry>/<repository>[:tag|@digest], e.g. 127.0.0.1:5000/team/app:v1")?;
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

/// A registry, over HTTP(S).
pub(crate) struct Registry {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

/// What went wrong talking to the registry, and what to do about it.
fn explain(what: &str, e: ureq::Error) -> String {
    let certificate = e.to_string().contains("certificate");
    let hint = match &e {
        _ if certificate => {
            "TLS failed: if the registry's certificate comes from a private CA, give --ca-cert FILE; if it serves plain HTTP, pass --plain-http"
        }
        ureq::Error::StatusCode(401) => {
            "the registry wants credentials: pass --creds USER:PASSWORD (or set VOUCH_CREDS)"
        }
        ureq::Error::StatusCode(403) => "denied: these credentials may not do this here (spec/access.md)",
        ureq::Error::StatusCode(404) => "not found: check the repository and the tag or digest",
        ureq::Error::StatusCode(429) => "the registry is busy or throttling this client: retry shortly",
        ureq::Error::Protocol(_) => {
            "the registry did not answer in plain HTTP: if it serves HTTPS, drop --plain-http (and give --ca-cert FILE for a private CA)"
        }
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
            "TLS failed: if the registry's certificate comes from a private CA, give --ca-cert FILE; if it serves plain HTTP, pass --plain-http"
        }
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            "could not reach the registry: check the address and that it is running"
        }
        _ => "",
    };
    if hint.is_empty() {
        format!("{what}: {e}")
    } else {
        format!("{what}: {e}: {hint}")
    }
}

impl Registry {
    /// A client for the image's registry: plain HTTP for a loopback host
    /// (unless a CA is given) or when asked, HTTPS otherwise; Basic
    /// credentials if given.
    pub(crate) fn connect(image: &ImageRef, how: &RegistryArgs) -> Result<Registry> {
        let host = image
            .registry
            .rsplit_once(':')
            .map_or(image.registry.as_str(), |(h, _)| h);
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        let https = !how.plain_http && (how.ca_cert.is_some() || !loopback);
        let mut config = ureq::Agent::config_builder().http_status_as_error(true);
        if let Some(path) = &how.ca_cert {
            let pem = std::fs::read(path).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!("--ca-cert {}: no PEM certificate in it", path.display()).into());
            }
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build();
            config = config.tls_config(tls);
        }
        Ok(Registry {
            base: format!("{}://{}", if https { "https" } else { "http" }, image.registry),
            auth: how
                .creds
                .as_ref()
                .map(|c| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c))),
            agent: config.build().into(),
        })
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
                    .call()
                    .map_err(|e| explain(&format!("HEAD {}{path}", self.base), e))?;
                let status = resp.status().as_u16();
                if status == 401 {
                    return Err(explain(&format!("HEAD {}{path}", self.base), ureq::Error::StatusCode(401)).into());
                }
                let d = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .filter(|_| status == 200 || status == 403)
                    .ok_or_else(|| {
                        format!(
                            "HEAD {}{path}: http status {status}, no Docker-Content-Digest: is {}:{tag} pushed?",
                            self.base, image.repo
                        )
                    })?;
                Ok(parse_digest(d)?)
            }
            (None, None) => Err(format!("{}: give a tag (:v1) or a digest (@sha256:...)", image.repo).into()),
        }
    }

    /// The media type and size of the manifest `digest` in `repo`: from a
    /// HEAD, whose answer for a quarantined manifest (403) names them in
    /// `Vouch-Manifest-Media-Type` and `Vouch-Manifest-Size`.
    pub(crate) fn describe(&self, repo: &RepoName, digest: &Digest) -> Result<(String, u64)> {
        let path = format!("/v2/{repo}/manifests/{digest}");
        let resp = self
            .request("HEAD", &path)
            .header("Accept", ACCEPT)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .map_err(|e| explain(&format!("HEAD {}{path}", self.base), e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let (media_type, size) = match status {
            200 => (header("content-type"), header("content-length")),
            403 => (header("vouch-manifest-media-type"), header("vouch-manifest-size")),
            _ => (None, None),
        };
        match (media_type, size.and_then(|s| s.parse().ok())) {
            (Some(m), Some(n)) => Ok((m.to_owned(), n)),
            _ if status == 401 => Err(explain(&format!("HEAD {}{path}", self.base), ureq::Error::StatusCode(401)).into()),
            _ => Err(format!(
                "HEAD {}{path}: http status {status}, without the manifest's media type and size: is {repo}@{digest} pushed?",
                self.base
            )
            .into()),
        }
    }

    /// GET a path; the body (at most 16 MiB).
    pub(crate) fn get(&self, path: &str) -> Result<Vec<u8>> {
        let mut resp = self
            .request("GET", path)
            .call()
            .map_err(|e| explain(&format!("GET {}{path}", self.base), e))?;
        Ok(resp.body_mut().with_config().limit(16 << 20).read_to_vec()?)
    }

    /// GET a path; the body, or `None` if the registry says 404.
    pub(crate) fn get_if_exists(&self, path: &str, accept: &str) -> Result<Option<Vec<u8>>> {
        match self.request("GET", path).header("Accept", accept).call() {
            Ok(mut resp) => Ok(Some(resp.body_mut().with_config().limit(16 << 20).read_to_vec()?)),
            Err(ureq::Error::StatusCode(404)) => Ok(None),
            Err(e) => Err(explain(&format!("GET {}{path}", self.base), e).into()),
        }
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

    /// PUT or POST a body.
    pub(crate) fn send(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Result<()> {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        };
        r = r.header("Content-Type", content_type);
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        r.send(body).map_err(|e| explain(&format!("{method} {url}"), e))?;
        Ok(())
    }

    /// Pushes a blob (monolithic upload); its digest.
    pub(crate) fn push_blob(&self, repo: &RepoName, bytes: &[u8]) -> Result<Digest> {
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
