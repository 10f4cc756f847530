//! The ledger over HTTP, under `/ledger/`:
//!
//! - c2sp.org/tlog-tiles: `checkpoint`, `tile/<L>/<N>[.p/<W>]`,
//!   `tile/entries/<N>[.p/<W>]`, so existing tlog clients can read, mirror
//!   and verify vouch's log;
//! - conveniences: `proof/inclusion?index=&size=`,
//!   `proof/consistency?old=&new=` and `entry/<index>`.
//!
//! Reads only: the ledger is written by the registry itself, never by
//! requests to these paths.

use super::error::RegistryError;
use super::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use vouch_ledger::store::ReadError;
use vouch_ledger::tile::TileAddr;

type App = Arc<AppState>;

/// Tiles never change once served at a width (full tiles never, partial
/// tiles are named by their width), so caches may keep them for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn read_error(e: ReadError) -> RegistryError {
    match e {
        ReadError::OutOfRange { what, size } => RegistryError::LedgerNotFound(format!("{what} (tree size {size})")),
        other => RegistryError::Internal(other.to_string()),
    }
}

/// `GET /ledger/checkpoint`: the latest signed checkpoint note; with
/// witnesses configured, the newest one cosigned by enough of them, with
/// their cosignatures (c2sp.org/tlog-witness), once there is one.
pub async fn checkpoint(State(app): State<App>) -> Response {
    let note = match app.published.get() {
        Some(c) => c.note.clone(),
        // With witnesses, only a cosigned checkpoint is served: serving the
        // newest meanwhile would let the served size go back when the
        // first cosigned one (read when its round began) is published.
        None if app.published.configured() => {
            return RegistryError::Unavailable(
                "no checkpoint has been cosigned by the witnesses yet: retry shortly".into(),
            )
            .into_response()
        }
        None => app.ledger.checkpoint(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note.to_string(),
    )
        .into_response()
}

/// Makes sure this process has seen a tree of at least `size` entries, if
/// there is one: a replica sharing its ledger with others follows their
/// appends now and then, and at once before it says something is beyond
/// its tree (a decision made on another replica, a proof asked of a size
/// another replica served).
fn seen(app: &AppState, size: u64) -> Result<(), RegistryError> {
    use vouch_ledger::store::AppendError;
    match app.ledger.refresh_to(size) {
        Ok(_) => Ok(()),
        Err(e @ AppendError::Unavailable(_)) => Err(RegistryError::Unavailable(format!("ledger: {e}"))),
        Err(e) => Err(RegistryError::Internal(format!("ledger: {e}"))),
    }
}

/// An offline proof of entry `index`: against the published cosigned
/// checkpoint if it covers the entry, else against the newest checkpoint
/// (a verifier asking for cosignatures then says the entry is not yet
/// witnessed).
pub fn proof_of(app: &AppState, index: u64) -> Result<vouch_ledger::tlog_proof::TlogProof, RegistryError> {
    match app.published.get().filter(|c| index < c.size) {
        Some(c) => app
            .ledger
            .tlog_proof_at(index, c.size, c.note.as_bytes().to_vec())
            .map_err(read_error),
        None => app.ledger.tlog_proof(index).map_err(read_error),
    }
}

/// `GET /ledger/tile/...`: a hash tile or an entry bundle.
pub async fn tile(State(app): State<App>, Path(rest): Path<String>) -> Result<Response, RegistryError> {
    let path = format!("tile/{rest}");
    let addr = TileAddr::parse(&path).map_err(|e| RegistryError::LedgerNotFound(e.to_string()))?;
    let mut bytes = app.ledger.tile(addr).map_err(read_error)?;
    if bytes.is_none() && app.ledger.is_shared() {
        seen(&app, app.ledger.size() + 1)?;
        bytes = app.ledger.tile(addr).map_err(read_error)?;
    }
    let bytes = bytes.ok_or_else(|| {
        RegistryError::LedgerNotFound(format!("{path} is not in the tree of size {}", app.ledger.size()))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        bytes,
    )
        .into_response())
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<u64, RegistryError> {
    let v = q
        .get(key)
        .ok_or_else(|| RegistryError::LedgerBadRequest(format!("missing ?{key}=")))?;
    v.parse()
        .map_err(|_| RegistryError::LedgerBadRequest(format!("{key}={v:?} is not a number")))
}

fn proof_json(fields: serde_json::Value, proof: &[vouch_ledger::Hash]) -> Response {
    let mut v = fields;
    v["proof"] = proof.iter().map(|h| h.to_base64()).collect::<Vec<_>>().into();
    axum::Json(v).into_response()
}

/// `GET /ledger/proof/inclusion?index=I&size=N`: RFC 9162 §2.1.3 proof,
/// hashes in standard base64, leaf first.
pub async fn inclusion(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, RegistryError> {
    let (index, size) = (number(&q, "index")?, number(&q, "size")?);
    seen(&app, size)?;
    let proof = app.ledger.inclusion_proof(index, size).map_err(read_error)?;
    Ok(proof_json(serde_json::json!({ "index": index, "size": size }), &proof))
}

/// `GET /ledger/proof/consistency?old=M&new=N`: RFC 9162 §2.1.4 proof.
pub async fn consistency(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, RegistryError> {
    let (old, new) = (number(&q, "old")?, number(&q, "new")?);
    seen(&app, new)?;
    let proof = app.ledger.consistency_proof(old, new).map_err(read_error)?;
    Ok(proof_json(serde_json::json!({ "old": old, "new": new }), &proof))
}

/// `GET /ledger/proof/tlog/<index>`: an offline proof of entry `index`
/// against the latest checkpoint, in the c2sp.org/tlog-proof@v1 text form.
pub async fn tlog_proof(State(app): State<App>, Path(index): Path<String>) -> Result<Response, RegistryError> {
    let index: u64 = index
        .parse()
        .map_err(|_| RegistryError::LedgerBadRequest(format!("{index:?} is not an entry index")))?;
    seen(&app, index.saturating_add(1))?;
    let proof = proof_of(&app, index)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], proof.to_text()).into_response())
}

/// `GET /v2/<name>/admission/<digest>`: the admission bundle
/// (`spec/bundle.md`): the latest decision about the manifest and the policy
/// it names, each entry with an offline proof, so anyone holding the log key
/// can check, offline, that it was admitted under that policy.
pub fn admission_bundle(
    app: &AppState,
    repo: &super::names::RepoName,
    digest: &vouch_ledger::entry::Digest,
) -> Result<Response, RegistryError> {
    let none = || RegistryError::LedgerNotFound(format!("no admission decision about {repo}@{digest}"));
    let decision = app.meta.decision(repo, digest)?.ok_or_else(none)?;
    let index = decision["ledger_index"].as_u64().ok_or_else(none)?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        bundle(app, repo, digest, index)?,
    )
        .into_response())
}

/// The admission bundle of the decision at ledger `index` about
/// `<repo>@<digest>`, as JSON bytes.
pub fn bundle(
    app: &AppState,
    repo: &super::names::RepoName,
    digest: &vouch_ledger::entry::Digest,
    index: u64,
) -> Result<Vec<u8>, RegistryError> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let none = || RegistryError::LedgerNotFound(format!("no admission decision about {repo}@{digest}"));
    seen(app, index.saturating_add(1))?;
    let entry = app.ledger.entry(index).map_err(read_error)?.ok_or_else(none)?;
    let policy_index = match vouch_ledger::entry::Entry::decode(&entry) {
        Ok(vouch_ledger::entry::Entry::Decision(d)) => d.policy_index,
        _ => {
            return Err(RegistryError::Internal(format!(
                "ledger entry {index} is not a decision"
            )))
        }
    };
    let policy = app.ledger.entry(policy_index).map_err(read_error)?.ok_or_else(none)?;
    let proven = |i: u64, bytes: &[u8]| -> Result<serde_json::Value, RegistryError> {
        Ok(serde_json::json!({ "entry": b64(bytes), "proof": proof_of(app, i)?.to_text() }))
    };
    let mut bundle = serde_json::json!({
        "version": 1,
        "repository": repo.as_str(),
        "digest": digest.as_str(),
        "decision": proven(index, &entry)?,
        "policy": proven(policy_index, &policy)?,
    });
    // A denial that took back an admission carries the admission it
    // revoked, so a verifier can tell "revoked" from "never admitted".
    let revoked = app
        .meta
        .decision(repo, digest)?
        .filter(|d| d["ledger_index"].as_u64() == Some(index))
        .and_then(|d| d["revokes"].as_u64());
    if let Some(r) = revoked {
        if let Some(admitted) = app.ledger.entry(r).map_err(read_error)? {
            bundle["revoked"] = proven(r, &admitted)?;
        }
    }
    Ok(serde_json::to_vec_pretty(&bundle).expect("serialize"))
}

/// `GET /ledger/entry/<index>`: the entry's bytes (canonical CBOR,
/// spec/ledger.md).
pub async fn entry(State(app): State<App>, Path(index): Path<String>) -> Result<Response, RegistryError> {
    let index: u64 = index
        .parse()
        .map_err(|_| RegistryError::LedgerBadRequest(format!("{index:?} is not an entry index")))?;
    seen(&app, index.saturating_add(1))?;
    let bytes = app
        .ledger
        .entry(index)
        .map_err(read_error)?
        .ok_or_else(|| RegistryError::LedgerNotFound(format!("entry {index} (tree size {})", app.ledger.size())))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/cbor"),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        bytes,
    )
        .into_response())
}
