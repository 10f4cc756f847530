//! The distribution API in-process (axum `oneshot`), over a real data
//! directory: RocksDB and blob files. Every endpoint's success path, and for
//! bad input the spec's error code and that nothing was stored.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use std::sync::Arc;
use tower::ServiceExt as _;
use vouch::data_dir::DataDir;
use vouch::registry::{app, blobs::BlobStore, meta::Meta, AppState, Limits};

struct Registry {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    router: Router,
}

fn open_at(path: &std::path::Path) -> Router {
    open_with(path, None)
}

fn open_with(path: &std::path::Path, users: Option<vouch::registry::access::Access>) -> Router {
    app(Arc::new(state_at(path, users)))
}

fn state_at(path: &std::path::Path, users: Option<vouch::registry::access::Access>) -> AppState {
    let dir = DataDir::new(path);
    let opened = dir.open_ledger("api.test/vouch").unwrap();
    let limits = Limits {
        max_manifest_bytes: 4 << 20,
        max_blob_bytes: 1 << 20,
        max_requests_per_client: 2,
        min_gc_grace: 0,
        ..Limits::default()
    };
    let mut state = AppState::new(
        BlobStore::open(dir.root()).unwrap(),
        Meta::new(opened.db.clone()),
        opened.ledger.clone(),
        limits,
    );
    if let Some(access) = users {
        state.access = access;
    }
    state
}

/// Users from `file`, each may read, push and delete; `anonymous_pull` as given.
fn users_access(file: &std::path::Path, anonymous_pull: bool) -> vouch::registry::access::Access {
    vouch::registry::access::Access::with_users(
        vouch::registry::auth::Users::load(file).unwrap(),
        vouch::registry::access::Grants::default_for_users(),
        anonymous_pull,
    )
}

fn registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    Registry {
        router: open_at(&path),
        path,
        _dir: dir,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }
}

async fn call(r: &Router, method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
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

fn sha256(b: &[u8]) -> String {
    vouch::registry::digest::sha256_of(b).to_string()
}

async fn push_blob(r: &Router, repo: &str, content: &[u8]) -> String {
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

fn image_manifest(config: &str, config_len: usize, layer: &str, layer_len: usize, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_len}}}]{extra}}}"#
    )
    .into_bytes()
}

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test]
async fn base_endpoint_answers_with_the_api_version() {
    let r = registry();
    let resp = call(&r.router, "GET", "/v2/", &[], vec![]).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("docker-distribution-api-version"), "registry/2.0");
    let resp = call(&r.router, "GET", "/v2/nope", &[], vec![]).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn monolithic_upload_then_get_head_and_ranges() {
    let r = registry();
    let content = b"0123456789".to_vec();
    let d = push_blob(&r.router, "team/app", &content).await;
    let get = call(&r.router, "GET", &format!("/v2/team/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!((get.status, get.body.as_slice()), (StatusCode::OK, &content[..]));
    assert_eq!(get.header("docker-content-digest"), d);
    let head = call(&r.router, "HEAD", &format!("/v2/team/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!((head.status, head.header("content-length")), (StatusCode::OK, "10"));
    assert!(head.body.is_empty());
    let part = call(
        &r.router,
        "GET",
        &format!("/v2/team/app/blobs/{d}"),
        &[("range", "bytes=2-4")],
        vec![],
    )
    .await;
    assert_eq!(
        (part.status, part.body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"234"[..])
    );
    assert_eq!(part.header("content-range"), "bytes 2-4/10");
    let bad = call(
        &r.router,
        "GET",
        &format!("/v2/team/app/blobs/{d}"),
        &[("range", "bytes=20-30")],
        vec![],
    )
    .await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // The blob is not in another repository until mounted or pushed there.
    let other = call(&r.router, "GET", &format!("/v2/other/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!(
        (other.status, other.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let mount = call(
        &r.router,
        "POST",
        &format!("/v2/other/app/blobs/uploads/?mount={d}&from=team/app"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(mount.status, StatusCode::CREATED);
    let other = call(&r.router, "GET", &format!("/v2/other/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!(other.body, content);
}

#[tokio::test]
async fn a_wrong_digest_is_rejected_and_leaves_nothing() {
    let r = registry();
    let wrong = sha256(b"something else");
    let resp = call(
        &r.router,
        "POST",
        &format!("/v2/team/app/blobs/uploads/?digest={wrong}"),
        &[],
        b"content".to_vec(),
    )
    .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let get = call(&r.router, "GET", &format!("/v2/team/app/blobs/{wrong}"), &[], vec![]).await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    assert_eq!(
        std::fs::read_dir(r.path.join("uploads")).unwrap().count(),
        0,
        "no upload left behind"
    );
    assert!(
        !r.path.join("blobs/sha256").exists() || std::fs::read_dir(r.path.join("blobs/sha256")).unwrap().count() == 0
    );
    let bad = call(
        &r.router,
        "POST",
        "/v2/team/app/blobs/uploads/?digest=sha256:nothex",
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
}

#[tokio::test]
async fn chunked_upload_with_range_checks_status_and_resume_after_restart() {
    let r = registry();
    let start = call(&r.router, "POST", "/v2/team/app/blobs/uploads/", &[], vec![]).await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let loc = start.header("location").to_owned();
    assert!(loc.starts_with("/v2/team/app/blobs/uploads/"));
    let p1 = call(&r.router, "PATCH", &loc, &[("content-range", "0-4")], b"hello".to_vec()).await;
    assert_eq!((p1.status, p1.header("range")), (StatusCode::ACCEPTED, "0-4"));
    // Out of order: 416 with the current range, nothing appended.
    let bad = call(&r.router, "PATCH", &loc, &[("content-range", "7-9")], b"xyz".to_vec()).await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
    );
    assert_eq!(bad.header("range"), "0-4");
    // Another repository cannot touch this session.
    let foreign = call(
        &r.router,
        "PATCH",
        &loc.replace("team/app", "team/other"),
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(foreign.code(), "BLOB_UPLOAD_UNKNOWN");

    // The session survives a restart of the registry.
    let path = r.path.clone();
    drop(r.router);
    let router = open_at(&path);
    let status = call(&router, "GET", &loc, &[], vec![]).await;
    assert_eq!((status.status, status.header("range")), (StatusCode::NO_CONTENT, "0-4"));
    let p2 = call(&router, "PATCH", &loc, &[("content-range", "5-10")], b" world".to_vec()).await;
    assert_eq!(p2.header("range"), "0-10");
    let d = sha256(b"hello world!");
    let done = call(&router, "PUT", &format!("{loc}?digest={d}"), &[], b"!".to_vec()).await;
    assert_eq!(done.status, StatusCode::CREATED);
    let get = call(&router, "GET", &format!("/v2/team/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!(get.body, b"hello world!");
    let gone = call(&router, "GET", &loc, &[], vec![]).await;
    assert_eq!(gone.code(), "BLOB_UPLOAD_UNKNOWN");

    // Cancel.
    let s = call(&router, "POST", "/v2/team/app/blobs/uploads/", &[], vec![]).await;
    let loc = s.header("location").to_owned();
    assert_eq!(
        call(&router, "DELETE", &loc, &[], vec![]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&router, "GET", &loc, &[], vec![]).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    drop(path);
}

#[tokio::test]
async fn manifests_by_tag_and_digest_with_validation() {
    let r = registry();
    let config = b"{}".to_vec();
    let layer = b"layer bytes".to_vec();
    let missing = sha256(b"never pushed");
    // A manifest whose blobs are missing is refused, and nothing is stored.
    let m = image_manifest(&missing, 5, &missing, 5, "");
    let resp = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/v1",
        &[("content-type", OCI)],
        m,
    )
    .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    assert_eq!(
        call(&r.router, "GET", "/v2/team/app/manifests/v1", &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );

    let (c, l) = (
        push_blob(&r.router, "team/app", &config).await,
        push_blob(&r.router, "team/app", &layer).await,
    );
    let m = image_manifest(&c, config.len(), &l, layer.len(), "");
    let md = sha256(&m);
    // Content-Type must match the manifest's mediaType; unknown types are refused.
    for ct in [
        "application/vnd.oci.image.index.v1+json",
        "application/octet-stream",
        "",
    ] {
        let resp = call(
            &r.router,
            "PUT",
            "/v2/team/app/manifests/v1",
            &[("content-type", ct)],
            m.clone(),
        )
        .await;
        assert_eq!(resp.code(), "MANIFEST_INVALID", "{ct}");
    }
    let bad_json = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/v1",
        &[("content-type", OCI)],
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(bad_json.code(), "MANIFEST_INVALID");
    let wrong = call(
        &r.router,
        "PUT",
        &format!("/v2/team/app/manifests/{}", sha256(b"x")),
        &[("content-type", OCI)],
        m.clone(),
    )
    .await;
    assert_eq!(wrong.code(), "DIGEST_INVALID");

    let put = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/v1",
        &[("content-type", OCI)],
        m.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.header("docker-content-digest"), md);
    for reference in ["v1", md.as_str()] {
        let get = call(
            &r.router,
            "GET",
            &format!("/v2/team/app/manifests/{reference}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(get.body, m, "exact bytes round-trip");
        assert_eq!(get.header("content-type"), OCI);
        assert_eq!(get.header("docker-content-digest"), md);
        assert_eq!(get.header("vouch-admission-state"), "pending");
    }
    let head = call(&r.router, "HEAD", "/v2/team/app/manifests/v1", &[], vec![]).await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (StatusCode::OK, m.len().to_string().as_str())
    );

    // An index over it, and an artifact whose subject does not exist yet.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{OCI}","digest":"{md}","size":{}}}]}}"#,
        m.len()
    );
    let put = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/multi",
        &[("content-type", "application/vnd.oci.image.index.v1+json")],
        index.into_bytes(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let future = sha256(b"a subject pushed later");
    let art = image_manifest(
        &c,
        config.len(),
        &l,
        layer.len(),
        &format!(
            r#","artifactType":"application/example","subject":{{"mediaType":"{OCI}","digest":"{future}","size":9}}"#
        ),
    );
    let put = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/art",
        &[("content-type", OCI)],
        art,
    )
    .await;
    assert_eq!(
        (put.status, put.header("oci-subject")),
        (StatusCode::CREATED, future.as_str())
    );

    // Delete by tag, then by digest.
    assert_eq!(
        call(&r.router, "DELETE", "/v2/team/app/manifests/v1", &[], vec![])
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&r.router, "GET", "/v2/team/app/manifests/v1", &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        call(&r.router, "GET", &format!("/v2/team/app/manifests/{md}"), &[], vec![])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &r.router,
            "DELETE",
            &format!("/v2/team/app/manifests/{md}"),
            &[],
            vec![]
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&r.router, "GET", &format!("/v2/team/app/manifests/{md}"), &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
}

#[tokio::test]
async fn oversized_manifests_get_413_and_4_mib_is_accepted() {
    let r = registry();
    let (c, l) = (
        push_blob(&r.router, "big/app", b"{}").await,
        push_blob(&r.router, "big/app", b"l").await,
    );
    let pad = |n: usize| format!(r#","annotations":{{"pad":"{}"}}"#, "x".repeat(n));
    let big = image_manifest(&c, 2, &l, 1, &pad((4 << 20) - 600));
    assert!(big.len() <= 4 << 20 && big.len() > (4 << 20) - 1000);
    let ok = call(
        &r.router,
        "PUT",
        "/v2/big/app/manifests/big",
        &[("content-type", OCI)],
        big,
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&ok.body));
    let huge = image_manifest(&c, 2, &l, 1, &pad(5 << 20));
    let resp = call(
        &r.router,
        "PUT",
        "/v2/big/app/manifests/huge",
        &[("content-type", OCI)],
        huge,
    )
    .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    assert_eq!(
        call(&r.router, "GET", "/v2/big/app/manifests/huge", &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
}

#[tokio::test]
async fn tags_list_paginates_with_link_headers() {
    let r = registry();
    assert_eq!(
        call(&r.router, "GET", "/v2/none/tags/list", &[], vec![]).await.code(),
        "NAME_UNKNOWN"
    );
    let (c, l) = (
        push_blob(&r.router, "t/app", b"{}").await,
        push_blob(&r.router, "t/app", b"l").await,
    );
    let m = image_manifest(&c, 2, &l, 1, "");
    for tag in ["e", "a", "c", "b", "d"] {
        call(
            &r.router,
            "PUT",
            &format!("/v2/t/app/manifests/{tag}"),
            &[("content-type", OCI)],
            m.clone(),
        )
        .await;
    }
    let all = call(&r.router, "GET", "/v2/t/app/tags/list", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["a", "b", "c", "d", "e"]));
    let page = call(&r.router, "GET", "/v2/t/app/tags/list?n=2", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(page.header("link"), "</v2/t/app/tags/list?n=2&last=b>; rel=\"next\"");
    let next = call(&r.router, "GET", "/v2/t/app/tags/list?n=2&last=d", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&next.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["e"]));
    assert_eq!(next.header("link"), "");
}

#[tokio::test]
async fn invalid_names_and_tags_are_refused_by_code() {
    let r = registry();
    for path in [
        "/v2/Team/app/tags/list",
        "/v2/a..b/tags/list",
        "/v2/a/../b/tags/list",
        "/v2/-a/blobs/uploads/",
    ] {
        let resp = call(
            &r.router,
            if path.ends_with('/') { "POST" } else { "GET" },
            path,
            &[],
            vec![],
        )
        .await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            "{path}"
        );
    }
    let resp = call(
        &r.router,
        "PUT",
        "/v2/a/manifests/-bad",
        &[("content-type", OCI)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(resp.code(), "MANIFEST_INVALID");
    let resp = call(&r.router, "PATCH", "/v2/a/blobs/uploads/../../etc", &[], vec![]).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    let resp = call(&r.router, "PUT", "/v2/a/blobs/uploads/", &[], vec![]).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
}

#[tokio::test]
async fn referrers_list_artifacts_by_subject_with_filters_and_annotations() {
    let r = registry();
    let (c, l) = (
        push_blob(&r.router, "ref/app", b"{}").await,
        push_blob(&r.router, "ref/app", b"l").await,
    );
    let image = image_manifest(&c, 2, &l, 1, "");
    let subject = sha256(&image);
    // Nothing refers to it yet (and it does not exist yet): an empty index.
    let empty = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.header("content-type"), "application/vnd.oci.image.index.v1+json");
    let v: serde_json::Value = serde_json::from_slice(&empty.body).unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));

    // Two artifacts arrive before their subject, one of each type.
    let sig = |kind: &str, note: &str| {
        image_manifest(
            &c,
            2,
            &l,
            1,
            &format!(
                r#","artifactType":"{kind}","subject":{{"mediaType":"{OCI}","digest":"{subject}","size":{}}},"annotations":{{"note":"{note}"}}"#,
                image.len()
            ),
        )
    };
    let (a, b) = (
        sig("application/vnd.example.sig", "first"),
        sig("application/vnd.example.sbom", "second"),
    );
    for m in [&a, &b] {
        let put = call(
            &r.router,
            "PUT",
            &format!("/v2/ref/app/manifests/{}", sha256(m)),
            &[("content-type", OCI)],
            m.clone(),
        )
        .await;
        assert_eq!(put.status, StatusCode::CREATED);
    }
    call(
        &r.router,
        "PUT",
        "/v2/ref/app/manifests/v1",
        &[("content-type", OCI)],
        image.clone(),
    )
    .await;

    let all = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}"),
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|d| d["digest"] == sha256(&a)
        && d["artifactType"] == "application/vnd.example.sig"
        && d["annotations"]["note"] == "first"
        && d["size"] == a.len()));
    assert_eq!(all.header("oci-filters-applied"), "");

    let filtered = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}?artifactType=application/vnd.example.sbom"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(filtered.header("oci-filters-applied"), "artifactType");
    let v: serde_json::Value = serde_json::from_slice(&filtered.body).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], sha256(&b));

    // Deleting a referrer removes it from the listing.
    let del = call(
        &r.router,
        "DELETE",
        &format!("/v2/ref/app/manifests/{}", sha256(&a)),
        &[],
        vec![],
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let after = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}"),
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&after.body).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn with_a_users_file_pushes_need_credentials_and_pulls_are_anonymous() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("users");
    vouch::registry::auth::add_user(&users_file, "alice", "s3cret").unwrap();
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let (good, wrong, empty) = (basic("alice", "s3cret"), basic("alice", "nope"), basic("", ""));
    for anonymous_pull in [true, false] {
        let users = users_access(&users_file, anonymous_pull);
        let r = open_with(&dir.path().join(format!("data-{anonymous_pull}")), Some(users));
        let blob = b"auth test".to_vec();
        let d = sha256(&blob);
        let push = format!("/v2/a/app/blobs/uploads/?digest={d}");
        // /v2/ challenges anyone without valid credentials.
        let ping = call(&r, "GET", "/v2/", &[], vec![]).await;
        assert_eq!(
            (ping.status, ping.header("www-authenticate")),
            (StatusCode::UNAUTHORIZED, "Basic realm=\"vouch\"")
        );
        assert_eq!(
            call(&r, "GET", "/v2/", &[("authorization", &good)], vec![])
                .await
                .status,
            StatusCode::OK
        );
        // Pushes: refused anonymously, with an empty login, and with a wrong password.
        for auth in [None, Some(&empty), Some(&wrong)] {
            let h: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a.as_str())]).unwrap_or_default();
            let resp = call(&r, "POST", &push, &h, blob.clone()).await;
            assert_eq!(
                (resp.status, resp.code().as_str()),
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            );
        }
        assert_eq!(
            call(
                &r,
                "GET",
                &format!("/v2/a/app/blobs/{d}"),
                &[("authorization", &good)],
                vec![]
            )
            .await
            .status,
            StatusCode::NOT_FOUND,
            "refused pushes stored nothing"
        );
        assert_eq!(
            call(&r, "POST", &push, &[("authorization", &good)], blob.clone())
                .await
                .status,
            StatusCode::CREATED
        );
        // Pulls: anonymous (or with an empty login) only if allowed; a wrong password never.
        let pull = format!("/v2/a/app/blobs/{d}");
        let anon = call(&r, "GET", &pull, &[], vec![]).await;
        let empty_login = call(&r, "GET", &pull, &[("authorization", &empty)], vec![]).await;
        let expected = if anonymous_pull {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!((anon.status, empty_login.status), (expected, expected));
        assert_eq!(
            call(&r, "GET", &pull, &[("authorization", &wrong)], vec![])
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&r, "GET", &pull, &[("authorization", &good)], vec![]).await.body,
            blob
        );
        // Garbage collection is an admin action: credentials, always, and
        // a user who is not an admin is refused.
        for auth in [None, Some(&empty), Some(&wrong)] {
            let h: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a.as_str())]).unwrap_or_default();
            assert_eq!(call(&r, "POST", "/admin/gc", &h, vec![]).await.code(), "UNAUTHORIZED");
        }
        assert_eq!(
            call(&r, "POST", "/admin/gc", &[("authorization", &good)], vec![])
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_by_method_and_status() {
    let r = registry();
    call(&r.router, "GET", "/v2/", &[], vec![]).await;
    call(&r.router, "GET", "/v2/x/tags/list", &[], vec![]).await;
    let m = call(&r.router, "GET", "/metrics", &[], vec![]).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.header("content-type").starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("vouch_http_requests_total{method=\"GET\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vouch_http_requests_total{method=\"GET\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(text.contains("vouch_http_request_duration_seconds_count 2"), "{text}");
    assert!(text.contains("vouch_ledger_entries 0"), "{text}");
}

#[tokio::test]
async fn a_client_with_too_many_requests_in_flight_gets_429_with_retry_after() {
    use axum::extract::ConnectInfo;
    let r = registry();
    let peer: std::net::SocketAddr = "10.1.2.3:4000".parse().unwrap();
    // Two uploads whose bodies never end hold the client's two places.
    let mut senders = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        senders.push(tx);
        let body = Body::from_stream(tokio_stream_from(rx));
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("/v2/l/app/blobs/uploads/?digest={}", sha256(b"x")))
            .body(body)
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        pending.push(tokio::spawn(r.router.clone().oneshot(req)));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut req = Request::builder().uri("/v2/").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = r.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    // Another client is not affected.
    let mut req = Request::builder().uri("/v2/").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("10.9.9.9:1".parse::<std::net::SocketAddr>().unwrap()));
    assert_eq!(r.router.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
    // When the uploads finish, the client may send again.
    drop(senders);
    for p in pending {
        p.await.unwrap().unwrap();
    }
    let mut req = Request::builder().uri("/v2/").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    assert_eq!(r.router.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
}

/// A stream over an mpsc receiver.
fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn idle_upload_sessions_and_orphan_files_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_at(&dir.path().join("data"), None));
    let router = app(state.clone());
    let s = call(&router, "POST", "/v2/sweep/app/blobs/uploads/", &[], vec![]).await;
    let loc = s.header("location").to_owned();
    call(&router, "PATCH", &loc, &[], b"partial".to_vec()).await;
    std::fs::write(
        dir.path().join("data/uploads/0123456789abcdef0123456789abcdef"),
        b"orphan",
    )
    .unwrap();
    // Fresh sessions survive a sweep with a day's TTL.
    assert_eq!(
        vouch::registry::sweep_uploads(&state, std::time::Duration::from_secs(86400))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        call(&router, "GET", &loc, &[], vec![]).await.status,
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let removed = vouch::registry::sweep_uploads(&state, std::time::Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(removed, 2, "the idle session and the orphan file");
    assert_eq!(
        call(&router, "GET", &loc, &[], vec![]).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    assert_eq!(std::fs::read_dir(dir.path().join("data/uploads")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_failed_or_oversized_chunk_leaves_the_upload_as_it_was() {
    let r = registry();
    let s = call(&r.router, "POST", "/v2/t/app/blobs/uploads/", &[], vec![]).await;
    let loc = s.header("location").to_owned();
    call(&r.router, "PATCH", &loc, &[], b"kept".to_vec()).await;
    // A body that breaks off after some bytes (a client that went away).
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(b"lost bytes")),
        Err(std::io::Error::other("connection reset")),
    ];
    let req = Request::builder()
        .method("PATCH")
        .uri(&loc)
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let resp = r.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let st = call(&r.router, "GET", &loc, &[], vec![]).await;
    assert_eq!(st.header("range"), "0-3", "the broken chunk was not kept");
    // A monolithic upload that breaks off leaves no session or file.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(b"half")),
        Err(std::io::Error::other("reset")),
    ];
    let uri = format!("/v2/t/app/blobs/uploads/?digest={}", sha256(b"half and more"));
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    assert_eq!(
        r.router.clone().oneshot(req).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        std::fs::read_dir(r.path.join("uploads")).unwrap().count(),
        1,
        "only the open chunked session remains"
    );
    // Over the 1 MiB blob limit of this registry: 413, and nothing kept.
    let big = call(&r.router, "PATCH", &loc, &[], vec![0; (1 << 20) + 1]).await;
    assert_eq!(
        (big.status, big.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    assert_eq!(call(&r.router, "GET", &loc, &[], vec![]).await.header("range"), "0-3");
    let d = sha256(b"kept");
    assert_eq!(
        call(&r.router, "PUT", &format!("{loc}?digest={d}"), &[], vec![])
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn gc_removes_unreferenced_old_blobs_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_at(&dir.path().join("data"), None));
    let router = app(state.clone());
    let (c, l) = (
        push_blob(&router, "gc/app", b"{}").await,
        push_blob(&router, "gc/app", b"layer").await,
    );
    let m = image_manifest(&c, 2, &l, 5, "");
    assert_eq!(
        call(
            &router,
            "PUT",
            "/v2/gc/app/manifests/v1",
            &[("content-type", OCI)],
            m.clone()
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let orphan = push_blob(&router, "gc/app", b"never referenced").await;
    let mounted = call(
        &router,
        "POST",
        &format!("/v2/gc/other/blobs/uploads/?mount={orphan}&from=gc/app"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(mounted.status, StatusCode::CREATED);
    let ledger_before = state.ledger.size();

    // Within the grace period nothing unreferenced is taken.
    let r = call(&router, "POST", "/admin/gc", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (
            v["blobs_removed"].as_u64(),
            v["too_young"].as_u64(),
            v["referenced"].as_u64()
        ),
        (Some(0), Some(1), Some(2))
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = call(&router, "POST", "/admin/gc?grace=1", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["blobs_removed"].as_u64(), v["links_removed"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(v["bytes_freed"].as_u64(), Some(16));
    for repo in ["gc/app", "gc/other"] {
        let get = call(&router, "GET", &format!("/v2/{repo}/blobs/{orphan}"), &[], vec![]).await;
        assert_eq!(get.code(), "BLOB_UNKNOWN");
    }
    // The image and its blobs are intact.
    assert_eq!(
        call(&router, "GET", "/v2/gc/app/manifests/v1", &[], vec![]).await.body,
        m
    );
    assert_eq!(
        call(&router, "GET", &format!("/v2/gc/app/blobs/{l}"), &[], vec![])
            .await
            .body,
        b"layer"
    );

    // Once its manifest is deleted, the image's blobs go too; the ledger is untouched.
    call(
        &router,
        "DELETE",
        &format!("/v2/gc/app/manifests/{}", sha256(&m)),
        &[],
        vec![],
    )
    .await;
    let r = call(&router, "POST", "/admin/gc?grace=0", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["blobs_removed"].as_u64(), Some(2), "{v}");
    assert_eq!(state.ledger.size(), ledger_before);
    assert_eq!(
        call(&router, "POST", "/admin/gc?grace=soon", &[], vec![]).await.code(),
        "SIZE_INVALID"
    );
}

#[tokio::test]
async fn blob_delete_unlinks_from_one_repository_and_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let router = app(Arc::new(state_at(&dir.path().join("data"), None)));
    let d = push_blob(&router, "del/a", b"shared bytes").await;
    call(
        &router,
        "POST",
        &format!("/v2/del/b/blobs/uploads/?mount={d}&from=del/a"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(
        call(&router, "DELETE", &format!("/v2/del/a/blobs/{d}"), &[], vec![])
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&router, "GET", &format!("/v2/del/a/blobs/{d}"), &[], vec![])
            .await
            .code(),
        "BLOB_UNKNOWN"
    );
    assert_eq!(
        call(&router, "GET", &format!("/v2/del/b/blobs/{d}"), &[], vec![])
            .await
            .body,
        b"shared bytes"
    );
    assert_eq!(
        call(&router, "DELETE", &format!("/v2/del/a/blobs/{d}"), &[], vec![])
            .await
            .code(),
        "BLOB_UNKNOWN"
    );

    let mut state = state_at(&dir.path().join("data2"), None);
    state.limits.deletes = false;
    let router = app(Arc::new(state));
    let d = push_blob(&router, "del/c", b"kept").await;
    let (c, l) = (push_blob(&router, "del/c", b"{}").await, d.clone());
    let m = image_manifest(&c, 2, &l, 4, "");
    call(&router, "PUT", "/v2/del/c/manifests/v1", &[("content-type", OCI)], m).await;
    for path in [format!("/v2/del/c/blobs/{d}"), "/v2/del/c/manifests/v1".to_owned()] {
        let resp = call(&router, "DELETE", &path, &[], vec![]).await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            "{path}"
        );
    }
    assert_eq!(
        call(&router, "GET", &format!("/v2/del/c/blobs/{d}"), &[], vec![])
            .await
            .body,
        b"kept"
    );
}

#[tokio::test]
async fn the_ledger_is_served_as_tlog_tiles_with_proofs_that_verify() {
    use vouch_ledger::tile::{TileAddr, TileKind};
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_at(&dir.path().join("data"), None));
    let router = app(state.clone());
    let vkey = state.ledger.verifier().clone();
    let empty = call(&router, "GET", "/ledger/checkpoint", &[], vec![]).await;
    assert_eq!(vouch_ledger::Checkpoint::open(&empty.body, &vkey).unwrap().size, 0);

    for i in 0..700u64 {
        let e = vouch_ledger::entry::Entry::Tag(vouch_ledger::entry::TagEntry {
            repo: "served/app".into(),
            tag: format!("t{i}"),
            digest: vouch_ledger::entry::Digest::parse(&format!("sha256:{i:064x}")).unwrap(),
            previous: None,
        });
        state.ledger.append(e.encode().unwrap()).await.unwrap();
    }
    let cp = call(&router, "GET", "/ledger/checkpoint", &[], vec![]).await;
    assert_eq!(cp.header("content-type"), "text/plain; charset=utf-8");
    let checkpoint = vouch_ledger::Checkpoint::open(&cp.body, &vkey).expect("served checkpoint verifies");
    assert_eq!(checkpoint.size, 700);

    // Mirror every tile the checkpoint implies, over HTTP, then recompute.
    let mirror = dir.path().join("mirror");
    let kinds = [
        TileKind::Entries,
        TileKind::Hashes { level: 0 },
        TileKind::Hashes { level: 1 },
    ];
    for kind in kinds {
        for n in 0..3 {
            let Some(addr) = TileAddr::for_tree(kind, n, 700) else {
                continue;
            };
            let resp = call(&router, "GET", &format!("/ledger/{addr}"), &[], vec![]).await;
            assert_eq!(resp.status, StatusCode::OK, "{addr}");
            assert_eq!(resp.header("cache-control"), "public, max-age=31536000, immutable");
            let path = mirror.join(addr.to_string());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &resp.body).unwrap();
        }
    }
    let report = vouch_ledger::fsck::fsck(&vouch::mirror::DirSource::new(&mirror), &checkpoint, |_| {}).unwrap();
    assert_eq!((report.entries, report.root), (700, checkpoint.root));

    // Proofs and entries verify against the served checkpoint.
    let entry = call(&router, "GET", "/ledger/entry/123", &[], vec![]).await;
    assert_eq!(entry.header("content-type"), "application/cbor");
    assert!(matches!(
        vouch_ledger::entry::Entry::decode(&entry.body),
        Ok(vouch_ledger::entry::Entry::Tag(_))
    ));
    let hashes = |v: &serde_json::Value| -> Vec<vouch_ledger::Hash> {
        v["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| vouch_ledger::Hash::from_base64(h.as_str().unwrap()).unwrap())
            .collect()
    };
    let inc = call(
        &router,
        "GET",
        "/ledger/proof/inclusion?index=123&size=700",
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&inc.body).unwrap();
    vouch_ledger::verify_inclusion(&entry.body, 123, 700, &hashes(&v), &checkpoint.root).unwrap();
    let old_root = vouch_ledger::Checkpoint::open(&empty.body, &vkey).unwrap().root;
    let con = call(&router, "GET", "/ledger/proof/consistency?old=0&new=700", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&con.body).unwrap();
    vouch_ledger::verify_consistency(0, 700, &hashes(&v), &old_root, &checkpoint.root).unwrap();

    // An offline proof verifies with the key alone.
    let offline = call(&router, "GET", "/ledger/proof/tlog/123", &[], vec![]).await;
    assert!(offline.body.starts_with(b"c2sp.org/tlog-proof@v1\nindex 123\n"));
    let parsed = vouch_ledger::tlog_proof::TlogProof::parse(&offline.body).unwrap();
    assert_eq!(parsed.verify(&entry.body, &vkey).unwrap().size, 700);
    assert!(parsed.verify(b"another entry", &vkey).is_err());

    // Outside the tree, or malformed: named errors, never a panic.
    for (path, status) in [
        ("/ledger/tile/0/003", StatusCode::NOT_FOUND),
        ("/ledger/tile/0/002.p/189", StatusCode::NOT_FOUND),
        ("/ledger/tile/0/0002", StatusCode::NOT_FOUND),
        ("/ledger/entry/700", StatusCode::NOT_FOUND),
        ("/ledger/entry/x", StatusCode::BAD_REQUEST),
        ("/ledger/proof/tlog/700", StatusCode::NOT_FOUND),
        ("/ledger/proof/inclusion?index=700&size=700", StatusCode::NOT_FOUND),
        ("/ledger/proof/inclusion?index=1", StatusCode::BAD_REQUEST),
        ("/ledger/proof/consistency?old=9&new=8", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(call(&router, "GET", path, &[], vec![]).await.status, status, "{path}");
    }
}

#[tokio::test]
async fn admission_ends_the_same_whatever_arrives_first_and_pushers_can_read_their_images() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, key) = key_policy(5);
    let (state, r, auth) = admission_app(dir.path(), policy).await;

    // Blobs and the image manifest bytes, prepared (not pushed) up front.
    let (c, l) = (
        push_blob_as(&r, "order/app", b"{}", &auth).await,
        push_blob_as(&r, "order/app", b"signed layer", &auth).await,
    );
    let image = image_manifest(&c, 2, &l, 12, "");
    let image_digest = sha256(&image);

    // The signature arrives first: payload blob, then the .sig manifest.
    let sig_tag = format!("sha256-{}.sig", &image_digest[7..]);
    let put = push_signature(&r, "order/app", &image_digest, &key, &auth).await;
    assert_eq!(
        (put.status, put.header("vouch-admission-state")),
        (StatusCode::CREATED, "evidence")
    );
    let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
    // Then the image: admitted at once, from the signature already there.
    let put = call(&r, "PUT", "/v2/order/app/manifests/v1", &hdrs, image.clone()).await;
    assert_eq!(put.header("vouch-admission-state"), "admitted");
    assert_eq!(
        call(&r, "GET", "/v2/order/app/manifests/v1", &[], vec![]).await.body,
        image
    );
    // The signature is always readable, anonymously too.
    assert_eq!(
        call(&r, "GET", &format!("/v2/order/app/manifests/{sig_tag}"), &[], vec![])
            .await
            .status,
        StatusCode::OK
    );

    // An unsigned image is denied to anonymous pulls, but its pusher reads it.
    let unsigned = image_manifest(&c, 2, &l, 12, r#","annotations":{"unsigned":"yes"}"#);
    let put = call(&r, "PUT", "/v2/order/app/manifests/v2", &hdrs, unsigned.clone()).await;
    assert_eq!(put.header("vouch-admission-state"), "denied");
    let anon = call(&r, "GET", "/v2/order/app/manifests/v2", &[], vec![]).await;
    assert_eq!((anon.status, anon.code().as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert!(String::from_utf8_lossy(&anon.body).contains("needs signatures by 1 of 1"));
    // HEAD tells a reader without push rights the digest (so signers can
    // resolve what to sign), never the bytes or their length.
    let head = call(&r, "HEAD", "/v2/order/app/manifests/v2", &[], vec![]).await;
    assert_eq!(head.status, StatusCode::FORBIDDEN);
    assert_eq!(head.header("docker-content-digest"), sha256(&unsigned));
    let own = call(
        &r,
        "GET",
        "/v2/order/app/manifests/v2",
        &[("authorization", auth.as_str())],
        vec![],
    )
    .await;
    assert_eq!(own.body, unsigned);
    // The admitted image pushed again under another tag: its decision
    // stands (no new one), and the tag is logged. Deleting that tag is too.
    let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
    let again = call(&r, "PUT", "/v2/order/app/manifests/again", &hdrs, image.clone()).await;
    assert_eq!(again.header("vouch-admission-state"), "admitted");
    // Deleting a tag of admitted content is an admin's act.
    let del = |who: String| {
        let r = r.clone();
        async move {
            call(
                &r,
                "DELETE",
                "/v2/order/app/manifests/again",
                &[("authorization", who.as_str())],
                vec![],
            )
            .await
        }
    };
    let refused = del(auth.clone()).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (StatusCode::FORBIDDEN, "DENIED")
    );
    assert_eq!(del(basic("admin", "pw")).await.status, StatusCode::ACCEPTED);

    // Ledger: the policy, the admit and tag of v1, the deny of v2 (the early
    // signature made no decision), the tag "again", its deletion.
    let kinds: Vec<String> = (0..state.ledger.size())
        .map(
            |i| match vouch_ledger::entry::Entry::decode(&state.ledger.entry(i).unwrap().unwrap()).unwrap() {
                vouch_ledger::entry::Entry::Policy(_) => "policy".to_owned(),
                vouch_ledger::entry::Entry::Decision(d) => format!("{:?}", d.verdict),
                vouch_ledger::entry::Entry::Tag(t) => format!("tag {} prev {}", t.tag, t.previous.is_some()),
                vouch_ledger::entry::Entry::Delete(d) => format!("delete {:?}", d.tag),
            },
        )
        .collect();
    assert_eq!(
        kinds,
        [
            "policy",
            "Admit",
            "tag v1 prev false",
            "Deny",
            "tag again prev false",
            "delete Some(\"again\")"
        ]
    );
}

/// A registry under `policy`, with one user ("pusher"): its state, its
/// router, and that user's Authorization value. A second user, "admin"
/// (password "pw"), is an admin of every repository.
async fn admission_app(dir: &std::path::Path, policy: vouch::policy::Policy) -> (Arc<AppState>, Router, String) {
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
    let mut state = state_at(&dir.join("data"), Some(access));
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
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Pushes a blob to `repo` with `auth`; returns its digest.
async fn push_blob_as(r: &Router, repo: &str, bytes: &[u8], auth: &str) -> String {
    let d = sha256(bytes);
    let uri = format!("/v2/{repo}/blobs/uploads/?digest={d}");
    let resp = call(r, "POST", &uri, &[("authorization", auth)], bytes.to_vec()).await;
    assert_eq!(resp.status, StatusCode::CREATED);
    d
}

/// A policy trusting one P-256 key, and that key.
fn key_policy(seed: u8) -> (vouch::policy::Policy, p256::ecdsa::SigningKey) {
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
async fn push_signature(r: &Router, repo: &str, image: &str, key: &p256::ecdsa::SigningKey, auth: &str) -> Resp {
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

#[tokio::test]
async fn quarantine_covers_blobs_an_admitted_index_covers_its_platforms_and_policies_reevaluate() {
    let dir = tempfile::tempdir().unwrap();
    let (policy_a, key_a) = key_policy(11);
    let (policy_b, key_b) = key_policy(12);
    let (state, r, auth) = admission_app(dir.path(), policy_a).await;
    let auth = auth.as_str();
    let hdrs = |ct: &'static str| [("authorization", auth), ("content-type", ct)];
    let anon_get = |path: String| {
        let r = r.clone();
        async move { call(&r, "GET", &path, &[], vec![]).await.status }
    };

    // A two-platform image: two manifests (pushed by digest) and an index.
    let mut platforms = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = format!(r#"{{"architecture":"{arch}"}}"#);
        let layer = format!("{arch} layer");
        let mut blobs = Vec::new();
        for b in [config.as_bytes(), layer.as_bytes()] {
            blobs.push(push_blob_as(&r, "multi/app", b, auth).await);
        }
        let m = image_manifest(&blobs[0], config.len(), &blobs[1], layer.len(), "");
        let d = sha256(&m);
        let put = call(
            &r,
            "PUT",
            &format!("/v2/multi/app/manifests/{d}"),
            &hdrs(OCI),
            m.clone(),
        )
        .await;
        assert_eq!(put.header("vouch-admission-state"), "denied");
        platforms.push((d, m.len(), blobs[1].clone()));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        platforms
            .iter()
            .map(|(d, n, _)| format!(r#"{{"mediaType":"{OCI}","digest":"{d}","size":{n}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let index_digest = sha256(index.as_bytes());
    let put = call(
        &r,
        "PUT",
        "/v2/multi/app/manifests/v1",
        &hdrs("application/vnd.oci.image.index.v1+json"),
        index.into_bytes(),
    )
    .await;
    assert_eq!(put.header("vouch-admission-state"), "denied");

    // Quarantined: the manifests, and their layers too, to anonymous pulls;
    // HEAD answers, and the pusher reads everything.
    let layer_path = format!("/v2/multi/app/blobs/{}", platforms[0].2);
    assert_eq!(anon_get(layer_path.clone()).await, StatusCode::FORBIDDEN);
    let denied = call(&r, "GET", &layer_path, &[], vec![]).await;
    assert_eq!(denied.code(), "DENIED");
    assert!(String::from_utf8_lossy(&denied.body).contains("belongs to no admitted image"));
    // HEAD of a withheld blob is 404: a client checking before an upload
    // uploads (which changes nothing), and learns nothing.
    assert_eq!(
        call(&r, "HEAD", &layer_path, &[], vec![]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&r, "HEAD", &layer_path, &[("authorization", auth)], vec![])
            .await
            .status,
        StatusCode::OK
    );
    let own = call(&r, "GET", &layer_path, &[("authorization", auth)], vec![]).await;
    assert_eq!(own.body, b"amd64 layer");
    let child_path = format!("/v2/multi/app/manifests/{}", platforms[1].0);
    assert_eq!(anon_get(child_path.clone()).await, StatusCode::FORBIDDEN);

    // Signing the index admits it, and with it both platforms and their
    // layers, each with its own logged decision naming the index.
    let put = push_signature(&r, "multi/app", &index_digest, &key_a, auth).await;
    assert_eq!(put.header("vouch-admission-state"), "evidence");
    for path in [
        "/v2/multi/app/manifests/v1".to_owned(),
        child_path.clone(),
        layer_path.clone(),
    ] {
        assert_eq!(anon_get(path.clone()).await, StatusCode::OK, "{path}");
    }
    let decisions = |from: u64| -> Vec<(String, String, Vec<String>)> {
        (from..state.ledger.size())
            .filter_map(|i| {
                match vouch_ledger::entry::Entry::decode(&state.ledger.entry(i).unwrap().unwrap()).unwrap() {
                    vouch_ledger::entry::Entry::Decision(d) => {
                        Some((d.digest.to_string(), format!("{:?}", d.verdict), d.reasons))
                    }
                    _ => None,
                }
            })
            .collect()
    };
    let admits: Vec<_> = decisions(0).into_iter().filter(|d| d.1 == "Admit").collect();
    assert_eq!(admits.len(), 3, "{admits:?}");
    assert_eq!(admits[0].0, index_digest);
    for (d, _, reasons) in &admits[1..] {
        assert!(platforms.iter().any(|p| &p.0 == d));
        assert!(reasons
            .iter()
            .any(|r| r.contains(&format!("covered by the admitted index {index_digest}"))));
    }

    // An image signed by key B only: denied under policy A.
    for b in [&b"{}"[..], b"solo"] {
        push_blob_as(&r, "solo/app", b, auth).await;
    }
    let solo = image_manifest(&sha256(b"{}"), 2, &sha256(b"solo"), 4, "");
    let solo_digest = sha256(&solo);
    let put = call(&r, "PUT", "/v2/solo/app/manifests/v1", &hdrs(OCI), solo).await;
    assert_eq!(put.header("vouch-admission-state"), "denied");
    push_signature(&r, "solo/app", &solo_digest, &key_b, auth).await;
    assert_eq!(
        anon_get("/v2/solo/app/manifests/v1".into()).await,
        StatusCode::FORBIDDEN
    );

    // Policy B comes into force: re-evaluating the quarantined images admits
    // the one B signed; admitted images stay admitted.
    let b = vouch::admission::Admission::load(policy_b, &state.ledger, &state.meta)
        .await
        .unwrap()
        .with_registry_names(&["registry".to_owned()]);
    let report = b.reevaluate(&state, vouch::admission::Scope::Quarantined).await;
    assert_eq!((report.evaluated, report.admitted, report.denied), (1, 1, 0));
    assert_eq!(anon_get("/v2/solo/app/manifests/v1".into()).await, StatusCode::OK);
    assert_eq!(anon_get(child_path.clone()).await, StatusCode::OK);
    // The operator's explicit re-evaluation of everything under B takes
    // back what only A signed: the index, both platforms, their layers.
    let from = state.ledger.size();
    // Only changed verdicts are logged: the solo image stays admitted.
    let report = b.reevaluate(&state, vouch::admission::Scope::All).await;
    assert_eq!(
        (report.evaluated, report.admitted, report.denied, report.changed),
        (4, 1, 3, 3)
    );
    assert_eq!(decisions(from).len(), 3);
    let again = b.reevaluate(&state, vouch::admission::Scope::All).await;
    assert_eq!((again.evaluated, again.changed, state.ledger.size()), (4, 0, from + 3));
    for path in [
        "/v2/multi/app/manifests/v1".to_owned(),
        child_path.clone(),
        layer_path.clone(),
    ] {
        assert_eq!(anon_get(path.clone()).await, StatusCode::FORBIDDEN, "{path}");
    }

    // Over HTTP (the server's policy is A): an admin's credentials needed,
    // `all` must be a boolean, and everything A signed is admitted again.
    let admin = basic("admin", "pw");
    let post = |q: &'static str, creds: Option<&str>| {
        let r = r.clone();
        let h: Vec<(String, String)> = creds
            .map(|c| vec![("authorization".to_owned(), c.to_owned())])
            .unwrap_or_default();
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            call(&r, "POST", &format!("/admin/reevaluate{q}"), &h, vec![]).await
        }
    };
    assert_eq!(post("?all=true", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(post("?all=true", Some(auth)).await.status, StatusCode::FORBIDDEN);
    let bad = post("?all=maybe", Some(&admin)).await;
    assert!(String::from_utf8_lossy(&bad.body).contains("expected true or false"));
    let ok = post("?all=true", Some(&admin)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let report: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(
        (report["evaluated"].as_u64(), report["admitted"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(anon_get(child_path).await, StatusCode::OK);
    assert_eq!(
        anon_get("/v2/solo/app/manifests/v1".into()).await,
        StatusCode::FORBIDDEN
    );
}
