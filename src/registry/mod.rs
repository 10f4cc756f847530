//! The OCI distribution-spec v1.1 registry: routing, handlers, storage.

pub mod auth;
pub mod blobs;
pub mod digest;
pub mod error;
mod handlers;
pub mod manifest;
pub mod meta;
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 8 << 20,
            max_blob_bytes: 64 << 30,
        }
    }
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
}

/// The registry's HTTP application.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new().fallback(handlers::dispatch).with_state(state)
}
