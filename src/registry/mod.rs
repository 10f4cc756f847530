//! The OCI distribution-spec v1.1 registry: routing, handlers, storage.

pub mod auth;
pub mod blobs;
pub mod digest;
pub mod error;
mod handlers;
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
}

/// The registry's HTTP application: the distribution API under `/v2/` and
/// Prometheus metrics at `/metrics`, every request counted and logged.
pub fn app(state: Arc<AppState>) -> Router {
    let limiter = Arc::new(limits::ClientLimiter::new(state.limits.max_requests_per_client));
    Router::new()
        .route("/metrics", axum::routing::get(metrics::serve_metrics))
        .fallback(handlers::dispatch)
        .layer(axum::middleware::from_fn_with_state(limiter, limits::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        .with_state(state)
}
