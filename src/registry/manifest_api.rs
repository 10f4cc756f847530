//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use super::access::Action;
use super::error::RegistryError;
use super::gate::{ManifestPush, Visible};
use super::manifest::validate;
use super::meta::AdmissionState;
use super::names::{Reference, RepoName, Tag};
use super::routes::{location, App, Caller, Query, Result};
use crate::registry::digest::DigestHasher;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use vouch_ledger::entry::Digest;

fn resolve(app: &App, repo: &RepoName, reference: &Reference) -> Result<Digest> {
    match reference {
        Reference::Digest(d) => Ok(d.clone()),
        Reference::Tag(t) => app
            .meta
            .tag(repo, t)?
            .ok_or_else(|| RegistryError::ManifestUnknown(format!("{repo}:{}", t.as_str()))),
    }
}

/// Serves a manifest. A reader without push rights to the repository gets
/// its bytes only if the gate says it may; otherwise 403 `DENIED` naming
/// why, with the manifest's digest (`Docker-Content-Digest`, so signers can
/// resolve what to sign) and admission state, but neither its bytes nor
/// its length.
pub(super) async fn get(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
    with_body: bool,
) -> Result<Response> {
    let digest = resolve(app, repo, reference)?;
    let unknown = || RegistryError::ManifestUnknown(format!("{repo}@{digest}"));
    let mut record = app.meta.manifest(repo, &digest)?.ok_or_else(unknown)?;
    // A large manifest is held in memory until a slow reader has it: only
    // while there is room in the manifest memory (not read meanwhile).
    let mut permit = None;
    if with_body && record.bytes.len() > SMALL_MANIFEST {
        let need = u32::try_from(record.bytes.len()).unwrap_or(u32::MAX);
        drop(record);
        permit = Some(
            app.manifest_memory
                .clone()
                .acquire_many_owned(need)
                .await
                .map_err(|e| RegistryError::Internal(e.to_string()))?,
        );
        record = app.meta.manifest(repo, &digest)?.ok_or_else(unknown)?;
    }
    let state = HeaderValue::from_static(record.state.as_str());
    let digest_header = HeaderValue::from_str(digest.as_str()).expect("digests are ascii");
    if !caller.reads_quarantined(app, repo) {
        if let Visible::No(why) = app.gate.manifest_visible(app, repo, &digest, &record)? {
            // What a signer needs to sign it (its digest; and, for a
            // referrer's `subject` descriptor, its media type and size),
            // never its bytes.
            let mut resp = RegistryError::Denied(why).into_response();
            let h = resp.headers_mut();
            h.insert("Docker-Content-Digest", digest_header);
            h.insert("Vouch-Admission-State", state);
            h.insert("Vouch-Manifest-Size", HeaderValue::from(record.bytes.len()));
            if let Ok(v) = HeaderValue::from_str(&record.media_type) {
                h.insert("Vouch-Manifest-Media-Type", v);
            }
            return Ok(resp);
        }
    }
    let len = record.bytes.len();
    let body = match (with_body, permit) {
        (false, _) => Body::empty(),
        (true, None) => Body::from(record.bytes),
        (true, Some(permit)) => held_body(bytes::Bytes::from(record.bytes), permit),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, record.media_type)
        .header(header::CONTENT_LENGTH, len)
        .header("Docker-Content-Digest", digest_header)
        .header("Vouch-Admission-State", state)
        .body(body)
        .map_err(|e| RegistryError::Internal(e.to_string()))
}

/// Manifests up to this size are served without waiting for room in the
/// manifest memory (the connection bounds bound them).
const SMALL_MANIFEST: usize = 64 << 10;

/// A body of `bytes` sent in 64 KiB slices of one buffer, holding `permit`
/// until the last slice is taken (the body is dropped).
fn held_body(bytes: bytes::Bytes, permit: tokio::sync::OwnedSemaphorePermit) -> Body {
    let chunks = (0..bytes.len()).step_by(SMALL_MANIFEST).map(move |at| {
        let _held = &permit;
        Ok::<_, std::convert::Infallible>(bytes.slice(at..(at + SMALL_MANIFEST).min(bytes.len())))
    });
    Body::from_stream(futures_util::stream::iter(chunks))
}

/// Reads a manifest body of at most `limit` bytes, after waiting for room
/// for it in the registry's manifest memory (`Limits::manifest_memory`).
async fn read_body<'a>(
    app: &'a App,
    h: &HeaderMap,
    body: Body,
) -> Result<(bytes::Bytes, tokio::sync::SemaphorePermit<'a>)> {
    let limit = app.limits.max_manifest_bytes;
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RegistryError::TooLarge {
            what: "manifest",
            limit,
        });
    }
    let need = declared.unwrap_or(limit).max(1);
    let need = u32::try_from(need).unwrap_or(u32::MAX);
    let permit = app
        .manifest_memory
        .acquire_many(need)
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let bytes = limited.collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            RegistryError::TooLarge {
                what: "manifest",
                limit,
            }
        } else {
            RegistryError::ManifestInvalid(format!("reading the body: {e}"))
        }
    })?;
    Ok((bytes.to_bytes(), permit))
}

/// Most `?tag=` parameters one push may carry.
const MAX_TAG_PARAMS: usize = 64;

/// The tags a push applies: its reference, if a tag; or, pushed by digest,
/// its `?tag=` parameters (distribution-spec main, "Pushing Manifests with
/// Tags"), each checked against the tag grammar, once each.
fn push_tags(reference: &Reference, q: &Query) -> Result<Vec<Tag>> {
    let params = q.get("tag").map(Vec::as_slice).unwrap_or_default();
    match reference {
        Reference::Tag(_) if !params.is_empty() => Err(RegistryError::TagInvalid(
            "?tag= applies to a push by digest; this push names a tag already".into(),
        )),
        Reference::Tag(t) => Ok(vec![t.clone()]),
        Reference::Digest(_) if params.len() > MAX_TAG_PARAMS => Err(RegistryError::TagInvalid(format!(
            "{} ?tag= parameters; at most {MAX_TAG_PARAMS} in one push",
            params.len()
        ))),
        Reference::Digest(_) => {
            let mut tags: Vec<Tag> = Vec::new();
            for p in params {
                let t = Tag::parse(p)?;
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            Ok(tags)
        }
    }
}

pub(super) async fn put(
    app: &App,
    caller: &Caller,
    (repo, reference, q): (&RepoName, &Reference, &Query),
    h: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let tags = push_tags(reference, q)?;
    let (bytes, _memory) = read_body(app, h, body).await?;
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
    // Every descriptor names content that is here, with the size it has
    // (OCI image spec, descriptor `size`): sizes are claims to check, not
    // facts to sum.
    for (blob, declared) in refs.blobs.iter().zip(&refs.blob_sizes) {
        match app.meta.blob_link(repo, blob)? {
            None => return Err(RegistryError::ManifestBlobUnknown(blob.clone())),
            Some(size) if size != *declared => {
                return Err(RegistryError::ManifestInvalid(format!(
                    "a descriptor declares {blob} to be {declared} bytes; it is {size}"
                )))
            }
            Some(_) => {}
        }
    }
    for (m, declared) in refs.manifests.iter().zip(&refs.manifest_sizes) {
        match app.meta.manifest_size(repo, m)? {
            None => return Err(RegistryError::ManifestBlobUnknown(m.clone())),
            Some(size) if size != *declared => {
                return Err(RegistryError::ManifestInvalid(format!(
                    "a descriptor declares the manifest {m} to be {declared} bytes; it is {size}"
                )))
            }
            Some(_) => {}
        }
    }
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    // Moving a tag off protected (admitted) content is an admin's act
    // (checked here to refuse early, and by the gate again where it commits).
    for t in &tags {
        let Some(p) = app.meta.tag(repo, t)?.filter(|p| *p != digest) else {
            continue;
        };
        if app
            .meta
            .manifest(repo, &p)?
            .is_some_and(|r| app.gate.protected(&r, false))
        {
            caller.require_admin(app, repo, &format!("moving tag {} off the admitted {p}", t.as_str()))?;
        }
    }
    let admin = caller.may(app, Action::Admin, Some(repo));
    let prior = app.meta.manifest(repo, &digest)?;
    let subject = refs.subject.clone();
    let push = ManifestPush {
        repo,
        digest: digest.clone(),
        media_type,
        bytes: &bytes,
        refs: &refs,
        tags: &tags,
        admin,
        prior,
    };
    let accepted = app.gate.accept(app, push).await?;
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
    if let Some(subject) = subject {
        resp.headers_mut().insert(
            "OCI-Subject",
            HeaderValue::from_str(subject.as_str()).expect("digest is ascii"),
        );
    }
    if let Some(state) = accepted.state {
        resp.headers_mut()
            .insert("Vouch-Admission-State", HeaderValue::from_static(state.as_str()));
    }
    // One OCI-Tag header per tag applied (tags are ASCII by their grammar).
    if matches!(reference, Reference::Digest(_)) {
        for t in &tags {
            if let Ok(v) = HeaderValue::from_str(t.as_str()) {
                resp.headers_mut().append("OCI-Tag", v);
            }
        }
    }
    Ok(resp)
}

/// Deletes a manifest (by digest, with the tags pointing to it) or a tag.
/// Deleting protected (admitted) content, or a tag pointing to it, is an
/// admin's act, and the gate logs it first.
pub(super) async fn delete(app: &App, caller: &Caller, repo: &RepoName, reference: &Reference) -> Result<Response> {
    let unknown = || RegistryError::ManifestUnknown(format!("{repo} {reference:?}"));
    // The tag's target is read again under the gate's hold: a push may
    // move it meanwhile (then its new target is the one to hold).
    for _ in 0..8 {
        let (digest, tag) = match reference {
            Reference::Digest(d) => (d.clone(), None),
            Reference::Tag(t) => (app.meta.tag(repo, t)?.ok_or_else(unknown)?, Some(t)),
        };
        // The tags it deletes: the one named, or (by digest) every tag
        // pointing to the manifest (a tag set meanwhile is left dangling,
        // and then answers 404 like the manifest).
        let tags: Vec<Tag> = match tag {
            Some(t) => vec![t.clone()],
            None => app
                .meta
                .tags_with_targets(repo)?
                .into_iter()
                .filter(|(_, target)| *target == digest)
                .filter_map(|(t, _)| Tag::parse(&t).ok())
                .collect(),
        };
        let _hold = app.gate.hold(repo, &digest, &tags).await;
        if let Some(t) = tag {
            if app.meta.tag(repo, t)?.as_ref() != Some(&digest) {
                continue;
            }
        }
        return delete_held(app, caller, repo, (&digest, tag)).await;
    }
    Err(RegistryError::Internal(format!(
        "{repo} {reference:?} kept moving while it was being deleted; try again"
    )))
}

/// [`delete`], under the gate's hold of `digest`: checked and committed
/// with no admission or tag change in between.
async fn delete_held(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    (digest, tag): (&Digest, Option<&Tag>),
) -> Result<Response> {
    let record = app.meta.manifest(repo, digest)?;
    if record.is_none() && tag.is_none() {
        return Err(RegistryError::ManifestUnknown(format!("{repo} {digest}")));
    }
    if let Some(r) = record.as_ref().filter(|r| app.gate.protected(r, true)) {
        let which = match r.state {
            AdmissionState::Evidence => "vouch's own",
            _ => "the admitted",
        };
        let what = match tag {
            Some(t) => format!("deleting tag {} of {which} {digest}", t.as_str()),
            None => format!("deleting {which} {digest}"),
        };
        caller.require_admin(app, repo, &what)?;
    }
    app.gate.before_destroy(app, repo, digest, tag).await?;
    let mut b = app.meta.batch();
    match (tag, &record) {
        (Some(t), _) => b.delete_tag(repo, t),
        (None, Some(record)) => {
            // Its subject, to drop it from the subject's referrers, and its
            // references, to drop them from the index.
            let refs = validate(&record.media_type, &record.bytes).unwrap_or_default();
            b.delete_manifest(repo, digest, record, &refs.all(), refs.subject.as_ref())?;
        }
        (None, None) => unreachable!("checked above"),
    }
    b.commit(true)?;
    Ok(StatusCode::ACCEPTED.into_response())
}
