//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (new session, monolithic
//! upload, cross-repository mount), then `PATCH`, `PUT`, `GET` and `DELETE`
//! on the session. A session is used by one request at a time and finished
//! at most once (its lock, `uploads.rs`); the sessions and bytes a client
//! may hold are bounded.

use super::error::RegistryError;
use super::names::{parse_digest, RepoName};
use super::routes::{first, location, App, Caller, Query, Result};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use vouch_ledger::entry::Digest;

fn upload_url(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// The session `id` as issued (a UUID's simple form), belonging to `repo`
/// and opened by `caller` (the same user, or for anonymous clients the
/// same address): anyone else's session is unknown to them.
fn session(app: &App, caller: &Caller, repo: &RepoName, id: &str) -> Result<String> {
    let unknown = || RegistryError::BlobUploadUnknown(id.chars().take(64).collect());
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    match app.meta.upload(id)? {
        Some(u) if u.repo == repo.as_str() && (u.owner.is_empty() || u.owner == caller.principal.owner()) => {
            Ok(id.to_owned())
        }
        _ => Err(unknown()),
    }
}

/// Whether `caller` may mount `digest` from `from`: it is linked there and
/// the caller could read it there (a mount never makes readable what was
/// not: spec/threat-model.md).
fn mountable(app: &App, caller: &Caller, from: &RepoName, digest: &Digest) -> Result<bool> {
    if !app.meta.blob_linked(from, digest)? || !caller.may(app, super::access::Action::Read, Some(from)) {
        return Ok(false);
    }
    Ok(caller.reads_quarantined(app, from) || app.gate.blob_visible(app, from, digest)?.is_yes())
}

/// Repositories a mount without `from` looks at, at most.
const MOUNT_SCAN: usize = 10_000;

/// A repository where the caller could read the blob `digest`, for a mount
/// without `from`: none if the blob is not stored at all; otherwise the
/// first of at most [`MOUNT_SCAN`] repositories, in name order, where it is.
async fn mount_source(app: &App, caller: &Caller, digest: &Digest) -> Result<Option<RepoName>> {
    if app.blob_size(digest).await?.is_none() {
        return Ok(None);
    }
    let mut after: Option<String> = None;
    let mut seen = 0;
    while seen < MOUNT_SCAN {
        let repos = app.meta.repos(after.as_deref(), 256)?;
        if repos.is_empty() {
            break;
        }
        for repo in repos {
            seen += 1;
            if mountable(app, caller, &repo, digest)? {
                return Ok(Some(repo));
            }
            after = Some(repo.to_string());
        }
    }
    Ok(None)
}

pub(super) async fn start(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    q: &Query,
    h: &HeaderMap,
    body: Body,
) -> Result<Response> {
    if let Some(mount) = first(q, "mount") {
        let digest = parse_digest(mount)?;
        let readable = match first(q, "from") {
            Some(from) => mountable(app, caller, &RepoName::parse(from)?, &digest)?,
            // No `from` (distribution-spec 1.1, "Mounting a blob from
            // another repository"): any repository the caller could read
            // it in.
            None => mount_source(app, caller, &digest).await?.is_some(),
        };
        if readable {
            let _gc = app.gc_lock.read().await;
            if let Some(size) = app.blob_size(&digest).await? {
                let mut b = app.meta.batch();
                b.link_blob(repo, &digest, size);
                b.commit(true)?;
                return Ok(blob_created(repo, &digest));
            }
        }
        // Not mountable: a new session, as the spec allows; the client
        // uploads the bytes it has.
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    app.uploads.open(&id, &caller.principal.owner(), &app.limits)?;
    let created = async {
        app.blobs.create_upload(&id).await?;
        let mut b = app.meta.batch();
        b.put_upload(&id, repo, &caller.principal.owner());
        b.commit(true)
    }
    .await;
    if let Err(e) = created {
        app.uploads.closed(&id);
        let _ = app.blobs.remove_upload(&id).await;
        return Err(e);
    }
    if let Some(digest) = first(q, "digest") {
        let result = match parse_digest(digest) {
            Ok(digest) => finish_session(app, repo, &id, &digest, h, body).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // A failed monolithic upload leaves no session behind.
            drop_session(app, &id).await?;
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

/// Checks a `Content-Range: <start>-<end>` against an upload holding `size`
/// bytes: it must start there, end at or after its start, fit in `room`,
/// and agree with `Content-Length`. Returns the number of bytes announced
/// (`None` without the header). Anything else is 416, before a byte is
/// stored.
fn announced(h: &HeaderMap, size: u64, room: u64) -> Result<Option<u64>> {
    let Some(cr) = h.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = cr.to_str().unwrap_or("");
    let bad = || RegistryError::RangeNotSatisfiable {
        got: text.chars().take(100).collect(),
        size,
    };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (start, end) = (
        a.parse::<u64>().map_err(|_| bad())?,
        b.parse::<u64>().map_err(|_| bad())?,
    );
    if start != size || end < start {
        return Err(bad());
    }
    let len = (end - start).checked_add(1).ok_or_else(bad)?;
    if len > room {
        return Err(bad());
    }
    let content_length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if content_length.is_some_and(|n| n != len) {
        return Err(bad());
    }
    Ok(Some(len))
}

/// Appends a request body to the session (streamed, fsync'd), within the
/// room its client and the registry have left, and exactly the bytes a
/// `Content-Range` announced, if one was sent.
async fn append(app: &App, id: &str, h: &HeaderMap, body: Body) -> Result<u64> {
    let size = app
        .blobs
        .upload_size(id)
        .await?
        .ok_or_else(|| RegistryError::BlobUploadUnknown(id.into()))?;
    let exact = announced(h, size, app.uploads.room(id, &app.limits))?;
    // The blob bound here; the client's and the registry's bounds chunk
    // by chunk, as the bytes arrive (other sessions fill them meanwhile).
    let room = app.limits.max_blob_bytes.saturating_sub(size);
    let mut charge = |n: u64| app.uploads.charge(id, n, &app.limits);
    let result = app
        .blobs
        .append(id, body.into_data_stream(), (room, exact), &mut charge)
        .await;
    // What the session holds now: the new size, or (the append failed, and
    // was cut off again) the old one.
    app.uploads.resized(id, *result.as_ref().unwrap_or(&size));
    match result {
        Err(RegistryError::TooLarge { .. }) => Err(RegistryError::TooLarge {
            what: "blob",
            limit: app.limits.max_blob_bytes,
        }),
        other => other,
    }
}

pub(super) async fn patch(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    id: &str,
    h: &HeaderMap,
    body: Body,
) -> Result<Response> {
    // Checked before the lock (which is kept per session) and again under it.
    let id = session(app, caller, repo, id)?;
    let _session = app.uploads.lock(&id).await;
    let id = session(app, caller, repo, &id)?;
    let size = append(app, &id, h, body).await?;
    Ok((
        StatusCode::ACCEPTED,
        [
            location(upload_url(repo, &id)),
            (header::RANGE, range_header(size)),
            (header::HeaderName::from_static("docker-upload-uuid"), id.clone()),
        ],
    )
        .into_response())
}

pub(super) async fn finish(
    app: &App,
    caller: &Caller,
    (repo, id): (&RepoName, &str),
    q: &Query,
    h: &HeaderMap,
    body: Body,
) -> Result<Response> {
    // Checked before the lock (which is kept per session) and again under it.
    let id = session(app, caller, repo, id)?;
    let _session = app.uploads.lock(&id).await;
    let id = session(app, caller, repo, &id)?;
    let digest = first(q, "digest")
        .ok_or_else(|| RegistryError::DigestInvalid("PUT to finish an upload needs ?digest=".into()))?;
    let digest = parse_digest(digest)?;
    finish_session(app, repo, &id, &digest, h, body).await
}

/// Appends a final body, verifies the digest, links the blob into the
/// repository and ends the session.
async fn finish_session(
    app: &App,
    repo: &RepoName,
    id: &str,
    digest: &Digest,
    h: &HeaderMap,
    body: Body,
) -> Result<Response> {
    if let Err(e) = append(app, id, h, body).await {
        if matches!(e, RegistryError::BlobUploadUnknown(_)) {
            // The record outlived its data (an interrupted start): the
            // session is over; nothing names content it did not upload.
            drop_session(app, id).await?;
        }
        return Err(e);
    }
    // From making the blob visible to linking it, no collection may run
    // (taken after the body is in, so a slow client never holds it).
    let _gc = app.gc_lock.read().await;
    let size = match app.blobs.commit(id, digest).await {
        Ok(size) => size,
        Err(e @ RegistryError::DigestInvalid(_)) => {
            // A mismatch has deleted the data: the session is over.
            drop_session(app, id).await?;
            return Err(e);
        }
        // Anything else (a disk error) leaves the session as it was: the
        // client may retry the PUT.
        Err(e) => return Err(e),
    };
    // The link and the end of the session are one synced write; only then
    // does the session file lose its name (the blob keeps its own).
    let mut b = app.meta.batch();
    b.link_blob(repo, digest, size);
    b.delete_upload(id);
    b.commit(true)?;
    app.blobs.remove_upload(id).await?;
    app.uploads.closed(id);
    Ok(blob_created(repo, digest))
}

/// Ends a session and removes its data.
async fn drop_session(app: &App, id: &str) -> Result<()> {
    let mut b = app.meta.batch();
    b.delete_upload(id);
    b.commit(true)?;
    app.blobs.remove_upload(id).await?;
    app.uploads.closed(id);
    Ok(())
}

pub(super) async fn status(app: &App, caller: &Caller, repo: &RepoName, id: &str) -> Result<Response> {
    let id = session(app, caller, repo, id)?;
    let size = app
        .blobs
        .upload_size(&id)
        .await?
        .ok_or_else(|| RegistryError::BlobUploadUnknown(id.clone()))?;
    Ok((
        StatusCode::NO_CONTENT,
        [
            location(upload_url(repo, &id)),
            (header::RANGE, range_header(size)),
            (header::HeaderName::from_static("docker-upload-uuid"), id.clone()),
        ],
    )
        .into_response())
}

pub(super) async fn cancel(app: &App, caller: &Caller, repo: &RepoName, id: &str) -> Result<Response> {
    // Checked before the lock (which is kept per session) and again under it.
    let id = session(app, caller, repo, id)?;
    let _session = app.uploads.lock(&id).await;
    let id = session(app, caller, repo, &id)?;
    drop_session(app, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
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
