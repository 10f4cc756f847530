//! Request handlers: one dispatcher over [`super::path::route`], then one
//! function per endpoint. Input is parsed into small types at the top of
//! each; errors are [`RegistryError`]s, whose wire form is one table.

use super::error::RegistryError;
use super::manifest::validate;
use super::meta::AdmissionState;
use super::names::{parse_digest, Reference, RepoName, Tag};
use super::path::{route, Route};
use super::AppState;
use crate::registry::digest::DigestHasher;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use std::collections::HashMap;
use std::sync::Arc;
use vouch_ledger::entry::Digest;

type Result<T> = std::result::Result<T, RegistryError>;
type App = Arc<AppState>;

const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// Routes every request.
pub async fn dispatch(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query = parse_query(parts.uri.query());
    let path = parts.uri.path().to_owned();
    let result = match route(&path) {
        None => Err(RegistryError::NotFound(path.chars().take(200).collect())),
        Some(r) => match authorize(&app, &parts.method, &r, &parts.headers).await {
            Ok(user) => handle(&app, &parts.method, r, &query, &parts.headers, body, user).await,
            Err(e) => Err(e),
        },
    };
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    resp
}

/// The user that `Authorization` value proves to be, if any. Credentials
/// seen before are checked in memory; new ones run bcrypt, which is slow by
/// design, on the blocking pool so it never stalls the async workers.
async fn verified_user(app: &App, given: Option<&str>) -> Result<Option<String>> {
    let (Some(users), Some(given)) = (&app.users, given) else {
        return Ok(None);
    };
    if let Some(user) = users.authenticate_cached(given) {
        return Ok(Some(user));
    }
    let (app, given) = (app.clone(), given.to_owned());
    let verify = move || app.users.as_ref().and_then(|u| u.authenticate(Some(&given)));
    tokio::task::spawn_blocking(verify)
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

/// Who may do what (`auth.rs`): in open mode anyone; otherwise writes need a
/// valid user, reads too unless anonymous pull is on, wrong credentials are
/// always refused, and `/v2/` challenges anyone without valid credentials so
/// that `login` commands check them.
/// Returns whether the request carries a valid user's credentials.
async fn authorize(app: &App, method: &Method, r: &Route<'_>, h: &HeaderMap) -> Result<bool> {
    let Some(users) = &app.users else { return Ok(false) };
    // Clients without credentials answer a Basic challenge with an empty
    // user and password (`Basic Og==`): that is anonymous, not wrong.
    let given = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !super::auth::is_empty_basic(v));
    let user = verified_user(app, given).await?;
    let read = matches!(*method, Method::GET | Method::HEAD);
    match (user, given, r) {
        (Some(_), _, _) => Ok(true),
        (None, Some(_), _) => Err(RegistryError::Unauthorized("wrong user name or password")),
        (None, None, Route::Base) => Err(RegistryError::Unauthorized("log in to push")),
        (None, None, _) if read && users.anonymous_pull => Ok(false),
        (None, None, _) if read => Err(RegistryError::Unauthorized(
            "this registry does not allow anonymous pulls",
        )),
        (None, None, _) => Err(RegistryError::Unauthorized("pushing and deleting need credentials")),
    }
}

async fn handle(
    app: &App,
    method: &Method,
    r: Route<'_>,
    q: &Query,
    h: &HeaderMap,
    body: Body,
    authenticated: bool,
) -> Result<Response> {
    let not_allowed = |what: &str| {
        Err(RegistryError::Unsupported(format!(
            "{method} is not supported on {what}"
        )))
    };
    match r {
        Route::Base => match *method {
            Method::GET | Method::HEAD => Ok((StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()),
            _ => not_allowed("/v2/"),
        },
        Route::Blob { name, digest } => {
            let (repo, digest) = (RepoName::parse(name)?, parse_digest(digest)?);
            match *method {
                Method::GET => get_blob(app, &repo, &digest, h, true, authenticated).await,
                Method::HEAD => get_blob(app, &repo, &digest, h, false, authenticated).await,
                Method::DELETE if !app.limits.deletes => Err(deletes_disabled()),
                Method::DELETE => delete_blob(app, &repo, &digest).await,
                _ => not_allowed("blobs"),
            }
        }
        Route::UploadStart { name } => match *method {
            Method::POST => start_upload(app, &RepoName::parse(name)?, q, body).await,
            _ => not_allowed("upload sessions"),
        },
        Route::Upload { name, id } => {
            let repo = RepoName::parse(name)?;
            let id = session(app, &repo, id)?;
            match *method {
                Method::PATCH => patch_upload(app, &repo, &id, h, body).await,
                Method::PUT => finish_upload(app, &repo, &id, q, body).await,
                Method::GET => upload_status(app, &repo, &id).await,
                Method::DELETE => cancel_upload(app, &id).await,
                _ => not_allowed("upload sessions"),
            }
        }
        Route::Manifest { name, reference } => {
            let (repo, reference) = (RepoName::parse(name)?, Reference::parse(reference)?);
            match *method {
                Method::GET => get_manifest(app, &repo, &reference, true, authenticated),
                Method::HEAD => get_manifest(app, &repo, &reference, false, authenticated),
                Method::PUT => put_manifest(app, &repo, &reference, h, body).await,
                Method::DELETE if !app.limits.deletes => Err(deletes_disabled()),
                Method::DELETE => delete_manifest(app, &repo, &reference).await,
                _ => not_allowed("manifests"),
            }
        }
        Route::Tags { name } => match *method {
            Method::GET => list_tags(app, &RepoName::parse(name)?, q),
            _ => not_allowed("tags"),
        },
        Route::Admission { name, digest } => {
            let (repo, digest) = (RepoName::parse(name)?, parse_digest(digest)?);
            match *method {
                Method::GET => super::ledger_api::admission_bundle(app, &repo, &digest),
                _ => not_allowed("admission bundles"),
            }
        }
        Route::Referrers { name, digest } => {
            let (repo, digest) = (RepoName::parse(name)?, parse_digest(digest)?);
            match *method {
                Method::GET => list_referrers(app, &repo, &digest, q),
                _ => not_allowed("referrers"),
            }
        }
    }
}

type Query = HashMap<String, String>;

fn parse_query(q: Option<&str>) -> Query {
    q.map(|q| {
        q.split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                Some((decode(k)?, decode(v)?))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Percent-decoding of a query component (`+` is not special in these URLs).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn location(v: String) -> (header::HeaderName, String) {
    (header::LOCATION, v)
}

// ---- blobs ----------------------------------------------------------------

/// Under a policy, a blob that manifests reference is served to anonymous
/// clients only if one of them is admitted (or is evidence, such as a
/// signature): the layers of a quarantined image are quarantined too. A
/// blob no manifest references yet is served (only a pusher can have put it
/// there). HEAD always answers, so pushers can check what they uploaded;
/// authenticated users read everything.
fn withheld_unless_servable(app: &App, repo: &RepoName, digest: &Digest) -> Result<()> {
    if app.admission.is_none() {
        return Ok(());
    }
    let served =
        |r: &super::meta::ManifestRecord| matches!(r.state, AdmissionState::Admitted | AdmissionState::Evidence);
    let (referenced, by_served) = app.meta.find_referencing(repo, digest, served)?;
    if !referenced || by_served.is_some() {
        return Ok(());
    }
    Err(RegistryError::Denied(format!(
        "blob {digest} in {repo} belongs to no admitted image"
    )))
}

async fn get_blob(
    app: &App,
    repo: &RepoName,
    digest: &Digest,
    h: &HeaderMap,
    with_body: bool,
    authenticated: bool,
) -> Result<Response> {
    if !app.meta.blob_linked(repo, digest)? {
        return Err(RegistryError::BlobUnknown(digest.clone()));
    }
    if with_body && !authenticated {
        withheld_unless_servable(app, repo, digest)?;
    }
    let size = app
        .blobs
        .blob_size(digest)
        .await?
        .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))?;
    let range = match h.get(header::RANGE) {
        None => None,
        Some(v) => Some(
            parse_range(v.to_str().unwrap_or(""), size).ok_or(RegistryError::RangeNotSatisfiable {
                got: v.to_str().unwrap_or("?").into(),
                size,
            })?,
        ),
    };
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("Docker-Content-Digest", digest.as_str())
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some((a, b)) = range {
        resp = resp.header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{size}"));
    }
    let body = if with_body && len > 0 {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let mut file = tokio::fs::File::open(app.blobs.blob_path(digest)).await?;
        file.seek(std::io::SeekFrom::Start(start)).await?;
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 << 10))
    } else {
        Body::empty()
    };
    resp.body(body).map_err(|e| RegistryError::Internal(e.to_string()))
}

fn deletes_disabled() -> RegistryError {
    RegistryError::Unsupported("deletion is disabled on this registry (--no-delete)".into())
}

/// Unlinks a blob from the repository: 202. The file itself is removed by
/// garbage collection once no repository's manifests reference it.
async fn delete_blob(app: &App, repo: &RepoName, digest: &Digest) -> Result<Response> {
    let _gc = app.gc_lock.read().await;
    if !app.meta.blob_linked(repo, digest)? {
        return Err(RegistryError::BlobUnknown(digest.clone()));
    }
    app.meta.unlink_blobs(&[(repo.to_string(), digest.clone())])?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` inside a blob of `size` bytes.
fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let spec = v.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (false, false) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size.checked_sub(1)?)),
        (false, true) => (a.parse().ok()?, size.checked_sub(1)?),
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
        }
        (true, true) => return None,
    };
    (start <= end && end < size).then_some((start, end))
}

// ---- uploads --------------------------------------------------------------

fn upload_url(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

/// A session id as issued (a UUID's simple form), belonging to `repo`.
fn session(app: &App, repo: &RepoName, id: &str) -> Result<String> {
    let unknown = || RegistryError::BlobUploadUnknown(id.chars().take(64).collect());
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    match app.meta.upload_repo(id)? {
        Some(owner) if owner == repo.as_str() => Ok(id.to_owned()),
        _ => Err(unknown()),
    }
}

async fn new_session(app: &App, repo: &RepoName) -> Result<String> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    app.blobs.create_upload(&id).await?;
    app.meta.put_upload(&id, repo)?;
    Ok(id)
}

async fn start_upload(app: &App, repo: &RepoName, q: &Query, body: Body) -> Result<Response> {
    if let (Some(mount), Some(from)) = (q.get("mount"), q.get("from")) {
        let (digest, from) = (parse_digest(mount)?, RepoName::parse(from)?);
        if app.meta.blob_linked(&from, &digest)? {
            let _gc = app.gc_lock.read().await;
            if let Some(size) = app.blobs.blob_size(&digest).await? {
                app.meta.link_blob(repo, &digest, size)?;
                return Ok(blob_created(repo, &digest));
            }
        }
        // Not mountable: fall back to a new session, as the spec allows.
    }
    let id = new_session(app, repo).await?;
    if let Some(digest) = q.get("digest") {
        let digest = parse_digest(digest)?;
        let result = finish(app, repo, &id, &digest, body).await;
        if result.is_err() {
            // A failed monolithic upload leaves no session behind.
            app.meta.delete_upload(&id)?;
            app.blobs.remove_upload(&id).await?;
        }
        return result;
    }
    Ok((
        StatusCode::ACCEPTED,
        [
            location(upload_url(repo, &id)),
            (header::RANGE, "0-0".into()),
            (header::HeaderName::from_static("docker-upload-uuid"), id.clone()),
            (header::HeaderName::from_static("oci-chunk-min-length"), "0".into()),
        ],
    )
        .into_response())
}

fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

async fn patch_upload(app: &App, repo: &RepoName, id: &str, h: &HeaderMap, body: Body) -> Result<Response> {
    let size = app
        .blobs
        .upload_size(id)
        .await?
        .ok_or_else(|| RegistryError::BlobUploadUnknown(id.into()))?;
    if let Some(cr) = h.get(header::CONTENT_RANGE) {
        let text = cr.to_str().unwrap_or("");
        let start = text.split_once('-').and_then(|(a, _)| a.parse::<u64>().ok());
        if start != Some(size) {
            return Err(RegistryError::RangeNotSatisfiable { got: text.into(), size });
        }
    }
    let size = app
        .blobs
        .append(id, body.into_data_stream(), app.limits.max_blob_bytes)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        [
            location(upload_url(repo, id)),
            (header::RANGE, range_header(size)),
            (header::HeaderName::from_static("docker-upload-uuid"), id.into()),
        ],
    )
        .into_response())
}

async fn finish_upload(app: &App, repo: &RepoName, id: &str, q: &Query, body: Body) -> Result<Response> {
    let digest = q
        .get("digest")
        .ok_or_else(|| RegistryError::DigestInvalid("PUT to finish an upload needs ?digest=".into()))?;
    let digest = parse_digest(digest)?;
    finish(app, repo, id, &digest, body).await
}

/// Appends a final body, verifies the digest, stores and links the blob.
async fn finish(app: &App, repo: &RepoName, id: &str, digest: &Digest, body: Body) -> Result<Response> {
    let has_data = app.blobs.upload_size(id).await?.is_some();
    if has_data {
        app.blobs
            .append(id, body.into_data_stream(), app.limits.max_blob_bytes)
            .await?;
    }
    // From making the blob visible to linking it, no collection may run
    // (taken after the body is in, so a slow client never holds it).
    let _gc = app.gc_lock.read().await;
    let size = if has_data {
        match app.blobs.commit(id, digest).await {
            Ok(size) => size,
            Err(e) => {
                // A mismatch has deleted the data: the session is over.
                app.meta.delete_upload(id)?;
                return Err(e);
            }
        }
    } else {
        // The session exists but its data does not: an earlier PUT of this
        // session moved it to its content address and the server stopped
        // before recording that. The file there is complete and verified (it
        // hashes to its name), so this retried PUT finishes the session.
        app.blobs
            .blob_size(digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUploadUnknown(id.into()))?
    };
    // The link and the end of the session are one synced write.
    app.meta.finish_upload(id, repo, digest, size)?;
    Ok(blob_created(repo, digest))
}

/// `POST /admin/gc[?grace=<seconds>]`: collect unreferenced blobs written
/// more than `grace` seconds ago (default one hour). Needs a user's
/// credentials when a users file is configured.
pub async fn admin_gc(State(app): State<App>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let result = async {
        require_user(&app, &headers, "garbage collection needs credentials").await?;
        let q = parse_query(uri.query());
        let grace = match q.get("grace") {
            Some(g) => g
                .parse()
                .map_err(|_| RegistryError::SizeInvalid(format!("grace={g:?} is not a number of seconds")))?,
            None => 3600,
        };
        let report = super::gc::collect(&app, std::time::Duration::from_secs(grace)).await?;
        tracing::info!(?report, "garbage collection");
        Ok::<_, RegistryError>(axum::Json(report).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// With a users file, operator endpoints need a user's credentials.
async fn require_user(app: &App, headers: &HeaderMap, refusal: &'static str) -> Result<()> {
    if app.users.is_some() {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if verified_user(app, given).await?.is_none() {
            return Err(RegistryError::Unauthorized(refusal));
        }
    }
    Ok(())
}

/// `POST /admin/reevaluate[?all=true]`: re-evaluate pending and denied
/// images under the policy in force (with `all=true`, admitted ones too, so
/// that a revoked key or a stricter policy takes admissions back). Every
/// new decision is logged. Needs a user's credentials when a users file is
/// configured.
pub async fn admin_reevaluate(State(app): State<App>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let result = async {
        require_user(&app, &headers, "re-evaluation needs credentials").await?;
        let q = parse_query(uri.query());
        let scope = match q.get("all").map(String::as_str) {
            None | Some("false") => crate::admission::Scope::Quarantined,
            Some("true") => crate::admission::Scope::All,
            Some(other) => {
                return Err(RegistryError::Unsupported(format!(
                    "all={other:?}: expected true or false"
                )))
            }
        };
        let Some(admission) = &app.admission else {
            return Err(RegistryError::Unsupported(
                "this registry has no admission policy".into(),
            ));
        };
        let report = admission.reevaluate(&app, scope).await?;
        tracing::info!(?report, ?scope, "re-evaluation");
        Ok::<_, RegistryError>(axum::Json(report).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            location(format!("/v2/{repo}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
        .into_response()
}

async fn upload_status(app: &App, repo: &RepoName, id: &str) -> Result<Response> {
    let size = app
        .blobs
        .upload_size(id)
        .await?
        .ok_or_else(|| RegistryError::BlobUploadUnknown(id.into()))?;
    Ok((
        StatusCode::NO_CONTENT,
        [
            location(upload_url(repo, id)),
            (header::RANGE, range_header(size)),
            (header::HeaderName::from_static("docker-upload-uuid"), id.into()),
        ],
    )
        .into_response())
}

async fn cancel_upload(app: &App, id: &str) -> Result<Response> {
    app.meta.delete_upload(id)?;
    app.blobs.remove_upload(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- manifests ------------------------------------------------------------

fn resolve(app: &App, repo: &RepoName, reference: &Reference) -> Result<Digest> {
    match reference {
        Reference::Digest(d) => Ok(d.clone()),
        Reference::Tag(t) => app
            .meta
            .tag(repo, t)?
            .ok_or_else(|| RegistryError::ManifestUnknown(format!("{repo}:{}", t.as_str()))),
    }
}

/// Under a policy, a pending or denied manifest answers GET with DENIED,
/// naming why, except to an authenticated user (a pusher can read what it
/// pushed); HEAD always answers, so signers can resolve the digest.
fn get_manifest(
    app: &App,
    repo: &RepoName,
    reference: &Reference,
    with_body: bool,
    authenticated: bool,
) -> Result<Response> {
    let digest = resolve(app, repo, reference)?;
    let record = app
        .meta
        .manifest(repo, &digest)?
        .ok_or_else(|| RegistryError::ManifestUnknown(format!("{repo}@{digest}")))?;
    let quarantined = matches!(record.state, AdmissionState::Pending | AdmissionState::Denied);
    if app.admission.is_some() && quarantined && with_body && !authenticated {
        let why = match app.meta.decision(repo, &digest)? {
            Some(d) => format!(
                "{repo}@{digest} is not admitted: {} (ledger entry {})",
                d["reasons"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join("; "))
                    .unwrap_or_default(),
                d["ledger_index"]
            ),
            None => format!("{repo}@{digest} is pending admission"),
        };
        return Err(RegistryError::Denied(why));
    }
    let len = record.bytes.len();
    let body = if with_body {
        Body::from(record.bytes)
    } else {
        Body::empty()
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, record.media_type)
        .header(header::CONTENT_LENGTH, len)
        .header("Docker-Content-Digest", digest.as_str())
        .header("Vouch-Admission-State", record.state.as_str())
        .body(body)
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

async fn put_manifest(
    app: &App,
    repo: &RepoName,
    reference: &Reference,
    h: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let limit = app.limits.max_manifest_bytes;
    if h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(RegistryError::TooLarge {
            what: "manifest",
            limit,
        });
    }
    let bytes = http_body_util::Limited::new(body, limit as usize)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                RegistryError::TooLarge {
                    what: "manifest",
                    limit,
                }
            } else {
                RegistryError::ManifestInvalid(format!("reading the body: {e}"))
            }
        })?;
    let bytes = bytes.to_bytes();
    let content_type = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let refs = validate(content_type, &bytes)?;
    // From checking its blobs to storing it, no collection may run.
    let _gc = app.gc_lock.read().await;
    let digest = match reference {
        Reference::Digest(d) => {
            let mut hasher = DigestHasher::for_digest(d);
            hasher.update(&bytes);
            let actual = hasher.finish();
            if &actual != d {
                return Err(RegistryError::DigestInvalid(format!(
                    "manifest bytes have digest {actual}, not {d}"
                )));
            }
            actual
        }
        Reference::Tag(_) => crate::registry::digest::sha256_of(&bytes),
    };
    for blob in &refs.blobs {
        if !app.meta.blob_linked(repo, blob)? {
            return Err(RegistryError::ManifestBlobUnknown(blob.clone()));
        }
    }
    for m in &refs.manifests {
        if app.meta.manifest(repo, m)?.is_none() {
            return Err(RegistryError::ManifestBlobUnknown(m.clone()));
        }
    }
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let tag: Option<&Tag> = match reference {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) => None,
    };
    // The descriptor a referrers listing of its subject shows.
    let descriptor = refs.subject.as_ref().map(|_| {
        let mut d = serde_json::json!({ "mediaType": media_type, "digest": digest.as_str(), "size": bytes.len() });
        if let Some(t) = &refs.artifact_type {
            d["artifactType"] = t.as_str().into();
        }
        if let Some(a) = &refs.annotations {
            d["annotations"] = a.clone();
        }
        d
    });
    let referrer = refs.subject.as_ref().zip(descriptor.as_ref());
    // From before this push: whether (and in what admission state) the
    // manifest was already stored, and where the tag pointed. One read serves
    // both storage (an identical re-push keeps its record) and admission.
    let prior = app.meta.manifest(repo, &digest)?.map(|r| r.state);
    let previous = match tag {
        Some(t) => app.meta.tag(repo, t)?,
        None => None,
    };
    // Evidence (a signature under the image's .sig tag, or an artifact with
    // a subject) is stored as such; anything else starts pending.
    let evidence_for = match (&app.admission, reference) {
        (None, _) => None,
        (Some(_), Reference::Tag(t)) => crate::admission::signed_image(t.as_str()).or_else(|| refs.subject.clone()),
        (Some(_), Reference::Digest(_)) => refs.subject.clone(),
    };
    let initial = match evidence_for {
        Some(_) => AdmissionState::Evidence,
        None => AdmissionState::Pending,
    };
    app.meta.put_manifest(
        repo,
        &digest,
        prior.is_none().then_some((media_type, &bytes[..], initial)),
        &refs.all(),
        tag,
        referrer,
    )?;
    // Admission, before answering: evidence re-evaluates its image; an image
    // is evaluated itself. The decision is in the ledger on return.
    let mut admission_state = None;
    if let Some(admission) = &app.admission {
        match evidence_for {
            Some(image) => {
                if prior.is_some_and(|s| s != AdmissionState::Evidence) {
                    app.meta
                        .set_state(repo, &digest, AdmissionState::Evidence, None, None)?;
                }
                admission.evaluate(app, repo, &image).await?;
                admission_state = Some(AdmissionState::Evidence);
            }
            None => {
                // Decisions are per digest: a manifest already decided (pushed
                // again, say under another tag) keeps its decision; new
                // evidence, not a new tag, is what re-evaluates it.
                let state = match prior {
                    Some(s @ (AdmissionState::Admitted | AdmissionState::Denied)) => s,
                    _ if admission.evaluate_pushed(app, repo, &digest).await? => AdmissionState::Admitted,
                    _ => AdmissionState::Denied,
                };
                // A tag set or moved onto admitted content is logged.
                if let (Some(t), AdmissionState::Admitted) = (tag, state) {
                    if previous.as_ref() != Some(&digest) {
                        admission.log_tag(app, repo, t.as_str(), &digest, previous).await?;
                    }
                }
                admission_state = Some(state);
            }
        }
    }
    let mut resp = (
        StatusCode::CREATED,
        [
            location(format!("/v2/{repo}/manifests/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_string(),
            ),
        ],
    )
        .into_response();
    if let Some(subject) = refs.subject {
        resp.headers_mut().insert(
            "OCI-Subject",
            HeaderValue::from_str(subject.as_str()).expect("digest is ascii"),
        );
    }
    if let Some(state) = admission_state {
        resp.headers_mut()
            .insert("Vouch-Admission-State", HeaderValue::from_static(state.as_str()));
    }
    Ok(resp)
}

async fn delete_manifest(app: &App, repo: &RepoName, reference: &Reference) -> Result<Response> {
    // Deleting admitted content (the manifest, or a tag pointing to it) is
    // logged first, so no such deletion goes unrecorded.
    if let Some(admission) = &app.admission {
        let (digest, tag) = match reference {
            Reference::Digest(d) => (Some(d.clone()), None),
            Reference::Tag(t) => (app.meta.tag(repo, t)?, Some(t.as_str())),
        };
        if let Some(d) = digest {
            let admitted = app
                .meta
                .manifest(repo, &d)?
                .is_some_and(|m| m.state == AdmissionState::Admitted);
            if admitted {
                admission.log_delete(app, repo, &d, tag).await?;
            }
        }
    }
    let existed = match reference {
        Reference::Digest(d) => {
            // Its subject, to drop it from the subject's referrers, and its
            // blobs, to drop its references to them.
            let refs = app
                .meta
                .manifest(repo, d)?
                .and_then(|m| validate(&m.media_type, &m.bytes).ok())
                .unwrap_or_default();
            app.meta.delete_manifest(repo, d, refs.subject.as_ref(), &refs.all())?
        }
        Reference::Tag(t) => app.meta.delete_tag(repo, t)?,
    };
    if !existed {
        return Err(RegistryError::ManifestUnknown(format!("{repo} {reference:?}")));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---- referrers ------------------------------------------------------------

/// Always 200 with an image index, empty if nothing refers to `subject`;
/// `?artifactType=` filters, announced by `OCI-Filters-Applied`.
fn list_referrers(app: &App, repo: &RepoName, subject: &Digest, q: &Query) -> Result<Response> {
    let mut manifests = app.meta.referrers(repo, subject)?;
    let filter = q.get("artifactType");
    if let Some(t) = filter {
        manifests.retain(|d| d.get("artifactType").and_then(|v| v.as_str()) == Some(t.as_str()));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::manifest::OCI_INDEX,
        "manifests": manifests,
    });
    let mut resp = (
        [(header::CONTENT_TYPE, super::manifest::OCI_INDEX)],
        serde_json::to_vec(&index).expect("serialize a JSON value"),
    )
        .into_response();
    if filter.is_some() {
        resp.headers_mut()
            .insert("OCI-Filters-Applied", HeaderValue::from_static("artifactType"));
    }
    Ok(resp)
}

// ---- tags -----------------------------------------------------------------

fn list_tags(app: &App, repo: &RepoName, q: &Query) -> Result<Response> {
    if !app.meta.repo_exists(repo)? {
        return Err(RegistryError::NameUnknown(repo.to_string()));
    }
    let n = match q.get("n") {
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| RegistryError::SizeInvalid(format!("n={n:?} is not a number")))?,
        ),
        None => None,
    };
    let all = app.meta.tags(repo)?;
    let after: Vec<String> = match q.get("last") {
        Some(last) => all.into_iter().filter(|t| t > last).collect(),
        None => all,
    };
    let (page, more) = match n {
        Some(n) if after.len() > n => (after[..n].to_vec(), true),
        _ => (after, false),
    };
    let mut resp = axum::Json(serde_json::json!({ "name": repo.as_str(), "tags": page })).into_response();
    if let (true, Some(n), Some(last)) = (more, n, page.last()) {
        let link = format!("</v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\"");
        resp.headers_mut()
            .insert(header::LINK, HeaderValue::from_str(&link).expect("ascii"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("digest=sha256%3Aabc&n=5&last"));
        assert_eq!(q["digest"], "sha256:abc");
        assert_eq!(q["n"], "5");
        assert_eq!(q["last"], "");
    }
}
