//! Accepting a push: evidence is stored and its subject decided again; an
//! image is decided once per digest; then what follows an admission (the
//! tags already pointing to it logged, an index's manifests decided).
//!
//! Commit point, for every push: the decision (if any) and the tag entry
//! (if any) are appended to the ledger first, each durable on return; then
//! one synced batch records the manifest, its tag, the new state, the
//! decision's summary, vouch's countersignature and the queued bundle. A
//! crash before the batch leaves the ledger holding a decision about a push
//! that was never acknowledged and stored nothing; the client retries and
//! the retry is decided again. A push answered with an error stored nothing.
//! The tags are checked, and the batch committed, under the locks of the
//! push's tags (`Admission::tag_locks`), after the image's own lock.

use super::decide::{is_index, LogWhen, TagMoves};
use super::evidence;
use super::Admission;
use crate::registry::error::RegistryError;
use crate::registry::gate::{Accepted, ManifestPush};
use crate::registry::manifest::validate;
use crate::registry::meta::{AdmissionState, Evidence, EvidenceKind, ManifestRecord};
use crate::registry::names::{RepoName, Tag};
use crate::registry::AppState;
use vouch_ledger::entry::{Digest, Entry, TagEntry};

/// Which tags pointing to a newly admitted image are logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tags {
    /// All but this one (logged by the push itself).
    LogExcept(Vec<String>),
    /// None: a manifest stored by this very push can have no other tag
    /// (and scanning a repository's tags per push would cost its size).
    NoneOther,
}

impl Admission {
    /// Accepts a manifest push (the registry's `Gate::accept`).
    pub(super) async fn accept_push(&self, app: &AppState, push: ManifestPush<'_>) -> Result<Accepted, RegistryError> {
        let evidence = match &push.prior {
            // Identical bytes were stored before: what they are is known.
            Some(prior) => prior.evidence.clone(),
            None => {
                let hint = push.tags.iter().find_map(|t| evidence::tag_hint(t.as_str()));
                self.classify(app, push.repo, push.media_type, push.bytes, push.refs, hint.as_ref())
                    .await?
            }
        };
        match evidence {
            Some(e) => self.accept_evidence(app, push, e).await,
            None => self.accept_image(app, push).await,
        }
    }

    /// Evidence: stored as such, and its subject decided again with it.
    async fn accept_evidence(
        &self,
        app: &AppState,
        push: ManifestPush<'_>,
        e: Evidence,
    ) -> Result<Accepted, RegistryError> {
        let repo = push.repo;
        let guard = self.lock(repo, &e.subject).await;
        let record = ManifestRecord::new(AdmissionState::Evidence, push.media_type, push.bytes, Some(e.clone()));
        let new = push.prior.is_none();
        let mut batch = app.meta.batch();
        push.stage(&mut batch, new.then_some(&record))?;
        if new {
            batch.index_evidence(repo, &e.subject, &push.digest, e.kind);
        }
        // Evidence that was here already changes nothing: no decision.
        let subject = match new && e.kind != EvidenceKind::AdmissionBundle {
            true => app.meta.manifest(repo, &e.subject)?,
            false => None,
        };
        let subject = subject.filter(|s| s.state != AdmissionState::Evidence);
        let outcome = match &subject {
            Some(s) => Some(
                self.evaluate(app, repo, &e.subject, s, Some((&push.digest, &record)))
                    .await,
            ),
            None => None,
        };
        // The commit point: the tag is checked, the decision logged and
        // everything committed under the repository's tag lock.
        let tags = self.tag_locks(repo, push.tags).await?;
        let previous = self.tag_previous(app, &push)?;
        let mut decided = None;
        if let (Some(subject), Some(outcome)) = (subject, outcome) {
            // A signature pushed under the image's .sig tag is what the
            // countersignature builds on.
            let sig_tag = crate::signature::signature_tag(&e.subject);
            let incoming = (e.kind == EvidenceKind::CosignSignature && push.tags.iter().any(|t| t.as_str() == sig_tag))
                .then_some((&push.digest, &record));
            let state = self
                .record(
                    app,
                    (repo, &e.subject, &subject),
                    outcome,
                    (LogWhen::OutcomeChanged, incoming, &mut None),
                    &mut batch,
                )
                .await?;
            decided = Some((subject, state));
        }
        self.log_tag_move(app, &push, &previous, false).await?;
        batch.commit_durable().await?;
        drop(tags);
        drop(guard);
        match decided {
            Some((subject, state)) => {
                self.follow_up(app, repo, &e.subject, &subject, state, Tags::LogExcept(Vec::new()))
                    .await
            }
            // Attestations pushed ahead of their image: opened now, so
            // that the image's push does not wait for that work. Stored
            // and committed already; a failure here costs only that.
            None if new && e.kind == EvidenceKind::CosignAttestation => {
                if let Err(err) = self.open_ahead(app, repo, push.bytes).await {
                    tracing::warn!(%repo, subject = %e.subject, error = %err, "opening attestations ahead of their image failed");
                }
            }
            None => {}
        }
        Ok(Accepted {
            state: Some(AdmissionState::Evidence),
        })
    }

    /// An image (or an artifact decided like one): decided once per digest.
    async fn accept_image(&self, app: &AppState, push: ManifestPush<'_>) -> Result<Accepted, RegistryError> {
        let (repo, digest) = (push.repo, push.digest.clone());
        let guard = self.lock(repo, &digest).await;
        let mut batch = app.meta.batch();
        // Read again under the lock: evidence may have decided it since.
        let prior = app.meta.manifest(repo, &digest)?;
        // A manifest already decided (pushed again, under another tag say)
        // keeps its decision: new evidence, not a new tag, re-evaluates it.
        if let Some(prior) = prior.as_ref().filter(|p| p.state != AdmissionState::Pending) {
            push.stage(&mut batch, None)?;
            let _tags = self.tag_locks(repo, push.tags).await?;
            let previous = self.tag_previous(app, &push)?;
            self.log_tag_move(app, &push, &previous, prior.state == AdmissionState::Admitted)
                .await?;
            batch.commit_durable().await?;
            return Ok(Accepted {
                state: Some(prior.state),
            });
        }
        let record = ManifestRecord::new(AdmissionState::Pending, push.media_type, push.bytes, None);
        push.stage(&mut batch, Some(&record))?;
        let outcome = self.evaluate(app, repo, &digest, &record, None).await;
        // The commit point: the tag is checked (before anything is logged,
        // so a refusal leaves no trace), the decision and the tag logged,
        // and the batch committed, under the repository's tag lock.
        let tags = self.tag_locks(repo, push.tags).await?;
        let previous = self.tag_previous(app, &push)?;
        // The tag entries go to the ledger with the decision (one group
        // commit for both), in that order.
        let mut moves = Some(self.tag_moves(app, &push, &previous)?);
        let state = self
            .record(
                app,
                (repo, &digest, &record),
                outcome,
                (LogWhen::OutcomeChanged, None, &mut moves),
                &mut batch,
            )
            .await?;
        // Not logged with a decision (none was made): logged now.
        if let Some(m) = moves {
            for entry in m.entries(state == AdmissionState::Admitted) {
                super::append(&app.ledger, entry).await?;
            }
        }
        batch.commit_durable().await?;
        drop(tags);
        drop(guard);
        // The push logged its own tag; others pointing here (only if the
        // manifest was stored before, pending) are logged on admit.
        let tags = match &prior {
            None => Tags::NoneOther,
            Some(_) => Tags::LogExcept(push.tags.iter().map(|t| t.as_str().to_owned()).collect()),
        };
        self.follow_up(app, repo, &digest, &record, state, tags).await;
        Ok(Accepted { state: Some(state) })
    }

    /// Where each of the push's tags points now (read under the
    /// repository's tag lock); refuses to move one off admitted content
    /// unless the pusher is an admin.
    fn tag_previous(&self, app: &AppState, push: &ManifestPush<'_>) -> Result<Vec<Option<Digest>>, RegistryError> {
        let mut out = Vec::with_capacity(push.tags.len());
        for tag in push.tags {
            let previous = app.meta.tag(push.repo, tag)?;
            if let Some(p) = previous.as_ref().filter(|p| **p != push.digest) {
                let admitted = app
                    .meta
                    .manifest(push.repo, p)?
                    .is_some_and(|r| r.state == AdmissionState::Admitted);
                if admitted && !push.admin {
                    return Err(RegistryError::Forbidden(format!(
                        "moving tag {} off the admitted {p} needs admin rights on {}",
                        tag.as_str(),
                        push.repo
                    )));
                }
            }
            out.push(previous);
        }
        Ok(out)
    }

    /// Logs each tag set or moved by a push when it points to admitted
    /// content now (`admitted`), or pointed to admitted content before
    /// (`previous`, as [`Self::tag_previous`] read it).
    async fn log_tag_move(
        &self,
        app: &AppState,
        push: &ManifestPush<'_>,
        previous: &[Option<Digest>],
        admitted: bool,
    ) -> Result<(), RegistryError> {
        for entry in self.tag_moves(app, push, previous)?.entries(admitted) {
            super::append(&app.ledger, entry).await?;
        }
        Ok(())
    }

    /// Each tag the push sets or moves, as a `tag` entry, with whether it
    /// pointed to admitted content before (read once).
    fn tag_moves(
        &self,
        app: &AppState,
        push: &ManifestPush<'_>,
        previous: &[Option<Digest>],
    ) -> Result<TagMoves, RegistryError> {
        let mut out = Vec::new();
        for (tag, previous) in push.tags.iter().zip(previous) {
            if previous.as_ref() == Some(&push.digest) {
                continue;
            }
            let was_admitted = match previous {
                Some(p) => app
                    .meta
                    .manifest(push.repo, p)?
                    .is_some_and(|r| r.state == AdmissionState::Admitted),
                None => false,
            };
            let entry = Entry::Tag(TagEntry {
                repo: push.repo.to_string(),
                tag: tag.as_str().to_owned(),
                digest: push.digest.clone(),
                previous: previous.clone(),
            });
            out.push((entry, was_admitted));
        }
        Ok(TagMoves(out))
    }

    /// After a decision is committed: when it admitted what was not
    /// admitted, the tags already pointing to it are logged (but the one
    /// the push that caused it logged itself), and an index's listed
    /// manifests are decided (covered by it). Its failures are logged, not
    /// returned: the decision stands.
    pub(super) async fn follow_up(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        before: &ManifestRecord,
        after: AdmissionState,
        tags: Tags,
    ) {
        if after != AdmissionState::Admitted || before.state == AdmissionState::Admitted {
            return;
        }
        if let Err(e) = self.after_admit(app, repo, digest, before, tags).await {
            tracing::error!(%repo, %digest, error = %e, "after admitting: logging tags or deciding an index's manifests failed");
        }
    }

    async fn after_admit(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
        tags: Tags,
    ) -> Result<(), RegistryError> {
        if let Tags::LogExcept(skip) = tags {
            let pointing: Vec<String> = app
                .meta
                .tags_with_targets(repo)?
                .into_iter()
                .filter(|(tag, target)| target == digest && !skip.contains(tag))
                .map(|(tag, _)| tag)
                .collect();
            // Under their locks, each read again: a push may have moved it.
            let _tags = self.tag_locks(repo, &pointing).await?;
            for tag in pointing {
                let still = Tag::parse(&tag)
                    .ok()
                    .map(|t| app.meta.tag(repo, &t))
                    .transpose()?
                    .flatten();
                if still.as_ref() != Some(digest) {
                    continue;
                }
                let entry = Entry::Tag(TagEntry {
                    repo: repo.to_string(),
                    tag,
                    digest: digest.clone(),
                    previous: None,
                });
                super::append(&app.ledger, entry).await?;
            }
        }
        if !is_index(&record.media_type) {
            return Ok(());
        }
        let children = validate(&record.media_type, &record.bytes)
            .map(|r| r.manifests)
            .unwrap_or_default();
        for child in children {
            let guard = self.lock(repo, &child).await;
            let Some(c) = app.meta.manifest(repo, &child)? else {
                continue;
            };
            if !matches!(c.state, AdmissionState::Pending | AdmissionState::Denied) {
                continue;
            }
            let outcome = self.evaluate(app, repo, &child, &c, None).await;
            let mut batch = app.meta.batch();
            let state = self
                .record(
                    app,
                    (repo, &child, &c),
                    outcome,
                    (LogWhen::VerdictChanged, None, &mut None),
                    &mut batch,
                )
                .await?;
            batch.commit_durable().await?;
            drop(guard);
            Box::pin(self.follow_up(app, repo, &child, &c, state, Tags::LogExcept(Vec::new()))).await;
        }
        Ok(())
    }
}
