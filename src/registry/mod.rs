//! The OCI distribution-spec v1.1 registry: routing, handlers, storage.

pub mod auth;
pub mod blobs;
pub mod digest;
pub mod error;
pub mod gc;
mod handlers;
pub mod ledger_api;
pub mod limits;
pub mod manifest;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod path;

use axum::Router;
use blobs::BlobStore;
use meta::Meta;
use std::sync::Arc;

/// Limits and switches of a running registry.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest accepted (413 above).
    pub max_manifest_bytes: u64,
    /// Largest blob accepted (413 above).
    pub max_blob_bytes: u64,
    /// Requests in flight per client address (429 above).
    pub max_requests_per_client: u32,
    /// Whether DELETE of blobs and manifests is allowed (405 otherwise).
    pub deletes: bool,
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Blob files.
    pub blobs: BlobStore,
    /// Metadata.
    pub meta: Meta,
    /// Limits.
    pub limits: Limits,
    /// The users who may push; `None` is open mode (anyone may).
    pub users: Option<auth::Users>,
    /// The ledger.
    pub ledger: vouch_ledger::store::Ledger,
    /// Request counters.
    pub metrics: metrics::Metrics,
    /// The policy in force; `None` serves every manifest (no admission).
    pub admission: Option<crate::admission::Admission>,
    /// Shared by manifest pushes and blob links, exclusive for garbage
    /// collection (`gc.rs`).
    pub gc_lock: tokio::sync::RwLock<()>,
}

/// Ends upload sessions idle for longer than `ttl` (by their file's last
/// write), and removes session files that have no session (left by a crash
/// between creating the file and recording the session). Returns how many
/// sessions and files it removed.
pub async fn sweep_uploads(state: &AppState, ttl: std::time::Duration) -> Result<usize, error::RegistryError> {
    let files: std::collections::HashMap<String, std::time::Duration> =
        state.blobs.upload_files().await?.into_iter().collect();
    let sessions: std::collections::HashSet<String> = state.meta.uploads()?.into_iter().collect();
    let mut removed = 0;
    for id in &sessions {
        // A session whose file is gone is kept: a retried PUT may finish it.
        if files.get(id).is_some_and(|idle| *idle > ttl) {
            state.meta.delete_upload(id)?;
            state.blobs.remove_upload(id).await?;
            removed += 1;
        }
    }
    for (name, idle) in &files {
        if !sessions.contains(name) && *idle > ttl {
            state.blobs.remove_upload(name).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The registry's HTTP application: the distribution API under `/v2/` and
/// Prometheus metrics at `/metrics`, every request counted and logged.
pub fn app(state: Arc<AppState>) -> Router {
    let limiter = Arc::new(limits::ClientLimiter::new(state.limits.max_requests_per_client));
    Router::new()
        .route("/metrics", axum::routing::get(metrics::serve_metrics))
        .route("/admin/gc", axum::routing::post(handlers::admin_gc))
        .route("/admin/reevaluate", axum::routing::post(handlers::admin_reevaluate))
        .route("/ledger/checkpoint", axum::routing::get(ledger_api::checkpoint))
        .route("/ledger/tile/{*rest}", axum::routing::get(ledger_api::tile))
        .route("/ledger/proof/inclusion", axum::routing::get(ledger_api::inclusion))
        .route("/ledger/proof/consistency", axum::routing::get(ledger_api::consistency))
        .route("/ledger/entry/{index}", axum::routing::get(ledger_api::entry))
        .route("/ledger/proof/tlog/{index}", axum::routing::get(ledger_api::tlog_proof))
        .fallback(handlers::dispatch)
        .layer(axum::middleware::from_fn_with_state(limiter, limits::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        .with_state(state)
}
