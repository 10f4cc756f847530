//! Deciding stored images again: at start (images a crash left pending;
//! with a new policy, pending and denied ones), and on the operator's
//! `POST /admin/reevaluate[?all=true]`. Only changed verdicts are logged.
//! One image never stops the others: a failure is counted, named in the
//! report and the log, and the run goes on.
//!
//! Also the one-time classification of manifests stored by a version that
//! called evidence what its tag said (record version 1).

use super::accept::Tags;
use super::decide::{is_index, LogWhen};
use super::Admission;
use crate::registry::error::RegistryError;
use crate::registry::manifest::validate;
use crate::registry::meta::{AdmissionState, ManifestRecord, RECORD_VERSION};
use crate::registry::names::RepoName;
use crate::registry::AppState;
use vouch_ledger::entry::Digest;

/// Which stored images a re-evaluation decides again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Pending ones only: left undecided by a crash (every start).
    Pending,
    /// Pending and denied ones (a new policy).
    Quarantined,
    /// Every image, admitted ones too (the operator's explicit re-evaluation).
    All,
}

/// What a re-evaluation did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reevaluation {
    /// Images evaluated.
    pub evaluated: u64,
    /// Of those, admitted now.
    pub admitted: u64,
    /// Of those, denied now.
    pub denied: u64,
    /// Of those, whose verdict changed (each a new ledger entry).
    pub changed: u64,
    /// Images whose decision could not be recorded (storage or ledger
    /// failures); they keep their state.
    pub failed: u64,
    /// The first few failures, named.
    pub failures: Vec<String>,
}

impl Admission {
    /// Re-evaluates the stored images in `scope` under the policy in force,
    /// logging each changed verdict. Indexes go first, since an admitted
    /// index covers the manifests it lists.
    pub async fn reevaluate(&self, app: &AppState, scope: Scope) -> Reevaluation {
        let mut report = Reevaluation::default();
        let todo = match self.todo(app, scope) {
            Ok(t) => t,
            Err(e) => {
                report.failed += 1;
                report.failures.push(format!("listing stored manifests: {e}"));
                return report;
            }
        };
        for (repo, digest) in todo {
            if let Err(e) = self.decide_again(app, &repo, &digest, scope, &mut report).await {
                tracing::error!(%repo, %digest, error = %e, "re-evaluation failed; the image keeps its state");
                report.failed += 1;
                if report.failures.len() < 10 {
                    report.failures.push(format!("{repo}@{digest}: {e}"));
                }
            }
        }
        report
    }

    fn todo(&self, app: &AppState, scope: Scope) -> Result<Vec<(RepoName, Digest)>, RegistryError> {
        // Names only (the records are read again, one at a time, under
        // each image's lock).
        let mut todo: Vec<(RepoName, Digest, bool)> = Vec::new();
        app.meta.for_each_manifest(|repo, digest, r| {
            if in_scope(r.state, scope) {
                todo.push((repo.clone(), digest.clone(), is_index(&r.media_type)));
            }
            Ok(())
        })?;
        todo.sort_by_key(|(_, _, index)| !index);
        Ok(todo.into_iter().map(|(r, d, _)| (r, d)).collect())
    }

    async fn decide_again(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        scope: Scope,
        report: &mut Reevaluation,
    ) -> Result<(), RegistryError> {
        // Countersignatures write blobs: no collection may run meanwhile.
        let _gc = app.gc_lock.read().await;
        let guard = self.lock(repo, digest).await;
        // Read again under the lock: an index decided earlier in this run
        // may have decided it already.
        let Some(record) = app.meta.manifest(repo, digest)? else {
            return Ok(());
        };
        if !in_scope(record.state, scope) {
            return Ok(());
        }
        let outcome = self.evaluate(app, repo, digest, &record, None).await;
        if outcome.undetermined {
            return Err(RegistryError::Internal(format!(
                "no verdict: {}",
                outcome.reasons.join("; ")
            )));
        }
        let mut batch = app.meta.batch();
        let state = self
            .record(
                app,
                (repo, digest, &record),
                outcome,
                (LogWhen::VerdictChanged, None, &mut None),
                &mut batch,
            )
            .await?;
        batch.commit(true)?;
        drop(guard);
        report.evaluated += 1;
        match state {
            AdmissionState::Admitted => report.admitted += 1,
            _ => report.denied += 1,
        }
        if state != record.state {
            report.changed += 1;
        }
        self.follow_up(app, repo, digest, &record, state, Tags::LogExcept(Vec::new()))
            .await;
        Ok(())
    }

    /// Classifies, once, the manifests a version before record version 2
    /// stored: those it called evidence (for their tag's name) are
    /// evidence now only if their structure says so, and are otherwise
    /// pending (to be decided); the rest keep their state. Returns how many
    /// records were rewritten.
    pub async fn upgrade_records(&self, app: &AppState) -> Result<usize, RegistryError> {
        if app.meta.marker("records")?.as_deref() == Some("2") {
            return Ok(0);
        }
        let mut n = 0;
        let mut old = Vec::new();
        app.meta.for_each_manifest(|repo, digest, record| {
            if record.version < RECORD_VERSION {
                old.push((repo.clone(), digest.clone()));
            }
            Ok(())
        })?;
        for (repo, digest) in old {
            let Some(record) = app.meta.manifest(&repo, &digest)? else {
                continue;
            };
            let mut batch = app.meta.batch();
            let upgraded = match record.state {
                AdmissionState::Evidence => {
                    let refs = validate(&record.media_type, &record.bytes).unwrap_or_default();
                    let evidence = self
                        .classify(app, &repo, &record.media_type, &record.bytes, &refs, None)
                        .await?;
                    if let Some(e) = &evidence {
                        batch.index_evidence(&repo, &e.subject, &digest, e.kind);
                    }
                    match evidence {
                        Some(e) => {
                            ManifestRecord::new(AdmissionState::Evidence, &record.media_type, &record.bytes, Some(e))
                        }
                        None => record.with_state(AdmissionState::Pending),
                    }
                }
                state => record.with_state(state),
            };
            batch.put_record(&repo, &digest, &upgraded)?;
            batch.commit(true)?;
            n += 1;
        }
        let mut batch = app.meta.batch();
        batch.set_marker("records", b"2");
        batch.commit(true)?;
        Ok(n)
    }
}

fn in_scope(state: AdmissionState, scope: Scope) -> bool {
    match state {
        AdmissionState::Pending => true,
        AdmissionState::Denied => scope != Scope::Pending,
        AdmissionState::Admitted => scope == Scope::All,
        AdmissionState::Evidence => false,
    }
}
