//! The OCI distribution-spec v1.1 registry: routing, handlers, storage.
//!
//! The registry stores, routes and enforces the OCI rules and access
//! control; what a reader may see and what a push means it asks a
//! [`gate::Gate`] (vouch's admission). It never imports the admission code.

pub mod access;
mod admin;
pub mod auth;
mod blob_api;
pub mod blobs;
pub mod digest;
pub mod error;
pub mod gate;
pub mod gc;
pub mod ledger_api;
pub mod limits;
mod listing;
pub mod manifest;
mod manifest_api;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod path;
mod routes;
pub mod ui;
mod upload_api;
pub mod uploads;

use axum::Router;
use blobs::BlobStore;
use meta::Meta;
use std::sync::Arc;

/// Limits and switches of a running registry (spec/threat-model.md lists
/// each bound and its default).
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
    /// Manifest bodies held in memory at once, in bytes, over all requests:
    /// a push waits for room before it reads its body.
    pub manifest_memory: u64,
    /// Upload sessions open at once per client (user, or address).
    pub max_upload_sessions_per_client: u32,
    /// Upload sessions open at once in all.
    pub max_upload_sessions: u32,
    /// Bytes held by one client's open upload sessions.
    pub max_upload_bytes_per_client: u64,
    /// Bytes held by all open upload sessions.
    pub max_upload_bytes: u64,
    /// The smallest grace period garbage collection accepts, in seconds:
    /// blobs younger than this are never collected, so pushes in flight
    /// (layers first, manifest last) keep their layers.
    pub min_gc_grace: u64,
    /// Whether `/metrics` is served on this listener (off when it has a
    /// listener of its own).
    pub metrics_here: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_manifest_bytes: 8 << 20,
            max_blob_bytes: 64 << 30,
            max_requests_per_client: 64,
            deletes: true,
            manifest_memory: 64 << 20,
            max_upload_sessions_per_client: 64,
            max_upload_sessions: 1024,
            max_upload_bytes_per_client: 64 << 30,
            max_upload_bytes: 256 << 30,
            min_gc_grace: 600,
            metrics_here: true,
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
    /// Users, grants and modes (`access.rs`).
    pub access: access::Access,
    /// Failed password checks, throttled (`auth.rs`).
    pub throttle: auth::Throttle,
    /// The ledger.
    pub ledger: vouch_ledger::store::Ledger,
    /// Request counters.
    pub metrics: metrics::Metrics,
    /// Visibility and admission.
    pub gate: Arc<dyn gate::Gate>,
    /// Shared by manifest pushes and blob links, exclusive for garbage
    /// collection (`gc.rs`).
    pub gc_lock: tokio::sync::RwLock<()>,
    /// Open upload sessions: per-client accounting and per-session locks.
    pub uploads: uploads::Sessions,
    /// Room for manifest bodies in memory, in bytes ([`Limits::manifest_memory`]).
    pub manifest_memory: Arc<tokio::sync::Semaphore>,
    /// Password checks running at once (bcrypt is CPU-bound by design).
    pub password_checks: tokio::sync::Semaphore,
    /// The newest checkpoint cosigned by enough witnesses, when witnesses
    /// are configured (`crate::witnessing`).
    pub published: Arc<crate::witnessing::Published>,
    /// The ledger indexed for the web pages (`ui/index.rs`).
    pub ui_index: ui::index::LedgerIndex,
}

impl AppState {
    /// A registry over this storage: open mode, no admission
    /// ([`gate::OpenGate`]); set [`AppState::access`] and
    /// [`AppState::gate`] to change either.
    pub fn new(blobs: BlobStore, meta: Meta, ledger: vouch_ledger::store::Ledger, limits: Limits) -> AppState {
        let memory = usize::try_from(limits.manifest_memory.max(limits.max_manifest_bytes)).unwrap_or(usize::MAX);
        AppState {
            blobs,
            meta,
            manifest_memory: Arc::new(tokio::sync::Semaphore::new(
                memory.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            limits,
            access: access::Access::open(),
            throttle: auth::Throttle::default(),
            ledger,
            metrics: Default::default(),
            gate: Arc::new(gate::OpenGate),
            gc_lock: Default::default(),
            uploads: Default::default(),
            password_checks: tokio::sync::Semaphore::new(2),
            published: Arc::new(crate::witnessing::Published::none()),
            ui_index: Default::default(),
        }
    }
}

/// Ends upload sessions idle for longer than `ttl` (by their file's last
/// write), and removes session files that have no session (left by a crash
/// between creating the file and recording the session). Returns how many
/// sessions and files it removed.
pub async fn sweep_uploads(state: &AppState, ttl: std::time::Duration) -> Result<usize, error::RegistryError> {
    let files: std::collections::HashMap<String, std::time::Duration> =
        state.blobs.upload_files().await?.into_iter().collect();
    let sessions: std::collections::HashSet<String> = state.meta.uploads()?.into_iter().map(|(id, _)| id).collect();
    let mut removed = 0;
    for id in &sessions {
        if files.get(id).is_some_and(|idle| *idle <= ttl) {
            continue;
        }
        // Judged again under the session's lock, from the file as it is now:
        // the listing above may predate a session created meanwhile (its
        // file is created before its record, so a live session has one).
        let _session = state.uploads.lock(id).await;
        let idle = state.blobs.upload_idle(id).await?;
        if idle.is_some_and(|i| i <= ttl) || state.meta.upload(id)?.is_none() {
            continue;
        }
        let mut b = state.meta.batch();
        b.delete_upload(id);
        b.commit(true)?;
        state.blobs.remove_upload(id).await?;
        state.uploads.closed(id);
        removed += 1;
    }
    for (name, idle) in &files {
        if !sessions.contains(name) && *idle > ttl {
            state.blobs.remove_upload(name).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The registry's HTTP application: the distribution API under `/v2/`, the
/// ledger under `/ledger/`, operator endpoints under `/admin/`, and (unless
/// it has a listener of its own) Prometheus metrics at `/metrics`; every
/// request counted and logged.
pub fn app(state: Arc<AppState>) -> Router {
    let limiter = Arc::new(limits::ClientLimiter::new(state.limits.max_requests_per_client));
    let mut router = Router::new()
        .route("/admin/gc", axum::routing::any(admin::gc))
        .route("/admin/reevaluate", axum::routing::any(admin::reevaluate))
        .route("/ledger/checkpoint", axum::routing::get(ledger_api::checkpoint))
        .route("/ledger/tile/{*rest}", axum::routing::get(ledger_api::tile))
        .route("/ledger/proof/inclusion", axum::routing::get(ledger_api::inclusion))
        .route("/ledger/proof/consistency", axum::routing::get(ledger_api::consistency))
        .route("/ledger/entry/{index}", axum::routing::get(ledger_api::entry))
        .route("/ledger/proof/tlog/{index}", axum::routing::get(ledger_api::tlog_proof));
    if state.limits.metrics_here {
        router = router.route("/metrics", axum::routing::any(admin::metrics));
    }
    let router = router.merge(ui::routes());
    router
        .method_not_allowed_fallback(routes::method_not_allowed)
        .fallback(routes::dispatch)
        .layer(axum::middleware::from_fn_with_state(limiter, limits::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        .with_state(state)
}

/// Metrics alone, for a listener of their own (`--metrics-listen`).
pub fn metrics_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::serve_metrics))
        .with_state(state)
}
