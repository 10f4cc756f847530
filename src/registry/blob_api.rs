//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use super::error::RegistryError;
use super::names::RepoName;
use super::routes::{App, Caller, Result};
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::ops::ControlFlow;
use vouch_ledger::entry::Digest;

/// Serves a blob linked into `repo`. A reader without push rights there
/// gets it only if the gate says it may (`spec/threat-model.md`): a `GET`
/// of a withheld blob answers 403 `DENIED` naming why, a `HEAD` answers 404
/// (no length is disclosed, and a client checking before an upload simply
/// uploads, which changes nothing).
pub(super) async fn get(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
    h: &HeaderMap,
    with_body: bool,
) -> Result<Response> {
    if !app.meta.blob_linked(repo, digest)? {
        return Err(RegistryError::BlobUnknown(digest.clone()));
    }
    if !caller.reads_quarantined(app, repo) {
        if let super::gate::Visible::No(why) = app.gate.blob_visible(app, repo, digest)? {
            return Err(if with_body {
                RegistryError::Denied(why)
            } else {
                RegistryError::BlobUnknown(digest.clone())
            });
        }
    }
    // A small blob vouch wrote is inline in the metadata store, not a file.
    let (size, inline) = match app.blobs.blob_size(digest).await? {
        Some(size) => (size, None),
        None => {
            let bytes = app
                .meta
                .inline_blob(digest)?
                .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))?;
            (bytes.len() as u64, Some(bytes))
        }
    };
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
    let body = match inline {
        _ if !with_body || len == 0 => Body::empty(),
        Some(bytes) => Body::from(bytes[start as usize..(start + len) as usize].to_vec()),
        None => Body::from_stream(app.blobs.read_range(digest, start, len).await?),
    };
    resp.body(body).map_err(|e| RegistryError::Internal(e.to_string()))
}

/// Unlinks a blob from the repository: 202. The file itself is removed by
/// garbage collection once no repository's manifests reference it. A blob
/// that is content of a protected (admitted) manifest there is not
/// unlinked: the image would break while it shows as admitted
/// (`spec/ledger.md`, "What is logged, and what is refused").
pub(super) async fn delete(app: &App, repo: &RepoName, digest: &Digest) -> Result<Response> {
    let _gc = app.gc_lock.read().await;
    if !app.meta.blob_linked(repo, digest)? {
        return Err(RegistryError::BlobUnknown(digest.clone()));
    }
    let mut protected_by = None;
    app.meta.for_each_referencing(repo, digest, |m, record| {
        if app.gate.protected(record, true) {
            protected_by = Some(m.clone());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if let Some(m) = protected_by {
        return Err(RegistryError::Denied(format!(
            "blob {digest} is content of the admitted manifest {repo}@{m}; delete that manifest first"
        )));
    }
    let mut b = app.meta.batch();
    b.unlink_blob(repo.as_str(), digest);
    b.commit(true)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` inside a blob of `size` bytes.
pub(super) fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
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
}
