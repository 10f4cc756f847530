//! Listings: tags, referrers and the catalog. Each lists, for a reader
//! without push rights, only what that reader may read (the gate decides),
//! and pages with `n` and `last` and a `Link: <...>; rel="next"` header.

use super::access::Action;
use super::error::RegistryError;
use super::names::RepoName;
use super::routes::{first, page, App, Caller, Query, Result};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use vouch_ledger::entry::Digest;

/// Most tags, referrers or repositories one page lists.
const MAX_PAGE: usize = 10_000;
/// Referrers listed per page unless `n` says otherwise.
const REFERRERS_PAGE: usize = 1_000;
/// Repositories listed per page unless `n` says otherwise.
const CATALOG_PAGE: usize = 100;

/// Whether the manifest `digest` of `repo` is stored and readable by a
/// reader without push rights there.
fn readable(app: &App, repo: &RepoName, digest: &Digest) -> Result<bool> {
    Ok(match app.meta.manifest(repo, digest)? {
        Some(record) => app.gate.manifest_visible(app, repo, digest, &record)?.is_yes(),
        None => false,
    })
}

/// Sets `Link: <url>; rel="next"` (distribution spec, "Listing Tags").
/// Query values in `url` are percent-encoded ([`encoded`]), so it is ASCII.
fn link(resp: &mut Response, url: String) {
    let value = format!("<{url}>; rel=\"next\"");
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::LINK, v);
    }
}

/// A query value percent-encoded (RFC 3986, section 2.1): all but the
/// unreserved characters, `/` and `:` (a `+` is encoded: form decoding
/// would read it as a space).
fn encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /v2/<name>/tags/list[?n=&last=]`: tags pointing to what the caller
/// may read, lexically sorted.
pub(super) fn tags(app: &App, caller: &Caller, repo: &RepoName, q: &Query) -> Result<Response> {
    if !app.meta.repo_exists(repo)? {
        return Err(RegistryError::NameUnknown(repo.to_string()));
    }
    let (n, last) = page(q, MAX_PAGE, MAX_PAGE)?;
    let privileged = caller.reads_quarantined(app, repo);
    let mut listed = Vec::new();
    for (tag, target) in app.meta.tags_with_targets(repo)? {
        if last.as_ref().is_some_and(|l| tag.as_str() <= l.as_str()) {
            continue;
        }
        if privileged || readable(app, repo, &target)? {
            listed.push(tag);
            if listed.len() > n {
                break;
            }
        }
    }
    let more = listed.len() > n;
    listed.truncate(n);
    let mut resp = axum::Json(serde_json::json!({ "name": repo.as_str(), "tags": listed })).into_response();
    if let (true, Some(last)) = (more && first(q, "n").is_some(), listed.last()) {
        link(&mut resp, format!("/v2/{repo}/tags/list?n={n}&last={}", encoded(last)));
    }
    Ok(resp)
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=&n=&last=]`: always 200
/// with an image index, empty if nothing the caller may read refers to
/// `subject`; `artifactType` filters, announced by `OCI-Filters-Applied`.
pub(super) fn referrers(app: &App, caller: &Caller, repo: &RepoName, subject: &Digest, q: &Query) -> Result<Response> {
    let (n, last) = page(q, REFERRERS_PAGE, MAX_PAGE)?;
    let filter = first(q, "artifactType");
    let privileged = caller.reads_quarantined(app, repo);
    let mut last_listed = None;
    let mut listed = app.meta.referrers(
        repo,
        subject,
        |digest, descriptor| {
            if last.as_ref().is_some_and(|l| digest.as_str() <= l.as_str()) {
                return Ok(false);
            }
            if filter.is_some_and(|t| descriptor.get("artifactType").and_then(|v| v.as_str()) != Some(t)) {
                return Ok(false);
            }
            let keep = privileged || readable(app, repo, digest)?;
            if keep {
                last_listed = Some(digest.clone());
            }
            Ok(keep)
        },
        n + 1,
    )?;
    let more = listed.len() > n;
    listed.truncate(n);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::manifest::OCI_INDEX,
        "manifests": listed,
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
    if more {
        let after = listed
            .last()
            .and_then(|d| d["digest"].as_str())
            .map(str::to_owned)
            .or(last_listed.map(|d| d.to_string()))
            .unwrap_or_default();
        let filter = filter.map_or(String::new(), |t| format!("&artifactType={}", encoded(t)));
        link(
            &mut resp,
            format!("/v2/{repo}/referrers/{subject}?n={n}&last={}{filter}", encoded(&after)),
        );
    }
    Ok(resp)
}

/// `GET /v2/_catalog[?n=&last=]`: the repositories in which the caller may
/// read something, in name order.
pub(super) fn catalog(app: &App, caller: &Caller, q: &Query) -> Result<Response> {
    let (n, last) = page(q, CATALOG_PAGE, MAX_PAGE)?;
    let mut listed: Vec<String> = Vec::new();
    let mut after = last.clone();
    'scan: loop {
        let batch = app.meta.repos(after.as_deref(), 256)?;
        if batch.is_empty() {
            break;
        }
        for repo in &batch {
            after = Some(repo.to_string());
            if !caller.may(app, Action::Read, Some(repo)) {
                continue;
            }
            let shown = caller.reads_quarantined(app, repo)
                || app
                    .meta
                    .find_manifest(repo, |d, r| Ok(app.gate.manifest_visible(app, repo, d, r)?.is_yes()))?
                    .is_some();
            if shown {
                listed.push(repo.to_string());
                if listed.len() > n {
                    break 'scan;
                }
            }
        }
    }
    let more = listed.len() > n;
    listed.truncate(n);
    let mut resp = axum::Json(serde_json::json!({ "repositories": listed })).into_response();
    if let (true, Some(last)) = (more, listed.last()) {
        link(&mut resp, format!("/v2/_catalog?n={n}&last={}", encoded(last)));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::encoded;

    #[test]
    fn link_query_values_are_percent_encoded() {
        assert_eq!(
            encoded("application/vnd.example+json"),
            "application/vnd.example%2Bjson"
        );
        assert_eq!(encoded("sha256:ab"), "sha256:ab");
        assert_eq!(encoded("a b\n&c=d"), "a%20b%0A%26c%3Dd");
        assert_eq!(encoded("é"), "%C3%A9");
    }
}
