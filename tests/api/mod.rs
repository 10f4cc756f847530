//! Helpers of the in-process registry API tests (`registry_*.rs`,
//! `admission_api.rs`): a registry over a real data directory, requests
//! through the real router.
#![allow(dead_code)]

#[path = "../common/postgres.rs"]
mod postgres;

pub use axum::body::Body;
pub use axum::http::{Request, StatusCode};
pub use axum::Router;
use http_body_util::BodyExt as _;
pub use std::sync::Arc;
pub use tower::ServiceExt as _;
use vouch::data_dir::DataDir;
pub use vouch::registry::{app, blobs::BlobStore, AppState, Limits};

pub struct Registry {
    pub _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub router: Router,
}

pub fn open_at(path: &std::path::Path) -> Router {
    open_with(path, None)
}

pub fn open_with(path: &std::path::Path, users: Option<vouch::registry::access::Access>) -> Router {
    app(Arc::new(state_at(path, users)))
}

pub fn state_at(path: &std::path::Path, users: Option<vouch::registry::access::Access>) -> AppState {
    state_with(path, users, 1 << 20)
}

/// A state whose blobs may be as large as `max_blob_bytes`.
pub fn state_with(
    path: &std::path::Path,
    users: Option<vouch::registry::access::Access>,
    max_blob_bytes: u64,
) -> AppState {
    let dir = DataDir::new(path);
    let opened = dir.open_ledger("api.test/vouch").unwrap();
    let (meta, ledger) = postgres::test_stores(dir.root(), &opened);
    let limits = Limits {
        max_manifest_bytes: 4 << 20,
        max_blob_bytes,
        max_requests_per_client: 2,
        min_gc_grace: 0,
        ..Limits::default()
    };
    let mut state = AppState::new(BlobStore::files(dir.root()).unwrap(), meta, ledger, limits);
    if let Some(access) = users {
        state.access = access;
    }
    state
}

/// Users from `file`, each may read, push and delete; `anonymous_pull` as given.
pub fn users_access(file: &std::path::Path, anonymous_pull: bool) -> vouch::registry::access::Access {
    vouch::registry::access::Access::with_users(
        vouch::registry::auth::Users::load(file).unwrap(),
        vouch::registry::access::Grants::default_for_users(),
        anonymous_pull,
    )
}

pub fn registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    Registry {
        router: open_at(&path),
        path,
        _dir: dir,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
    pub fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }
}

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

pub fn sha256(b: &[u8]) -> String {
    vouch::registry::digest::sha256_of(b).to_string()
}

pub async fn push_blob(r: &Router, repo: &str, content: &[u8]) -> String {
    let d = sha256(content);
    let resp = call(
        r,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        content.to_vec(),
    )
    .await;
    assert_eq!(
        resp.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    d
}

pub fn image_manifest(config: &str, config_len: usize, layer: &str, layer_len: usize, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_len}}}]{extra}}}"#
    )
    .into_bytes()
}

pub const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

pub async fn admission_app(dir: &std::path::Path, policy: vouch::policy::Policy) -> (Arc<AppState>, Router, String) {
    admission_app_with(dir, policy, 1 << 20).await
}

/// [`admission_app`] with blobs as large as `max_blob_bytes`.
pub async fn admission_app_with(
    dir: &std::path::Path,
    policy: vouch::policy::Policy,
    max_blob_bytes: u64,
) -> (Arc<AppState>, Router, String) {
    use base64::Engine as _;
    let users_file = dir.join("users");
    vouch::registry::auth::add_user(&users_file, "pusher", "pw").unwrap();
    vouch::registry::auth::add_user(&users_file, "admin", "pw").unwrap();
    let grants = vouch::registry::access::Grants::parse(
        "version = 1\n[[grant]]\nuser = \"pusher\"\nrepositories = \"**\"\nactions = [\"read\", \"push\", \"delete\"]\n\
         [[grant]]\nuser = \"admin\"\nrepositories = \"**\"\nactions = [\"admin\"]\n",
        std::path::Path::new("access.toml"),
    )
    .unwrap();
    let access = vouch::registry::access::Access::with_users(
        vouch::registry::auth::Users::load(&users_file).unwrap(),
        grants,
        true,
    );
    let mut state = state_with(&dir.join("data"), Some(access), max_blob_bytes);
    state.gate = Arc::new(
        vouch::admission::Admission::load(policy, &state.ledger, &state.meta)
            .await
            .unwrap()
            .with_registry_names(&["registry".to_owned()]),
    );
    let state = Arc::new(state);
    let r = app(state.clone());
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("pusher:pw")
    );
    (state, r, auth)
}

/// An Authorization value for basic auth.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Pushes a blob to `repo` with `auth`; returns its digest.
pub async fn push_blob_as(r: &Router, repo: &str, bytes: &[u8], auth: &str) -> String {
    let d = sha256(bytes);
    let uri = format!("/v2/{repo}/blobs/uploads/?digest={d}");
    let resp = call(r, "POST", &uri, &[("authorization", auth)], bytes.to_vec()).await;
    assert_eq!(resp.status, StatusCode::CREATED);
    d
}

/// A policy trusting one P-256 key, and that key.
pub fn key_policy(seed: u8) -> (vouch::policy::Policy, p256::ecdsa::SigningKey) {
    use p256::pkcs8::EncodePublicKey as _;
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let text = format!(
        "version = 1\nname = \"key {seed}\"\n[keys]\nk = \"\"\"{pem}\"\"\"\n[[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"k\"] }}\n"
    );
    let policy = vouch::policy::Policy::parse(&text, std::path::Path::new("p.toml")).unwrap();
    (policy, key)
}

/// Pushes a cosign tag-scheme signature of `image` by `key` (with `auth`).
pub async fn push_signature(r: &Router, repo: &str, image: &str, key: &p256::ecdsa::SigningKey, auth: &str) -> Resp {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    let payload = vouch::signature::payload(
        &format!("registry/{repo}"),
        &vouch_ledger::entry::Digest::parse(image).unwrap(),
    );
    let sig: p256::ecdsa::Signature = key.sign(&payload);
    let (p, c) = (
        push_blob_as(r, repo, &payload, auth).await,
        push_blob_as(r, repo, b"{}", auth).await,
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":2}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{p}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{}"}}}}]}}"#,
        payload.len(),
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    );
    let uri = format!("/v2/{repo}/manifests/sha256-{}.sig", &image[7..]);
    let hdrs = [("authorization", auth), ("content-type", OCI)];
    call(r, "PUT", &uri, &hdrs, manifest.into_bytes()).await
}
