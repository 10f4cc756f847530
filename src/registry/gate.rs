//! The question the registry asks, and does not answer itself: what a
//! reader may see, and what a pushed manifest means. The registry stores,
//! routes and checks the OCI rules; a [`Gate`] (vouch's admission,
//! `src/admission/`) decides visibility and admission. The registry never
//! imports the admission code: the arrow points from admission to here.

use super::error::RegistryError;
use super::manifest::References;
use super::meta::{AdmissionState, Batch, ManifestRecord};
use super::names::{RepoName, Tag};
use super::AppState;
use futures_util::future::BoxFuture;
use vouch_ledger::entry::Digest;

/// Whether a reader without push rights to the repository may have the
/// bytes of a manifest or blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// Served.
    Yes,
    /// Withheld, and why (the message of the 403 `DENIED`).
    No(String),
}

impl Visible {
    /// Whether it is served.
    pub fn is_yes(&self) -> bool {
        matches!(self, Visible::Yes)
    }
}

/// A manifest push that passed the registry's checks (well-formed, its
/// references present with the sizes its descriptors declare), to be
/// accepted by the gate.
#[derive(Debug)]
pub struct ManifestPush<'a> {
    /// Where.
    pub repo: &'a RepoName,
    /// Its digest (with the algorithm it was pushed by).
    pub digest: Digest,
    /// Its media type (Content-Type).
    pub media_type: &'a str,
    /// Its exact bytes.
    pub bytes: &'a [u8],
    /// What it references, its subject and artifact type.
    pub refs: &'a References,
    /// The tags it is pushed under: the reference, or the `?tag=`
    /// parameters of a push by digest (distribution-spec main).
    pub tags: &'a [Tag],
    /// Whether the pusher is an admin of the repository, who may move a
    /// tag off protected content. The registry checked the tag when the
    /// push arrived; the gate checks again where it commits, since its
    /// target may have been admitted meanwhile.
    pub admin: bool,
    /// This digest's record if it was already stored (an identical re-push).
    pub prior: Option<ManifestRecord>,
}

impl ManifestPush<'_> {
    /// Adds the push itself to `batch`: the record (unless one was already
    /// stored: a re-push keeps it, and with it its state), what it
    /// references, its place among its subject's referrers, its tag.
    pub fn stage(&self, batch: &mut Batch<'_>, record: Option<&ManifestRecord>) -> Result<(), RegistryError> {
        if let Some(record) = record {
            batch.put_record(self.repo, &self.digest, record)?;
        }
        batch.index_refs(self.repo, &self.digest, &self.refs.all());
        if let Some(subject) = &self.refs.subject {
            batch.index_referrer(self.repo, subject, &self.digest, &self.descriptor());
        }
        for tag in self.tags {
            batch.set_tag(self.repo, tag, &self.digest);
        }
        Ok(())
    }

    /// The descriptor a referrers listing of its subject shows.
    pub fn descriptor(&self) -> serde_json::Value {
        let mut d = serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest.as_str(),
            "size": self.bytes.len(),
        });
        if let Some(t) = &self.refs.artifact_type {
            d["artifactType"] = t.as_str().into();
        }
        // Annotations up to a bound: a listing of many referrers is read
        // whole, so it must not carry megabytes of each.
        if let Some(a) = self
            .refs
            .annotations
            .as_ref()
            .filter(|a| a.to_string().len() <= MAX_LISTED_ANNOTATIONS)
        {
            d["annotations"] = a.clone();
        }
        d
    }
}

/// The most bytes of annotations (as JSON) a referrer's descriptor in its
/// subject's referrers listing carries; a referrer with more is listed
/// without them (`spec/http-api.md`).
pub const MAX_LISTED_ANNOTATIONS: usize = 16 << 10;

/// What accepting a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The manifest's admission state after the push (the
    /// `Vouch-Admission-State` header), if the gate decides admission.
    pub state: Option<AdmissionState>,
}

/// Visibility and admission, as the registry asks for them.
pub trait Gate: Send + Sync + std::fmt::Debug {
    /// Whether a reader without push rights to `repo` may have the bytes of
    /// the stored manifest `digest`.
    fn manifest_visible(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<Visible, RegistryError>;

    /// Whether a reader without push rights to `repo` may have the bytes of
    /// the blob `digest` linked there.
    fn blob_visible(&self, app: &AppState, repo: &RepoName, digest: &Digest) -> Result<Visible, RegistryError>;

    /// Whether deleting this manifest, a tag pointing to it or a blob it
    /// references (`deleting`), or moving a tag off it (not `deleting`),
    /// is an admin's act (logged first).
    fn protected(&self, record: &ManifestRecord, deleting: bool) -> bool;

    /// Accepts a manifest push: stores it (with [`ManifestPush::stage`]),
    /// and whatever it decides, in one durable step.
    fn accept<'a>(
        &'a self,
        app: &'a AppState,
        push: ManifestPush<'a>,
    ) -> BoxFuture<'a, Result<Accepted, RegistryError>>;

    /// Holds off, until the guard drops, every change the gate makes to the
    /// admission state of `digest` in `repo` and to its tags `tags`: a
    /// deletion reads, checks and commits under it, so what it found
    /// unprotected cannot be admitted before it is gone.
    fn hold<'a>(&'a self, repo: &'a RepoName, digest: &'a Digest, tags: &'a [Tag])
        -> BoxFuture<'a, Box<dyn Send + 'a>>;

    /// Called before the registry deletes the manifest `digest` (`tag`:
    /// `None`) or a tag pointing to it; logs what must be logged first.
    fn before_destroy<'a>(
        &'a self,
        app: &'a AppState,
        repo: &'a RepoName,
        digest: &'a Digest,
        tag: Option<&'a Tag>,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// `POST /admin/reevaluate`: decides stored images again (`all`: admitted
    /// ones too); answers a JSON report.
    fn reevaluate<'a>(
        &'a self,
        app: &'a AppState,
        all: bool,
    ) -> BoxFuture<'a, Result<serde_json::Value, RegistryError>>;
}

/// No admission: everything stored is served. For registry tests and tools
/// that exercise the distribution API alone; `vouch serve` always runs
/// with admission.
#[derive(Debug, Default)]
pub struct OpenGate;

impl Gate for OpenGate {
    fn manifest_visible(
        &self,
        _: &AppState,
        _: &RepoName,
        _: &Digest,
        _: &ManifestRecord,
    ) -> Result<Visible, RegistryError> {
        Ok(Visible::Yes)
    }

    fn blob_visible(&self, _: &AppState, _: &RepoName, _: &Digest) -> Result<Visible, RegistryError> {
        Ok(Visible::Yes)
    }

    fn protected(&self, _: &ManifestRecord, _: bool) -> bool {
        false
    }

    fn accept<'a>(
        &'a self,
        app: &'a AppState,
        push: ManifestPush<'a>,
    ) -> BoxFuture<'a, Result<Accepted, RegistryError>> {
        Box::pin(async move {
            let record = ManifestRecord::new(AdmissionState::Pending, push.media_type, push.bytes, None);
            let mut batch = app.meta.batch();
            push.stage(&mut batch, push.prior.is_none().then_some(&record))?;
            batch.commit_durable().await?;
            Ok(Accepted { state: None })
        })
    }

    fn hold<'a>(&'a self, _: &'a RepoName, _: &'a Digest, _: &'a [Tag]) -> BoxFuture<'a, Box<dyn Send + 'a>> {
        Box::pin(async { Box::new(()) as Box<dyn Send> })
    }

    fn before_destroy<'a>(
        &'a self,
        _: &'a AppState,
        _: &'a RepoName,
        _: &'a Digest,
        _: Option<&'a Tag>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async { Ok(()) })
    }

    fn reevaluate<'a>(&'a self, _: &'a AppState, _: bool) -> BoxFuture<'a, Result<serde_json::Value, RegistryError>> {
        Box::pin(async {
            Err(RegistryError::Unsupported(
                "this registry has no admission policy".into(),
            ))
        })
    }
}
