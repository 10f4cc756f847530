//! The registry in-process (axum `oneshot`, the real router over a real
//! data directory: RocksDB and blob files), for tests that drive the HTTP
//! API without a socket. Shared by the in-process test binaries.
#![allow(dead_code)]

#[path = "../common/postgres.rs"]
mod postgres;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use std::sync::Arc;
use tower::ServiceExt as _;
use vouch::data_dir::DataDir;
use vouch::registry::{app, blobs::BlobStore, AppState, Limits};

/// Media type of an OCI image manifest.
pub const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The registry name the admission registries are known by: signatures
/// name `registry/<repo>`.
pub const REGISTRY_NAME: &str = "registry";

/// A response, read in full.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// A header's value, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The error code of an error envelope, or "".
    pub fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }

    /// The body as text (for messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request through the router. Requests carry no peer address,
/// so they count as coming from loopback.
pub async fn call(r: &Router, method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = r.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// As [`call`], from a client at `addr` (for loopback and per-client rules).
pub async fn call_from(
    r: &Router,
    addr: std::net::SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    req.extensions_mut().insert(axum::extract::ConnectInfo(addr));
    let resp = r.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(b: &[u8]) -> String {
    vouch::registry::digest::sha256_of(b).to_string()
}

/// An `Authorization: Basic` value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A registry: its data directory (kept alive), state and router.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub state: Arc<AppState>,
    pub router: Router,
}

/// A registry's state over a new data directory under `dir`, with small
/// limits (4 MiB manifests, 1 MiB blobs) and no garbage collection floor.
pub fn state_in(dir: &std::path::Path) -> AppState {
    let data = DataDir::new(dir.join("data"));
    let opened = data.open_ledger("inproc.test/vouch").unwrap();
    let (meta, ledger) = postgres::test_stores(data.root(), &opened);
    let limits = Limits {
        max_manifest_bytes: 4 << 20,
        max_blob_bytes: 1 << 20,
        min_gc_grace: 0,
        ..Limits::default()
    };
    AppState::new(BlobStore::files(data.root()).unwrap(), meta, ledger, limits)
}

/// Users "pusher" (read, push, delete everywhere), "reader" (read
/// everywhere) and "admin" (admin everywhere), each with password "pw".
pub fn users_access(dir: &std::path::Path, anonymous_pull: bool) -> vouch::registry::access::Access {
    let users = dir.join("users");
    for u in ["pusher", "reader", "admin"] {
        vouch::registry::auth::add_user_with_cost(&users, u, "pw", 4).unwrap();
    }
    let grants = vouch::registry::access::Grants::parse(
        "version = 1\n\
         [[grant]]\nuser = \"pusher\"\nrepositories = \"**\"\nactions = [\"read\", \"push\", \"delete\"]\n\
         [[grant]]\nuser = \"reader\"\nrepositories = \"**\"\nactions = [\"read\"]\n\
         [[grant]]\nuser = \"admin\"\nrepositories = \"**\"\nactions = [\"admin\"]\n",
        std::path::Path::new("access.toml"),
    )
    .unwrap();
    vouch::registry::access::Access::with_users(
        vouch::registry::auth::Users::load(&users).unwrap(),
        grants,
        anonymous_pull,
    )
}

/// A plain registry: open mode, no admission (everything stored is served).
pub fn plain_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_in(dir.path()));
    let router = app(state.clone());
    Registry { dir, state, router }
}

/// A registry under `policy`, known by [`REGISTRY_NAME`]: in open mode
/// (`users` false), or with the users of [`users_access`].
pub async fn admission_registry(policy: vouch::policy::Policy, users: bool) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state_in(dir.path());
    if users {
        state.access = users_access(dir.path(), true);
    }
    let admission = vouch::admission::Admission::load(policy, &state.ledger, &state.meta)
        .await
        .unwrap()
        .with_registry_names(&[REGISTRY_NAME.to_owned()]);
    state.gate = Arc::new(admission);
    let state = Arc::new(state);
    let router = app(state.clone());
    Registry { dir, state, router }
}

/// A policy trusting one P-256 key (from `seed`) on every repository, and
/// that key; `extra` is appended to the policy text (top-level keys go
/// before the rule, so give them via `top`).
pub fn key_policy(seed: u8, top: &str) -> (vouch::policy::Policy, p256::ecdsa::SigningKey) {
    use p256::pkcs8::EncodePublicKey as _;
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let text = format!(
        "version = 1\nname = \"key {seed}\"\n{top}\n[keys]\nk = \"\"\"{pem}\"\"\"\n[[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"k\"] }}\n"
    );
    let policy = vouch::policy::Policy::parse(&text, std::path::Path::new("p.toml")).unwrap();
    (policy, key)
}

/// Pushes a blob to `repo` (monolithic); returns its digest. Panics unless 201.
pub async fn push_blob(r: &Router, repo: &str, bytes: &[u8], auth: Option<&str>) -> String {
    let d = sha256(bytes);
    let uri = format!("/v2/{repo}/blobs/uploads/?digest={d}");
    let h: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
    let resp = call(r, "POST", &uri, &h, bytes.to_vec()).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    d
}

/// A one-layer image manifest; `extra` is spliced in before the closing brace.
pub fn image_manifest(config: &str, config_len: usize, layer: &str, layer_len: usize, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_len}}}]{extra}}}"#
    )
    .into_bytes()
}

/// Pushes a manifest; returns the response.
pub async fn put_manifest(
    r: &Router,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
    auth: Option<&str>,
) -> Resp {
    let mut h = vec![("content-type", media_type)];
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    call(
        r,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &h,
        bytes.to_vec(),
    )
    .await
}

/// Pushes a one-layer image with distinct `content` to `repo:tag`; returns
/// (manifest digest, config digest, layer digest).
pub async fn push_image(
    r: &Router,
    repo: &str,
    tag: &str,
    content: &[u8],
    auth: Option<&str>,
) -> (String, String, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","n":"{}"}}"#, sha256(content));
    let c = push_blob(r, repo, config.as_bytes(), auth).await;
    let l = push_blob(r, repo, content, auth).await;
    let m = image_manifest(&c, config.len(), &l, content.len(), "");
    let resp = put_manifest(r, repo, tag, OCI, &m, auth).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text());
    (sha256(&m), c, l)
}

/// A cosign tag-scheme signature manifest of `image` by `key`, made for
/// `reference` (`<registry>/<repo>`), its blobs pushed to `repo`; returns
/// the manifest's bytes (not pushed).
pub async fn signature_manifest(
    r: &Router,
    repo: &str,
    image: &str,
    reference: &str,
    key: &p256::ecdsa::SigningKey,
    auth: Option<&str>,
) -> Vec<u8> {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    let payload = vouch::signature::payload(reference, &vouch_ledger::entry::Digest::parse(image).unwrap());
    let sig: p256::ecdsa::Signature = key.sign(&payload);
    let p = push_blob(r, repo, &payload, auth).await;
    let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{p}"]}}}}"#);
    let c = push_blob(r, repo, config.as_bytes(), auth).await;
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{p}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{}"}}}}]}}"#,
        config.len(),
        payload.len(),
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    )
    .into_bytes()
}

/// Signs `image` in `repo` by `key` (made for `registry/<repo>`) and pushes
/// the signature under the image's `.sig` tag; returns the response.
pub async fn push_signature(
    r: &Router,
    repo: &str,
    image: &str,
    key: &p256::ecdsa::SigningKey,
    auth: Option<&str>,
) -> Resp {
    let reference = format!("{REGISTRY_NAME}/{repo}");
    let m = signature_manifest(r, repo, image, &reference, key, auth).await;
    let tag = format!("sha256-{}.sig", &image[7..]);
    put_manifest(r, repo, &tag, OCI, &m, auth).await
}

/// The entries of the registry's ledger, decoded.
pub fn ledger_entries(state: &AppState) -> Vec<vouch_ledger::entry::Entry> {
    (0..state.ledger.size())
        .map(|i| vouch_ledger::entry::Entry::decode(&state.ledger.entry(i).unwrap().unwrap()).unwrap())
        .collect()
}

/// Whether an anonymous reader gets the bytes at `path` (a `GET` answered 200).
pub async fn anonymous_gets(r: &Router, path: &str) -> bool {
    call(r, "GET", path, &[], vec![]).await.status == StatusCode::OK
}
