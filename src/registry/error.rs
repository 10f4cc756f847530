//! The registry's errors and their wire form: the OCI distribution-spec
//! error codes, mapped to HTTP statuses in exactly one table
//! ([`RegistryError::wire`]), sent as the spec's JSON envelope
//! `{"errors": [{"code", "message", "detail"}]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vouch_ledger::entry::Digest;

/// Everything a registry request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The blob is not in this repository.
    #[error("blob {0} is unknown to this repository")]
    BlobUnknown(Digest),
    /// The upload's content or request is invalid.
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk does not start where the upload ends (416).
    #[error("chunk range {got} does not start at the upload's size {size}")]
    RangeNotSatisfiable {
        /// The Content-Range received.
        got: String,
        /// Bytes the upload holds.
        size: u64,
    },
    /// No such upload session.
    #[error("blob upload {0} is unknown or has expired")]
    BlobUploadUnknown(String),
    /// A digest that does not parse, or content that does not match it.
    #[error("{0}")]
    DigestInvalid(String),
    /// A manifest references a blob or manifest this repository lacks.
    #[error("manifest references {0}, which is unknown to this repository")]
    ManifestBlobUnknown(Digest),
    /// A manifest that is not valid for its media type.
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    /// No such manifest.
    #[error("manifest {0} is unknown to this repository")]
    ManifestUnknown(String),
    /// A repository name that does not match the spec's grammar.
    #[error("invalid repository name {0:?}: must match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*)*, at most 255 characters")]
    NameInvalid(String),
    /// A tag or reference that does not match the spec's grammar.
    #[error("invalid tag {0:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    TagInvalid(String),
    /// The repository does not exist.
    #[error("repository {0} is not known to this registry")]
    NameUnknown(String),
    /// A size or length that is missing, malformed or inconsistent.
    #[error("{0}")]
    SizeInvalid(String),
    /// A body larger than the configured limit (413).
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// A method or feature this registry does not offer (405).
    #[error("{0}")]
    Unsupported(String),
    /// A ledger resource (tile, entry, proof) outside the tree (404).
    #[error("not in the ledger: {0}")]
    LedgerNotFound(String),
    /// A malformed ledger request (400).
    #[error("bad ledger request: {0}")]
    LedgerBadRequest(String),
    /// A request for a path that is not part of the API (404).
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// Not admitted under the policy (403).
    #[error("{0}")]
    Denied(String),
    /// Credentials are missing or wrong (401, with a Basic challenge).
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    /// An authenticated user without the right (403).
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed password checks from this client or for this user
    /// lately (429, with Retry-After).
    #[error("too many failed logins from this client or for this user; retry in {retry_after} s")]
    LoginThrottled {
        /// Seconds until the next attempt is checked.
        retry_after: u64,
    },
    /// A per-client or global bound on upload sessions (429, with Retry-After).
    #[error("{0}")]
    UploadLimit(String),
    /// The client has too many requests in flight (429, with Retry-After).
    #[error("too many requests in flight from this client (limit {max}); retry shortly")]
    TooManyRequests {
        /// The per-client limit.
        max: u32,
    },
    /// Not available yet (503, with Retry-After): with witnesses, before
    /// the first cosigned checkpoint.
    #[error("{0}")]
    Unavailable(String),
    /// The server failed (disk, database); the request changed nothing.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    /// THE table: each error's HTTP status and distribution-spec code.
    pub fn wire(&self) -> (StatusCode, &'static str) {
        use RegistryError::*;
        match self {
            BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            BlobUploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            BlobUploadUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            ManifestBlobUnknown(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            TagInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
            TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            Unsupported(_) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            NotFound(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            LedgerNotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            LedgerBadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            Denied(_) | Forbidden(_) => (StatusCode::FORBIDDEN, "DENIED"),
            LoginThrottled { .. } | UploadLimit(_) => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }
}

impl From<rocksdb::Error> for RegistryError {
    fn from(e: rocksdb::Error) -> Self {
        RegistryError::Internal(format!("metadata database: {e}"))
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::Internal(format!("blob storage: {e}"))
    }
}

impl From<object_store::Error> for RegistryError {
    fn from(e: object_store::Error) -> Self {
        RegistryError::Internal(format!("object storage: {e}"))
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.wire();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::json!({
            "errors": [{ "code": code, "message": self.to_string(), "detail": null }]
        });
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Basic realm=\"{}\"", super::auth::REALM);
            resp.headers_mut()
                .insert("WWW-Authenticate", challenge.parse().expect("ascii"));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = match &self {
                RegistryError::LoginThrottled { retry_after } => *retry_after,
                RegistryError::UploadLimit(_) => 10,
                _ => 1,
            };
            resp.headers_mut().insert("Retry-After", after.into());
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert("Retry-After", 1.into());
        }
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            if let RegistryError::RangeNotSatisfiable { size, .. } = self {
                let range = format!("0-{}", size.saturating_sub(1));
                resp.headers_mut().insert("Range", range.parse().expect("ascii"));
            }
        }
        resp
    }
}
